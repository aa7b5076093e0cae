"""Contacts → Data Health: the duplicate pairs a scan found, the side-by-side compare where a
member picks the surviving values and merges (or says "Not a duplicate"), undo of a merge,
and the other ways into the compare page: Actions → Merge on a contact and the list's bulk
bar with exactly two contacts ticked.

Every page is the org's (for_org) and the member's: both contacts of a pair must lie in the
member's record scope, or the pair is not listed and its pages are a 404. Views stay thin:
merge_preview / merge_contacts / undo_merge (contacts.services.merge) and dismiss_pair
(contacts.services.duplicates) do the work and say no with their own messages."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Case, IntegerField, Q, Value, When
from django.http import Http404
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils.http import urlencode
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from crm.models import BackgroundJob
from crm.pagination import OrderKey
from crm.pagination import page as keyset_page
from crm.permissions import policy_for
from crm.views.jobs import may_follow

from ..bulk import clean_ids
from ..dedup.jobs import JOB_KIND as SCAN_JOB_KIND
from ..dedup.jobs import start_scan_job
from ..dedup.models import DedupSettings, DuplicatePair, MergeRecord, ordered_pair
from ..forms.merge import MergeChoicesForm, MergeSearchForm, PairFilterForm
from ..models import Contact
from ..selectors import search_q
from ..services import merge as merge_service
from ..services.duplicates import dismiss_pair
from .common import actor, full_page, redirect_or_refresh, safe_next, workspace_view
from .record import display_name

PAGE_SIZE = 25
GROUP_PAIR_CAP = 2000  # the group view joins the best this many pairs
GROUPS_SHOWN = 100
PICK_RESULTS = 20
BANNER_MERGES = 5
LIST_TEMPLATE = "contacts/data_health/list.html"
COMPARE_TEMPLATE = "contacts/data_health/compare.html"
BANNER_TEMPLATE = "contacts/data_health/merge_banner.html"
BULK_BAR = "contacts/partials/bulk_bar.html"
CONTACT_FIELDS = ("id", "public_id", "first_name", "last_name", "email", "owner_id", "is_archived")

# Probable pairs first, then by score: one direction throughout, as keyset paging needs.
BAND_RANK = Case(
    When(band=DuplicatePair.Band.PROBABLE, then=Value(1)),
    default=Value(0),
    output_field=IntegerField(),
)
PAIR_ORDER = [
    OrderKey("band_rank", BAND_RANK, descending=True),
    OrderKey("score", descending=True),
    OrderKey("id", descending=True),
]


def can_merge(policy) -> bool:
    """Merging changes both contacts and archives one of them: edit and delete rights."""
    return policy.can("contacts", "edit") and policy.can("contacts", "delete")


def _scoped_contacts(request):
    policy = policy_for(request)
    return Contact.objects.for_org(request.org).filter(policy.scope_filter("contacts"))


def _contact(request, public_id) -> Contact:
    """A contact of this org inside the member's scope, or 404."""
    contact = get_object_or_404(_scoped_contacts(request), public_id=public_id)
    contact.org = request.org
    return contact


def visible_pairs(request, band: str = ""):
    """The org's found pairs whose two contacts are active and both in the member's scope."""
    policy = policy_for(request)
    pairs = (
        DuplicatePair.objects.for_org(request.org)
        .filter(
            policy.scope_filter("contacts", "contact_a__owner"),
            policy.scope_filter("contacts", "contact_b__owner"),
            contact_a__is_archived=False,
            contact_b__is_archived=False,
        )
        .select_related("contact_a", "contact_b")
        .only(
            *[f"contact_a__{name}" for name in CONTACT_FIELDS],
            *[f"contact_b__{name}" for name in CONTACT_FIELDS],
            "public_id",
            "score",
            "band",
            "reasons",
            "found_by",
            "found_at",
        )
    )
    if band:
        pairs = pairs.filter(band=band)
    return pairs


