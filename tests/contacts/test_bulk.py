"""Bulk actions from the contact list: rights, record scope, field editability, the
two-step confirmation with exact counts, and what each action writes."""

import pytest
from django.urls import reverse

from contacts.models import Activity, Contact, ContactList, Tag
from crm.models import AuditEvent, Membership, OutboxEvent
from tests.factories import ContactFactory, TagFactory, TeamFactory, custom_role, member

BULK_URL = "contacts:bulk_action"


def bulk(client, action, contacts=(), *, all_matching=False, **extra):
    data = {"bulk_action": action, "ids": [str(c.public_id) for c in contacts], **extra}
    if all_matching:
        data["bulk_all"] = "1"
    return client.post(reverse(BULK_URL), data, HTTP_HX_REQUEST="true")


def confirmed(client, action, contacts=(), *, expected, **extra):
    return bulk(client, action, contacts, bulk_confirmed="1", bulk_expected=str(expected), **extra)


@pytest.fixture
def admin(members):
    return members["admin"]


@pytest.fixture
def rep(members):
    return members["team"]


def test_viewer_gets_403_on_a_forged_bulk_post(org, members, client_as):
    contacts = ContactFactory.create_batch(2, org=org)
    client = client_as(members["viewer"])

    response = confirmed(client, "archive", contacts, expected=2)

    assert response.status_code == 403
    assert not Contact.objects.filter(pk__in=[c.pk for c in contacts], is_archived=True).exists()


def test_reassign_is_for_admins_only(org, members, client_as, admin):
    contacts = ContactFactory.create_batch(2, org=org, owner=members["team"].user)
    target = str(members["director"].user.public_id)

    for role in ("team", "director", "viewer"):
        response = confirmed(
            client_as(members[role]), "reassign", contacts, expected=2, bulk_owner=target
        )
        assert response.status_code == 403, role

    response = confirmed(client_as(admin), "reassign", contacts, expected=2, bulk_owner=target)
    assert response.status_code == 204
    owners = set(
        Contact.objects.filter(pk__in=[c.pk for c in contacts]).values_list("owner", flat=True)
    )
    assert owners == {members["director"].user_id}
    assert AuditEvent.objects.filter(verb="contact.reassigned").count() == 2


def test_team_members_all_matching_touches_only_their_own_contacts(org, rep, admin, client_as):
    own = ContactFactory.create_batch(3, org=org, owner=rep.user)
    others = ContactFactory.create_batch(4, org=org, owner=admin.user)
    unowned = ContactFactory(org=org)

    response = bulk(client_as(rep), "add_tags", all_matching=True, bulk_tags="spring-promo")

    assert response.status_code == 204
    tagged = set(Contact.objects.filter(tags__name="spring-promo").values_list("pk", flat=True))
    assert tagged == {c.pk for c in own}
    assert not {c.pk for c in [*others, unowned]} & tagged


def test_forged_ids_outside_scope_are_skipped_and_counted(org, rep, admin, client_as):
    own = ContactFactory(org=org, owner=rep.user)
    foreign = ContactFactory(org=org, owner=admin.user, lifecycle_stage="lead")

    response = bulk(client_as(rep), "change_stage", [own, foreign], bulk_stage="qualified")

    assert response.status_code == 204
    own.refresh_from_db()
    foreign.refresh_from_db()
    assert own.lifecycle_stage == "qualified"
    assert foreign.lifecycle_stage == "lead"
    summary = AuditEvent.objects.get(verb="contacts.bulk_action")
    assert summary.changes["changed"] == 1
    assert summary.changes["skipped"] == 1


def test_another_orgs_contacts_are_never_touched(org, other_org, admin, client_as):
    mine = ContactFactory(org=org)
    theirs = ContactFactory(org=other_org)

    bulk(client_as(admin), "add_tags", [mine, theirs], bulk_tags="vip")

    assert mine.tags.filter(name="vip").exists()
    assert not theirs.tags.exists()
    assert not Tag.objects.filter(org=other_org).exists()


def test_archive_asks_for_confirmation_with_the_exact_count(org, admin, rep, client_as):
    contacts = ContactFactory.create_batch(3, org=org)
    ContactFactory(org=org, is_archived=True)  # not selected
    already = ContactFactory(org=org, is_archived=True)
    client = client_as(admin)

    response = bulk(client, "archive", [*contacts, already])

    assert response.status_code == 200
    text = response.content.decode()
    assert "Archive 3 contacts?" in text
    assert "1 of the selected need no change" in text
    assert "&quot;bulk_expected&quot;: &quot;3&quot;" in text
    assert Contact.objects.filter(org=org, is_archived=True).count() == 2


def test_confirmed_archive_archives_and_never_deletes(org, admin, client_as):
    contacts = ContactFactory.create_batch(3, org=org)
    total = Contact.objects.count()

    response = confirmed(client_as(admin), "archive", contacts, expected=3)

    assert response.status_code == 204
    assert response["HX-Redirect"].startswith(reverse("contacts:contact_list"))
    assert Contact.objects.count() == total
    assert Contact.objects.filter(pk__in=[c.pk for c in contacts], is_archived=True).count() == 3
    assert AuditEvent.objects.filter(verb="contact.archived").count() == 3
    assert OutboxEvent.objects.filter(event_type="contact.archived").count() == 3
    assert Activity.objects.filter(type=Activity.Type.ARCHIVED).count() == 3


