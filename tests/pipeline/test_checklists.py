"""Checklists on a deal: steps added, ticked, renamed and deleted, done/total counters, rights
and record scope, and the checklists tab."""

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.urls import reverse

from crm.models import AuditEvent, OutboxEvent
from crm.permissions import Policy
from crm.services import Actor
from pipeline.models import Checklist, ChecklistItem
from pipeline.services.checklists import (
    checklist_add,
    checklist_delete,
    checklist_item_add,
    checklist_item_delete,
    checklist_item_rename,
    checklist_item_toggle,
    checklist_progress,
    checklist_rename,
    deal_checklists,
    deal_progress,
)
from tests.factories import (
    ChecklistFactory,
    ChecklistItemFactory,
    DealFactory,
    OrganizationFactory,
    member,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin(org):
    return member(org, "admin")


@pytest.fixture
def deal(org, admin):
    return DealFactory(org=org, owner=admin.user)


def _who(membership):
    return {"actor": Actor.for_user(membership.user), "policy": Policy(membership)}


def test_counters_follow_the_steps(deal, admin, org):
    checklist = checklist_add(deal=deal, title="  Security   review ", **_who(admin))
    assert checklist.title == "Security review"
    steps = [
        checklist_item_add(checklist=checklist, text=t, **_who(admin))
        for t in ("DPA", "Pen test", "SSO")
    ]
    start = checklist_progress(checklist)
    assert (start.done, start.total, start.percent) == (0, 3, 0)
    done = checklist_item_toggle(item=steps[0], **_who(admin))
    assert done.is_done and done.done_by == admin.user and done.done_at is not None
    checklist_item_toggle(item=steps[1], done=True, **_who(admin))
    progress = checklist_progress(checklist)
    assert (progress.done, progress.total, progress.percent, progress.complete) == (2, 3, 67, False)
    checklist_item_toggle(item=steps[1], done=False, **_who(admin))
    assert checklist_progress(checklist).done == 1
    checklist_item_delete(item=steps[2], **_who(admin))
    checklist_item_toggle(item=steps[1], **_who(admin))
    progress = checklist_progress(checklist)
    assert (progress.done, progress.total, progress.complete) == (2, 2, True)
    other = checklist_add(deal=deal, title="Legal", **_who(admin))
    checklist_item_add(checklist=other, text="Contract", **_who(admin))
    overall = deal_progress(org, deal)
    assert (overall.done, overall.total) == (2, 3)
    listed = deal_checklists(org, deal)
    assert [c.title for c in listed] == ["Security review", "Legal"]
    assert [(c.progress.done, c.progress.total) for c in listed] == [(2, 2), (0, 1)]


def test_rename_and_delete(deal, admin, org):
    checklist = checklist_add(deal=deal, title="Onboarding", **_who(admin))
    item = checklist_item_add(checklist=checklist, text="Kick-off", **_who(admin))
    checklist_rename(checklist=checklist, title="Go-live", **_who(admin))
    checklist_item_rename(item=item, text="Kick-off call", **_who(admin))
    checklist.refresh_from_db()
    item.refresh_from_db()
    assert (checklist.title, item.text) == ("Go-live", "Kick-off call")
    checklist_delete(checklist=checklist, **_who(admin))
    assert not Checklist.objects.for_org(org).exists()
    assert not ChecklistItem.objects.for_org(org).exists()
    assert AuditEvent.objects.for_org(org).filter(verb="deal.checklist_deleted").exists()
    assert (
        OutboxEvent.objects.for_org(org)
        .filter(event_type="deal.updated", payload__changes=["checklists"])
        .exists()
    )


@pytest.mark.parametrize("text", ["", "   ", "x" * 301])
def test_empty_or_long_steps_are_refused(deal, admin, org, text):
    checklist = checklist_add(deal=deal, title="List", **_who(admin))
    with pytest.raises(ValidationError) as exc:
        checklist_item_add(checklist=checklist, text=text, **_who(admin))
    assert "text" in exc.value.message_dict
    assert not ChecklistItem.objects.for_org(org).exists()


def test_rights_and_scope(deal, admin, org):
    checklist = ChecklistFactory(org=org, deal=deal)
    item = ChecklistItemFactory(org=org, checklist=checklist)
    for role_key in ("viewer", "team"):  # cannot edit / not their deal
        with pytest.raises(PermissionDenied):
            checklist_item_toggle(item=item, **_who(member(org, role_key)))
        with pytest.raises(PermissionDenied):
            checklist_add(deal=deal, title="Nope", **_who(member(org, role_key)))
    item.refresh_from_db()
    assert not item.is_done


def test_checklists_tab_and_its_actions(deal, admin, org, client_as):
    client = client_as(admin)
    client.post(reverse("pipeline:checklist_add", args=[deal.public_id]), {"title": "Closing"})
    checklist = Checklist.objects.for_org(org).get(deal=deal)
    add_step = reverse("pipeline:checklist_item_add", args=[checklist.public_id])
    client.post(add_step, {"text": "Signature"})
    client.post(add_step, {"text": "Invoice"})
    step = ChecklistItem.objects.for_org(org).get(text="Signature")
    htmx = client_as(admin, htmx=True)
    response = htmx.post(
        reverse("pipeline:checklist_item_toggle", args=[step.public_id]), {"done": "1"}
    )
    body = response.content.decode()
    assert response.status_code == 200 and 'id="deal-tabs"' in body
    assert "1/2" in body
    empty = htmx.post(add_step, {"text": ""})
    assert "This field is required." in empty.content.decode()
    page = client.get(reverse("pipeline:deal_detail", args=[deal.public_id]) + "?tab=checklists")
    assert b"Closing" in page.content and b"1/2" in page.content


def test_checklist_urls_are_404_outside_org_or_scope(deal, admin, org, client_as):
    checklist = ChecklistFactory(org=org, deal=deal)
    item = ChecklistItemFactory(org=org, checklist=checklist)
    for who in (member(OrganizationFactory(), "owner"), member(org, "team")):
        client = client_as(who)
        assert (
            client.post(
                reverse("pipeline:checklist_item_toggle", args=[item.public_id])
            ).status_code
            == 404
        )
        assert (
            client.post(
                reverse("pipeline:checklist_delete", args=[checklist.public_id])
            ).status_code
            == 404
        )
    item.refresh_from_db()
    assert not item.is_done
    assert Checklist.objects.for_org(org).filter(pk=checklist.pk).exists()
