"""Links between custom object records and contacts or deals: the "Linked records" section of
a contact's and a deal's page (loaded by HTMX, or a page of its own), the links part of a
record's page (`record_links_context`, for the record page's view), the pickers, and the
actions (associate, change a link's label and date, disassociate).

Who sees what: a section needs Custom objects view and lists only the records in the member's
Custom objects scope; the contact or deal must be in their Contacts or Pipeline scope (404
otherwise, as for another organization's). Changing links needs Custom objects edit on the
record; pipeline.services.object_links checks every right again. The module must be on.
"""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Q
from django.db.models.functions import Lower
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from contacts.models import Contact
from contacts.views.common import actor, redirect_or_refresh, workspace_view
from contacts.views.record import display_name
from crm.decorators import module_enabled
from crm.form_errors import add_errors
from crm.optional_modules import is_enabled
from crm.permissions import policy_for

from ..forms.object_links import (
    AssociateRecordForm,
    FindRecordForm,
    LinkContactForm,
    LinkDealForm,
    LinkEditForm,
    as_uuid,
    clean_query,
)
from ..models import Deal, ObjectAssociation, ObjectRecord, ObjectType
from ..selectors import visible_deals
from ..services import object_links as services
from ..services.object_types import icon_for

MODULE = "custom_objects"
SECTION_SHOWN = 200  # links listed on a contact's or deal's section, at most
RECORD_SHOWN = 200  # contacts, and deals, listed on a record's page, at most
PICKER_SIZE = 20
SECTION_ID = "record-objects"  # the section's element on a contact's or deal's page
RECORD_LINKS_ID = "record-links"  # the links part of a record's page

# Reads -----------------------------------------------------------------------------------------


def scoped_records(request):
    """The records the member may see (organization and Custom objects scope)."""
    return ObjectRecord.objects.for_org(request.org).filter(
        policy_for(request).scope_filter(MODULE)
    )


def scoped_contacts(request):
    policy = policy_for(request)
    if not policy.can("contacts", "view"):
        return None
    return Contact.objects.for_org(request.org).filter(policy.scope_filter("contacts"))


def scoped_deals(request):
    policy = policy_for(request)
    if not policy.can("pipeline", "view"):
        return None
    return visible_deals(request.org, policy, archived=None)


def record_name(record: ObjectRecord) -> str:
    return record.display_name or "(no name)"


def record_url(record: ObjectRecord) -> str:
    """The record's page (pipeline.urls.objects)."""
    return reverse(
        "pipeline:object_record_detail", kwargs={"objectrecord_public_id": record.public_id}
    )


def record_options(request, object_type=None, text: str = "", first=()) -> list[tuple]:
    """(public id, label) of records to offer: `first` (the one picked), then those matching
    `text` by name, or the most recently changed; of `object_type` when given."""
    records = scoped_records(request).select_related("object_type")
    if object_type is not None:
        records = records.filter(object_type=object_type)
    chosen = [r for r in first if r is not None]
    records = records.exclude(pk__in=[r.pk for r in chosen])
    if text:
        records = records.filter(display_name__icontains=text).order_by(Lower("display_name"), "id")
    else:
        records = records.order_by("-updated_at", "-id")
    rows = chosen + list(records[:PICKER_SIZE])
    with_type = object_type is None
    return [
        (r.public_id, f"{record_name(r)} · {r.object_type.name}" if with_type else record_name(r))
        for r in rows
    ]


def contact_options(request, first=()) -> list[tuple]:
    """Contacts to offer before a search: `first`, then the most recently active ones."""
    contacts = scoped_contacts(request)
    if contacts is None:
        return []
    policy = policy_for(request)
    chosen = [c for c in first if c is not None]
    fields = ("public_id", "first_name", "last_name", "email")
    rest = contacts.filter(is_archived=False).exclude(pk__in=[c.pk for c in chosen])
    picked = list(
        rest.filter(last_activity_at__isnull=False)
        .order_by("-last_activity_at", "-id")
        .only(*fields)[:PICKER_SIZE]
    )
    if len(picked) < PICKER_SIZE:
        newest = rest.exclude(pk__in=[c.pk for c in picked]).order_by("-created_at", "-id")
        picked += list(newest.only(*fields)[: PICKER_SIZE - len(picked)])
    return [(c.public_id, display_name(c, policy)) for c in chosen + picked]