def test_a_stale_confirmation_asks_again_with_the_new_count(org, admin, client_as):
    contacts = ContactFactory.create_batch(3, org=org)
    Contact.objects.filter(pk=contacts[0].pk).update(is_archived=True)  # changed meanwhile

    response = confirmed(client_as(admin), "archive", contacts, expected=3)

    assert response.status_code == 200
    assert "The selection changed" in response.content.decode()
    assert "Archive 2 contacts?" in response.content.decode()
    assert Contact.objects.filter(is_archived=True).count() == 1


def test_restore_brings_contacts_back_unless_their_email_was_taken(org, admin, client_as):
    back = ContactFactory(org=org, email="back@people.example", is_archived=True)
    clash = ContactFactory(org=org, email="taken@people.example", is_archived=True)
    ContactFactory(org=org, email="taken@people.example")

    response = bulk(client_as(admin), "restore", [back, clash])

    assert response.status_code == 204
    back.refresh_from_db()
    clash.refresh_from_db()
    assert back.is_archived is False
    assert clash.is_archived is True
    summary = AuditEvent.objects.get(verb="contacts.bulk_action")
    assert summary.changes["blocked"] == 1
    assert AuditEvent.objects.filter(verb="contact.restored").count() == 1


def test_add_tags_creates_missing_tags_and_reuses_existing_ones(org, admin, client_as):
    vip = TagFactory(org=org, name="VIP")
    contacts = ContactFactory.create_batch(2, org=org)
    contacts[0].tags.add(vip)

    response = bulk(client_as(admin), "add_tags", contacts, bulk_tags="vip, Webinar 2026 ,vip")

    assert response.status_code == 204
    assert sorted(Tag.objects.for_org(org).values_list("name", flat=True)) == [
        "VIP",
        "Webinar 2026",
    ]
    for contact in contacts:
        assert sorted(contact.tags.values_list("name", flat=True)) == ["VIP", "Webinar 2026"]
    event = AuditEvent.objects.get(verb="contact.updated", object_id=str(contacts[0].public_id))
    assert event.changes == {"tags": [["VIP"], ["VIP", "Webinar 2026"]]}
    assert AuditEvent.objects.filter(verb="tag.created").count() == 1


def test_change_stage_is_refused_when_the_stage_field_is_not_editable(org, client_as):
    locked = custom_role(
        org,
        permissions={"contacts": {"access": True, "view": True, "edit": True, "scope": "all"}},
        field_rules={"lifecycle_stage": "visible"},
    )
    clerk = member(org, "team")
    Membership.objects.filter(pk=clerk.pk).update(role=locked)
    contact = ContactFactory(org=org, lifecycle_stage="lead")
    client = client_as(clerk)

    response = bulk(client, "change_stage", [contact], bulk_stage="customer")
    menu = client.get(reverse("contacts:bulk_actions"), HTTP_HX_REQUEST="true")

    assert response.status_code == 403
    contact.refresh_from_db()
    assert contact.lifecycle_stage == "lead"
    assert 'value="change_stage"' not in menu.content.decode()
    assert 'value="add_tags"' in menu.content.decode()


def test_change_stage_writes_audit_outbox_and_timeline_per_contact(org, admin, client_as):
    contacts = ContactFactory.create_batch(2, org=org, lifecycle_stage="lead")
    ContactFactory(org=org, lifecycle_stage="qualified")  # not selected

    response = bulk(client_as(admin), "change_stage", contacts, bulk_stage="qualified")

    assert response.status_code == 204
    events = AuditEvent.objects.filter(verb="contact.updated")
    assert events.count() == 2
    assert {e.changes["lifecycle_stage"][1] for e in events} == {"qualified"}
    assert OutboxEvent.objects.filter(event_type="contact.stage_changed").count() == 2
    entries = Activity.objects.filter(type=Activity.Type.STAGE_CHANGE)
    assert {e.subject for e in entries} == {"Stage changed from Lead to Qualified"}


def test_claim_takes_unowned_contacts_only(org, rep, admin, client_as):
    unowned = ContactFactory.create_batch(2, org=org)
    someone_elses = ContactFactory(org=org, owner=admin.user)

    response = bulk(client_as(rep), "claim", [*unowned, someone_elses])

    assert response.status_code == 204
    assert set(Contact.objects.filter(owner=rep.user).values_list("pk", flat=True)) == {
        c.pk for c in unowned
    }
    someone_elses.refresh_from_db()
    assert someone_elses.owner_id == admin.user_id


def test_a_rep_releases_only_their_own_contacts(org, rep, admin, client_as):
    mine = ContactFactory(org=org, owner=rep.user)
    theirs = ContactFactory(org=org, owner=admin.user)

    response = confirmed(client_as(rep), "release", [mine, theirs], expected=1)

    assert response.status_code == 204
    mine.refresh_from_db()
    theirs.refresh_from_db()
    assert mine.owner_id is None
    assert theirs.owner_id == admin.user_id


