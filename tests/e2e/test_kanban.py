"""The deal board in a real browser: drag a card to another column and see its stage, its
stage history and its contact's timeline change, with the column totals updated in place; then
the same kind of move with the keyboard only ("Move to…"); then the lifecycle board."""

import re

import pytest
from playwright.sync_api import expect

from contacts.models import Activity, Contact
from crm.permissions import Policy
from crm.services import Actor
from pipeline.models import Deal, StageHistory
from pipeline.services.deals import deal_create
from tests.factories import (
    ContactFactory,
    DealFactory,
    DealReasonFactory,
    PipelineFactory,
    StageFactory,
)

pytestmark = pytest.mark.e2e

# The board's script and styles must live with the Content-Security-Policy: the page keeps
# whatever the browser refuses (and any script error) for the test to look at.
RECORD_REFUSALS = """
window.__refused = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__refused.push(e.violatedDirective + " " + e.blockedURI);
});
window.addEventListener("error", (e) => { window.__refused.push("error: " + e.message); });
"""


@pytest.fixture
def watched(page):
    page.add_init_script(RECORD_REFUSALS)
    return page


def refused(page) -> list[str]:
    return page.evaluate("window.__refused || []")


@pytest.fixture
def board(org, owner):
    pipeline = PipelineFactory(org=org, name="Sales", is_default=True)
    stages = [
        StageFactory(org=org, pipeline=pipeline, name=name, position=n, probability=p, color=c)
        for n, (name, p, c) in enumerate(
            [("Qualify", 10, "#60a5fa"), ("Propose", 50, "#f59e0b"), ("Negotiate", 80, "#22c55e")]
        )
    ]
    DealReasonFactory(org=org, kind="won", name="Best fit")
    ada = ContactFactory(org=org, first_name="Ada", last_name="Lovelace", owner=owner.user)
    deal = deal_create(
        org=org,
        actor=Actor.for_user(owner.user),
        data={"title": "Rocket fuel", "value": "5000", "stage": stages[0], "contact": ada},
        policy=Policy(owner),
    )
    waiting = DealFactory(org=org, stage=stages[1], title="Already proposing", owner=owner.user)
    return {"stages": stages, "deal": deal, "ada": ada, "waiting": waiting}


def count_of(page, stage) -> str:
    return page.locator(f"#totals-{stage.public_id} .board-count").get_attribute("data-count")


def stage_changes(deal) -> int:
    return Activity.objects.filter(
        deal=deal, contact=deal.contact, type=Activity.Type.DEAL_STAGE_CHANGED
    ).count()


def test_drag_a_card_to_another_column_then_move_it_by_keyboard(watched, login_as, owner, board):
    page = watched
    qualify, propose, negotiate = board["stages"]
    deal, ada = board["deal"], board["ada"]
    login_as(owner.user)
    page.goto("/pipeline/")
    card = page.locator(f"#deal-{deal.public_id}")
    expect(card).to_contain_text("Rocket fuel")
    assert count_of(page, qualify) == "1" and count_of(page, propose) == "1"
    page.evaluate("window.notReloaded = true")

    # Drag it below the card already in Propose.
    card.drag_to(
        page.locator(f"#deal-{board['waiting'].public_id}"), target_position={"x": 20, "y": 60}
    )
    moved = page.locator(f"#cards-{propose.public_id} #deal-{deal.public_id}")
    expect(moved).to_be_visible()
    expect(page.locator(f"#totals-{propose.public_id} .board-count")).to_have_attribute(
        "data-count", "2"
    )
    expect(page.locator(f"#totals-{qualify.public_id} .board-count")).to_have_attribute(
        "data-count", "0"
    )
    # The page added the deal's share to both columns' figures.
    expect(page.locator(f"#totals-{propose.public_id} [data-total=value]")).to_have_text(
        "USD 6,000"
    )
    expect(page.locator(f"#totals-{propose.public_id} [data-total=weighted]")).to_have_text(
        "USD 3,000"
    )
    expect(page.locator(f"#totals-{qualify.public_id} [data-total=value]")).to_have_text("USD 0")
    expect(page.locator(f"#totals-{qualify.public_id} .board-count")).to_contain_text("0 deals")
    assert page.evaluate("window.notReloaded") is True

    deal.refresh_from_db()
    assert deal.stage == propose and deal.position > board["waiting"].position
    history = StageHistory.objects.filter(deal=deal, from_stage=qualify, to_stage=propose)
    assert history.count() == 1 and history.get().actor == owner.user
    assert stage_changes(deal) == 1

    # The contact's timeline says so.
    page.goto(f"/contacts/{ada.public_id}/?tab=timeline")
    expect(page.locator("#tab-panel")).to_contain_text("moved from Qualify to Propose")

    # The same kind of move with the keyboard only: Move to… → Negotiate, top of the column.
    page.goto("/pipeline/")
    button = page.locator(f"#deal-{deal.public_id} [data-move-to]")
    button.focus()
    page.keyboard.press("Enter")
    dialog = page.locator("#board-dialog")
    expect(dialog).to_be_visible()
    stage_select = dialog.locator("select[name=stage]")
    expect(stage_select).to_be_focused()
    expect(stage_select).to_have_value(str(propose.public_id))
    page.keyboard.press("ArrowDown")
    expect(stage_select).to_have_value(str(negotiate.public_id))
    page.keyboard.press("Tab")  # the place in the column (top)
    page.keyboard.press("Tab")  # Move
    page.keyboard.press("Enter")
    expect(dialog).to_be_hidden()
    expect(page.locator(f"#cards-{negotiate.public_id} #deal-{deal.public_id}")).to_be_visible()
    expect(page.locator(f"#deal-{deal.public_id} [data-move-to]")).to_be_focused()
    expect(page.locator(f"#totals-{negotiate.public_id} .board-count")).to_have_attribute(
        "data-count", "1"
    )

    deal.refresh_from_db()
    assert deal.stage == negotiate
    assert StageHistory.objects.filter(deal=deal, from_stage=propose, to_stage=negotiate).exists()
    assert stage_changes(deal) == 2
    assert refused(page) == []