def deal_options(request, text: str = "", first=()) -> list[tuple]:
    deals = scoped_deals(request)
    if deals is None:
        return []
    chosen = [d for d in first if d is not None]
    deals = deals.filter(is_archived=False).exclude(pk__in=[d.pk for d in chosen])
    if text:
        deals = deals.filter(title__icontains=text).order_by(Lower("title"), "id")
    else:
        deals = deals.order_by("-updated_at", "-id")
    rows = chosen + list(deals.only("public_id", "title")[:PICKER_SIZE])
    return [(d.public_id, d.title) for d in rows]


def _edit_form(link: ObjectAssociation, data=None) -> LinkEditForm:
    return LinkEditForm(
        data,
        initial={"label": link.label, "associated_on": link.associated_on},
        auto_id=f"link-{link.public_id}-%s",
    )


def _prepare(request, links, edit_forms) -> None:
    """Names, pages and edit forms of links shown to this member."""
    policy = policy_for(request)
    edit_forms = edit_forms or {}
    for link in links:
        link.can_change = services.may_link(policy, link.record)
        link.edit_form = (edit_forms.get(link.pk) or _edit_form(link)) if link.can_change else None


# The section of a contact's or a deal's page -----------------------------------------------------


def _target_name(request, kind: str, target) -> str:
    return display_name(target, policy_for(request)) if kind == "contact" else target.title


def _target_url(kind: str, target) -> str:
    if kind == "contact":
        return reverse("contacts:contact_detail", kwargs={"public_id": target.public_id})
    return reverse("pipeline:deal_detail", kwargs={"public_id": target.public_id})


def _section_urls(kind: str, target) -> dict:
    name = "contact" if kind == "contact" else "deal"
    kwargs = {f"{name}_public_id": target.public_id}
    return {
        "objects_url": reverse(f"pipeline:{name}_objects", kwargs=kwargs),
        "associate_url": reverse(f"pipeline:{name}_object_associate", kwargs=kwargs),
    }


def section_context(request, kind: str, target, *, form=None, finder=None, edit_forms=None) -> dict:
    """The linked records of a contact (`kind` "contact") or a deal, grouped by type, and
    the form that links another."""
    policy = policy_for(request)
    links_q = ObjectAssociation.objects.for_org(request.org).filter(
        policy.scope_filter(MODULE, "record__owner"), **{kind: target}
    )
    total = links_q.count()
    links = list(
        links_q.select_related("record", "object_type").order_by(
            "object_type__position",
            "object_type__name",
            "object_type_id",
            Lower("record__display_name"),
            "id",
        )[:SECTION_SHOWN]
    )
    _prepare(request, links, edit_forms)
    groups: list[dict] = []
    for link in links:
        link.name = record_name(link.record)
        link.url = record_url(link.record)
        if not groups or groups[-1]["type"].pk != link.object_type_id:
            groups.append(
                {"type": link.object_type, "icon": icon_for(link.object_type), "links": []}
            )
        groups[-1]["links"].append(link)
    types = list(ObjectType.objects.for_org(request.org).order_by("position", "name"))
    if finder is None:
        finder = FindRecordForm(types=types, auto_id="objects-find-%s")
    if form is None and policy.can(MODULE, "edit") and types:
        object_type, text = finder.chosen()
        form = AssociateRecordForm(
            queryset=scoped_records(request),
            options=record_options(request, object_type, text),
            auto_id="objects-%s",
        )
    return {
        "links_kind": kind,
        "links_target": target,
        "links_target_name": _target_name(request, kind, target),
        "links_target_url": _target_url(kind, target),
        "link_groups": groups,
        "link_total": total,
        "links_shown": len(links),
        "links_root": SECTION_ID,
        "has_types": bool(types),
        "associate_form": form,
        "find_form": finder,
        "find_open": bool(form is not None and (form.is_bound or finder.is_bound)),
        **_section_urls(kind, target),
    }


