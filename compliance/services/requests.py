"""Data subject requests: the queue's writes (create, assign, status, the closing actions).

Every write is audited and emitted. The audit entries and events name the request and, by
public id, the contact; never the requester's email or what they wrote, so an erasure of
the person has nothing of theirs to chase in the request's own history.
"""

from __future__ import annotations

import datetime as dt

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from contacts.models import Contact
from crm.models import Membership
from crm.services import Actor, audit, emit_event

from ..models import DataRequest
from .consent import ConsentVia, set_consent

Status = DataRequest.Status
OPEN_STATES = (Status.OPEN, Status.IN_PROGRESS)
CLOSED_STATES = (Status.DONE, Status.REJECTED)
RESOLUTION_MAX = 4000
DETAILS_MAX = 4000


def due_date(regime: str, received_at: dt.datetime) -> dt.datetime:
    """When the answer is due: the days the regime gives, from the day it was received."""
    try:
        days = DataRequest.DUE_DAYS[DataRequest.Regime(regime)]
    except ValueError:
        raise ValidationError({"regime": ["Choose GDPR or CCPA."]}) from None
    return received_at + dt.timedelta(days=days)


def _check_assignee(org, user):
    if user is None:
        return None
    active = Membership.objects.for_org(org).active().filter(user=user).exists()
    if not active:
        raise ValidationError({"assignee": ["Choose an active member of this organization."]})
    return user


def _contact_id(req: DataRequest) -> str:
    return str(req.contact.public_id) if req.contact is not None else ""


def _summary(req: DataRequest) -> dict:
    return {
        "kind": req.kind,
        "regime": req.regime,
        "status": req.status,
        "contact": _contact_id(req),
        "due_at": req.due_at.isoformat(),
    }


def _record(req: DataRequest, actor: Actor, verb: str, changes: dict) -> None:
    audit(org=req.org, actor=actor, verb=verb, obj=req, changes=changes)
    emit_event(
        org=req.org,
        event_type=verb,
        payload={
            "request": str(req.public_id),
            "kind": req.kind,
            "status": req.status,
            "contact": _contact_id(req),
        },
    )


@transaction.atomic
def create_request(
    *,
    org,
    actor: Actor,
    kind: str,
    regime: str,
    contact: Contact | None = None,
    requester_email: str = "",
    details: str = "",
    assignee=None,
    received_at: dt.datetime | None = None,
) -> DataRequest:
    errors: dict[str, list[str]] = {}
    if kind not in DataRequest.Kind.values:
        errors["kind"] = ["Choose the kind of request."]
    if regime not in DataRequest.Regime.values:
        errors["regime"] = ["Choose GDPR or CCPA."]
    if contact is not None and contact.org_id != org.pk:
        errors["contact"] = ["Choose a contact of this organization."]
    if contact is None and not (requester_email or "").strip():
        errors["requester_email"] = ["Give the requester's email or pick the contact."]
    if len(details or "") > DETAILS_MAX:
        errors["details"] = [f"Keep the details under {DETAILS_MAX} characters."]
    if errors:
        raise ValidationError(errors)
    received = received_at or timezone.now()
    req = DataRequest.objects.for_org(org).create(
        org=org,
        kind=kind,
        regime=regime,
        contact=contact,
        requester_email=(requester_email or "").strip()[:254],
        details=details or "",
        received_at=received,
        due_at=due_date(regime, received),
        assignee=_check_assignee(org, assignee),
        created_by=actor.user,
    )
    _record(req, actor, "data_request.created", _summary(req))
    return req


def _locked(req: DataRequest) -> DataRequest:
    return DataRequest.objects.for_org(req.org_id).select_for_update().get(pk=req.pk)


@transaction.atomic
def assign_request(*, data_request: DataRequest, actor: Actor, assignee) -> DataRequest:
    req = _locked(data_request)
    before = req.assignee.email if req.assignee is not None else ""
    req.assignee = _check_assignee(req.org, assignee)
    req.save(update_fields=["assignee", "updated_at"])
    after = req.assignee.email if req.assignee is not None else ""
    _record(req, actor, "data_request.assigned", {"assignee": [before, after]})
    return req


@transaction.atomic
def set_request_status(
    *, data_request: DataRequest, actor: Actor, status: str, resolution: str = ""
) -> DataRequest:
    if status not in Status.values:
        raise ValidationError({"status": ["Choose a status."]})
    if len(resolution or "") > RESOLUTION_MAX:
        raise ValidationError({"resolution": [f"Keep the note under {RESOLUTION_MAX} characters."]})
    if status == Status.REJECTED and not (resolution or "").strip():
        raise ValidationError({"resolution": ["Say why the request is rejected."]})
    req = _locked(data_request)
    before = req.status
    req.status = status
    req.completed_at = timezone.now() if status in CLOSED_STATES else None
    if resolution:
        req.resolution = resolution.strip()
    req.save(update_fields=["status", "completed_at", "resolution", "updated_at"])
    _record(req, actor, "data_request.status_changed", {"status": [before, status]})
    return req


@transaction.atomic
def complete_request(*, data_request: DataRequest, actor: Actor, resolution: str) -> DataRequest:
    """Mark a rectification or do-not-sell request done, with a note of what was done. A
    do-not-sell request also sets the contact's do-not-sell flag (ledgered)."""
    req = _locked(data_request)
    if req.kind not in (DataRequest.Kind.RECTIFICATION, DataRequest.Kind.DO_NOT_SELL):
        raise ValidationError("Only rectification and do-not-sell requests close this way.")
    if req.status in CLOSED_STATES:
        raise ValidationError("This request is already closed.")
    if not (resolution or "").strip():
        raise ValidationError({"resolution": ["Say what was done."]})
    if req.kind == DataRequest.Kind.DO_NOT_SELL:
        if req.contact_id is None:
            raise ValidationError("Pick the contact first: do-not-sell is set on a contact.")
        contact = Contact.objects.for_org(req.org_id).get(pk=req.contact_id)
        via = ConsentVia(
            kind="member",
            user=actor.user,
            label=actor.label,
            source="Data request",
            ip=actor.ip,
            evidence={"request": str(req.public_id)},
        )
        set_consent(contact=contact, changes={"do_not_sell": True}, via=via)
    return set_request_status(
        data_request=req, actor=actor, status=Status.DONE, resolution=resolution
    )


def mark_erased(*, data_request: DataRequest, actor: Actor) -> DataRequest:
    """Close an erasure request after erase_contact() (call inside its transaction)."""
    return set_request_status(
        data_request=data_request,
        actor=actor,
        status=Status.DONE,
        resolution="The contact and their data were erased.",
    )
