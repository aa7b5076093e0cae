"""The deal board: columns with counts and totals, record scope on cards and totals, read-only
roles, moving (drag and "Move to…"), won/lost with a reason, quick-create, lazy columns,
filters, and a query count that does not grow with the cards shown."""

import datetime as dt
import json
import re
from decimal import Decimal

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from contacts.models import SmartView
from pipeline.board import CARDS_PER_PAGE
from pipeline.models import Deal, DealReason, Pipeline, StageHistory
from tests.factories import (
    DealFactory,
    DealReasonFactory,
    ExchangeRateFactory,
    MembershipFactory,
    OrganizationFactory,
    PipelineFactory,
    StageFactory,
    TaskFactory,
    custom_role,
    member,
)

pytestmark = pytest.mark.django_db

JSON = {"HTTP_ACCEPT": "application/json", "HTTP_HX_REQUEST": "true"}
HTMX = {"HTTP_HX_REQUEST": "true"}
BOARD = "/pipeline/"


@pytest.fixture
def world():
    org = OrganizationFactory(base_currency="USD")
    admin = member(org, "admin")
    pipeline = PipelineFactory(org=org, name="Sales", is_default=True)
    stages = [
        StageFactory(org=org, pipeline=pipeline, name=name, position=n, probability=p)
        for n, (name, p) in enumerate([("Qualify", 10), ("Propose", 50), ("Negotiate", 80)])
    ]
    won = DealReasonFactory(org=org, kind="won", name="Best price")
    lost = DealReasonFactory(org=org, kind="lost", name="Went dark")
    return {
        "org": org,
        "admin": admin,
        "pipeline": pipeline,
        "stages": stages,
        "won": won,
        "lost": lost,
    }


def deal(world, stage=0, **kwargs):
    kwargs.setdefault("owner", world["admin"].user)
    return DealFactory(org=world["org"], stage=world["stages"][stage], **kwargs)


def client_for(who, **headers):
    client = Client(**headers)
    client.force_login(who.user)
    session = client.session
    session["active_org_id"] = who.org_id
    session.save()
    return client


def move_url(d):
    return reverse("pipeline:deal_move", args=[d.public_id])


def close_url(d):
    return reverse("pipeline:board_close", args=[d.public_id])


def column_ids(html: str, stage) -> list[str]:
    """The deal ids shown in a column, in order."""
    start = html.index(f'id="cards-{stage.public_id}"')
    end = html.index("</ol>", start)
    return re.findall(r'data-id="([0-9a-f-]{36})"', html[start:end])


def totals_text(html: str, stage) -> str:
    start = html.index(f'id="totals-{stage.public_id}"')
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html[start : html.index("</p>", start)]))


# The board --------------------------------------------------------------------------------


def test_board_shows_a_column_per_stage_with_count_value_and_weighted_value(world):
    deal(world, 0, title="Small", value=Decimal("1000"))
    deal(world, 0, title="Big", value=Decimal("2000"), probability=25)
    deal(world, 2, title="Closing", value=Decimal("500"))
    response = client_for(world["admin"]).get(BOARD)
    assert response.status_code == 200
    html = response.content.decode()
    names = [s.name for s in world["stages"]]
    assert [n for n in re.findall(r'class="board-column-name">([^<]+)<', html)] == names
    first = totals_text(html, world["stages"][0])
    # 1000 × 10 % (the stage's) + 2000 × 25 % (the deal's own) = 600.
    assert "2 deals" in first and "USD 3,000" in first and "USD 600 weighted" in first
    assert "0 deals" in totals_text(html, world["stages"][1])
    assert "USD 400 weighted" in totals_text(html, world["stages"][2])
    assert "Small" in html and "Big" in html and "Closing" in html