def test_list_membership_add_and_big_removal_needs_confirmation(org, admin, client_as):
    contact_list = ContactList.objects.create(org=org, name="Webinar")
    contacts = ContactFactory.create_batch(50, org=org)
    client = client_as(admin)
    list_id = str(contact_list.public_id)

    added = bulk(client, "add_to_list", contacts, bulk_list=list_id)
    asked = bulk(client, "remove_from_list", contacts, bulk_list=list_id)

    assert added.status_code == 204
    assert contact_list.contacts.count() == 50
    assert asked.status_code == 200
    assert "Remove 50 contacts from “Webinar”?" in asked.content.decode()
    assert contact_list.contacts.count() == 50

    removed = confirmed(client, "remove_from_list", contacts, expected=50, bulk_list=list_id)
    assert removed.status_code == 204
    assert contact_list.contacts.count() == 0


def test_small_list_removal_runs_without_confirmation(org, admin, client_as):
    contact_list = ContactList.objects.create(org=org, name="Small")
    contacts = ContactFactory.create_batch(2, org=org)
    contact_list.contacts.add(*contacts)

    response = bulk(
        client_as(admin), "remove_from_list", contacts, bulk_list=str(contact_list.public_id)
    )

    assert response.status_code == 204
    assert contact_list.contacts.count() == 0


def test_bad_arguments_get_a_message_and_change_nothing(org, admin, client_as):
    contact = ContactFactory(org=org, lifecycle_stage="lead")
    client = client_as(admin)

    no_stage = bulk(client, "change_stage", [contact], bulk_stage="nonsense")
    no_tags = bulk(client, "add_tags", [contact], bulk_tags=" , ")
    nothing = bulk(client, "claim", [])

    assert "Choose a lifecycle stage." in no_stage.content.decode()
    assert "Type at least one tag." in no_tags.content.decode()
    assert "Select at least one contact." in nothing.content.decode()
    contact.refresh_from_db()
    assert contact.lifecycle_stage == "lead"
    assert not contact.tags.exists()


def test_the_menu_offers_only_what_the_member_may_do(members, client_as):
    def menu(role):
        response = client_as(members[role]).get(
            reverse("contacts:bulk_actions"), HTTP_HX_REQUEST="true"
        )
        return response.content.decode()

    viewer, rep, admin = menu("viewer"), menu("team"), menu("admin")

    assert "may not change" in viewer and "bulk_action" not in viewer
    assert 'value="claim"' in rep and 'value="reassign"' not in rep
    assert 'value="reassign"' in admin and 'value="archive"' in admin
    assert "Export CSV" in admin and "Export CSV" not in rep


def test_count_endpoint_counts_all_matching_for_the_member(org, rep, admin, client_as):
    ContactFactory.create_batch(2, org=org, owner=rep.user)
    ContactFactory.create_batch(3, org=org, owner=admin.user)

    admin_count = client_as(admin).get(reverse("contacts:bulk_count")).json()
    rep_count = client_as(rep).get(reverse("contacts:bulk_count")).json()

    assert admin_count["count"] == 5
    assert rep_count["count"] == 2


def test_director_all_matching_stays_within_the_team(org, members, client_as):
    team = TeamFactory(org=org)
    director = members["director"]
    Membership.objects.filter(pk=director.pk).update(team=team)
    mate = member(org, "team", team=team)
    outsider = member(org, "team")
    in_team = ContactFactory(org=org, owner=mate.user, lifecycle_stage="lead")
    out_of_team = ContactFactory(org=org, owner=outsider.user, lifecycle_stage="lead")

    bulk(client_as(director), "change_stage", all_matching=True, bulk_stage="customer")

    in_team.refresh_from_db()
    out_of_team.refresh_from_db()
    assert in_team.lifecycle_stage == "customer"
    assert out_of_team.lifecycle_stage == "lead"


def test_the_archived_list_offers_restore_instead_of_archive(members, client_as):
    client = client_as(members["admin"])
    url = reverse("contacts:bulk_actions")

    active = client.get(url, HTTP_HX_REQUEST="true").content.decode()
    archived = client.get(url, {"bulk_archived": "1"}, HTTP_HX_REQUEST="true").content.decode()

    assert 'value="archive"' in active and 'value="restore"' not in active
    assert 'value="restore"' in archived and 'value="archive"' not in archived


def test_add_to_a_new_list_creates_it_once(org, admin, client_as):
    contacts = ContactFactory.create_batch(2, org=org)
    client = client_as(admin)

    first = bulk(client, "add_to_list", contacts[:1], bulk_new_list="  Webinar  follow-up ")
    second = bulk(client, "add_to_list", contacts[1:], bulk_new_list="webinar follow-up")

    assert first.status_code == second.status_code == 204
    contact_list = ContactList.objects.get(org=org)
    assert contact_list.name == "Webinar follow-up"
    assert contact_list.created_by == admin.user
    assert set(contact_list.contacts.values_list("pk", flat=True)) == {c.pk for c in contacts}
    assert AuditEvent.objects.filter(verb="contact_list.created").count() == 1
