"""No control a member cannot use: every link, button and form a page offers works for the
member who sees it (never a 403), per built-in role. The bulk bar and the row checkboxes show
only when the member has a bulk action (or export) to use them with.

The walk: for each role, open the main pages (dashboard, contact list, a contact's tabs, the
company list and a company, the inbox), collect every same-site link and hx-get (fetched),
every POST form and hx-post (sent with the form's own inputs, inside a savepoint that is
rolled back, so nothing the walk does stays), and the bulk menu the bar loads; each must
answer with something other than 403."""

import re
from html.parser import HTMLParser
from urllib.parse import urlsplit

import pytest
from django.db import transaction
from django.urls import reverse

from tests.factories import CompanyFactory, ContactFactory, NoteFactory, TagFactory, TaskFactory

ROLES = ["viewer", "team", "director", "admin", "support", "partner"]
# Controls that change the session rather than a record: always usable, and the walk must
# not sign itself out or switch organization.
SKIPPED_PREFIXES = ("/accounts/", "/static/", "/orgs/", "/admin/")


class Controls(HTMLParser):
    """The usable surface of a page: links, hx-get/hx-post, POST forms with their inputs."""

    def __init__(self):
        super().__init__()
        self.gets: set[str] = set()
        self.posts: list[tuple[str, dict]] = []
        self._form: tuple[str, dict] | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "a" and a.get("href"):
            self.gets.add(a["href"])
        if a.get("hx-get"):
            self.gets.add(a["hx-get"])
        if tag == "form" and (a.get("method") or "").lower() == "post":
            self._form = (a.get("action") or "", {})
            self.posts.append(self._form)
        is_input = tag in {"input", "select", "textarea"} and a.get("name")
        if is_input and self._form and a.get("type") not in {"checkbox", "radio"}:
            self._form[1].setdefault(a["name"], a.get("value") or "")
        if a.get("hx-post"):
            data = {a["name"]: a.get("value") or ""} if a.get("name") else {}
            self.posts.append((a["hx-post"], data))

    def handle_endtag(self, tag):
        if tag == "form":
            self._form = None


def controls(html: str) -> Controls:
    parser = Controls()
    parser.feed(html)
    return parser


def site_path(url: str, page: str) -> str | None:
    parts = urlsplit(url)
    if parts.scheme or parts.netloc or url.startswith("#"):
        return None
    path = parts.path or urlsplit(page).path
    if path.startswith(SKIPPED_PREFIXES):
        return None
    return path + (f"?{parts.query}" if parts.query else "")


@pytest.fixture
def world(org, members):
    rep = members["team"]
    tag = TagFactory(org=org, name="vip")
    company = CompanyFactory(org=org, name="Initech", owner=rep.user)
    mine = ContactFactory(org=org, owner=rep.user, company=company, tags=[tag])
    theirs = ContactFactory(org=org, owner=members["admin"].user)
    for contact in (mine, theirs):
        NoteFactory(org=org, contact=contact, author=contact.owner)
        TaskFactory(org=org, contact=contact, assignee=contact.owner)
    return {"mine": mine, "theirs": theirs, "company": company}


def pages(world) -> list[str]:
    out = [
        reverse("crm:dashboard"),
        reverse("contacts:contact_list"),
        reverse("contacts:contact_list") + "?archived=1",
        reverse("contacts:company_list"),
        reverse("contacts:company_detail", args=[world["company"].public_id]),
        reverse("contacts:inbox"),
        reverse("contacts:bulk_actions"),
    ]
    for contact in (world["mine"], world["theirs"]):
        detail = reverse("contacts:contact_detail", args=[contact.public_id])
        out += [detail] + [f"{detail}?tab={tab}" for tab in ("timeline", "tasks", "notes")]
    return out


def refused_controls(client, world, walked: list | None = None) -> list[str]:
    """Every control on the role's pages that answers 403, as "METHOD url (on page)".
    Each control is tried once (the sidebar repeats on every page); `walked` collects them."""
    refused, seen = [], set()
    walked = [] if walked is None else walked
    for page in pages(world):
        response = client.get(page, HTTP_HX_REQUEST="true" if "bulk/" in page else None)
        if response.status_code in (403, 404):
            continue  # the page itself is out of reach: it offers nothing
        assert response.status_code == 200, (page, response.status_code)
        found = controls(response.content.decode())
        for url in sorted(found.gets):
            path = site_path(url, page)
            if not path or ("GET", path) in seen:
                continue
            seen.add(("GET", path))
            walked.append(f"GET {path}")
            if client.get(path).status_code == 403:
                refused.append(f"GET {path} (on {page})")
        for action, data in found.posts:
            path = site_path(action, page)
            key = ("POST", path, tuple(sorted(data.items())))
            if not path or key in seen:
                continue
            seen.add(key)
            walked.append(f"POST {path} {sorted(data)}")
            with transaction.atomic():
                status = client.post(path, data).status_code
                transaction.set_rollback(True)
            if status == 403:
                refused.append(f"POST {path} {sorted(data)} (on {page})")
    return refused