def test_cards_show_value_owner_close_date_health_and_days_in_stage(world):
    world["admin"].user.first_name, world["admin"].user.last_name = "Ada", "Lovelace"
    world["admin"].user.save()
    world["stages"][0].rotting_days = 5
    world["stages"][0].save()
    stale = deal(
        world,
        0,
        title="Stale one",
        value=Decimal("1250.50"),
        currency="EUR",
        expected_close_date=dt.date(2020, 1, 31),
        stage_entered_at=timezone.now() - dt.timedelta(days=9),
    )
    fresh = deal(world, 1, title="Fresh one", last_activity_at=timezone.now())
    TaskFactory(org=world["org"], deal=fresh)
    html = client_for(world["admin"]).get(BOARD).content.decode()
    card = html[html.index(f'id="deal-{stale.public_id}"') :]
    card = card[: card.index("</li>")]
    assert "EUR 1,250.50" in card
    assert ">AL<" in card and "Owner: Ada Lovelace" in card
    assert 'datetime="2020-01-31"' in card and "is-overdue" in card
    assert ">9d<" in card
    assert "health-rotting" in card
    assert "In Qualify for 9 days (rots after 5)" in card  # the reasons, in title and text
    assert reverse("pipeline:deal_detail", args=[stale.public_id]) in card
    fresh_card = html[html.index(f'id="deal-{fresh.public_id}"') :]
    assert "health-healthy" in fresh_card[: fresh_card.index("</li>")]


def test_column_totals_convert_other_currencies_at_the_rate_in_effect(world):
    ExchangeRateFactory(
        org=world["org"], currency="EUR", rate="1.5", effective_date=dt.date(2020, 1, 1)
    )
    ExchangeRateFactory(
        org=world["org"], currency="EUR", rate="9", effective_date=dt.date(2999, 1, 1)
    )
    deal(world, 0, value=Decimal("100"), currency="USD")
    deal(world, 0, value=Decimal("100"), currency="EUR")
    deal(world, 0, value=Decimal("100"), currency="GBP")  # no rate: counted, not summed
    html = client_for(world["admin"]).get(BOARD).content.decode()
    text = totals_text(html, world["stages"][0])
    assert "3 deals" in text and "USD 250" in text and "1 not in the amounts" in text
    assert "1 EUR = 1.5 USD (from Jan 1, 2020)" in html
    assert "there is no exchange rate for GBP" in html


def test_own_scope_member_sees_only_their_cards_and_totals(world):
    rep = member(world["org"], "team")
    deal(world, 0, title="Mine", owner=rep.user, value=Decimal("100"))
    deal(world, 0, title="Someone else's", value=Decimal("9000"))
    html = client_for(rep).get(BOARD).content.decode()
    assert "Mine" in html and "Someone else" not in html
    text = totals_text(html, world["stages"][0])
    assert "1 deal" in text and "USD 100" in text and "9,100" not in text


def test_board_roles_are_read_only_no_drag_no_quick_create_no_move_to(world):
    deal(world, 0, title="Look only")
    for role in ("board", "viewer"):
        html = client_for(member(world["org"], role)).get(BOARD).content.decode()
        assert "Look only" in html
        for marker in (
            "data-sortable",
            "data-move-url",
            "Move to…",
            "data-dropzone",
            "board-quick",
        ):
            assert marker not in html, (role, marker)
        assert "Sortable.min.js" not in html
    html = client_for(world["admin"]).get(BOARD).content.decode()
    for marker in ("data-sortable", "data-move-url", "Move to…", "data-dropzone", "board-quick"):
        assert marker in html


def test_forged_posts_of_read_only_roles_get_403_and_change_nothing(world):
    d = deal(world, 0)
    stage = world["stages"][1]
    for role in ("board", "viewer"):
        client = client_for(member(world["org"], role))
        assert client.post(move_url(d), {"stage": stage.public_id}).status_code == 403
        assert client.post(move_url(d), {"stage": stage.public_id}, **JSON).status_code == 403
        response = client.post(close_url(d), {"status": "won", "reason": world["won"].public_id})
        assert response.status_code == 403
        create = reverse("pipeline:board_quick_create", args=[stage.public_id])
        assert client.post(create, {"title": "Forged"}).status_code == 403
    d.refresh_from_db()
    assert d.stage == world["stages"][0] and d.status == "open"
    assert not Deal.objects.for_org(world["org"]).filter(title="Forged").exists()