def _pair_row(pair: DuplicatePair, policy) -> dict:
    return {
        "pair": pair,
        "a": pair.contact_a,
        "b": pair.contact_b,
        "a_name": display_name(pair.contact_a, policy),
        "b_name": display_name(pair.contact_b, policy),
        "percent": round(pair.score * 100),
        "reasons": [str(reason) for reason in (pair.reasons or [])],
    }


def _scan_state(org) -> dict:
    dedup_settings = DedupSettings.objects.for_org(org).first()
    return {
        "last_scan_at": dedup_settings.last_scan_at if dedup_settings else None,
        "last_full_scan_at": dedup_settings.last_full_scan_at if dedup_settings else None,
    }


# The pair list ---------------------------------------------------------------------------


def _list_link(*, band: str, grouped: bool) -> str:
    query = urlencode(
        [(k, v) for k, v in (("band", band), ("view", "groups" if grouped else "")) if v]
    )
    return reverse("contacts:data_health") + (f"?{query}" if query else "")


def duplicate_groups(request, band: str = "") -> tuple[list[dict], bool]:
    """The best GROUP_PAIR_CAP visible pairs joined into groups of contacts that are all one
    person by some chain of pairs (A ~ B and B ~ C: A, B, C), best group first. Returns the
    groups and whether pairs were left out by the cap."""
    policy = policy_for(request)
    pairs = list(
        visible_pairs(request, band).order_by(BAND_RANK.desc(), "-score", "-id")[
            : GROUP_PAIR_CAP + 1
        ]
    )
    capped = len(pairs) > GROUP_PAIR_CAP
    pairs = pairs[:GROUP_PAIR_CAP]
    parent: dict[int, int] = {}

    def root(node: int) -> int:
        while parent.setdefault(node, node) != node:
            parent[node] = parent[parent[node]]
            node = parent[node]
        return node

    for pair in pairs:
        parent[root(pair.contact_a_id)] = root(pair.contact_b_id)
    groups: dict[int, dict] = {}
    for pair in pairs:  # best first, so each group's first pair is its best
        group = groups.setdefault(root(pair.contact_a_id), {"contacts": {}, "pairs": []})
        for contact in (pair.contact_a, pair.contact_b):
            group["contacts"].setdefault(contact.pk, (contact, display_name(contact, policy)))
        group["pairs"].append(_pair_row(pair, policy))
    ordered = sorted(
        groups.values(),
        key=lambda g: (
            g["pairs"][0]["pair"].band == DuplicatePair.Band.PROBABLE,
            g["pairs"][0]["pair"].score,
        ),
        reverse=True,
    )
    for group in ordered:
        group["members"] = list(group["contacts"].values())
        group["percent"] = group["pairs"][0]["percent"]
    return ordered[:GROUPS_SHOWN], capped or len(ordered) > GROUPS_SHOWN


@require_GET
@workspace_view("contacts", "edit")
def data_health(request):
    policy = policy_for(request)
    filters = PairFilterForm(request.GET)
    band = filters.band_value()
    grouped = request.GET.get("view") == "groups"
    counts = {key: visible_pairs(request, key).count() for key, _ in DuplicatePair.Band.choices}
    context = {
        "band": band,
        "grouped": grouped,
        "bands": [
            (key, label, count, _list_link(band=key, grouped=grouped))
            for key, label, count in [
                ("", "All", sum(counts.values())),
                *((key, label, counts[key]) for key, label in DuplicatePair.Band.choices),
            ]
        ],
        "pairs_url": _list_link(band=band, grouped=False),
        "groups_url": _list_link(band=band, grouped=True),
        "refresh_url": _list_link(band=band, grouped=grouped),
        "list_url": reverse("contacts:data_health"),
        "can_merge": can_merge(policy),
        "show_email": policy.can_see_field("email"),
        "scan": _scan_state(request.org),
        "scan_job": _running_scan(request) if full_page(request) else None,
    }
    if grouped:
        groups, capped = duplicate_groups(request, band)
        context.update(groups=groups, groups_capped=capped, rows=groups, state_query="view=groups")
    else:
        result = keyset_page(
            visible_pairs(request, band), PAIR_ORDER, request.GET.get("cursor"), PAGE_SIZE
        )
        context.update(
            rows=[_pair_row(pair, policy) for pair in result.rows],
            page=result,
            state_query=f"band={band}" if band else "",
        )
    if not full_page(request):
        return render(request, f"{LIST_TEMPLATE}#pairs", context)
    return render(request, LIST_TEMPLATE, context)


