"""Bulk "Remove tags", and no bulk action with a default target: rights, field editability,
record scope, what it writes (audit, outbox, no new tag), the confirmation for big removals,
the background job for big selections, and the menu's "Choose…" starts."""

import re

import pytest
from django.urls import reverse

from contacts import bulk as bulk_service
from contacts.bulk import actions as bulk_actions
from contacts.bulk import run as bulk_run
from contacts.models import Contact, Tag
from crm.models import AuditEvent, BackgroundJob, Membership, OutboxEvent
from tests.factories import ContactFactory, ContactListFactory, TagFactory, custom_role, member
from tests.jobhelpers import run_job

URL = "contacts:bulk_action"


def bulk(client, action, contacts=(), **extra):
    data = {"bulk_action": action, "ids": [str(c.public_id) for c in contacts], **extra}
    return client.post(reverse(URL), data, HTTP_HX_REQUEST="true")


def tag_names(contact) -> set[str]:
    return set(Contact.objects.get(pk=contact.pk).tags.values_list("name", flat=True))


@pytest.fixture
def admin(members):
    return members["admin"]


def test_remove_tags_takes_only_the_named_tags_off(org, admin, client_as):
    vip, promo, keep = (TagFactory(org=org, name=n) for n in ("VIP", "promo", "keep"))
    both = ContactFactory(org=org, tags=[vip, promo, keep])
    one = ContactFactory(org=org, tags=[vip])
    none = ContactFactory(org=org, tags=[keep])

    response = bulk(
        client_as(admin), "remove_tags", [both, one, none], **{"bulk_tags": "vip, Promo"}
    )

    assert response.status_code == 204
    assert tag_names(both) == {"keep"}
    assert tag_names(one) == set()
    assert tag_names(none) == {"keep"}
    assert Tag.objects.filter(org=org).count() == 3  # tags themselves stay
    edits = AuditEvent.objects.filter(verb="contact.updated").order_by("object_repr")
    assert edits.count() == 2
    changes = {e.object_id: e.changes["tags"] for e in edits}
    assert changes[str(both.public_id)] == [["keep", "promo", "VIP"], ["keep"]]
    assert changes[str(one.public_id)] == [["VIP"], []]
    assert OutboxEvent.objects.filter(event_type="contact.updated").count() == 2
    summary = AuditEvent.objects.get(verb="contacts.bulk_action")
    assert summary.changes["action"] == "remove_tags"
    assert summary.changes["changed"] == 2
    assert summary.changes["unchanged"] == 1


def test_the_menus_own_input_wins_over_another_menus(org, admin, client_as):
    """Both tag menus sit in the one form: "Remove tags" reads its own input only."""
    vip = TagFactory(org=org, name="vip")
    contact = ContactFactory(org=org, tags=[vip])

    response = bulk(
        client_as(admin),
        "remove_tags",
        [contact],
        **{"bulk_tags.add_tags": "other", "bulk_tags.remove_tags": "vip"},
    )

    assert response.status_code == 204
    assert tag_names(contact) == set()
    assert not Tag.objects.filter(org=org, name="other").exists()


def test_removing_a_tag_nobody_has_changes_nothing_and_creates_no_tag(org, admin, client_as):
    contact = ContactFactory(org=org, tags=[TagFactory(org=org, name="keep")])

    response = bulk(client_as(admin), "remove_tags", [contact], bulk_tags="ghost")

    assert response.status_code == 200
    assert "Nothing to do" in response.content.decode()
    assert not Tag.objects.filter(org=org, name="ghost").exists()
    assert tag_names(contact) == {"keep"}


def test_remove_tags_needs_a_tag(org, admin, client_as):
    contact = ContactFactory(org=org)

    response = bulk(client_as(admin), "remove_tags", [contact], bulk_tags=" , ")

    assert "Type at least one tag." in response.content.decode()


def test_viewer_and_a_role_that_may_not_edit_tags_get_403(org, members, client_as):
    vip = TagFactory(org=org, name="vip")
    contact = ContactFactory(org=org, tags=[vip])
    locked = custom_role(
        org,
        permissions={"contacts": {"access": True, "view": True, "edit": True, "scope": "all"}},
        field_rules={"tags": "visible"},
    )
    clerk = member(org, "team")
    Membership.objects.filter(pk=clerk.pk).update(role=locked)

    for who in (members["viewer"], clerk):
        response = bulk(client_as(who), "remove_tags", [contact], bulk_tags="vip")
        assert response.status_code == 403
    assert tag_names(contact) == {"vip"}


def test_a_rep_removes_tags_only_from_their_own_contacts(org, members, client_as):
    rep = members["team"]
    vip = TagFactory(org=org, name="vip")
    mine = ContactFactory(org=org, owner=rep.user, tags=[vip])
    theirs = ContactFactory(org=org, owner=members["admin"].user, tags=[vip])

    response = bulk(client_as(rep), "remove_tags", [mine, theirs], bulk_tags="vip")

    assert response.status_code == 204
    assert tag_names(mine) == set()
    assert tag_names(theirs) == {"vip"}


