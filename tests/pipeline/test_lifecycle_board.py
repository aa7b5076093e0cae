"""The contact lifecycle board: one source of truth (Contact.lifecycle_stage) both ways,
record scope, read-only roles and locked fields, lazy columns and a constant query count."""

import re

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from contacts.models import Activity, Contact
from contacts.services.contacts import contact_update
from crm.models import OutboxEvent
from crm.permissions import Policy
from crm.services import Actor
from pipeline.board import CARDS_PER_PAGE
from tests.factories import (
    CompanyFactory,
    ContactFactory,
    MembershipFactory,
    OrganizationFactory,
    custom_role,
    member,
)

pytestmark = pytest.mark.django_db

LIFECYCLE = "/pipeline/lifecycle/"
JSON = {"HTTP_ACCEPT": "application/json", "HTTP_HX_REQUEST": "true"}
HTMX = {"HTTP_HX_REQUEST": "true"}
ORDER = ["stage", "lead", "qualified", "opportunity", "customer", "advocate", "churned"]


@pytest.fixture
def org():
    return OrganizationFactory()


@pytest.fixture
def admin(org):
    return member(org, "admin")


def client_for(who, **headers):
    client = Client(**headers)
    client.force_login(who.user)
    session = client.session
    session["active_org_id"] = who.org_id
    session.save()
    return client


def move_url(contact):
    return reverse("pipeline:lifecycle_move", args=[contact.public_id])


def column_ids(html: str, value: str) -> list[str]:
    start = html.index(f'id="cards-{value}"')
    end = html.index("</ol>", start)
    return re.findall(r'data-id="([0-9a-f-]{36})"', html[start:end])


def count_of(html: str, value: str) -> int:
    match = re.search(rf'id="totals-{value}"><span class="board-count" data-count="(\d+)"', html)
    return int(match.group(1))


def column_of(html: str, contact) -> str | None:
    for value in ORDER:
        if str(contact.public_id) in column_ids(html, value):
            return value
    return None


def test_columns_follow_the_lifecycle_and_cards_sit_in_their_stage(org, admin):
    acme = CompanyFactory(org=org, name="Acme Rockets")
    ada = ContactFactory(
        org=org,
        first_name="Ada",
        last_name="Lovelace",
        company=acme,
        owner=admin.user,
        lifecycle_stage="qualified",
        lead_score=72,
    )
    imported = ContactFactory(org=org, lifecycle_stage="stage")
    gone = ContactFactory(org=org, lifecycle_stage="lead", is_archived=True)
    html = client_for(admin).get(LIFECYCLE).content.decode()
    titles = re.findall(r'class="board-column-name">([^<]+)<', html)
    assert titles == [label for _, label in Contact.Stage.choices]
    assert column_of(html, ada) == "qualified" and column_of(html, imported) == "stage"
    assert str(gone.public_id) not in html
    card = html[html.index(f'id="contact-{ada.public_id}"') :]
    card = card[: card.index("</li>")]
    assert "Ada Lovelace" in card and "Acme Rockets" in card and "Score 72" in card
    assert reverse("contacts:contact_detail", args=[ada.public_id]) in card
    assert count_of(html, "qualified") == 1 and count_of(html, "lead") == 0
    assert "<strong>1</strong> contact<" in html


def test_dragging_a_card_changes_the_contacts_stage_with_timeline_and_event(org, admin):
    ada = ContactFactory(org=org, lifecycle_stage="lead", owner=admin.user)
    response = client_for(admin).post(move_url(ada), {"stage": "customer"}, **JSON)
    assert response.status_code == 200
    data = response.json()
    assert data["ok"] and data["stage"] == "customer"
    assert f'id="contact-{ada.public_id}"' in data["card"]
    counts = {c["stage"]: c["count"] for c in data["columns"]}
    assert counts == {"customer": 1, "lead": 0}
    ada.refresh_from_db()
    assert ada.lifecycle_stage == "customer"
    entry = Activity.objects.for_org(org).get(contact=ada, type=Activity.Type.STAGE_CHANGE)
    assert entry.data == {"from": "lead", "to": "customer"}
    assert OutboxEvent.objects.for_org(org).filter(event_type="contact.stage_changed").count() == 1
    html = client_for(admin).get(LIFECYCLE).content.decode()
    assert column_of(html, ada) == "customer"


def test_a_stage_changed_anywhere_else_moves_the_card(org, admin):
    ada = ContactFactory(org=org, lifecycle_stage="lead")
    client = client_for(admin)
    assert column_of(client.get(LIFECYCLE).content.decode(), ada) == "lead"
    ada.org = org
    contact_update(
        contact=ada,
        actor=Actor.for_user(admin.user),
        data={"lifecycle_stage": "advocate"},
        policy=Policy(admin),
    )
    assert column_of(client.get(LIFECYCLE).content.decode(), ada) == "advocate"


def test_move_to_without_javascript_redirects_back_with_a_message(org, admin):
    ada = ContactFactory(org=org, first_name="Ada", last_name="L", lifecycle_stage="lead")
    client = client_for(admin)
    response = client.post(move_url(ada), {"stage": "opportunity", "next": LIFECYCLE})
    assert response.status_code == 302 and response["Location"] == LIFECYCLE
    html = client.get(LIFECYCLE).content.decode()
    assert "Ada L moved to Opportunity." in html and column_of(html, ada) == "opportunity"
    response = client.post(move_url(ada), {"stage": "nowhere"}, **JSON)
    assert response.status_code == 400 and response.json()["error"] == "Choose a lifecycle stage."
    ada.refresh_from_db()
    assert ada.lifecycle_stage == "opportunity"