def test_dropping_on_won_asks_for_the_reason_and_cancel_puts_the_card_back(
    page, login_as, owner, board
):
    qualify = board["stages"][0]
    deal = board["deal"]
    login_as(owner.user)
    page.goto("/pipeline/")
    card = page.locator(f"#deal-{deal.public_id}")
    card.drag_to(page.locator(".board-dropzone-won"))
    dialog = page.locator("#board-dialog")
    expect(dialog).to_contain_text("Mark “Rocket fuel” as won")
    dialog.locator("[data-dialog-cancel]").click()
    expect(dialog).to_be_hidden()
    expect(page.locator(f"#cards-{qualify.public_id} #deal-{deal.public_id}")).to_be_visible()
    assert Deal.objects.get(pk=deal.pk).status == "open"

    # The card was just put back (SortableJS animates it for 150 ms): a drag that starts
    # inside that animation can be lost by the synthetic mouse, so try again once.
    expect(card).not_to_have_class(re.compile(r"is-(chosen|ghost|dragging)"))
    for attempt in range(2):
        card.drag_to(page.locator(".board-dropzone-won"))
        try:
            expect(dialog).to_contain_text("Mark “Rocket fuel” as won", timeout=4000)
            break
        except AssertionError:
            if attempt:
                raise
    dialog.locator("button[type=submit]").click()  # no reason chosen
    expect(dialog).to_contain_text("Choose why the deal was won.")
    dialog.locator("select[name=reason]").select_option(label="Best fit")
    dialog.locator("button[type=submit]").click()
    expect(dialog).to_be_hidden()
    expect(page.locator(f"#deal-{deal.public_id}")).to_have_count(0)
    expect(page.locator(f"#totals-{qualify.public_id} .board-count")).to_have_attribute(
        "data-count", "0"
    )
    deal.refresh_from_db()
    assert deal.status == "won" and deal.close_reason.name == "Best fit"


def test_lifecycle_board_drag_changes_the_contacts_stage(watched, login_as, owner, board):
    page = watched
    ada = board["ada"]
    ada.lifecycle_stage = "lead"
    ada.save(update_fields=["lifecycle_stage"])
    login_as(owner.user)
    page.goto("/pipeline/lifecycle/")
    card = page.locator(f"#contact-{ada.public_id}")
    expect(page.locator(f"#cards-lead #contact-{ada.public_id}")).to_be_visible()
    card.drag_to(page.locator("#cards-qualified"))
    expect(page.locator(f"#cards-qualified #contact-{ada.public_id}")).to_be_visible()
    expect(page.locator("#totals-qualified .board-count")).to_have_attribute("data-count", "1")
    assert Contact.objects.get(pk=ada.pk).lifecycle_stage == "qualified"
    assert Activity.objects.filter(contact=ada, type=Activity.Type.STAGE_CHANGE).count() == 1
    assert refused(page) == []


def test_a_long_column_loads_more_cards_as_it_scrolls_and_quick_create_adds_on_top(
    page, login_as, owner, board, org
):
    qualify = board["stages"][0]
    for n in range(30):
        DealFactory(org=org, stage=qualify, title=f"Lead {n:02}", owner=owner.user, position=10 + n)
    login_as(owner.user)
    page.goto("/pipeline/")
    cards = page.locator(f"#cards-{qualify.public_id} [data-kanban-card]")
    expect(cards).to_have_count(25)
    page.locator(f"#more-{qualify.public_id}").scroll_into_view_if_needed()
    expect(cards).to_have_count(31)  # Rocket fuel and the 30 leads
    expect(page.locator(f"#more-{qualify.public_id} a")).to_have_count(0)

    form = page.locator(f"#quick-{qualify.public_id}")
    form.locator("input[name=title]").fill("Walk-in customer")
    form.locator("input[name=value]").fill("750")
    form.locator("input[name=value]").press("Enter")
    expect(cards.first).to_contain_text("Walk-in customer")
    expect(page.locator(f"#totals-{qualify.public_id} .board-count")).to_have_attribute(
        "data-count", "32"
    )
    expect(page.locator(f"#quick-{qualify.public_id} input[name=title]")).to_be_focused()
    expect(page.locator(f"#quick-{qualify.public_id} input[name=title]")).to_have_value("")
    assert Deal.objects.get(title="Walk-in customer").value == 750
