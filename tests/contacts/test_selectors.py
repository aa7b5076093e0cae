"""Reads behind the contact list: scope, archived, full-text search, the list state from a
request, and keyset pagination (both directions, ties, NULLs, tampered cursors)."""

import datetime as dt

import pytest
from django.test import RequestFactory

from contacts.fields import contact_field_catalog
from contacts.models import Contact
from contacts.selectors import (
    contacts_for_list,
    list_state_from_request,
    search_query,
    sort_order,
    tsquery_text,
)
from crm.pagination import OrderKey, count_up_to, page
from crm.permissions import Policy
from tests.factories import (
    CompanyFactory,
    ContactFactory,
    ListPreferenceFactory,
    MembershipFactory,
    SmartViewFactory,
    TagFactory,
    TeamFactory,
    custom_role,
    member,
    role,
)

pytestmark = pytest.mark.django_db


def found(org, membership, **kwargs) -> set[str]:
    qs = contacts_for_list(org=org, policy=Policy(membership), **kwargs)
    return set(qs.values_list("first_name", flat=True))


# Scope and archive ----------------------------------------------------------------------


def test_a_team_role_sees_only_its_own_contacts(org):
    rep = member(org, "team")
    ContactFactory(org=org, first_name="Mine", owner=rep.user)
    ContactFactory(org=org, first_name="Colleague", owner=member(org, "team").user)
    ContactFactory(org=org, first_name="Free")
    assert found(org, rep) == {"Mine"}


def test_a_director_sees_the_whole_teams_contacts(org):
    team = TeamFactory(org=org)
    director = member(org, "director", team=team)
    teammate = member(org, "team", team=team)
    outsider = member(org, "team")
    ContactFactory(org=org, first_name="Teammates", owner=teammate.user)
    ContactFactory(org=org, first_name="Directors", owner=director.user)
    ContactFactory(org=org, first_name="Outsiders", owner=outsider.user)
    assert found(org, director) == {"Teammates", "Directors"}


def test_archived_contacts_show_only_under_the_archived_flag(org, owner):
    ContactFactory(org=org, first_name="Live")
    ContactFactory(org=org, first_name="Gone", is_archived=True)
    assert found(org, owner) == {"Live"}
    assert found(org, owner, archived=True) == {"Gone"}
    assert found(org, owner, archived=None) == {"Live", "Gone"}


def test_another_orgs_contacts_never_appear(org, other_org, owner):
    ContactFactory(org=other_org, first_name="Foreign")
    ContactFactory(org=org, first_name="Local")
    assert found(org, owner) == {"Local"}
    assert found(org, owner, search="Foreign") == set()


def test_a_member_without_contacts_access_sees_nothing(org):
    ContactFactory(org=org, first_name="Any")
    assert found(org, member(org, "board")) == set()


# Search ---------------------------------------------------------------------------------


@pytest.fixture
def searchable(org):
    acme = CompanyFactory(org=org, name="Acme Rockets", domain="acme.example")
    ContactFactory(org=org, first_name="Johanna", last_name="Smithers", email="jo@mail.example")
    ContactFactory(org=org, first_name="Peter", last_name="Parker", email="spidey@bugle.example")
    ContactFactory(
        org=org, first_name="Wile", last_name="Coyote", email="wile@desert.example", company=acme
    )
    return org


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("joh", {"Johanna"}),  # prefix of a first name
        ("jo smi", {"Johanna"}),  # prefixes of both names
        ("SMITHERS", {"Johanna"}),
        ("spidey@bugle.example", {"Peter"}),  # the whole email
        ("bugle", {"Peter"}),  # the email's domain
        ("acme rock", {"Wile"}),  # the company name
        ("zzz", set()),
    ],
)
def test_search_by_name_prefix_email_and_company(searchable, owner, text, expected):
    assert found(searchable, owner, search=text) == expected


@pytest.mark.parametrize("text", ["jo & | ! :*", "')(:*", "<->", "!!!", "a:* | b"])
def test_search_text_cannot_inject_tsquery_syntax(searchable, owner, text):
    # No database error, whatever punctuation is typed.
    assert isinstance(found(searchable, owner, search=text), set)


def test_search_keeps_only_words_as_prefix_terms():
    assert search_query("!!! ::") is None
    assert tsquery_text("Jo-Anne") == "'jo':* & 'anne':*"
    assert tsquery_text("o'brien & x", names_only=True) == "'o':*A & 'brien':*A & 'x':*A"


def test_a_hidden_email_or_company_never_decides_a_match(searchable, org):
    executive = role(org, "executive")
    hides = custom_role(
        org, permissions=executive.permissions, field_rules={"email": "hidden", "company": "hidden"}
    )
    membership = MembershipFactory(org=org, role=hides)
    assert found(org, membership, search="bugle") == set()
    assert found(org, membership, search="acme") == set()
    assert found(org, membership, search="peter") == {"Peter"}