@pytest.mark.parametrize("role", ROLES)
def test_every_control_on_the_main_pages_works_for_the_member_who_sees_it(
    role, org, members, client_as, world
):
    client = client_as(members[role])
    walked = []

    assert refused_controls(client, world, walked) == []
    assert len(walked) > 15  # the walk did reach the pages' controls


def test_the_walk_catches_a_control_the_member_cannot_use(
    org, members, client_as, world, monkeypatch
):
    """A page that offered a viewer "New contact" would be reported."""
    real = Controls.handle_starttag

    def with_a_forbidden_link(self, tag, attrs):
        real(self, tag, attrs)
        if tag == "main":
            self.gets.add(reverse("contacts:contact_create"))
            self.posts.append((reverse("contacts:bulk_action"), {"bulk_action": "archive"}))

    monkeypatch.setattr(Controls, "handle_starttag", with_a_forbidden_link)

    refused = refused_controls(client_as(members["viewer"]), world)

    assert any(r.startswith(f"GET {reverse('contacts:contact_create')} ") for r in refused)
    assert any(r.startswith(f"POST {reverse('contacts:bulk_action')} ") for r in refused)


def _list_html(client) -> str:
    return client.get(reverse("contacts:contact_list")).content.decode()


def test_a_viewer_gets_no_row_checkboxes_and_no_bulk_bar(org, members, client_as, world):
    html = _list_html(client_as(members["viewer"]))

    assert 'name="ids"' not in html
    assert "data-select-all" not in html
    assert 'id="bulk-bar"' not in html
    assert "may not change" not in html


@pytest.mark.parametrize("role", ["team", "director", "admin", "support", "partner"])
def test_a_member_with_a_bulk_action_gets_the_checkboxes_and_the_bar(
    role, org, members, client_as, world
):
    ContactFactory(org=org, owner=members[role].user)  # a row even for "own" scope
    html = _list_html(client_as(members[role]))

    assert 'name="ids"' in html
    assert 'id="bulk-bar"' in html


def test_a_viewer_who_may_export_gets_the_bar_for_exporting(org, members, client_as, world):
    from crm.models import Membership
    from tests.factories import custom_role

    exporter = custom_role(
        org,
        permissions={"contacts": {"access": True, "view": True, "export": True, "scope": "all"}},
    )
    Membership.objects.filter(pk=members["viewer"].pk).update(role=exporter)
    client = client_as(members["viewer"])

    html = _list_html(client)
    menu = client.get(reverse("contacts:bulk_actions"), HTTP_HX_REQUEST="true").content.decode()

    assert 'name="ids"' in html
    assert "Export CSV" in menu
    assert 'name="bulk_action"' not in menu


@pytest.mark.parametrize(
    ("role", "offered", "absent"),
    [
        ("viewer", set(), {"add_tags", "remove_tags", "reassign", "archive", "claim"}),
        ("team", {"claim", "add_tags", "remove_tags", "archive"}, {"reassign"}),
        ("director", {"claim", "add_tags", "remove_tags", "archive"}, {"reassign"}),
        ("admin", {"claim", "reassign", "add_tags", "remove_tags", "archive"}, set()),
    ],
)
def test_the_bulk_menu_offers_what_the_role_may_run(role, offered, absent, org, members, client_as):
    menu = client_as(members[role]).get(reverse("contacts:bulk_actions"), HTTP_HX_REQUEST="true")
    keys = set(re.findall(r'name="bulk_action" value="([a-z_]+)"', menu.content.decode()))

    assert offered <= keys
    assert not (absent & keys)


@pytest.mark.parametrize(
    ("role", "has_new_contact", "has_import", "has_edit_on_theirs"),
    [
        ("viewer", False, False, False),
        ("team", True, True, False),
        ("director", True, True, False),
        ("admin", True, True, True),
    ],
)
def test_page_buttons_follow_the_policy(
    role, has_new_contact, has_import, has_edit_on_theirs, org, members, client_as, world
):
    client = client_as(members[role])
    html = _list_html(client)
    theirs = client.get(reverse("contacts:contact_detail", args=[world["theirs"].public_id]))

    assert (reverse("contacts:contact_create") in html) is has_new_contact
    assert (reverse("contacts:import_start") in html) is has_import
    edit_url = reverse("contacts:contact_edit", args=[world["theirs"].public_id])
    if theirs.status_code == 200:
        assert (edit_url in theirs.content.decode()) is has_edit_on_theirs
    else:
        assert not has_edit_on_theirs