def test_a_deal_outside_scope_or_of_another_org_is_not_found(world):
    d = deal(world, 0)
    rep = member(world["org"], "team")
    client = client_for(rep)
    assert client.post(move_url(d), {"stage": world["stages"][1].public_id}).status_code == 404
    assert client.get(close_url(d) + "?status=won").status_code == 404
    stranger = client_for(member(OrganizationFactory(), "owner"))
    assert stranger.post(move_url(d), {"stage": world["stages"][1].public_id}).status_code == 404
    assert stranger.get(close_url(d)).status_code == 404
    column = reverse("pipeline:board_column", args=[world["stages"][0].public_id])
    assert stranger.get(column).status_code == 404
    create = reverse("pipeline:board_quick_create", args=[world["stages"][0].public_id])
    assert stranger.post(create, {"title": "x"}).status_code == 404
    assert stranger.get(BOARD + f"?pipeline={world['pipeline'].public_id}").status_code == 404
    d.refresh_from_db()
    assert d.stage == world["stages"][0]


# Moving -----------------------------------------------------------------------------------


def test_drag_to_another_column_places_the_card_between_its_neighbours(world):
    a, b = deal(world, 1, title="A", position=1), deal(world, 1, title="B", position=2)
    moving = deal(world, 0, title="Moving", value=Decimal("1000"))
    client = client_for(world["admin"])
    target = world["stages"][1]
    response = client.post(
        move_url(moving),
        {"stage": target.public_id, "before": a.public_id, "after": b.public_id},
        **JSON,
    )
    assert response.status_code == 200
    data = response.json()
    assert data["ok"] and data["stage"] == str(target.public_id)
    assert f'id="deal-{moving.public_id}"' in data["card"]
    moving.refresh_from_db()
    assert moving.stage == target and a.position < moving.position < b.position
    history = StageHistory.objects.for_org(world["org"]).get(deal=moving, from_stage__isnull=False)
    assert history.from_stage == world["stages"][0] and history.to_stage == target
    # The two columns' totals change by the deal's share (the page adds it to what it shows).
    deltas = {d["stage"]: d for d in data["deltas"]}
    assert deltas[str(world["stages"][0].public_id)] == {
        "stage": str(world["stages"][0].public_id),
        "count": -1,
        "value": "-1000.000000",
        "weighted": "-100.000000",
    }
    assert deltas[str(target.public_id)]["count"] == 1
    assert deltas[str(target.public_id)]["weighted"] == "500.000000"
    assert data["columns"] == []
    html = client.get(BOARD).content.decode()
    assert column_ids(html, target) == [str(a.public_id), str(moving.public_id), str(b.public_id)]


def test_drag_within_a_column_changes_only_the_order(world):
    a, b, c = (deal(world, 0, title=t, position=p) for t, p in (("A", 1), ("B", 2), ("C", 3)))
    client = client_for(world["admin"])
    response = client.post(
        move_url(c),
        {"stage": world["stages"][0].public_id, "before": "", "after": a.public_id},
        **JSON,
    )
    assert response.status_code == 200
    html = client.get(BOARD).content.decode()
    assert column_ids(html, world["stages"][0]) == [str(x.public_id) for x in (c, a, b)]
    assert not StageHistory.objects.for_org(world["org"]).filter(deal=c).exists()


def test_move_to_without_javascript_goes_to_top_or_bottom_and_redirects_back(world):
    a, b = deal(world, 1, title="A", position=1), deal(world, 1, title="B", position=2)
    x, y = deal(world, 0, title="X"), deal(world, 0, title="Y")
    client = client_for(world["admin"])
    target = world["stages"][1]
    back = BOARD + f"?pipeline={world['pipeline'].public_id}"
    response = client.post(
        move_url(x), {"stage": target.public_id, "position": "top", "next": back}
    )
    assert response.status_code == 302 and response["Location"] == back
    client.post(move_url(y), {"stage": target.public_id, "position": "bottom", "next": back})
    html = client.get(back).content.decode()
    expected = [str(d.public_id) for d in (x, a, b, y)]
    assert column_ids(html, target) == expected
    assert "Moved “Y” to Propose." in html


