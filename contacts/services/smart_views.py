"""Smart views (saved filters of the contact list): create, update, rename, delete; and the
contact list's remembered columns and sort.

A view's filter is validated against the org's field catalog and the author's field
visibility before it is stored, so a saved view never holds a filter its author could not run.
Who may share or change a view is the policy's answer (`Policy.can_share_views`,
`Policy.can_manage_view`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models.functions import Lower

from crm.services import Actor, audit, diff, emit_event, snapshot

from ..filters import parse_filters
from ..models import ListPreference, SmartView
from ..selectors import LIST_KEY, normalize_columns, normalize_sort, visible_catalog

MAX_NAME = 120
MANAGE_DENIED = "Only the view's author (or an admin, for shared views) may change it."
SHARE_DENIED = "Your role may not share views with the team."
_AUDITED = ["name", "is_shared", "filters", "columns", "sort"]


@dataclass(frozen=True)
class ViewKind:
    """What differs between the saved views of two lists (contacts, deals): the rest, from
    names to audit, is the same code."""

    entity: str  # SmartView.Entity
    noun: str  # in messages: "view", "deal view"
    verb: str  # the audit verbs' prefix: "smart_view", "deal_view"
    module: str  # saving a view needs this module's view right
    # (org, policy, filters) -> the validated spec; raises FilterError for a bad or hidden
    # field, so a saved view never holds a filter its author could not run.
    clean_filters: Callable
    # (org, policy, columns, sort) -> (columns, sort) the author may see.
    clean_layout: Callable
    may_share: Callable  # (policy) -> bool


def _clean_name(org, owner, name: str, kind: ViewKind, exclude_pk=None) -> str:
    name = " ".join(str(name or "").split())
    if not name:
        raise ValidationError({"name": "Give the view a name."})
    if len(name) > MAX_NAME:
        raise ValidationError({"name": f"Keep the name under {MAX_NAME} characters."})
    clash = (
        SmartView.objects.for_org(org)
        .filter(owner=owner, entity=kind.entity)
        .annotate(name_lower=Lower("name"))
        .filter(name_lower=name.lower())
    )
    if exclude_pk is not None:
        clash = clash.exclude(pk=exclude_pk)
    if clash.exists():
        raise ValidationError({"name": f"You already have a {kind.noun} called “{name}”."})
    return name


def _clean_filters(org, policy, filters) -> dict:
    """Raises FilterError (with the condition's number) for anything invalid or hidden."""
    return parse_filters(filters, visible_catalog(org, policy), policy=policy)


def _clean_layout(org, policy, columns, sort) -> tuple[list, str]:
    catalog = visible_catalog(org, policy)
    return normalize_columns(columns or [], catalog), normalize_sort(sort or "", catalog) or ""


CONTACT_VIEWS = ViewKind(
    entity=SmartView.Entity.CONTACT,
    noun="view",
    verb="smart_view",
    module="contacts",
    clean_filters=_clean_filters,
    clean_layout=_clean_layout,
    may_share=lambda policy: policy.can_share_views(),
)


def _payload(view: SmartView) -> dict:
    return {
        "smart_view": str(view.public_id),
        "entity": view.entity,
        "name": view.name,
        "shared": view.is_shared,
    }


def _audit(view: SmartView, actor: Actor, kind: ViewKind, action: str, before: dict) -> None:
    after = snapshot(view, _AUDITED) if action != "deleted" else {}
    audit(
        org=view.org,
        actor=actor,
        verb=f"{kind.verb}.{action}",
        obj=view,
        changes=diff(before, after),
    )


@transaction.atomic
def smartview_create(
    *,
    org,
    actor: Actor,
    policy,
    owner,
    name: str,
    filters,
    is_shared: bool = False,
    columns=None,
    sort: str = "",
    kind: ViewKind = CONTACT_VIEWS,
) -> SmartView:
    policy.require(kind.module, "view")
    if is_shared and not kind.may_share(policy):
        raise PermissionDenied(SHARE_DENIED)
    name = _clean_name(org, owner, name, kind)
    spec = kind.clean_filters(org, policy, filters)
    columns, sort = kind.clean_layout(org, policy, columns, sort)
    position = SmartView.objects.for_org(org).filter(owner=owner, entity=kind.entity).count()
    view = SmartView.objects.for_org(org).create(
        org=org,
        entity=kind.entity,
        owner=owner,
        name=name,
        is_shared=bool(is_shared),
        filters=spec,
        columns=columns,
        sort=sort,
        position=min(position, 32000),
    )
    _audit(view, actor, kind, "created", {})
    emit_event(org=org, event_type="smart_view.created", payload=_payload(view))
    return view


def _require_manage(policy, view: SmartView, kind: ViewKind) -> None:
    if view.entity != kind.entity:
        raise PermissionDenied("This view belongs to another list; change it there.")
    if not policy.can_manage_view(view):
        raise PermissionDenied(MANAGE_DENIED)


@transaction.atomic
def smartview_update(
    *,
    view: SmartView,
    actor: Actor,
    policy,
    filters,
    columns=None,
    sort: str | None = None,
    kind: ViewKind = CONTACT_VIEWS,
) -> SmartView:
    """Replace the view's filter (and, when given, its columns and sort)."""
    _require_manage(policy, view, kind)
    before = snapshot(view, _AUDITED)
    view.filters = kind.clean_filters(view.org, policy, filters)
    if columns is not None or sort is not None:
        new_columns, new_sort = kind.clean_layout(view.org, policy, columns, sort)
        if columns is not None:
            view.columns = new_columns
        if sort is not None:
            view.sort = new_sort
    view.save()
    _audit(view, actor, kind, "updated", before)
    emit_event(org=view.org, event_type="smart_view.updated", payload=_payload(view))
    return view


@transaction.atomic
def smartview_rename(
    *,
    view: SmartView,
    actor: Actor,
    policy,
    name: str,
    is_shared: bool | None = None,
    kind: ViewKind = CONTACT_VIEWS,
) -> SmartView:
    """Rename the view and, when `is_shared` is given, share or unshare it."""
    _require_manage(policy, view, kind)
    before = snapshot(view, _AUDITED)
    view.name = _clean_name(view.org, view.owner, name, kind, exclude_pk=view.pk)
    if is_shared is not None and bool(is_shared) != view.is_shared:
        if is_shared and not kind.may_share(policy):
            raise PermissionDenied(SHARE_DENIED)
        view.is_shared = bool(is_shared)
    view.save()
    _audit(view, actor, kind, "renamed", before)
    emit_event(org=view.org, event_type="smart_view.updated", payload=_payload(view))
    return view


@transaction.atomic
def smartview_delete(
    *, view: SmartView, actor: Actor, policy, kind: ViewKind = CONTACT_VIEWS
) -> None:
    """Delete the view (never a record)."""
    _require_manage(policy, view, kind)
    payload = _payload(view)
    _audit(view, actor, kind, "deleted", snapshot(view, _AUDITED))
    emit_event(org=view.org, event_type="smart_view.deleted", payload=payload)
    view.delete()


@transaction.atomic
def list_preference_save(*, org, user, policy, columns=None, sort: str | None = None):
    """Remember a member's columns and/or sort for the contact list (no audit: a display
    preference, like a theme)."""
    pref, _ = ListPreference.objects.for_org(org).get_or_create(
        org=org, user=user, list_key=LIST_KEY
    )
    new_columns, new_sort = _clean_layout(org, policy, columns, sort)
    if columns is not None:
        pref.columns = new_columns
    if sort is not None:
        pref.sort = new_sort
    pref.save()
    return pref