@require_POST
@workspace_view("contacts", "edit")
def data_health_scan(request):
    """ "Scan now": a full scan of the organization as a background job; the page shows its
    progress and reloads the pairs when it ends. A scan already waiting or running is
    followed instead of starting a second one."""
    start_scan_job(request.org, actor(request), full=True)
    return redirect_or_refresh(request, reverse("contacts:data_health"))


def _running_scan(request):
    """The organization's scan still waiting or running, if this member may follow it."""
    job = (
        BackgroundJob.objects.for_org(request.org)
        .filter(
            kind=SCAN_JOB_KIND,
            status__in=[BackgroundJob.Status.QUEUED, BackgroundJob.Status.RUNNING],
        )
        .order_by("-created_at", "-id")
        .first()
    )
    return job if job is not None and may_follow(request, job) else None


# Compare, merge and "Not a duplicate" -------------------------------------------------------


def _visible_preview(policy, preview) -> list:
    """Only the fields this member may see reach the page (a hidden field's value never
    travels, and its choice stays at the default)."""
    return [choice for choice in preview if policy.can_see_field(choice.key)]


def _compare_context(request, first: Contact, second: Contact, form=None) -> dict:
    policy = policy_for(request)
    names = {first.pk: display_name(first, policy), second.pk: display_name(second, policy)}
    low, high = ordered_pair(first.pk, second.pk)
    pair = DuplicatePair.objects.for_org(request.org).filter(contact_a_id=low, contact_b_id=high)
    pair = pair.only("score", "band", "reasons").first()
    blockers = merge_service.merge_blockers(primary=first, secondary=second, policy=policy)
    if form is None:
        preview = merge_service.merge_preview(primary=first, secondary=second, policy=policy)
        form = MergeChoicesForm(preview=_visible_preview(policy, preview))
    return {
        "primary": first,
        "secondary": second,
        "primary_name": names[first.pk],
        "secondary_name": names[second.pk],
        "pair": pair,
        "percent": round(pair.score * 100) if pair else None,
        "reasons": [str(reason) for reason in (pair.reasons or [])] if pair else [],
        "form": form,
        "blockers": blockers,
        "show_email": policy.can_see_field("email"),
        "can_merge": can_merge(policy) and not blockers,
        "differing": sum(1 for choice in form.preview if choice.differs),
        "next": safe_next(request, reverse("contacts:data_health")),
    }


def _two_contacts(request, primary, secondary) -> tuple[Contact, Contact]:
    first, second = _contact(request, primary), _contact(request, secondary)
    if first.pk == second.pk:
        raise Http404("A contact cannot be merged with itself.")
    return first, second


@require_http_methods(["GET", "POST"])
@workspace_view("contacts", "edit")
def merge_compare(request, primary, secondary):
    """GET: the two contacts side by side. POST: merge `secondary` into `primary` with the
    chosen values."""
    first, second = _two_contacts(request, primary, secondary)
    if request.method == "GET":
        return render(request, COMPARE_TEMPLATE, _compare_context(request, first, second))

    policy = policy_for(request)
    if not can_merge(policy):
        raise PermissionDenied("Your role may not merge contacts.")
    preview = merge_service.merge_preview(primary=first, secondary=second, policy=policy)
    form = MergeChoicesForm(request.POST, preview=_visible_preview(policy, preview))
    if form.is_valid():
        try:
            merge_service.merge_contacts(
                primary=first,
                secondary=second,
                actor=actor(request),
                policy=policy,
                choices=form.choices(),
            )
        except ValidationError as exc:
            form.add_service_errors(exc)
        except PermissionDenied as exc:
            form.add_error(None, str(exc) or "Your role may not merge these contacts.")
        else:
            messages.success(
                request,
                f"Merged “{display_name(second, policy)}” into "
                f"“{display_name(first, policy)}”. You can undo it from this page.",
            )
            return redirect_or_refresh(
                request, reverse("contacts:contact_detail", kwargs={"public_id": first.public_id})
            )
    context = _compare_context(request, first, second, form=form)
    return render(request, COMPARE_TEMPLATE, context, status=200)