def test_move_refuses_a_stage_of_another_pipeline_and_puts_nothing_anywhere(world):
    other = StageFactory(org=world["org"], pipeline=PipelineFactory(org=world["org"]))
    d = deal(world, 0)
    response = client_for(world["admin"]).post(move_url(d), {"stage": other.public_id}, **JSON)
    assert response.status_code == 400
    assert response.json()["error"] == "Choose a stage of the deal's pipeline."
    response = client_for(world["admin"]).post(move_url(d), {"stage": "nonsense"}, **JSON)
    assert response.status_code == 400
    d.refresh_from_db()
    assert d.stage == world["stages"][0]


def test_move_to_won_or_lost_asks_for_the_reason(world):
    d = deal(world, 0)
    client = client_for(world["admin"])
    response = client.post(move_url(d), {"stage": "won", "next": BOARD})
    assert response.status_code == 302
    assert response["Location"].startswith(close_url(d) + "?status=won")
    page = client.get(response["Location"])
    assert page.status_code == 200
    html = page.content.decode()
    assert "Best price" in html and "Went dark" not in html  # only the won reasons
    d.refresh_from_db()
    assert d.status == "open"


# Won and lost -------------------------------------------------------------------------------


def test_won_and_lost_require_a_reason(world):
    d = deal(world, 0, title="Needs reason")
    client = client_for(world["admin"])
    response = client.post(close_url(d), {"status": "lost", "reason": ""}, **JSON)
    assert response.status_code == 400
    assert "Choose why the deal was lost." in response.content.decode()
    response = client.post(close_url(d), {"status": "lost", "reason": world["won"].public_id})
    assert response.status_code == 400
    assert "Choose one of the organization&#x27;s lost reasons." in response.content.decode()
    d.refresh_from_db()
    assert d.status == "open"
    response = client.post(
        close_url(d),
        {"status": "lost", "reason": world["lost"].public_id, "note": "No budget"},
        **JSON,
    )
    assert response.status_code == 200
    data = response.json()
    assert data["ok"] and data["status"] == "lost"
    assert data["columns"][0]["count"] == 0
    d.refresh_from_db()
    assert d.status == "lost" and d.close_reason == world["lost"] and d.close_note == "No budget"
    assert d.stage == world["stages"][0]  # a deal keeps the stage it was closed in
    html = client.get(BOARD).content.decode()
    assert "Needs reason" not in html


def test_close_form_offers_active_reasons_and_without_javascript_redirects_back(world):
    DealReasonFactory(org=world["org"], kind="won", name="Retired reason", is_active=False)
    d = deal(world, 0, title="Winner")
    client = client_for(world["admin"])
    form = client.get(close_url(d) + "?status=won", **HTMX).content.decode()
    assert "Best price" in form and "Retired reason" not in form and "<html" not in form
    asking = client.get(close_url(d)).content.decode()
    assert 'name="status" value="won"' in asking and "Went dark" in asking
    response = client.post(
        close_url(d), {"status": "won", "reason": world["won"].public_id, "next": BOARD}
    )
    assert response.status_code == 302 and response["Location"] == BOARD
    d.refresh_from_db()
    assert d.status == "won" and d.close_reason == world["won"]


# Quick-create -------------------------------------------------------------------------------


def test_quick_create_puts_the_new_deal_on_top_of_its_column(world):
    existing = deal(world, 1, position=5)
    stage = world["stages"][1]
    client = client_for(world["admin"], **HTMX)
    url = reverse("pipeline:board_quick_create", args=[stage.public_id])
    response = client.post(url, {"title": "Fresh lead", "value": "2,500"})
    assert response.status_code == 200
    html = response.content.decode()
    created = Deal.objects.for_org(world["org"]).get(title="Fresh lead")
    assert f'id="deal-{created.public_id}"' in html
    assert f'hx-swap-oob="afterbegin:#cards-{stage.public_id}"' in html
    assert re.search(rf'id="totals-{stage.public_id}"[^>]* hx-swap-oob="true"', html)
    assert created.stage == stage and created.value == Decimal("2500")
    assert created.owner == world["admin"].user and created.position < existing.position
    board = client_for(world["admin"]).get(BOARD).content.decode()
    assert column_ids(board, stage)[0] == str(created.public_id)


