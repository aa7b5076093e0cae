"""Deal input: what a form, an import or the API sends, turned into model values with every
field's error collected at once (a bad value is reported on its field, never a 500)."""

from __future__ import annotations

import datetime as dt

from django.core.exceptions import ValidationError

from contacts.models import Company, Contact, CustomFieldDefinition, Tag
from crm.models import Membership, Team

from ..models import Deal, DealTag, ForecastCategory, Pipeline, Stage
from ..money import clean_currency, to_decimal

MAX_TAGS = 50


def text(value) -> str:
    return "" if value is None else str(value).strip()


def org_object(model, org, value, label: str):
    """`value` as a row of `org`: the row itself, a public id or a primary key."""
    if value in (None, ""):
        return None
    if isinstance(value, model):
        if value.org_id != org.id:
            raise ValidationError(f"Choose a {label} of this organization.")
        return value
    queryset = model.objects.for_org(org)
    raw = str(value)
    try:
        if raw.isdigit():
            return queryset.get(pk=int(raw))
        return queryset.get(public_id=raw)
    except (model.DoesNotExist, ValueError, ValidationError):
        raise ValidationError(f"Choose a {label} of this organization.") from None


def _member_user(org, value):
    """An active member's user, from the user or their public id."""
    if value in (None, ""):
        return None
    members = Membership.objects.for_org(org).active().select_related("user")
    try:
        if hasattr(value, "pk"):
            membership = members.filter(user=value).first()
        else:
            membership = members.filter(user__public_id=value).first()
    except ValidationError:  # not a uuid at all
        membership = None
    if membership is None:
        raise ValidationError("Choose an active member of this organization.")
    return membership.user


def _probability(value):
    if value in (None, ""):
        return None
    try:
        number = int(str(value).strip().rstrip("%"))
    except ValueError:
        raise ValidationError("Probability must be a whole number from 0 to 100.") from None
    if not 0 <= number <= 100:
        raise ValidationError("Probability must be a whole number from 0 to 100.")
    return number


def _date(value):
    if value in (None, ""):
        return None
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value).strip())
    except ValueError:
        raise ValidationError("Enter a date as YYYY-MM-DD.") from None


def _choice(choices, value, label):
    typed = text(value)
    if typed not in choices.values:
        raise ValidationError(f"Choose a valid {label}.")
    return typed


def clean(org, data: dict, deal: Deal | None) -> tuple[dict, list | None, dict | None]:
    """Values for the model from `data`, with every field's error collected at once."""
    values: dict = {}
    errors: dict = {}
    tags = None
    custom = None

    def field(key, parse):
        if key not in data:
            return
        try:
            values[key] = parse(data[key])
        except ValidationError as exc:
            errors[key] = exc.messages

    def title(raw):
        typed = text(raw)
        if not typed:
            raise ValidationError("A deal needs a title.")
        if len(typed) > Deal._meta.get_field("title").max_length:
            raise ValidationError("Keep the title to 200 characters.")
        return typed

    field("title", title)
    field("value", lambda raw: to_decimal(raw if raw not in (None, "") else "0", "Value"))
    field("currency", clean_currency)
    field("pipeline", lambda raw: org_object(Pipeline, org, raw, "pipeline"))
    field("stage", lambda raw: org_object(Stage, org, raw, "stage"))
    field("probability", _probability)
    field("priority", lambda raw: _choice(Deal.Priority, raw or "normal", "priority"))
    field("owner", lambda raw: _member_user(org, raw))
    field("team", lambda raw: org_object(Team, org, raw, "team"))
    field("contact", lambda raw: org_object(Contact, org, raw, "contact"))
    field("company", lambda raw: org_object(Company, org, raw, "company"))
    field("expected_close_date", _date)
    field("source", lambda raw: text(raw)[:120])
    field(
        "forecast_category",
        lambda raw: (
            "" if raw in (None, "") else _choice(ForecastCategory, raw, "forecast category")
        ),
    )
    if "tags" in data:
        raw_tags = data["tags"]
        if isinstance(raw_tags, str):
            raw_tags = [t for t in (p.strip() for p in raw_tags.split(",")) if t]
        tags = list(raw_tags or [])
        if len(tags) > MAX_TAGS:
            errors["tags"] = [f"A deal can carry at most {MAX_TAGS} tags."]
    if "custom" in data:
        from contacts.custom_fields import apply_custom_values

        definitions = {
            d.key: d
            for d in CustomFieldDefinition.objects.for_org(org).filter(
                entity=CustomFieldDefinition.Entity.DEAL, is_active=True
            )
        }
        try:
            custom = apply_custom_values(deal.custom if deal else {}, definitions, data["custom"])
        except ValidationError as exc:
            errors.update({f"custom.{k}": v for k, v in exc.message_dict.items()})
    if errors:
        raise ValidationError(errors)
    return values, tags, custom


def first_stage(pipeline: Pipeline) -> Stage | None:
    return (
        Stage.objects.for_org(pipeline.org_id)
        .filter(pipeline=pipeline)
        .order_by("position", "id")
        .first()
    )


def check_stage(values: dict, deal: Deal | None) -> None:
    pipeline: Pipeline | None = values.get("pipeline") or (deal.pipeline if deal else None)
    stage = values.get("stage")
    if (
        stage is None
        and pipeline is not None
        and deal is not None
        and pipeline.pk != deal.pipeline_id
    ):
        stage = first_stage(pipeline)
        values["stage"] = stage
    if stage is not None and pipeline is not None and stage.pipeline_id != pipeline.pk:
        raise ValidationError({"stage": ["Choose a stage of the deal's pipeline."]})
    if stage is not None:
        values["pipeline"] = stage.pipeline


def resolve_tags(org, actor, names) -> list[Tag]:
    from contacts.services.contacts import tag_get_or_create

    out = []
    for name in names:
        if isinstance(name, Tag):
            out.append(name)
        else:
            out.append(tag_get_or_create(org=org, actor=actor, name=str(name)))
    return out


def set_tags(deal: Deal, tags: list[Tag]) -> None:
    DealTag.objects.filter(deal=deal).exclude(tag__in=tags).delete()
    have = set(DealTag.objects.filter(deal=deal).values_list("tag_id", flat=True))
    DealTag.objects.bulk_create(
        [DealTag(org_id=deal.org_id, deal=deal, tag=t) for t in tags if t.pk not in have]
    )