def _section_response(request, kind: str, target, **extra):
    context = section_context(request, kind, target, **extra)
    if request.htmx:
        return render(request, "pipeline/objects/partials/links_section.html", context)
    return render(request, "pipeline/objects/partials/links_page.html", context)


def _contact_for(request, contact_public_id) -> Contact:
    contacts = scoped_contacts(request)
    if contacts is None:
        raise PermissionDenied("Your role may not see contacts.")
    return get_object_or_404(contacts, public_id=contact_public_id)


def _deal_for(request, deal_public_id) -> Deal:
    deals = scoped_deals(request)
    if deals is None:
        raise PermissionDenied("Your role may not see deals.")
    return get_object_or_404(deals, public_id=deal_public_id)


def _section_get(request, kind: str, target):
    finder = None
    if request.GET:
        types = ObjectType.objects.for_org(request.org).order_by("position", "name")
        finder = FindRecordForm(request.GET, types=types, auto_id="objects-find-%s")
    return _section_response(request, kind, target, finder=finder)


@workspace_view(MODULE, "view")
@module_enabled(MODULE)
@require_GET
def contact_objects(request, contact_public_id):
    """The Linked records section of a contact's page (HTMX), or a page of its own."""
    return _section_get(request, "contact", _contact_for(request, contact_public_id))


@workspace_view(MODULE, "view")
@module_enabled(MODULE)
@require_GET
def deal_objects(request, deal_public_id):
    """The Linked records section of a deal's page (HTMX), or a page of its own."""
    return _section_get(request, "deal", _deal_for(request, deal_public_id))


def _associate(request, kind: str, target):
    form = AssociateRecordForm(request.POST, queryset=scoped_records(request), auto_id="objects-%s")
    record = None
    if form.is_valid():
        record = form.cleaned_data["record"]
        try:
            services.associate(
                org=request.org,
                actor=actor(request),
                policy=policy_for(request),
                record=record,
                label=form.cleaned_data["label"],
                associated_on=form.cleaned_data["associated_on"],
                **{kind: target},
            )
        except ValidationError as exc:
            add_errors(form, exc, default_field="record")
        else:
            messages.success(
                request,
                f"“{record_name(record)}” is now associated with "
                f"{_target_name(request, kind, target)}.",
            )
            if request.htmx:
                return _section_response(request, kind, target)
            return redirect_or_refresh(request, _target_url(kind, target))
    # The form again, with its errors and the record that was picked still offered.
    form.fields["record"].set_options(record_options(request, first=[record]))
    return _section_response(request, kind, target, form=form)


@workspace_view(MODULE, "edit")
@module_enabled(MODULE)
@require_POST
def contact_object_associate(request, contact_public_id):
    return _associate(request, "contact", _contact_for(request, contact_public_id))


@workspace_view(MODULE, "edit")
@module_enabled(MODULE)
@require_POST
def deal_object_associate(request, deal_public_id):
    return _associate(request, "deal", _deal_for(request, deal_public_id))


# Pickers ---------------------------------------------------------------------------------------


@workspace_view(MODULE, "view")
@module_enabled(MODULE)
@require_GET
def object_record_picker(request):
    """<option>s of the records the member may see, of one type (`object_type`) or all,
    whose name contains `q`."""
    text = clean_query(request.GET.get("q"))
    object_type = None
    wanted = as_uuid(request.GET.get("object_type"))
    if wanted is not None:
        object_type = ObjectType.objects.for_org(request.org).filter(public_id=wanted).first()
        if object_type is None:  # not a type of this organization: nothing matches
            return _options(request, [], text, "record")
    return _options(request, record_options(request, object_type, text), text, "record")


@workspace_view("pipeline", "view")
@module_enabled(MODULE)
@require_GET
def object_deal_picker(request):
    """<option>s of the open or closed (not archived) deals the member may see whose title
    contains `q`."""
    text = clean_query(request.GET.get("q"))
    return _options(request, deal_options(request, text), text, "deal")