def test_quick_create_errors_come_back_on_the_form(world):
    stage = world["stages"][0]
    url = reverse("pipeline:board_quick_create", args=[stage.public_id])
    htmx = client_for(world["admin"], **HTMX)
    response = htmx.post(url, {"title": "  ", "value": "lots"})
    assert response.status_code == 200
    html = response.content.decode()
    assert "A deal needs a title." in html and "Value must be a number." in html
    assert 'value="lots"' in html
    plain = client_for(world["admin"]).post(url, {"title": "", "value": ""})
    assert plain.status_code == 400 and "A deal needs a title." in plain.content.decode()
    assert not Deal.objects.for_org(world["org"]).exists()
    ok = client_for(world["admin"]).post(url, {"title": "No JS", "next": BOARD})
    assert ok.status_code == 302
    assert Deal.objects.for_org(world["org"]).get(title="No JS").value == Decimal("0")


# Lazy columns and speed -------------------------------------------------------------------


def test_a_long_column_loads_its_next_cards_by_cursor(world):
    stage = world["stages"][0]
    deals = [deal(world, 0, title=f"Deal {n:02}", position=n) for n in range(CARDS_PER_PAGE + 5)]
    client = client_for(world["admin"])
    html = client.get(BOARD).content.decode()
    assert column_ids(html, stage) == [str(d.public_id) for d in deals[:CARDS_PER_PAGE]]
    match = re.search(
        rf'id="more-{stage.public_id}" hx-get="([^"]+)" hx-trigger="intersect once"', html
    )
    assert match
    more = client.get(match.group(1).replace("&amp;", "&"), **HTMX)
    assert more.status_code == 200
    rest = more.content.decode()
    ids = re.findall(r'id="deal-([0-9a-f-]{36})"', rest)
    assert ids == [str(d.public_id) for d in deals[CARDS_PER_PAGE:]]
    assert f'id="more-{stage.public_id}" hx-swap-oob="true">' in rest  # no further page
    page = client.get(match.group(1).replace("&amp;", "&"))  # without JavaScript: a page
    assert page.status_code == 200 and "Back to the whole board" in page.content.decode()


def _board_queries(world, client) -> int:
    with CaptureQueriesContext(connection) as ctx:
        assert client.get(BOARD).status_code == 200
    return len(ctx.captured_queries)


def test_board_query_count_does_not_grow_with_the_cards_shown(world):
    client = client_for(world["admin"])
    others = [member(world["org"], "team").user for _ in range(3)]
    for n in range(5):
        deal(world, n % 3, owner=others[n % 3])
    _board_queries(world, client)  # warm the session and the caches
    few = _board_queries(world, client)
    for n in range(45):
        d = deal(world, n % 3, owner=others[n % 3], expected_close_date=dt.date(2030, 1, 1))
        if n % 2:
            TaskFactory(org=world["org"], deal=d)
    many = _board_queries(world, client)
    assert few == many
    html = client.get(BOARD).content.decode()
    assert html.count('data-kanban-card data-id="') == 50


def test_column_page_and_move_query_counts_do_not_grow_with_the_column(world):
    client = client_for(world["admin"])
    target = world["stages"][1]

    def move_queries():
        moving = deal(world, 0)
        with CaptureQueriesContext(connection) as ctx:
            response = client.post(move_url(moving), {"stage": target.public_id}, **JSON)
            assert response.status_code == 200
        return len(ctx.captured_queries)

    move_queries()
    few = move_queries()
    for _ in range(30):
        deal(world, 1)
    assert move_queries() == few


# Field visibility, filters, pipelines -------------------------------------------------------


def test_hidden_value_leaves_amounts_off_cards_and_totals(world):
    role = custom_role(
        world["org"],
        permissions={"pipeline": {"access": True, "view": True, "edit": True, "scope": "all"}},
        field_rules={"deal.value": "hidden"},
    )
    deal(world, 0, title="Secret size", value=Decimal("123456"))
    html = client_for(MembershipFactory(org=world["org"], role=role)).get(BOARD).content.decode()
    assert "Secret size" in html
    assert "123,456" not in html and "USD" not in html and "weighted" not in html
    assert "1 deal" in totals_text(html, world["stages"][0])