def test_own_scope_sees_and_counts_only_own_contacts_and_cannot_move_others(org, admin):
    rep = member(org, "team")
    mine = ContactFactory(org=org, owner=rep.user, lifecycle_stage="lead", last_name="Mine")
    theirs = ContactFactory(org=org, owner=admin.user, lifecycle_stage="lead", last_name="Theirs")
    client = client_for(rep)
    html = client.get(LIFECYCLE).content.decode()
    assert column_ids(html, "lead") == [str(mine.public_id)]
    assert "Theirs" not in html and count_of(html, "lead") == 1
    assert client.post(move_url(theirs), {"stage": "customer"}).status_code == 404
    assert client.post(move_url(mine), {"stage": "customer"}, **JSON).status_code == 200
    theirs.refresh_from_db()
    assert theirs.lifecycle_stage == "lead"


def test_read_only_roles_and_a_locked_stage_field_get_no_drag_and_403(org):
    ada = ContactFactory(org=org, lifecycle_stage="lead")
    locked = custom_role(
        org,
        permissions={"contacts": {"access": True, "view": True, "edit": True, "scope": "all"}},
        field_rules={"lifecycle_stage": "visible"},
    )
    for who in (member(org, "viewer"), MembershipFactory(org=org, role=locked)):
        client = client_for(who)
        html = client.get(LIFECYCLE).content.decode()
        assert str(ada.public_id) in html
        for marker in ("data-sortable", "data-move-url", "Move to…", "Sortable.min.js"):
            assert marker not in html
        assert client.post(move_url(ada), {"stage": "customer"}).status_code == 403
        assert client.post(move_url(ada), {"stage": "customer"}, **JSON).status_code == 403
    ada.refresh_from_db()
    assert ada.lifecycle_stage == "lead"
    # The Board role has no contacts module at all.
    assert client_for(member(org, "board")).get(LIFECYCLE).status_code == 403


def test_another_org_gets_404(org, admin):
    ada = ContactFactory(org=org, lifecycle_stage="lead")
    stranger = client_for(member(OrganizationFactory(), "owner"))
    assert stranger.post(move_url(ada), {"stage": "customer"}).status_code == 404
    assert str(ada.public_id) not in stranger.get(LIFECYCLE).content.decode()
    ada.refresh_from_db()
    assert ada.lifecycle_stage == "lead"


def test_a_long_column_loads_lazily_newest_first(org, admin):
    contacts = [ContactFactory(org=org, lifecycle_stage="lead") for _ in range(CARDS_PER_PAGE + 3)]
    newest_first = [str(c.public_id) for c in reversed(contacts)]
    client = client_for(admin)
    html = client.get(LIFECYCLE).content.decode()
    assert column_ids(html, "lead") == newest_first[:CARDS_PER_PAGE]
    match = re.search(r'id="more-lead" hx-get="([^"]+)"', html)
    assert match
    rest = client.get(match.group(1), **HTMX).content.decode()
    assert re.findall(r'id="contact-([0-9a-f-]{36})"', rest) == newest_first[CARDS_PER_PAGE:]
    assert 'id="more-lead" hx-swap-oob="true">' in rest
    assert client.get(reverse("pipeline:lifecycle_column", args=["nowhere"])).status_code == 404


def test_query_count_does_not_grow_with_the_cards_shown(org, admin):
    client = client_for(admin)

    def queries():
        with CaptureQueriesContext(connection) as ctx:
            assert client.get(LIFECYCLE).status_code == 200
        return len(ctx.captured_queries)

    for n in range(5):
        ContactFactory(org=org, lifecycle_stage=ORDER[n % 7])
    queries()
    few = queries()
    owners = [member(org, "team").user for _ in range(3)]
    for n in range(45):
        ContactFactory(
            org=org,
            lifecycle_stage=ORDER[n % 7],
            owner=owners[n % 3],
            company=CompanyFactory(org=org),
        )
    assert queries() == few


def test_column_counts_are_capped_so_huge_columns_stay_cheap(org, admin):
    from pipeline.board import board_contacts, lifecycle_counts

    for _ in range(3):
        ContactFactory(org=org, lifecycle_stage="lead")
    ContactFactory(org=org, lifecycle_stage="customer")
    counts = lifecycle_counts(board_contacts(org, Policy(admin)), cap=2)
    assert counts["lead"] == (2, False) and counts["customer"] == (1, True)
    assert counts["churned"] == (0, True)


def test_move_to_page_without_javascript(org, admin):
    ada = ContactFactory(org=org, first_name="Ada", last_name="L", lifecycle_stage="lead")
    client = client_for(admin)
    page = client.get(move_url(ada) + "?next=" + LIFECYCLE)
    assert page.status_code == 200
    html = page.content.decode()
    assert "Move “Ada L”" in html and 'value="lead" selected' in html
    assert 'name="position"' not in html and 'value="won"' not in html
    assert client_for(member(org, "viewer")).get(move_url(ada)).status_code == 403