def _options(request, options, text: str, noun: str):
    return render(
        request,
        "pipeline/objects/partials/links_options.html",
        {"options": options, "query": text, "noun": noun},
    )


# The links part of a record's page -----------------------------------------------------------


def record_links_context(
    request, record: ObjectRecord, *, contact_form=None, deal_form=None, edit_forms=None
) -> dict:
    """What templates/pipeline/objects/partials/record_links.html needs: the contacts and
    deals `record` is linked to that the member may see, and the forms that link it to
    another. `record` must be one the member may see (the record page's own look-up)."""
    policy = policy_for(request)
    contacts, deals = scoped_contacts(request), scoped_deals(request)
    can_link = services.may_link(policy, record) and is_enabled(request.org, MODULE)
    links = ObjectAssociation.objects.for_org(request.org).filter(record=record)
    contact_links: list[ObjectAssociation] = []
    deal_links: list[ObjectAssociation] = []
    hidden_contacts = hidden_deals = 0
    if contacts is not None:
        visible = links.filter(contact__in=contacts).select_related("contact", "record")
        contact_links = list(
            visible.order_by(Lower("contact__last_name"), Lower("contact__first_name"), "id")[
                :RECORD_SHOWN
            ]
        )
        for link in contact_links:
            link.name = display_name(link.contact, policy)
            link.url = _target_url("contact", link.contact)
        hidden_contacts = links.filter(contact__isnull=False).count() - visible.count()
    if deals is not None:
        visible = links.filter(deal__in=deals).select_related("deal", "record")
        deal_links = list(visible.order_by(Lower("deal__title"), "id")[:RECORD_SHOWN])
        for link in deal_links:
            link.name = link.deal.title
            link.url = _target_url("deal", link.deal)
        hidden_deals = links.filter(deal__isnull=False).count() - visible.count()
    _prepare(request, contact_links + deal_links, edit_forms)
    if can_link and contact_form is None and contacts is not None:
        contact_form = LinkContactForm(
            queryset=contacts.filter(is_archived=False),
            options=contact_options(request),
            auto_id="link-contact-%s",
        )
    if can_link and deal_form is None and deals is not None:
        deal_form = LinkDealForm(
            queryset=deals.filter(is_archived=False),
            options=deal_options(request),
            auto_id="link-deal-%s",
        )
    return {
        "links_record": record,
        "links_root": RECORD_LINKS_ID,
        "record_contact_links": contact_links,
        "record_deal_links": deal_links,
        "record_hidden_contacts": max(hidden_contacts, 0),
        "record_hidden_deals": max(hidden_deals, 0),
        "record_sees_contacts": contacts is not None,
        "record_sees_deals": deals is not None,
        "record_can_link": can_link,
        "link_contact_form": contact_form if can_link else None,
        "link_deal_form": deal_form if can_link else None,
    }


def _record_for(request, objectrecord_public_id) -> ObjectRecord:
    return get_object_or_404(
        scoped_records(request).select_related("object_type"),
        public_id=objectrecord_public_id,
    )


def _record_response(request, record: ObjectRecord, **extra):
    if request.htmx:
        return render(
            request,
            "pipeline/objects/partials/record_links.html",
            record_links_context(request, record, **extra),
        )
    return redirect_or_refresh(request, record_url(record))


def _link_record(request, record: ObjectRecord, kind: str, form):
    target = None
    if form.is_valid():
        target = form.cleaned_data[kind]
        try:
            services.associate(
                org=request.org,
                actor=actor(request),
                policy=policy_for(request),
                record=record,
                label=form.cleaned_data["label"],
                associated_on=form.cleaned_data["associated_on"],
                **{kind: target},
            )
        except ValidationError as exc:
            add_errors(form, exc, default_field=kind)
        else:
            messages.success(
                request,
                f"“{record_name(record)}” is now associated with "
                f"{_target_name(request, kind, target)}.",
            )
            return _record_response(request, record)
    if not request.htmx:
        messages.error(request, " ".join(e for errors in form.errors.values() for e in errors))
        return _record_response(request, record)
    if kind == "contact":
        form.fields["contact"].set_options(contact_options(request, first=[target]))
        return _record_response(request, record, contact_form=form)
    form.fields["deal"].set_options(deal_options(request, first=[target]))
    return _record_response(request, record, deal_form=form)