def test_a_big_removal_asks_first_with_the_exact_number(org, admin, client_as, monkeypatch):
    monkeypatch.setattr(bulk_actions, "BIG_LIST_REMOVAL", 3)
    vip = TagFactory(org=org, name="vip")
    contacts = ContactFactory.create_batch(3, org=org, tags=[vip])
    client = client_as(admin)

    asked = bulk(client, "remove_tags", contacts, bulk_tags="vip")

    assert "Remove vip from 3 contacts?" in asked.content.decode()
    assert all(tag_names(c) == {"vip"} for c in contacts)
    done = bulk(
        client, "remove_tags", contacts, bulk_tags="vip", bulk_confirmed="1", bulk_expected="3"
    )
    assert done.status_code == 204
    assert all(tag_names(c) == set() for c in contacts)


def test_a_big_selection_removes_tags_in_a_background_job(org, owner, client_as, monkeypatch):
    monkeypatch.setattr(bulk_run, "CHUNK_SIZE", 5)
    monkeypatch.setattr(bulk_run, "INLINE_LIMIT", 3)
    vip = TagFactory(org=org, name="vip")
    contacts = ContactFactory.create_batch(8, org=org, tags=[vip])

    response = bulk(client_as(owner), "remove_tags", contacts, bulk_tags="vip")

    assert response.status_code == 200
    job = BackgroundJob.objects.get(kind=bulk_service.JOB_KIND)
    assert job.params["action"] == "remove_tags"
    assert run_job(job) == "ran"
    job.refresh_from_db()
    assert job.status == BackgroundJob.Status.DONE
    assert job.result["summary"] == "Removed vip from 8 contacts."
    assert not Contact.tags.through.objects.filter(tag=vip).exists()


def test_the_menu_offers_remove_tags_to_whoever_may_add_them(org, members, client_as):
    for role, offered in (("admin", True), ("team", True), ("viewer", False)):
        menu = client_as(members[role]).get(
            reverse("contacts:bulk_actions"), HTTP_HX_REQUEST="true"
        )
        html = menu.content.decode()
        assert ('value="remove_tags"' in html) is offered, role
        assert ('value="add_tags"' in html) is offered, role


# No default target ----------------------------------------------------------------------------


def test_every_choice_in_the_menu_starts_with_choose(org, admin, client_as):
    ContactListFactory(org=org, name="Webinar")
    menu = client_as(admin).get(reverse("contacts:bulk_actions"), HTTP_HX_REQUEST="true")
    html = menu.content.decode()

    selects = re.findall(r"<select[^>]*>(.*?)</select>", html, re.S)
    assert len(selects) == 4  # new owner, both lists, stage
    for options in selects:
        first = re.search(r"<option[^>]*>[^<]*</option>", options).group(0)
        assert first == '<option value="" selected>Choose…</option>', first
        assert options.count(" selected") == 1


@pytest.mark.parametrize(
    ("action", "field", "message"),
    [
        ("reassign", "bulk_owner.reassign", "Choose a member to give the contacts to."),
        ("change_stage", "bulk_stage.change_stage", "Choose a lifecycle stage."),
        ("add_to_list", "bulk_list.add_to_list", "Choose a list."),
        ("remove_from_list", "bulk_list.remove_from_list", "Choose a list."),
        ("add_tags", "bulk_tags.add_tags", "Type at least one tag."),
        ("remove_tags", "bulk_tags.remove_tags", "Type at least one tag."),
    ],
)
def test_an_action_without_a_chosen_target_is_refused(
    org, admin, client_as, action, field, message
):
    ContactListFactory(org=org, name="Webinar")
    contact = ContactFactory(org=org, owner=admin.user, lifecycle_stage="lead")

    response = bulk(client_as(admin), action, [contact], **{field: "", "bulk_confirmed": "1"})

    assert response.status_code == 200
    assert message in response.content.decode()
    assert not AuditEvent.objects.filter(verb="contacts.bulk_action").exists()


def test_bulk_tag_changes_show_on_the_timeline_with_before_and_after(org, admin, client_as):
    from contacts.models import Activity

    vip = TagFactory(org=org, name="VIP")
    ann = ContactFactory(org=org, tags=[vip])

    bulk(client_as(admin), "add_tags", [ann], **{"bulk_tags": "promo"})
    bulk(client_as(admin), "remove_tags", [ann], **{"bulk_tags": "vip"})

    entries = Activity.objects.filter(contact=ann, type=Activity.Type.UPDATED).order_by("id")
    fields = [e.data["fields"] for e in entries]
    assert fields and all(f == ["tags"] for f in fields)
    last = entries.last().data["changes"][0]
    assert "VIP" in str(last["before"]) and "VIP" not in str(last["after"])
