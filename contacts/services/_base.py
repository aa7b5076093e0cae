"""What every contacts service shares: timeline type sets, permission checks and the
small value cleaners."""

from __future__ import annotations

import datetime as dt
import zoneinfo

from django.core.exceptions import PermissionDenied, ValidationError
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from crm.field_sizes import char_max_length
from crm.models import Membership
from crm.services import Actor

from ..models import Activity, Tag

# Timeline types that record a conversation with the person: they move last_contacted_at.
CONTACTED_TYPES = frozenset(
    {
        Activity.Type.CALL,
        Activity.Type.MEETING,
        Activity.Type.EMAIL_SENT,
        Activity.Type.EMAIL_RECEIVED,
        Activity.Type.SMS,
    }
)
# What a rep can log by hand (quick-log on the contact page and in the inbox).
QUICK_LOG_TYPES = (Activity.Type.NOTE, Activity.Type.CALL, Activity.Type.MEETING)

MAX_TAG_LENGTH = char_max_length(Tag, "name")
EMAIL_TAKEN = "Another active contact already has this email."


class FieldNotEditable(PermissionDenied):
    """The input holds fields the member may see but not change, or may not see at all."""

    def __init__(self, keys, labels):
        self.keys = list(keys)
        names = ", ".join(labels)
        super().__init__(f"Your role may not change these fields: {names}.")


# Permission helpers ----------------------------------------------------------------------
# The questions themselves are the policy's (crm.permissions.Policy); these only apply the
# services' convention that `policy=None` is system work, which may do anything.


def _is_contact_admin(policy) -> bool:
    return policy is None or policy.is_contact_admin()


def _require(policy, module: str, action: str, owner_id=None, *, check_scope=False) -> None:
    if policy is None:
        return
    policy.require(module, action)
    if check_scope and not policy.owns_in_scope(module, owner_id):
        raise PermissionDenied(f"This record is outside the {module} you may {action}.")


def _user_of(actor: Actor):
    user = getattr(actor, "user", None)
    return user if user is not None and getattr(user, "pk", None) else None


def _check_member(org, user, message: str) -> None:
    if not Membership.objects.for_org(org).active().filter(user=user).exists():
        raise ValidationError(message)


# Input cleaning --------------------------------------------------------------------------


def _text(value) -> str:
    return "" if value is None else str(value).strip()


def _bool_or_none(value):
    if value is None or isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in {"", "unknown", "none", "null"}:
        return None
    if text in {"true", "yes", "y", "1", "on"}:
        return True
    if text in {"false", "no", "n", "0", "off"}:
        return False
    raise ValidationError("Choose yes, no or unknown.")


def _datetime_or_none(value, tz):
    if value in (None, ""):
        return None
    if isinstance(value, dt.datetime):
        moment = value
    elif isinstance(value, dt.date):
        moment = dt.datetime.combine(value, dt.time.min)
    else:
        moment = parse_datetime(str(value).strip())
        if moment is None:
            raise ValidationError(f"“{value}” is not a date and time.")
    if timezone.is_naive(moment):
        moment = timezone.make_aware(moment, tz)
    return moment


def _choice(spec, value, model) -> str:
    text = _text(value)
    allowed = {key for key, _ in spec.choices}
    if text in allowed:
        return text
    for key, label in spec.choices:  # people and CSV files use labels too
        if text.casefold() == str(label).casefold():
            return key
    if text == "" and model._meta.get_field(spec.key).blank:
        return ""
    names = ", ".join(str(label) for _, label in spec.choices)
    raise ValidationError(f"“{text}” is not a valid {spec.label.lower()} (choose {names}).")


def _org_tz(org):
    try:
        return zoneinfo.ZoneInfo(org.timezone or "UTC")
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return dt.UTC


def _refuse_locked_fields(policy, specs_by_key, keys, module="contacts") -> None:
    """A field the member may only see (or not see) is refused loudly, never dropped."""
    if policy is None:
        return
    locked = [key for key in keys if policy.field_level(key, module) != "editable"]
    if locked:
        raise FieldNotEditable(
            locked, [specs_by_key[k].label if k in specs_by_key else k for k in locked]
        )