@workspace_view(MODULE, "edit")
@module_enabled(MODULE)
@require_POST
def object_record_link_contact(request, objectrecord_public_id):
    record = _record_for(request, objectrecord_public_id)
    contacts = scoped_contacts(request)
    if contacts is None:
        raise PermissionDenied("Your role may not see contacts.")
    form = LinkContactForm(
        request.POST, queryset=contacts.filter(is_archived=False), auto_id="link-contact-%s"
    )
    return _link_record(request, record, "contact", form)


@workspace_view(MODULE, "edit")
@module_enabled(MODULE)
@require_POST
def object_record_link_deal(request, objectrecord_public_id):
    record = _record_for(request, objectrecord_public_id)
    deals = scoped_deals(request)
    if deals is None:
        raise PermissionDenied("Your role may not see deals.")
    form = LinkDealForm(
        request.POST, queryset=deals.filter(is_archived=False), auto_id="link-deal-%s"
    )
    return _link_record(request, record, "deal", form)


# One link: change it, or remove it ------------------------------------------------------------


def _link_for(request, objectassociation_public_id) -> ObjectAssociation:
    """A link the member may see: its record in their Custom objects scope and its contact or
    deal in theirs. Anything else is a 404."""
    policy = policy_for(request)
    contacts, deals = scoped_contacts(request), scoped_deals(request)
    reach = Q(pk__in=[])
    if contacts is not None:
        reach |= Q(contact__in=contacts)
    if deals is not None:
        reach |= Q(deal__in=deals)
    queryset = (
        ObjectAssociation.objects.for_org(request.org)
        .filter(policy.scope_filter(MODULE, "record__owner"))
        .filter(reach)
        .select_related("record__object_type", "contact", "deal")
    )
    return get_object_or_404(queryset, public_id=objectassociation_public_id)


def _after_link_change(request, link: ObjectAssociation, **extra):
    """The part of the page the change was made on, again (HTMX), or that page."""
    if request.POST.get("where") == "record":
        return _record_response(request, link.record, **extra)
    kind = "contact" if link.contact_id else "deal"
    target = link.contact if kind == "contact" else link.deal
    if request.htmx:
        return _section_response(request, kind, target, **extra)
    return redirect_or_refresh(request, _target_url(kind, target))


@workspace_view(MODULE, "edit")
@module_enabled(MODULE)
@require_POST
def object_link_edit(request, objectassociation_public_id):
    """Change a link's label and date."""
    link = _link_for(request, objectassociation_public_id)
    form = _edit_form(link, request.POST)
    if form.is_valid():
        try:
            services.association_update(
                org=request.org,
                actor=actor(request),
                policy=policy_for(request),
                link=link,
                label=form.cleaned_data["label"],
                associated_on=form.cleaned_data["associated_on"],
            )
        except ValidationError as exc:
            add_errors(form, exc, default_field="label")
        else:
            messages.success(request, f"The link to “{record_name(link.record)}” was saved.")
            return _after_link_change(request, link)
    if not request.htmx:
        messages.error(request, " ".join(e for errors in form.errors.values() for e in errors))
    return _after_link_change(request, link, edit_forms={link.pk: form})


@workspace_view(MODULE, "edit")
@module_enabled(MODULE)
@require_POST
def object_link_remove(request, objectassociation_public_id):
    """Disassociate: the record and the contact or deal stay, only the link goes."""
    link = _link_for(request, objectassociation_public_id)
    services.disassociate(
        org=request.org, actor=actor(request), policy=policy_for(request), link=link
    )
    messages.success(request, f"“{record_name(link.record)}” was disassociated.")
    return _after_link_change(request, link)
