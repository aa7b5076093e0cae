"""The shell and the contact pages on a 1440×900 laptop, in a real browser, with the long names,
long values and many columns real data has: the sidebar's background runs to the end of a long
page (its links staying in view), no "Edit" breaks across lines however narrow its card, and a
contact table wider than the page scrolls sideways inside its box, shows that it does, and lets
the last column be reached."""

import pytest
from django.urls import reverse

from tests.factories import CompanyFactory, ContactFactory, TagFactory

pytestmark = pytest.mark.e2e

LAPTOP = {"width": 1440, "height": 900}
MANY_COLUMNS = (
    "email,company,owner,lifecycle_stage,lead_score,tags,created_at,phone,job_title,"
    "department,city,country,source,status,updated_at"
)
LONG_VALUE = "an-unbroken-value-without-any-spaces-that-is-longer-than-its-card@example.com"


@pytest.fixture
def people(org, owner):
    """Sixty contacts (a page taller than the window) with long emails and company names."""
    company = CompanyFactory(org=org, name="Consolidated Intercontinental Holdings Group")
    tags = [TagFactory(org=org, name=name) for name in ("Enterprise prospect", "Trade show")]
    for i in range(60):
        ContactFactory(
            org=org,
            first_name=f"Person{i:02d}",
            last_name="Wolfeschlegelsteinhausen",
            email=f"person{i:02d}.wolfeschlegelsteinhausen@consolidated-intercontinental.example",
            company=company,
            owner=owner.user,
            job_title="Senior Vice President of Worldwide Partnerships",
            city="Llanfairpwllgwyngyll",
            tags=tags,
        )


@pytest.fixture
def long_contact(org, owner):
    company = CompanyFactory(org=org, name="Consolidated Intercontinental Holdings Group")
    return ContactFactory(
        org=org,
        first_name="Maximiliana Alexandrina",
        last_name="Wolfeschlegelsteinhausenbergerdorff",
        email=LONG_VALUE,
        job_title="Senior Vice President of Worldwide Strategic Partnerships",
        department=LONG_VALUE,
        street=LONG_VALUE,
        source=LONG_VALUE,
        company=company,
        owner=owner.user,
    )


@pytest.fixture
def laptop(browser, browser_context, live_server, login_as, owner):
    """laptop(path) -> a signed-in 1440×900 tab on that page."""
    login_as(owner.user)
    context = browser.new_context(base_url=live_server.url, viewport=LAPTOP)
    context.set_default_timeout(10_000)
    context.add_cookies(browser_context.cookies())

    def open_page(path):
        tab = context.new_page()
        tab.goto(path)
        return tab

    yield open_page
    context.close()


def test_the_sidebar_runs_to_the_end_of_a_long_page(laptop, people):
    tab = laptop(f"{reverse('contacts:contact_list')}?size=100")
    height = tab.evaluate("document.documentElement.scrollHeight")
    assert height > 2 * LAPTOP["height"], "the page should be long"

    sidebar = tab.evaluate(
        "(() => { const r = document.getElementById('app-nav').getBoundingClientRect();"
        " return {top: r.top + window.scrollY, bottom: r.bottom + window.scrollY}; })()"
    )
    assert sidebar["top"] <= 0
    assert sidebar["bottom"] >= height - 1, (sidebar, height)

    # Scrolled to the very end, the sidebar's links are still on screen beside the page.
    tab.evaluate("window.scrollTo(0, document.documentElement.scrollHeight)")
    tab.wait_for_timeout(100)
    link = tab.locator("#app-nav").get_by_role("link", name="Companies").bounding_box()
    assert link["y"] >= 0 and link["y"] + link["height"] <= LAPTOP["height"], link


# Every element whose text is "Edit" (buttons and the inline links of the details cards), with
# its line boxes and the height of one line of it.
EDIT_BOXES = """() => [...document.querySelectorAll('a, button')]
  .filter(el => el.offsetParent !== null && /^Edit\\b/.test(el.textContent.trim()))
  .map(el => {
    const cs = getComputedStyle(el);
    const frame = ['paddingTop', 'paddingBottom', 'borderTopWidth', 'borderBottomWidth']
      .reduce((sum, side) => sum + parseFloat(cs[side]), 0);
    return {cls: el.className, lines: el.getClientRects().length,
            height: el.getBoundingClientRect().height,
            oneLine: parseFloat(cs.lineHeight) + frame};
  })"""