def test_board_filters_by_search_and_saved_view(world):
    deal(world, 0, title="Acme renewal", priority="high")
    deal(world, 0, title="Globex pilot", priority="low")
    client = client_for(world["admin"])
    html = client.get(BOARD + "?q=acme").content.decode()
    assert "Acme renewal" in html and "Globex pilot" not in html
    assert "1 deal" in totals_text(html, world["stages"][0])
    view = SmartView.objects.create(
        org=world["org"],
        owner=world["admin"].user,
        entity=SmartView.Entity.DEAL,
        name="Hot",
        filters={
            "groups": [{"conditions": [{"field": "priority", "op": "any_of", "value": ["low"]}]}]
        },
    )
    html = client.get(BOARD + f"?view={view.public_id}").content.decode()
    assert "Globex pilot" in html and "Acme renewal" not in html
    assert f'name="view" value="{view.public_id}"' not in html  # the select, not a hidden copy
    bad = client.get(
        BOARD + "?filters=" + json.dumps({"groups": [{"conditions": [{"field": "nope"}]}]})
    )
    assert bad.status_code == 200 and "This filter can't be used" in bad.content.decode()


def test_first_visit_creates_the_default_pipeline_and_shows_the_empty_state():
    org = OrganizationFactory()
    admin = member(org, "admin")
    html = client_for(admin).get(BOARD).content.decode()
    pipeline = Pipeline.objects.for_org(org).get()
    assert pipeline.is_default and pipeline.stages.count() >= 3
    assert DealReason.objects.for_org(org).filter(kind="won").exists()
    assert "No open deals in" in html and "board-quick" in html


def test_pipeline_parameter_picks_one_of_the_orgs_pipelines(world):
    other = PipelineFactory(org=world["org"], name="Renewals", position=1)
    StageFactory(org=world["org"], pipeline=other, name="Renewal due")
    client = client_for(world["admin"])
    html = client.get(BOARD + f"?pipeline={other.public_id}").content.decode()
    assert "Renewal due" in html and "Qualify" not in html
    assert client.get(BOARD + "?pipeline=not-a-uuid").status_code == 404


def test_move_to_page_without_javascript_offers_the_stages_and_won_lost(world):
    d = deal(world, 1, title="Keyboard me")
    client = client_for(world["admin"])
    html = client.get(BOARD).content.decode()
    link = re.search(r'href="([^"]+)" data-move-to', html[html.index(f'id="deal-{d.public_id}"') :])
    page = client.get(link.group(1).replace("&amp;", "&"))
    assert page.status_code == 200
    text = page.content.decode()
    assert "Move “Keyboard me”" in text
    assert f'value="{world["stages"][1].public_id}" selected' in text
    assert 'value="won"' in text and 'value="lost"' in text and 'name="position"' in text
    assert client_for(member(world["org"], "viewer")).get(move_url(d)).status_code == 403


def test_a_moved_deal_without_an_exchange_rate_gets_its_columns_recounted(world):
    d = deal(world, 0, value=Decimal("100"), currency="GBP")
    deal(world, 1, value=Decimal("300"))
    response = client_for(world["admin"]).post(
        move_url(d), {"stage": world["stages"][1].public_id}, **JSON
    )
    data = response.json()
    assert data["deltas"] == []
    totals = {c["stage"]: c for c in data["columns"]}
    target = totals[str(world["stages"][1].public_id)]
    assert target["count"] == 2 and "USD 300" in target["html"]
    assert "1 not in the amounts" in target["html"]


def test_a_move_within_a_column_changes_no_total_and_hidden_values_send_counts_only(world):
    a, b = deal(world, 0, position=1), deal(world, 0, position=2)
    client = client_for(world["admin"])
    data = client.post(move_url(b), {"before": "", "after": a.public_id}, **JSON).json()
    assert data["ok"] and data["deltas"] == [] and data["columns"] == []
    role = custom_role(
        world["org"],
        permissions={"pipeline": {"access": True, "view": True, "edit": True, "scope": "all"}},
        field_rules={"deal.value": "hidden"},
    )
    hidden = client_for(MembershipFactory(org=world["org"], role=role))
    data = hidden.post(move_url(a), {"stage": world["stages"][1].public_id}, **JSON).json()
    assert [set(d) for d in data["deltas"]] == [{"stage", "count"}, {"stage", "count"}]
    assert "USD" not in data["card"]