@require_POST
@workspace_view("contacts", "edit")
def merge_dismiss(request, primary, secondary):
    """ "Not a duplicate": remembered, so later scans never bring the pair back."""
    first, second = _two_contacts(request, primary, secondary)
    policy = policy_for(request)
    try:
        dismiss_pair(
            org=request.org, actor=actor(request), first=first, second=second, policy=policy
        )
    except (ValidationError, PermissionDenied) as exc:
        for text in getattr(exc, "messages", None) or [str(exc)]:
            messages.error(request, text)
    else:
        messages.success(
            request,
            f"“{display_name(first, policy)}” and “{display_name(second, policy)}” are marked "
            "as different people; scans will not pair them again.",
        )
    return redirect_or_refresh(request, safe_next(request, reverse("contacts:data_health")))


# Undo -------------------------------------------------------------------------------------


def _merge_record(request, public_id) -> MergeRecord:
    """A merge of this org whose two contacts both lie in the member's scope, or 404."""
    record = get_object_or_404(
        MergeRecord.objects.for_org(request.org).select_related("primary", "secondary"),
        public_id=public_id,
    )
    in_scope = _scoped_contacts(request).filter(pk__in=[record.primary_id, record.secondary_id])
    if in_scope.count() != 2:
        raise Http404("No such merge.")
    record.primary.org = record.secondary.org = request.org
    return record


@require_POST
@workspace_view("contacts", "edit")
def merge_undo(request, public_id):
    record = _merge_record(request, public_id)
    policy = policy_for(request)
    primary_url = reverse("contacts:contact_detail", kwargs={"public_id": record.primary.public_id})
    try:
        merge_service.undo_merge(record=record, actor=actor(request), policy=policy)
    except (ValidationError, PermissionDenied) as exc:
        context = {
            **_undo_problems(exc),
            "record": record,
            "primary_name": display_name(record.primary, policy),
            "secondary_name": display_name(record.secondary, policy),
            "primary_url": primary_url,
        }
        if request.htmx:
            page_contact = _page_contact(request, record)
            return render(
                request, BANNER_TEMPLATE, {**_banner_context(request, page_contact), **context}
            )
        return render(request, "contacts/data_health/undo_refused.html", context, status=409)
    messages.success(
        request,
        f"Merge undone: “{display_name(record.secondary, policy)}” is its own contact again.",
    )
    return redirect_or_refresh(request, primary_url)


def _undo_problems(exc) -> dict:
    """The service's refusal as a heading and a list: "This merge can no longer be undone:"
    followed by each reason, or one sentence."""
    texts = list(getattr(exc, "messages", None) or []) or [
        str(exc) or "Your role may not undo this merge."
    ]
    if len(texts) > 1 and texts[0].endswith(":"):
        heading, rest = texts[0], texts[1:]
    else:
        heading, rest = "The merge was not undone.", texts
    return {"problems": True, "problems_heading": heading, "problems_list": rest}


def _page_contact(request, record: MergeRecord) -> Contact:
    """The contact whose page the undo was pressed on (the banner is re-drawn there)."""
    wanted = request.POST.get("page_contact", "")
    for contact in (record.primary, record.secondary):
        if str(contact.public_id) == wanted:
            return contact
    return record.primary


