"""The Compliance card of a contact's page: the may-we-contact answer per channel, the
consent state and its history, suppressions with Suppress and Lift, and a consent change.

The contact page includes a placeholder that HTMX replaces with this card; without
JavaScript its link opens the card as a page of its own. Every URL here finds the contact
through the member's record scope, so a contact they may not see is a 404, in their
organization or another.
"""

from __future__ import annotations

from django import forms
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Q
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from contacts.models import Contact
from contacts.views.common import get_contact, workspace_view
from contacts.views.record import display_name
from crm.permissions import policy_for
from crm.services import Actor

from ..models import Channel, ConsentRecord, LegalBasis, Purpose, Suppression
from ..selectors import (
    CONSENT_FIELD_OF,
    address_for,
    channel_verdicts,
    consent_history,
    contact_suppressions,
)
from ..services.consent import ConsentVia, set_consent
from ..services.legal_hold import set_legal_hold
from ..services.suppression import suppress, unsuppress
from .suppressions import LiftForm

HISTORY_ON_CARD = 20
HISTORY_PAGE_LIMIT = 1000
CARD_TEMPLATE = "compliance/partials/contact_card.html"
CARD_PAGE_TEMPLATE = "compliance/contact_card_page.html"
SOURCE = "Compliance card"

YES, NO, UNKNOWN = "yes", "no", "unknown"
CONSENT_CHOICES = [(YES, "Yes"), (NO, "No"), (UNKNOWN, "Unknown")]
CONSENT_FROM_CHOICE = {YES: True, NO: False, UNKNOWN: None}
CHOICE_OF_CONSENT = {True: YES, False: NO, None: UNKNOWN}
CHANNEL_LABELS = dict(Channel.choices)
FIELD_LABELS = dict(ConsentRecord.Field.choices)
ACTOR_KINDS = dict(ConsentRecord.ActorKind.choices)
LEGAL_BASES = dict(LegalBasis.choices)
STATUS_LABELS = dict(Contact.ConsentStatus.choices)


class SuppressForm(forms.Form):
    channel = forms.ChoiceField(label="Channel", choices=Channel.choices)
    reason = forms.ChoiceField(
        label="Reason", choices=Suppression.Reason.choices, initial=Suppression.Reason.MANUAL
    )
    note = forms.CharField(
        label="Note", required=False, max_length=2000, widget=forms.Textarea(attrs={"rows": 2})
    )

    def add_service_errors(self, exc: ValidationError) -> None:
        if not hasattr(exc, "error_dict"):
            self.add_error(None, exc.messages)
            return
        for key, messages in exc.message_dict.items():
            self.add_error(key if key in self.fields else None, messages)


class ConsentForm(forms.Form):
    """One yes/no/unknown per channel the member may edit, a legal basis and a note."""

    legal_basis = forms.ChoiceField(
        label="Legal basis", choices=[("", "Not stated"), *LegalBasis.choices], required=False
    )
    note = forms.CharField(
        label="Note", required=False, max_length=1000, widget=forms.Textarea(attrs={"rows": 2})
    )

    def __init__(self, *args, contact, policy, **kwargs):
        kwargs.setdefault("auto_id", "consent-%s")
        super().__init__(*args, **kwargs)
        self.editable = []
        for channel, field_name in CONSENT_FIELD_OF.items():
            if not policy.can_edit_field(field_name):
                continue
            self.fields[field_name] = forms.ChoiceField(
                label=CHANNEL_LABELS[channel],
                choices=CONSENT_CHOICES,
                initial=CHOICE_OF_CONSENT.get(getattr(contact, field_name), UNKNOWN),
                widget=forms.RadioSelect,
            )
            self.editable.append(field_name)
        self.order_fields([*self.editable, "legal_basis", "note"])

    @property
    def channel_fields(self):
        return [self[name] for name in self.editable]

    def changes(self) -> dict:
        return {name: CONSENT_FROM_CHOICE[self.cleaned_data[name]] for name in self.editable}

    def add_service_errors(self, exc: ValidationError) -> None:
        if not hasattr(exc, "error_dict"):
            self.add_error(None, exc.messages)
            return
        for key, messages in exc.message_dict.items():
            self.add_error(key if key in self.fields else None, messages)


def _value_text(field: str, value: str) -> str:
    if field == "consent_status":
        return STATUS_LABELS.get(value, value or "Unknown")
    return {"true": "Yes", "false": "No"}.get(value, "Unknown")