# Keyset pagination ---------------------------------------------------------------------


def walk(qs, order, size):
    """All pages forward, then all pages backward from the last: (forward ids, backward ids)."""
    pages = [page(qs, order, None, size)]
    while pages[-1].next_cursor:
        pages.append(page(qs, order, pages[-1].next_cursor, size))
    forward = [row.pk for p in pages for row in p.rows]
    backward = list(pages[-1].rows and [r.pk for r in pages[-1].rows])
    current = pages[-1]
    while current.prev_cursor:
        current = page(qs, order, current.prev_cursor, size)
        backward = [row.pk for row in current.rows] + backward
    return forward, backward, pages


def test_keyset_pages_with_ties_on_the_sort_value(org):
    for i in range(11):
        ContactFactory(org=org, first_name=f"P{i}", lead_score=50 if i % 2 else 20)
    qs = Contact.objects.for_org(org)
    for order in (["lead_score", "id"], ["-lead_score", "-id"]):
        expected = list(qs.order_by(*order).values_list("pk", flat=True))
        forward, backward, pages = walk(qs, order, 3)
        assert forward == expected
        assert backward == expected
        assert [len(p.rows) for p in pages] == [3, 3, 3, 2]
        assert pages[0].prev_cursor is None and pages[-1].next_cursor is None


def test_keyset_puts_missing_values_last_in_both_directions(org):
    base = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    for i in range(7):
        ContactFactory(
            org=org,
            first_name=f"A{i}",
            last_activity_at=None if i % 3 == 0 else base + dt.timedelta(days=i % 4),
        )
    qs = Contact.objects.for_org(org)
    for descending in (False, True):
        order = [
            OrderKey("last_activity_at", descending=descending, nullable=True),
            OrderKey("id", descending=descending),
        ]
        forward, backward, _ = walk(qs, order, 2)
        rows = list(qs)
        valued = sorted(
            (r for r in rows if r.last_activity_at), key=lambda r: (r.last_activity_at, r.pk)
        )
        empty = sorted((r for r in rows if not r.last_activity_at), key=lambda r: r.pk)
        if descending:
            valued.reverse()
            empty.reverse()
        assert forward == [r.pk for r in valued + empty]
        assert backward == forward


def test_a_tampered_or_foreign_cursor_starts_at_the_first_page(org):
    for i in range(5):
        ContactFactory(org=org, first_name=f"T{i}")
    qs = Contact.objects.for_org(org)
    first = page(qs, ["-created_at", "-id"], None, 2)
    second = page(qs, ["-created_at", "-id"], first.next_cursor, 2)
    assert second.rows[0].pk != first.rows[0].pk
    tampered = first.next_cursor[:-3] + "xyz"
    assert [r.pk for r in page(qs, ["-created_at", "-id"], tampered, 2).rows] == [
        r.pk for r in first.rows
    ]
    # A cursor made for another sort is not applied to this one.
    other_sort = page(qs, ["lead_score", "id"], first.next_cursor, 2)
    assert [r.pk for r in other_sort.rows] == list(
        qs.order_by("lead_score", "id").values_list("pk", flat=True)[:2]
    )


def test_sort_by_a_custom_number_field_is_numeric(org):
    from tests.factories import CustomFieldDefinitionFactory

    CustomFieldDefinitionFactory(org=org, key="budget", label="Budget", field_type="number")
    for value in (9, 100, 10):
        ContactFactory(org=org, first_name=f"B{value}", custom={"budget": value})
    ContactFactory(org=org, first_name="Bnone")
    order = sort_order("custom.budget", contact_field_catalog(org))
    rows = page(Contact.objects.for_org(org), order, None, 10).rows
    assert [r.first_name for r in rows] == ["B9", "B10", "B100", "Bnone"]


def test_count_up_to_caps_the_work(org):
    for _ in range(4):
        ContactFactory(org=org)
    qs = Contact.objects.for_org(org)
    assert count_up_to(qs, cap=10) == (4, True)
    assert count_up_to(qs, cap=3) == (3, False)


# The list state from a request -----------------------------------------------------------


@pytest.fixture
def make_request():
    def build(membership, query: dict):
        request = RequestFactory().get("/contacts/", query)
        request.user = membership.user
        request.org = membership.org
        request.membership = membership
        return request

    return build