def _banner_context(request, contact: Contact) -> dict:
    policy = policy_for(request)
    records = list(
        MergeRecord.objects.for_org(request.org)
        .filter(Q(primary=contact) | Q(secondary=contact), state=MergeRecord.State.MERGED)
        .filter(policy.scope_filter("contacts", "primary__owner"))
        .filter(policy.scope_filter("contacts", "secondary__owner"))
        .select_related("primary", "secondary", "merged_by")
        .order_by("-created_at", "-id")[:BANNER_MERGES]
    )
    for record in records:
        record.primary_name = display_name(record.primary, policy)
        record.secondary_name = display_name(record.secondary, policy)
        record.into_this = record.primary_id == contact.pk
    return {
        "contact": contact,
        "records": records,
        "can_undo": can_merge(policy),
    }


@require_GET
@workspace_view("contacts", "view")
def merge_banner(request, public_id):
    """The contact page's note about merges into (or out of) this contact, with Undo."""
    contact = _contact(request, public_id)
    return render(request, BANNER_TEMPLATE, _banner_context(request, contact))


# Other ways in: Actions → Merge and the bulk bar --------------------------------------------


@require_GET
@workspace_view("contacts", "edit")
def merge_pick(request, public_id):
    """Actions → Merge: find the other contact, then compare."""
    contact = _contact(request, public_id)
    policy = policy_for(request)
    form = MergeSearchForm(request.GET)
    query = form.cleaned_data["q"] if form.is_valid() else ""
    others = _scoped_contacts(request).filter(is_archived=False).exclude(pk=contact.pk)
    results = []
    if query:
        matches = others.filter(search_q(request.org, query, policy)).order_by("last_name", "id")
        results = list(matches.only(*CONTACT_FIELDS)[:PICK_RESULTS])
    suggested = [
        (row["b"] if row["a"].pk == contact.pk else row["a"], row)
        for row in (
            _pair_row(pair, policy)
            for pair in visible_pairs(request)
            .filter(Q(contact_a=contact) | Q(contact_b=contact))
            .order_by("-score", "id")[:PICK_RESULTS]
        )
    ]
    context = {
        "contact": contact,
        "name": display_name(contact, policy),
        "form": form,
        "query": query,
        "results": [(other, display_name(other, policy)) for other in results],
        "suggested": [
            (other, display_name(other, policy), row["percent"], row["reasons"])
            for other, row in suggested
        ],
        "show_email": policy.can_see_field("email"),
    }
    template = "contacts/data_health/pick.html"
    if not full_page(request):
        return render(request, f"{template}#results", context)
    return render(request, template, context)


def _bulk_message(request, text: str, level: str = "error"):
    return render(request, f"{BULK_BAR}#message", {"text": text, "level": level})


@require_POST
@workspace_view("contacts", "edit")
def merge_selected(request):
    """The bulk bar's Merge with two contacts ticked: first a confirmation that names both,
    then the compare page (where nothing changes until Merge is pressed)."""
    if request.POST.get("bulk_all") == "1":
        return _bulk_message(request, "Tick exactly two contacts to merge them.")
    ids = clean_ids(request.POST.getlist("ids"))
    if len(ids) != 2:
        return _bulk_message(
            request, f"Tick exactly two contacts to merge them ({len(ids)} are ticked)."
        )
    policy = policy_for(request)
    if not can_merge(policy):
        return _bulk_message(request, "Your role may not merge contacts.")
    found = {str(c.public_id): c for c in _scoped_contacts(request).filter(public_id__in=ids)}
    if len(found) != 2:
        return _bulk_message(request, "One of the ticked contacts is gone or out of your reach.")
    # The older record starts as the primary, as on the Data Health page; Swap changes it.
    first, second = sorted(found.values(), key=lambda contact: contact.pk)
    archived = [c for c in (first, second) if c.is_archived]
    if archived:
        return _bulk_message(
            request,
            f"“{display_name(archived[0], policy)}” is archived. Restore it first to merge.",
        )
    compare_url = reverse(
        "contacts:merge_compare",
        kwargs={"primary": first.public_id, "secondary": second.public_id},
    )
    return render(
        request,
        "contacts/data_health/bulk_confirm.html",
        {
            "first_name": display_name(first, policy),
            "second_name": display_name(second, policy),
            "compare_url": compare_url,
            "ids": ids,
        },
    )