def history_rows(records) -> list[dict]:
    rows = []
    for record in records:
        if record.actor_user is not None:
            who = record.actor_user.display_name or record.actor_user.email
        else:
            who = record.actor_label
        rows.append(
            {
                "record": record,
                "field": FIELD_LABELS.get(record.field, record.field),
                "old": _value_text(record.field, record.old_value),
                "new": _value_text(record.field, record.new_value),
                "kind": ACTOR_KINDS.get(record.actor_kind, record.actor_kind),
                "who": who,
                "legal_basis": LEGAL_BASES.get(record.legal_basis, ""),
                "note": (record.evidence or {}).get("note", "")
                if isinstance(record.evidence, dict)
                else "",
            }
        )
    return rows


def _address_visible(policy, channel: str) -> bool:
    """Whether this member may see the address a channel uses (the email, or the phone
    numbers): a hidden field stays hidden on the card too."""
    if channel == Channel.EMAIL:
        return policy.can_see_field("email")
    return policy.can_see_field("phone") and policy.can_see_field("mobile")


def _masked(verdict, visible: bool) -> str:
    if visible or not verdict.address:
        return verdict.reason
    return verdict.reason.replace(verdict.address, "This address")


def card_context(
    request, contact, *, suppress_form=None, consent_form=None, lift_errors=None, hold_errors=None
) -> dict:
    """What the Compliance card shows for `contact` to this member."""
    policy = policy_for(request)
    marketing = channel_verdicts(contact, Purpose.MARKETING)
    transactional = channel_verdicts(contact, Purpose.TRANSACTIONAL)
    channels = []
    for (label, verdict), (_, transactional_verdict), channel in zip(
        marketing, transactional, Channel.values, strict=True
    ):
        field_name = CONSENT_FIELD_OF[channel]
        consent_visible = policy.can_see_field(field_name)
        address_visible = _address_visible(policy, channel)
        channels.append(
            {
                "key": channel,
                "label": label,
                "address": address_for(contact, channel) if address_visible else "",
                "consent_visible": consent_visible,
                "consent": CHOICE_OF_CONSENT.get(getattr(contact, field_name), UNKNOWN)
                if consent_visible
                else "",
                "marketing": verdict,
                "marketing_reason": _masked(verdict, address_visible),
                "transactional": transactional_verdict,
                "transactional_reason": _masked(transactional_verdict, address_visible),
            }
        )
    suppressions = list(contact_suppressions(contact))
    for row in suppressions:
        row.shown_address = row.address if _address_visible(policy, row.channel) else ""
    records = list(consent_history(contact, limit=HISTORY_ON_CARD + 1))
    can_edit_contact = policy.can_touch("contacts", "edit", contact.owner_id)
    consent_form = consent_form or ConsentForm(contact=contact, policy=policy)
    return {
        "contact": contact,
        "name": display_name(contact, policy),
        "channels": channels,
        "active_suppressions": [s for s in suppressions if s.lifted_at is None],
        "lifted_suppressions": [s for s in suppressions if s.lifted_at is not None],
        "history": history_rows(records[:HISTORY_ON_CARD]),
        "history_more": len(records) > HISTORY_ON_CARD,
        "status_visible": policy.can_see_field("consent_status"),
        "do_not_sell_visible": policy.can_see_field("do_not_sell"),
        "legal_hold_visible": policy.can_see_field("legal_hold"),
        "can_suppress": can_edit_contact,
        "can_lift": policy.can("compliance", "edit"),
        "can_change_consent": can_edit_contact and bool(consent_form.editable),
        "suppress_form": suppress_form or SuppressForm(auto_id="suppress-%s"),
        "consent_form": consent_form,
        "lift_errors": lift_errors or {},
        "hold_errors": hold_errors or [],
        "can_hold": policy.can("compliance", "edit"),
        "can_send_opt_in": can_edit_contact
        and bool(contact.email)
        and contact.consent_status != Contact.ConsentStatus.OPTED_IN,
        "policy": policy,
        "compliance_card": True,
    }


def _card_response(request, contact, status=200, **extra):
    """The card alone for HTMX (with any form errors in place: a 200, since HTMX does not
    swap error answers), or the card's own page (a 400 when a form was refused)."""
    context = card_context(request, contact, **extra)
    if request.htmx and not request.htmx.boosted and not request.htmx.history_restore_request:
        return render(request, CARD_TEMPLATE, context)
    return render(request, CARD_PAGE_TEMPLATE, context, status=status)


