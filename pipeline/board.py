"""What the two boards read: the deal board of a pipeline and the contact lifecycle board.

A board's first screen costs the same few queries however many cards it shows:

- the first page of every column in one query (a UNION ALL of one `ORDER BY ... LIMIT` per
  column, each served by an index: deal_board_column for deals, contact_org_stage for
  contacts), with the owner (and a contact's company) joined;
- the column totals in one GROUP BY (stage, currency), converted to the organization's base
  currency with its dated exchange rates (one query for the rate book, pipeline.forecast.rates);
- the cards' health in one more query (which deals have an open task).

A column's next page seeks from a signed keyset cursor (crm.pagination), so the 4,000th card
costs what the 26th does. Everything is read through the member's record scope: the cards
and the totals count only deals (or contacts) the member may see.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from django.db import connection
from django.db.models import Count, Sum
from django.utils import timezone

from contacts.models import Contact
from crm.pagination import NEXT, encode_cursor, order_keys, page

from .fields import hidden_deal_fields
from .forecast.rates import Converter, RateBook
from .health import Health, deal_health, open_task_deal_ids
from .models import Deal, Pipeline, Stage
from .selectors import visible_deals

CARDS_PER_PAGE = 25
# A lifecycle column counts its contacts up to this many ("10,000+" beyond).
COUNT_CAP = 10_000
# A card's place in a deal column, and the keyset the column pages by.
DEAL_ORDER = ["position", "id"]
# Contacts have no manual order: a lifecycle column shows the newest first.
CONTACT_ORDER = ["-id"]
CENT = Decimal("0.01")
# Column totals travel to the page with this precision, so the board can add a move's
# share to them exactly (static/js/kanban.js).
MICRO = Decimal("0.000001")
HUNDRED = Decimal(100)
ZERO = Decimal(0)

# The deal columns a card and the cursor need (the rest of the row stays in the table).
DEAL_CARD_FIELDS = (
    "id",
    "public_id",
    "org_id",
    "title",
    "value",
    "currency",
    "pipeline_id",
    "stage_id",
    "position",
    "probability",
    "owner_id",
    "expected_close_date",
    "status",
    "stage_entered_at",
    "last_activity_at",
    "created_at",
    "is_archived",
    "owner__first_name",
    "owner__last_name",
    "owner__email",
)
CONTACT_CARD_FIELDS = (
    "id",
    "public_id",
    "org_id",
    "first_name",
    "last_name",
    "email",
    "lifecycle_stage",
    "lead_score",
    "owner_id",
    "company_id",
    "is_archived",
    "owner__first_name",
    "owner__last_name",
    "owner__email",
    "company__name",
)


# Formatting ------------------------------------------------------------------------------


def format_amount(amount: Decimal, currency: str, *, whole: bool = False) -> str:
    """An amount as "USD 1,250.50" ("USD 1,250" when whole); `whole` rounds to units, for
    column totals."""
    if whole:
        return f"{currency} {amount.quantize(Decimal(1), rounding=ROUND_HALF_UP):,}"
    amount = amount.quantize(CENT, rounding=ROUND_HALF_UP)
    if amount == amount.to_integral_value():
        return f"{currency} {amount.quantize(Decimal(1)):,}"
    return f"{currency} {amount:,.2f}"


def initials(user) -> str:
    if user is None:
        return ""
    first, last = (user.first_name or "").strip(), (user.last_name or "").strip()
    letters = (first[:1] + last[:1]) or (user.email or "?")[:1]
    return letters.upper()


def person_name(user) -> str:
    if user is None:
        return ""
    return f"{user.first_name} {user.last_name}".strip() or user.email


# Deal board ------------------------------------------------------------------------------


@dataclass
class Totals:
    """A column's count, and its value and weighted value in the organization's base
    currency. Deals in a currency without an exchange rate are counted but left out of the
    amounts (`left_out`), never taken as if worth 1."""

    currency: str
    count: int = 0
    value: Decimal = ZERO
    weighted: Decimal = ZERO
    left_out: int = 0

    @property
    def value_text(self) -> str:
        return format_amount(self.value, self.currency, whole=True)

    @property
    def value_exact(self) -> str:
        return f"{self.value.quantize(MICRO):f}"

    @property
    def weighted_exact(self) -> str:
        return f"{self.weighted.quantize(MICRO):f}"

    @property
    def weighted_text(self) -> str:
        return format_amount(self.weighted, self.currency, whole=True)


class Card:
    """What a card template reads, flat: a board renders 150 of them, and every dotted
    lookup in a template costs. Templates try `card[key]` before `card.key`; answering the
    item lookup directly spares them a TypeError per value."""

    def __getitem__(self, key):
        return getattr(self, key)


@dataclass
class DealCard(Card):
    deal: Deal
    id: str
    title: str
    stage_name: str
    health: Health
    days_in_stage: int
    owner_initials: str
    owner_name: str
    value_text: str
    close_text: str  # the expected close date, "" when none or hidden
    close_iso: str
    is_overdue: bool
    # Addresses the view fills in (pipeline.views.board.link_cards): reversing them per
    # card in the template would cost more than the rest of the card.
    detail_url: str = ""
    move_url: str = ""
    move_page_url: str = ""
    close_url: str = ""

    @property
    def health_level(self) -> str:
        return self.health.level

    @property
    def health_label(self) -> str:
        return self.health.label

    @property
    def health_summary(self) -> str:
        return self.health.summary


@dataclass
class DealColumn:
    stage: Stage
    cards: list[DealCard]
    next_cursor: str | None
    totals: Totals


@dataclass
class DealBoard:
    pipeline: Pipeline
    stages: list[Stage]
    columns: list[DealColumn]
    hidden: set[str]
    converter: Converter

    @property
    def base_currency(self) -> str:
        return self.converter.base_currency

    @property
    def rates_used(self) -> list[tuple[str, str, object]]:
        """(currency, rate as written, effective date) of each rate the totals used."""
        return [
            (used.currency, f"{used.rate.normalize():f}", used.effective_date)
            for used in self.converter.rates_used()
        ]

    @property
    def missing_rates(self):
        return self.converter.missing()

    @property
    def show_values(self) -> bool:
        return "value" not in self.hidden

    @property
    def show_weighted(self) -> bool:
        # A column of one card would give its probability away.
        return "value" not in self.hidden and "probability" not in self.hidden

    @property
    def deal_count(self) -> int:
        return sum(column.totals.count for column in self.columns)


def board_deals(org, policy):
    """The open deals a member sees on a board (organization, record scope, not archived).
    A filter (the deal filter engine, a saved view) narrows this queryset further."""
    return visible_deals(org, policy).filter(status=Deal.Status.OPEN)


def stages_of(org, pipeline: Pipeline) -> list[Stage]:
    return list(Stage.objects.for_org(org).filter(pipeline=pipeline).order_by("position", "id"))


def _card_queryset(queryset):
    return queryset.select_related("owner").only(*DEAL_CARD_FIELDS)


def _deal_cursor(deal: Deal) -> str:
    return encode_cursor(order_keys(DEAL_ORDER), [deal.position, deal.pk], NEXT)


def first_deal_pages(queryset, stages, size: int = CARDS_PER_PAGE) -> dict[int, list[Deal]]:
    """The first `size` + 1 cards of every column (the extra one says whether there is more),
    in one query."""
    if not stages:
        return {}
    base = _card_queryset(queryset).order_by(*DEAL_ORDER)
    parts = [base.filter(stage_id=stage.pk)[: size + 1] for stage in stages]
    rows = parts[0].union(*parts[1:], all=True) if len(parts) > 1 else parts[0]
    by_stage: dict[int, list[Deal]] = {stage.pk: [] for stage in stages}
    for deal in rows:
        by_stage[deal.stage_id].append(deal)
    for cards in by_stage.values():
        cards.sort(key=lambda d: (d.position, d.pk))
    return by_stage


def deal_totals(queryset, stages, converter: Converter) -> dict[int, Totals]:
    """Count, value and weighted value per column, converted to the base currency at
    today's rates. One GROUP BY (stage, currency, probability) with nothing but COUNT and
    SUM(value), which an index-only scan can answer: weighted (value × the deal's
    probability, or the stage's where the deal has none) is worked out here, per group."""
    by_id = {stage.pk: stage for stage in stages}
    totals = {stage.pk: Totals(converter.base_currency) for stage in stages}
    if not stages:
        return totals
    today = timezone.localdate()
    rows = (
        queryset.filter(stage_id__in=list(by_id))
        .order_by()
        .values_list("stage_id", "currency", "probability")
        .annotate(n=Count("*"), total=Sum("value"))
    )
    for stage_id, currency, probability, count, total in rows:
        column = totals[stage_id]
        value = total or ZERO
        column.count += count
        rate = converter.rate(currency, today, deals=count, amount=value)
        if rate is None:
            column.left_out += count
            continue
        odds = by_id[stage_id].probability if probability is None else probability
        column.value += value * rate
        column.weighted += value * rate * odds / HUNDRED
    return totals


def deal_cards(org, deals, stages_by_id, hidden: set[str], now=None) -> list[DealCard]:
    """Cards for `deals` (their stage is set from `stages_by_id`, no query), with their
    health in one query. Fields the member may not see stay off the card, and out of the
    health reasons."""
    now = now or timezone.now()
    today = timezone.localdate(now)
    deals = list(deals)
    with_tasks = open_task_deal_ids(org, [d.pk for d in deals]) if deals else set()
    cards = []
    for deal in deals:
        deal.stage = stages_by_id[deal.stage_id]
        judged = deal
        if "expected_close_date" in hidden:
            judged = copy.copy(deal)
            judged.expected_close_date = None
        health = deal_health(judged, has_open_task=deal.pk in with_tasks, now=now)
        owner = deal.owner if "owner" not in hidden else None
        close = deal.expected_close_date if "expected_close_date" not in hidden else None
        cards.append(
            DealCard(
                deal=deal,
                id=str(deal.public_id),
                title=deal.title,
                stage_name=deal.stage.name,
                health=health,
                days_in_stage=max((now - deal.stage_entered_at).days, 0),
                owner_initials=initials(owner),
                owner_name=person_name(owner),
                value_text="" if "value" in hidden else format_amount(deal.value, deal.currency),
                close_text=f"{close:%b} {close.day}, {close.year}" if close else "",
                close_iso=close.isoformat() if close else "",
                is_overdue=close is not None and close < today,
            )
        )
    return cards


def load_deal_board(org, policy, pipeline: Pipeline, queryset=None) -> DealBoard:
    """Every column of `pipeline` with its first cards and totals. `queryset` (default: the
    member's open deals) is where a filter or saved view narrows the board."""
    queryset = board_deals(org, policy) if queryset is None else queryset
    stages = stages_of(org, pipeline)
    hidden = hidden_deal_fields(policy)
    stages_by_id = {stage.pk: stage for stage in stages}
    pages = first_deal_pages(queryset, stages)
    converter = Converter(RateBook.load(org))
    totals = deal_totals(queryset, stages, converter)
    shown = {pk: deals[:CARDS_PER_PAGE] for pk, deals in pages.items()}
    cards = deal_cards(org, [d for deals in shown.values() for d in deals], stages_by_id, hidden)
    cards_by_stage: dict[int, list[DealCard]] = {stage.pk: [] for stage in stages}
    for card in cards:
        cards_by_stage[card.deal.stage_id].append(card)
    columns = [
        DealColumn(
            stage=stage,
            cards=cards_by_stage[stage.pk],
            next_cursor=(
                _deal_cursor(shown[stage.pk][-1]) if len(pages[stage.pk]) > CARDS_PER_PAGE else None
            ),
            totals=totals[stage.pk],
        )
        for stage in stages
    ]
    return DealBoard(
        pipeline=pipeline, stages=stages, columns=columns, hidden=hidden, converter=converter
    )


def deal_column_page(
    org, policy, stage: Stage, cursor: str | None, queryset=None, size: int = CARDS_PER_PAGE
) -> tuple[list[DealCard], str | None]:
    """The cards of one column after `cursor` (None: from the top), and the next cursor."""
    queryset = board_deals(org, policy) if queryset is None else queryset
    result = page(_card_queryset(queryset.filter(stage_id=stage.pk)), DEAL_ORDER, cursor, size)
    hidden = hidden_deal_fields(policy)
    cards = deal_cards(org, result.rows, {stage.pk: stage}, hidden)
    return cards, result.next_cursor


def deal_card(org, policy, deal: Deal) -> DealCard:
    """One card, for the answer to a move or a quick-create."""
    if Deal.stage.is_cached(deal) and deal.stage.pk == deal.stage_id:
        stage = deal.stage
    else:
        stage = Stage.objects.for_org(org).get(pk=deal.stage_id)
    return deal_cards(org, [deal], {stage.pk: stage}, hidden_deal_fields(policy))[0]


def columns_totals(org, policy, stages, queryset=None) -> dict[int, Totals]:
    """Fresh totals of a few columns (the two a move touched)."""
    queryset = board_deals(org, policy) if queryset is None else queryset
    return deal_totals(queryset, stages, Converter(RateBook.load(org)))


def column_edge(org, stage: Stage, edge: str, exclude_pk=None) -> Deal | None:
    """The first (edge "top") or last ("bottom") open card of a column, whoever owns it:
    "move to the top" goes before the first, "to the bottom" after the last."""
    column = Deal.objects.for_org(org).filter(
        stage_id=stage.pk, status=Deal.Status.OPEN, is_archived=False
    )
    if exclude_pk is not None:
        column = column.exclude(pk=exclude_pk)
    order = ("position", "id") if edge == "top" else ("-position", "-id")
    return column.only("id", "position", "stage_id", "status").order_by(*order).first()


# Contact lifecycle board -------------------------------------------------------------------


@dataclass
class ContactCard(Card):
    contact: Contact
    id: str
    name: str
    owner_initials: str
    owner_name: str
    company_name: str
    lead_score: int | None
    detail_url: str = ""
    move_url: str = ""
    move_page_url: str = ""


@dataclass
class ContactColumn:
    value: str
    label: str
    cards: list[ContactCard]
    next_cursor: str | None
    count: int
    count_exact: bool = True


LIFECYCLE_STAGES = list(Contact.Stage.choices)
LIFECYCLE_LABELS = dict(LIFECYCLE_STAGES)


def board_contacts(org, policy):
    """The contacts a member sees on the lifecycle board (record scope, not archived)."""
    queryset = Contact.objects.for_org(org).filter(is_archived=False)
    if policy is not None:
        queryset = queryset.filter(policy.scope_filter("contacts"))
    return queryset


def _contact_card_queryset(queryset):
    return queryset.select_related("owner", "company").only(*CONTACT_CARD_FIELDS)


def contact_cards(contacts, policy) -> list[ContactCard]:
    def visible(key):
        return policy is None or policy.can_see_field(key)

    show_owner, show_company = visible("owner"), visible("company")
    show_score, show_email = visible("lead_score"), visible("email")
    cards = []
    for contact in contacts:
        owner = contact.owner if show_owner else None
        company = contact.company if show_company else None
        name = f"{contact.first_name} {contact.last_name}".strip()
        cards.append(
            ContactCard(
                contact=contact,
                id=str(contact.public_id),
                name=name or (contact.email if show_email and contact.email else "(no name)"),
                owner_initials=initials(owner),
                owner_name=person_name(owner),
                company_name=company.name if company is not None else "",
                lead_score=contact.lead_score if show_score else None,
            )
        )
    return cards


def lifecycle_counts(queryset, values=None, cap: int = COUNT_CAP) -> dict[str, tuple[int, bool]]:
    """{stage: (count, exact)} in one query: each column counts at most `cap` + 1 contacts
    (contact_org_stage serves each part), so a column of 100,000 costs what one of 10,000
    does and shows as "10,000+"."""
    values = list(values) if values else [value for value, _ in LIFECYCLE_STAGES]
    parts, params = [], []
    for value in values:
        capped = queryset.filter(lifecycle_stage=value).order_by().values("pk")[: cap + 1]
        sql, sub_params = capped.query.sql_with_params()
        # `sql` is the ORM's own compiled query; every value travels in `params`.
        parts.append(f"SELECT %s, (SELECT COUNT(*) FROM ({sql}) AS capped)")  # noqa: S608
        params += [value, *sub_params]
    with connection.cursor() as cursor:
        cursor.execute(" UNION ALL ".join(parts), params)
        found = dict(cursor.fetchall())
    return {value: (min(found.get(value, 0), cap), found.get(value, 0) <= cap) for value in values}


def load_lifecycle_board(org, policy, queryset=None) -> list[ContactColumn]:
    queryset = board_contacts(org, policy) if queryset is None else queryset
    base = _contact_card_queryset(queryset).order_by(*CONTACT_ORDER)
    parts = [
        base.filter(lifecycle_stage=value)[: CARDS_PER_PAGE + 1] for value, _ in LIFECYCLE_STAGES
    ]
    by_stage: dict[str, list[Contact]] = {value: [] for value, _ in LIFECYCLE_STAGES}
    for contact in parts[0].union(*parts[1:], all=True):
        by_stage[contact.lifecycle_stage].append(contact)
    counts = lifecycle_counts(queryset)
    keys = order_keys(CONTACT_ORDER)
    columns = []
    for value, label in LIFECYCLE_STAGES:
        rows = sorted(by_stage[value], key=lambda c: -c.pk)
        shown = rows[:CARDS_PER_PAGE]
        more = len(rows) > CARDS_PER_PAGE
        columns.append(
            ContactColumn(
                value=value,
                label=label,
                cards=contact_cards(shown, policy),
                next_cursor=encode_cursor(keys, [shown[-1].pk], NEXT) if more else None,
                count=counts[value][0],
                count_exact=counts[value][1],
            )
        )
    return columns


def lifecycle_column_page(
    org, policy, value: str, cursor: str | None, size: int = CARDS_PER_PAGE
) -> tuple[list[ContactCard], str | None]:
    queryset = board_contacts(org, policy).filter(lifecycle_stage=value)
    result = page(_contact_card_queryset(queryset), CONTACT_ORDER, cursor, size)
    return contact_cards(result.rows, policy), result.next_cursor
