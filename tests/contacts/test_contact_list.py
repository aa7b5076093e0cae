"""The contact list page and global search: rows, a query count that does not grow with the
page size, HTMX partials, field visibility in the HTML, the filter panel, columns remembered
per user, and search results honoring scope and visibility."""

import json

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from contacts.models import ListPreference
from tests.factories import (
    CompanyFactory,
    ContactFactory,
    MembershipFactory,
    TagFactory,
    custom_role,
    member,
    role,
)

pytestmark = pytest.mark.django_db

LIST = reverse("contacts:contact_list")


def list_html(client, **params) -> str:
    response = client.get(LIST, params)
    assert response.status_code == 200
    return response.content.decode()


@pytest.fixture
def crowd(org):
    """60 contacts, each with an owner, a company and two tags: enough to fill a 50-row page."""
    owners = [member(org, "team").user for _ in range(3)]
    companies = [CompanyFactory(org=org) for _ in range(5)]
    tags = [TagFactory(org=org, name=f"t{i}") for i in range(4)]
    for i in range(60):
        ContactFactory(
            org=org,
            first_name=f"Person{i:02d}",
            last_name="",
            owner=owners[i % 3],
            company=companies[i % 5],
            tags=[tags[i % 4], tags[(i + 1) % 4]],
            lead_score=i,
        )
    return org


def test_the_list_shows_contacts_with_their_company_owner_and_tags(org, owner, client_as):
    vip = TagFactory(org=org, name="vip")
    company = CompanyFactory(org=org, name="Initech")
    ContactFactory(org=org, first_name="Milton", last_name="Waddams", company=company, tags=[vip])
    html = list_html(client_as(owner))
    assert "Milton Waddams" in html
    assert "Initech" in html
    assert ">vip<" in html
    assert 'name="ids"' in html and 'id="bulk-form"' in html


def test_the_query_count_does_not_grow_with_the_page_size(crowd, owner, client_as):
    client = client_as(owner)
    client.get(LIST)  # warm up session and caches
    counts = {}
    for size in (10, 50):
        with CaptureQueriesContext(connection) as queries:
            response = client.get(LIST, {"size": size, "columns": "company,owner,tags,lead_score"})
        assert response.status_code == 200
        assert response.content.decode().count('name="ids"') == size
        counts[size] = len(queries)
    assert counts[10] == counts[50]


def test_the_page_never_counts_the_whole_table(crowd, owner, client_as):
    with CaptureQueriesContext(connection) as queries:
        list_html(client_as(owner))
    contact_counts = [
        q for q in queries if "COUNT(" in q["sql"].upper() and "contacts_contact" in q["sql"]
    ]
    assert not contact_counts


def test_the_count_is_loaded_separately_and_capped(crowd, owner, client_as):
    response = client_as(owner).get(reverse("contacts:contact_count"), {"score_min": "50"})
    assert "10 contacts" in response.content.decode()


def test_next_and_previous_pages_follow_cursors(crowd, owner, client_as):
    client = client_as(owner)
    first = client.get(LIST, {"sort": "lead_score", "size": 25})
    cursor = first.context["page"].next_cursor
    second = client.get(LIST, {"sort": "lead_score", "size": 25, "cursor": cursor})
    assert [r["contact"].lead_score for r in second.context["rows"]] == list(range(25, 50))
    back = client.get(
        LIST, {"sort": "lead_score", "size": 25, "cursor": second.context["page"].prev_cursor}
    )
    assert [r["contact"].lead_score for r in back.context["rows"]] == list(range(25))


def test_htmx_requests_get_only_the_table_or_the_list(crowd, owner, client_as):
    client = client_as(owner, htmx=True)
    table = client.get(LIST, {"sort": "-lead_score"}, HTTP_HX_TARGET="contact-table")
    html = table.content.decode()
    assert "<html" not in html and 'id="contact-table"' in html
    assert 'id="contact-list"' not in html
    assert "Person59" in html
    whole = client.get(LIST, HTTP_HX_TARGET="contact-list").content.decode()
    assert 'id="contact-list"' in whole and "<html" not in whole


