"""The form of a custom object record (create and edit), built from its type's fields.

Each field gets the input of its kind (contacts.forms.common.custom_form_field: number,
date, yes/no box, list select, web address), named "v__<key>" so that no field key can
collide with the record's own inputs (owner, external id). A bad value in one field is an
error on that field; every other field keeps what was typed. The services check every value
again (pattern, choices, required, size) and their errors come back on the same fields.

The owner picker offers whom the member may give a record to: with "own" scope only
themselves (and the current owner), with "team" scope their team, otherwise every active
member; the service enforces the same rule.
"""

from __future__ import annotations

from django import forms
from django.core.exceptions import ValidationError

from contacts.forms.common import (
    MemberChoiceField,
    active_member_users,
    custom_form_field,
    custom_initial,
)
from crm.models import Membership, User

from ..models import ObjectField, ObjectRecord
from ..services.object_records import EXTERNAL_ID_MAX
from ..services.object_types import MODULE

VALUE_PREFIX = "v__"


def value_name(key: str) -> str:
    return VALUE_PREFIX + key


def value_form_field(field: ObjectField) -> forms.Field:
    """The input of one field's kind, required when the field is (a yes/no box always has a
    value: unticked is "no")."""
    form_field = custom_form_field(field)
    if field.required and field.field_type != ObjectField.FieldType.CHECKBOX:
        form_field.required = True
        if isinstance(form_field, forms.ChoiceField):
            form_field.choices = [c for c in form_field.choices if c[0] != ""]
            form_field.choices = [("", "Choose…"), *form_field.choices]
    return form_field


class ObjectRecordForm(forms.Form):
    owner = MemberChoiceField(queryset=User.objects.none(), required=False)
    external_id = forms.CharField(
        max_length=EXTERNAL_ID_MAX,
        required=False,
        label="External id",
        help_text="The record's id in another system, unique for this type. Optional.",
    )

    def __init__(
        self,
        *args,
        fields: list[ObjectField],
        org,
        user,
        policy,
        record: ObjectRecord | None = None,
        **kwargs,
    ):
        self.object_fields = fields
        self.record = record
        self.org, self.user, self.policy = org, user, policy
        if record is not None:
            initial = {
                "owner": record.owner.public_id if record.owner_id else None,
                "external_id": record.external_id,
            }
            stored = record.values or {}
            for field in fields:
                initial[value_name(field.key)] = custom_initial(field, stored.get(field.key))
        else:
            initial = {"owner": user.public_id}
        kwargs.setdefault("initial", initial)
        super().__init__(*args, **kwargs)
        own = {"owner": self.fields.pop("owner"), "external_id": self.fields.pop("external_id")}
        for field in fields:
            self.fields[value_name(field.key)] = value_form_field(field)
        self.fields.update(own)
        self._setup_owner()

    def _setup_owner(self) -> None:
        owner = self.fields["owner"]
        owner.me = self.user
        owner.to_field_name = "public_id"
        current = self.record.owner_id if self.record is not None else None
        scope = self.policy.scope(MODULE) if self.policy is not None else "all"
        team_id = self.policy.membership.team_id if self.policy is not None else None
        if scope == "team" and not team_id:
            scope = "own"  # a team scope without a team reaches the member's own records
        if scope == "own":
            owner.queryset = User.objects.filter(pk__in=[self.user.pk, current or self.user.pk])
            owner.required = True
            owner.empty_label = None
        elif scope == "team":
            teammates = Membership.objects.for_org(self.org).filter(team_id=team_id, is_active=True)
            owner.queryset = User.objects.filter(
                pk__in=[*teammates.values_list("user_id", flat=True), self.user.pk, current or 0]
            ).order_by("first_name", "last_name", "email")
            owner.required = True
            owner.empty_label = None
        else:
            owner.queryset = active_member_users(self.org, include=[current])

    def value_fields(self):
        return [self[value_name(field.key)] for field in self.object_fields]

    def own_fields(self):
        return [self["owner"], self["external_id"]]

    def service_data(self) -> dict:
        data = self.cleaned_data
        values = {field.key: data.get(value_name(field.key)) for field in self.object_fields}
        return {"values": values, "external_id": data["external_id"], "owner": data["owner"]}

    def add_service_errors(self, exc: ValidationError) -> None:
        if not hasattr(exc, "error_dict"):
            self.add_error(None, exc.messages)
            return
        keys = {field.key for field in self.object_fields}
        for key, messages in exc.message_dict.items():
            name = value_name(key) if key in keys else key
            self.add_error(name if name in self.fields else None, messages)