def _after_action(request, contact):
    if request.htmx:
        return _card_response(request, contact)
    return redirect(reverse("contacts:contact_detail", args=[contact.public_id]))


@require_GET
@workspace_view("contacts")
def contact_card(request, contact_public_id):
    contact = get_contact(request, contact_public_id)
    return _card_response(request, contact)


@require_GET
@workspace_view("contacts")
def contact_consent_history(request, contact_public_id):
    contact = get_contact(request, contact_public_id)
    records = list(consent_history(contact, limit=HISTORY_PAGE_LIMIT + 1))
    context = {
        "contact": contact,
        "name": display_name(contact, policy_for(request)),
        "history": history_rows(records[:HISTORY_PAGE_LIMIT]),
        "history_capped": len(records) > HISTORY_PAGE_LIMIT,
        "limit": HISTORY_PAGE_LIMIT,
    }
    return render(request, "compliance/consent_history.html", context)


@require_POST
@workspace_view("contacts")
def contact_suppress(request, contact_public_id):
    contact = get_contact(request, contact_public_id, for_update=True)
    if not policy_for(request).can_touch("contacts", "edit", contact.owner_id):
        raise PermissionDenied("Your role may not change this contact.")
    form = SuppressForm(request.POST, auto_id="suppress-%s")
    if form.is_valid():
        channel = form.cleaned_data["channel"]
        try:
            suppress(
                org=request.org,
                channel=channel,
                address=address_for(contact, channel),
                reason=form.cleaned_data["reason"],
                actor=Actor.from_request(request),
                contact=contact,
                note=form.cleaned_data["note"],
                source=SOURCE,
            )
        except ValidationError as exc:
            form.add_service_errors(exc)
        else:
            return _after_action(request, contact)
    return _card_response(request, contact, status=400, suppress_form=form)


@require_POST
@workspace_view("compliance", "edit")
def contact_lift(request, contact_public_id, public_id):
    contact = get_contact(request, contact_public_id, for_update=True)
    addresses = [a for a in {address_for(contact, ch) for ch in Channel.values} if a]
    suppression = get_object_or_404(
        Suppression.objects.for_org(request.org).filter(
            Q(contact_id=contact.pk) | Q(address__in=addresses)
        ),
        public_id=public_id,
    )
    form = LiftForm(request.POST)
    if form.is_valid():
        try:
            unsuppress(
                suppression=suppression,
                actor=Actor.from_request(request),
                note=form.cleaned_data["note"],
            )
        except ValidationError as exc:
            form.add_service_errors(exc)
        else:
            return _after_action(request, contact)
    errors = [message for messages in form.errors.values() for message in messages]
    return _card_response(
        request, contact, status=400, lift_errors={str(suppression.public_id): errors}
    )


@require_POST
@workspace_view("contacts")
def contact_consent(request, contact_public_id):
    contact = get_contact(request, contact_public_id, for_update=True)
    policy = policy_for(request)
    if not policy.can_touch("contacts", "edit", contact.owner_id):
        raise PermissionDenied("Your role may not change this contact.")
    form = ConsentForm(request.POST, contact=contact, policy=policy)
    if not form.editable:
        raise PermissionDenied("Your role may not change any consent field.")
    if form.is_valid():
        note = form.cleaned_data["note"].strip()
        via = ConsentVia.from_actor(
            Actor.from_request(request),
            source=SOURCE,
            form=SOURCE,
            legal_basis=form.cleaned_data["legal_basis"],
            user_agent=request.headers.get("User-Agent", ""),
            evidence={"note": note} if note else {},
        )
        try:
            set_consent(contact=contact, changes=form.changes(), via=via)
        except ValidationError as exc:
            form.add_service_errors(exc)
        else:
            return _after_action(request, contact)
    return _card_response(request, contact, status=400, consent_form=form)


@require_POST
@workspace_view("compliance", "edit")
def contact_legal_hold(request, contact_public_id):
    """Put the contact on legal hold, or lift it: compliance edit, and the contact in scope."""
    contact = get_contact(request, contact_public_id, for_update=True)
    on = request.POST.get("legal_hold") == "on"
    try:
        set_legal_hold(
            contact=contact,
            on=on,
            actor=Actor.from_request(request),
            note=request.POST.get("note", ""),
        )
    except ValidationError as exc:
        return _card_response(request, contact, status=400, hold_errors=exc.messages)
    return _after_action(request, contact)