def test_sort_headers_link_to_the_other_direction(crowd, owner, client_as):
    response = client_as(owner).get(LIST, {"sort": "lead_score", "columns": "lead_score"})
    score = next(h for h in response.context["headers"] if h["key"] == "lead_score")
    assert score["current"] and not score["descending"]
    assert "sort=-lead_score" in score["query"]
    assert response.context["rows"][0]["contact"].lead_score == 0


def test_filter_panel_parameters_narrow_the_list(crowd, owner, client_as):
    html = list_html(client_as(owner), score_min="55", score_max="57", tag="t0")
    shown = {f"Person{i:02d}" for i in range(60) if f"Person{i:02d}<" in html}
    # scores 55..57 with tag t0 (i % 4 == 0 or (i + 1) % 4 == 0): 55 and 56
    assert shown == {"Person55", "Person56"}


def test_owner_mine_and_unclaimed(org, client_as):
    rep = member(org, "executive")
    ContactFactory(org=org, first_name="Claimed", owner=rep.user)
    ContactFactory(org=org, first_name="Unowned")
    client = client_as(rep)
    assert "Claimed" in list_html(client, owner="me")
    assert "Unowned" not in list_html(client, owner="me")
    assert "Unowned" in list_html(client, owner="unclaimed")


def test_archived_contacts_appear_only_with_the_archived_filter(org, owner, client_as):
    ContactFactory(org=org, first_name="Gone", is_archived=True)
    ContactFactory(org=org, first_name="Here")
    client = client_as(owner)
    assert "Gone" not in list_html(client)
    archived = list_html(client, archived="1")
    assert "Gone" in archived and "Here" not in archived


def test_a_team_member_sees_only_own_contacts_in_the_list(org, client_as):
    rep = member(org, "team")
    ContactFactory(org=org, first_name="Mine", owner=rep.user)
    ContactFactory(org=org, first_name="NotMine", owner=member(org, "team").user)
    html = list_html(client_as(rep))
    assert "Mine" in html and "NotMine" not in html


def shown(response) -> set[str]:
    return {row["contact"].first_name for row in response.context["rows"]}


def test_other_org_contacts_never_appear(org, other_org, owner, client_as):
    ContactFactory(org=other_org, first_name="Foreigner")
    ContactFactory(org=org, first_name="Local")
    client = client_as(owner)
    assert shown(client.get(LIST)) == {"Local"}
    assert shown(client.get(LIST, {"q": "Foreigner"})) == set()


def test_invalid_filter_json_shows_the_message_at_the_builder(org, owner, client_as):
    ContactFactory(org=org, first_name="Zelda")
    bad = json.dumps(
        {"groups": [{"conditions": [{"field": "lead_score", "op": "gt", "value": "x"}]}]}
    )
    response = client_as(owner).get(LIST, {"filters": bad})
    html = response.content.decode()
    assert response.status_code == 200
    assert "Condition 1: &#x27;Lead score&#x27; needs a number." in html
    assert 'id="builder-error"' in html
    assert "Zelda" not in html


def test_the_no_javascript_builder_sends_one_condition(org, owner, client_as):
    ContactFactory(org=org, first_name="High", lead_score=90)
    ContactFactory(org=org, first_name="Low", lead_score=10)
    html = list_html(client_as(owner), nf_field="lead_score", nf_op="gt", nf_value="50")
    assert "High" in html and "Low<" not in html


@pytest.fixture
def hides_email(org):
    executive = role(org, "executive")
    return MembershipFactory(
        org=org,
        role=custom_role(org, permissions=executive.permissions, field_rules={"email": "hidden"}),
    )