def test_a_view_and_panel_parameters_are_combined(org, owner, make_request):
    view = SmartViewFactory(
        org=org,
        owner=owner.user,
        filters={
            "groups": [{"conditions": [{"field": "lifecycle_stage", "op": "eq", "value": "lead"}]}]
        },
    )
    state = list_state_from_request(
        make_request(owner, {"view": str(view.public_id), "score_min": "40"})
    )
    conditions = state.filters["groups"][0]["conditions"]
    assert {"field": "lifecycle_stage", "op": "eq", "value": "lead"} in conditions
    assert {"field": "lead_score", "op": "gt", "value": 39} in conditions
    assert state.view == view and not state.explicit_filters


def test_panel_date_ranges_include_both_ends(org, owner, make_request):
    inside = ContactFactory(org=org, first_name="Inside")
    Contact.objects.filter(pk=inside.pk).update(
        created_at=dt.datetime(2024, 3, 31, 12, tzinfo=dt.UTC)
    )
    outside = ContactFactory(org=org, first_name="Outside")
    Contact.objects.filter(pk=outside.pk).update(
        created_at=dt.datetime(2024, 4, 1, 12, tzinfo=dt.UTC)
    )
    state = list_state_from_request(
        make_request(owner, {"created_from": "2024-03-01", "created_to": "2024-03-31"})
    )
    assert found(org, owner, filters=state.filters) == {"Inside"}


def test_another_members_private_view_is_not_applied(org, owner, make_request):
    private = SmartViewFactory(org=org, owner=member(org, "admin").user, is_shared=False)
    state = list_state_from_request(make_request(owner, {"view": str(private.public_id)}))
    assert state.view is None


def test_the_builder_json_overrides_the_view_and_marks_it_edited(org, owner, make_request):
    view = SmartViewFactory(org=org, owner=owner.user)
    raw = '{"groups": [{"conditions": [{"field": "lead_score", "op": "gt", "value": 5}]}]}'
    state = list_state_from_request(
        make_request(owner, {"view": str(view.public_id), "filters": raw})
    )
    assert state.explicit_filters
    assert state.filters["groups"][0]["conditions"] == [
        {"field": "lead_score", "op": "gt", "value": 5}
    ]


def test_an_invalid_filter_is_reported_and_selects_nothing(org, owner, make_request):
    from contacts.selectors import contacts_for_state

    ContactFactory(org=org)
    request = make_request(owner, {"score_min": "high"})
    state = list_state_from_request(request)
    assert state.error == "'Lead score from' needs a whole number."
    assert not contacts_for_state(request, state).exists()


def test_sort_and_columns_fall_back_to_the_members_preference(org, owner, make_request):
    ListPreferenceFactory(
        org=org, user=owner.user, columns=["lead_score", "bogus", "city"], sort="-lead_score"
    )
    state = list_state_from_request(make_request(owner, {}))
    assert state.columns == ["lead_score", "city"]
    assert state.sort == "-lead_score"
    explicit = list_state_from_request(
        make_request(owner, {"sort": "nonsense", "columns": "email"})
    )
    assert explicit.sort == "-lead_score" and explicit.columns == ["email"]


def test_a_hidden_field_is_neither_a_column_nor_a_sort(org, make_request):
    executive = role(org, "executive")
    hides = custom_role(org, permissions=executive.permissions, field_rules={"email": "hidden"})
    membership = MembershipFactory(org=org, role=hides)
    state = list_state_from_request(
        make_request(membership, {"sort": "email", "columns": "email,city"})
    )
    assert state.columns == ["city"]
    assert state.sort == "-created_at"


def test_tag_panel_parameter_filters_by_tag(org, owner, make_request):
    vip = TagFactory(org=org, name="vip")
    ContactFactory(org=org, first_name="Tagged", tags=[vip])
    ContactFactory(org=org, first_name="Plain")
    state = list_state_from_request(make_request(owner, {"tag": ["vip"]}))
    assert found(org, owner, filters=state.filters) == {"Tagged"}


def test_search_gives_the_same_answer_below_and_above_the_id_list_cap(org, owner, monkeypatch):
    from contacts import selectors

    acme = CompanyFactory(org=org, name="Garnet Mining")
    for i in range(3):
        ContactFactory(org=org, first_name=f"Garth{i}", last_name="Stone")
    ContactFactory(org=org, first_name="Mia", last_name="Miner", company=acme)
    ContactFactory(org=org, first_name="Other", last_name="Person")
    expected = {"Garth0", "Garth1", "Garth2", "Mia"}
    assert found(org, owner, search="gar") == expected  # few matches: an id list
    monkeypatch.setattr(selectors, "SEARCH_ID_CAP", 2)
    assert found(org, owner, search="gar") == expected  # too many: a plain condition
    monkeypatch.setattr(selectors, "COMPANY_ID_CAP", 0)
    assert found(org, owner, search="gar") == expected
    assert found(org, owner, search="ga") == expected  # short words: always a condition