def _overlap(a, b) -> bool:
    return (
        a["x"] < b["x"] + b["width"]
        and b["x"] < a["x"] + a["width"]
        and a["y"] < b["y"] + b["height"]
        and b["y"] < a["y"] + a["height"]
    )


def test_no_edit_button_breaks_across_lines(laptop, long_contact):
    tab = laptop(reverse("contacts:contact_detail", args=[long_contact.public_id]))
    edits = tab.evaluate(EDIT_BOXES)
    kinds = {edit["cls"] for edit in edits}
    assert "button" in kinds and "inline-edit" in kinds, kinds  # the header's and the cards'
    for edit in edits:
        assert edit["lines"] == 1, edit
        assert edit["height"] <= edit["oneLine"] + 1, edit

    # The long value breaks inside its card; its "Edit" stays whole beside it.
    row = tab.locator("#field-department")
    value, edit = row.locator(".field-value"), row.locator(".inline-edit")
    assert value.bounding_box()["height"] > 2 * edit.bounding_box()["height"]
    assert edit.bounding_box()["x"] >= value.bounding_box()["x"] + value.bounding_box()["width"]

    # The header's parts (who, facts, actions) share the card without running into each
    # other: a long name breaks, and buttons that do not fit move down whole.
    parts = []
    for part in (".record-identity", ".record-facts", ".record-actions"):
        located = tab.locator(f"#record-header > {part}")
        spill = located.evaluate("el => el.scrollWidth - el.clientWidth")
        assert spill <= 1, f"{part} spills {spill}px over its neighbour"
        parts.append(located.bounding_box())
    for i, first in enumerate(parts):
        for second in parts[i + 1 :]:
            assert not _overlap(first, second), (first, second)
    header = tab.locator("#record-header").bounding_box()
    for part in parts:
        assert part["x"] + part["width"] <= header["x"] + header["width"] + 0.5, part


def test_a_wide_contact_table_scrolls_inside_its_box_to_the_last_column(laptop, people):
    tab = laptop(f"{reverse('contacts:contact_list')}?columns={MANY_COLUMNS}")
    wrap = tab.locator("#contact-table .table-wrap")
    table = wrap.locator("table")
    # The table keeps its width and the page does not: the box scrolls instead.
    size = wrap.evaluate(
        "el => ({scroll: el.scrollWidth, client: el.clientWidth,"
        " table: el.querySelector('table').getBoundingClientRect().width,"
        " page: document.documentElement.scrollWidth})"
    )
    assert size["scroll"] > size["client"], size
    assert size["table"] >= size["scroll"] - 1, size
    assert size["page"] <= LAPTOP["width"], size
    first_cell = table.locator("tbody tr").first.locator("td").nth(1)
    assert first_cell.evaluate("el => el.getClientRects().length") == 1  # no cell wraps

    # It shows there is more: shades at the box's edges, with covers that move with the
    # content so that each shade shows only while there is more on its side.
    background = wrap.evaluate(
        "el => { const cs = getComputedStyle(el);"
        " return {images: cs.backgroundImage, attachment: cs.backgroundAttachment}; }"
    )
    assert background["images"].count("linear-gradient") == 4, background
    assert background["attachment"].replace(" ", "") == "local,local,scroll,scroll", background

    # The last column is there to reach: scrolled to the end, its header is inside the box
    # and on top where it shows.
    last = table.locator("thead th").last
    assert last.inner_text().strip().lower() == "updated"
    box = wrap.bounding_box()
    assert last.bounding_box()["x"] >= box["x"] + box["width"]  # out of view at first
    wrap.evaluate("el => { el.scrollLeft = el.scrollWidth; }")
    tab.wait_for_timeout(100)
    cell = last.bounding_box()
    assert box["x"] <= cell["x"] and cell["x"] + cell["width"] <= box["x"] + box["width"] + 1
    x, y = cell["x"] + cell["width"] / 2, cell["y"] + cell["height"] / 2
    hit = tab.evaluate(
        "([x, y]) => document.elementFromPoint(x, y).closest('th')?.textContent.trim()", [x, y]
    )
    assert hit and hit.lower() == "updated", hit