def test_a_hidden_field_never_appears_in_the_html(org, hides_email, client_as):
    ContactFactory(org=org, first_name="Secret", email="secret.person@hidden.example")
    client = client_as(hides_email)
    html = list_html(client, columns="email,company")
    assert "Secret" in html
    assert "secret.person@hidden.example" not in html
    assert '"key": "email"' not in html  # not offered to the builder
    assert 'value="email"' not in html  # nor as a column or a filter field
    refused = list_html(
        client,
        filters=json.dumps(
            {"groups": [{"conditions": [{"field": "email", "op": "contains", "value": "@"}]}]}
        ),
    )
    assert "hidden for your role" in refused and "Secret<" not in refused


def test_columns_are_remembered_per_user(org, owner, client_as):
    ContactFactory(org=org, first_name="Col", city="Lisbon")
    client = client_as(owner)
    response = client.post(reverse("contacts:list_columns"), {"columns": ["city", "lead_score"]})
    assert response.status_code == 302
    pref = ListPreference.objects.get(org=org, user=owner.user)
    assert pref.columns == ["city", "lead_score"]
    assert "Lisbon" in list_html(client)
    other = member(org, "admin")
    assert "Lisbon" not in list_html(client_as(other))


def test_export_links_carry_the_list_state_when_exports_exist(org, owner, client_as):
    response = client_as(owner).get(LIST, {"q": "ann", "score_min": "5"})
    csv_url = response.context["export_urls"].get("csv")
    if csv_url is not None:  # the export URLs arrive with the export feature
        assert "q=ann" in csv_url and "score_min=5" in csv_url
    assert response.status_code == 200


def test_a_viewer_sees_the_list_without_a_create_button(org, client_as):
    ContactFactory(org=org, first_name="Readable")
    viewer = member(org, "viewer")
    html = list_html(client_as(viewer))
    assert "Readable" in html
    assert "New contact" not in html


def test_a_role_without_contacts_gets_403(org, client_as):
    board = member(org, "board")
    assert client_as(board).get(LIST).status_code == 403


# Global search ----------------------------------------------------------------------------


@pytest.fixture
def findable(org):
    acme = CompanyFactory(org=org, name="Acme Anvils", domain="acme-anvils.example")
    ContactFactory(
        org=org,
        first_name="Wile",
        last_name="Coyote",
        email="wile@acme-anvils.example",
        company=acme,
    )
    ContactFactory(org=org, first_name="Road", last_name="Runner", email="beep@desert.example")
    return org


def test_search_finds_contacts_and_companies(findable, owner, client_as):
    response = client_as(owner).get(reverse("contacts:search"), {"q": "acme"})
    html = response.content.decode()
    assert "Wile Coyote" in html and "Acme Anvils" in html
    assert "Road Runner" not in html


def test_search_suggestions_show_the_top_matches(findable, owner, client_as):
    response = client_as(owner, htmx=True).get(reverse("contacts:search_suggest"), {"q": "ro"})
    html = response.content.decode()
    assert "Road Runner" in html and "<html" not in html
    short = client_as(owner).get(reverse("contacts:search_suggest"), {"q": "r"}).content.decode()
    assert "at least two characters" in short


def test_search_honors_record_scope(findable, org, client_as):
    rep = member(org, "team")
    html = client_as(rep).get(reverse("contacts:search"), {"q": "wile"}).content.decode()
    assert "Wile Coyote" not in html


def test_search_never_shows_or_matches_a_hidden_email(findable, hides_email, client_as):
    client = client_as(hides_email)
    html = client.get(reverse("contacts:search"), {"q": "runner"}).content.decode()
    assert "Road Runner" in html and "beep@desert.example" not in html
    by_email = client.get(reverse("contacts:search"), {"q": "beep"}).content.decode()
    assert "Road Runner" not in by_email


def test_search_results_page_is_the_top_bar_target(findable, owner, client_as):
    html = client_as(owner).get(reverse("contacts:search"), {"q": "x"}).content.decode()
    assert f'action="{reverse("contacts:search")}"' in html
    assert reverse("contacts:search_suggest") in html
