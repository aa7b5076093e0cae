"""Bulk actions on deals: change owner (confirmed), move to a stage of the same pipeline
(with stage history), add and remove tags, archive (needs the delete right). Every deal is
checked for scope and edit right: out-of-scope deals are skipped and reported, another
organization's deals are never touched, and a big selection runs as a background job."""

import itertools

import pytest
from django.urls import reverse

from contacts.models import Activity, SmartView, Tag
from crm.models import AuditEvent, BackgroundJob
from pipeline import bulk as deal_bulk
from pipeline.models import Deal, DealTag, StageHistory
from tests.factories import (
    DealFactory,
    MembershipFactory,
    OrganizationFactory,
    PipelineFactory,
    StageFactory,
    TagFactory,
    custom_role,
    member,
    role,
)
from tests.jobhelpers import run_job

pytestmark = pytest.mark.django_db
NUMBERS = itertools.count(1)
BULK = "pipeline:deal_list_bulk"


@pytest.fixture
def world(org):
    admin = member(org, "admin")
    rep = member(org, "team")
    sales = PipelineFactory(org=org, name="Sales")
    other = PipelineFactory(org=org, name="Partners")
    stages = {
        "qualify": StageFactory(org=org, pipeline=sales, name="Qualify", position=0),
        "propose": StageFactory(org=org, pipeline=sales, name="Propose", position=1),
        "elsewhere": StageFactory(org=org, pipeline=other, name="Intro", position=0),
    }
    return {"org": org, "admin": admin, "rep": rep, "stages": stages}


def deals(world, n, *, owner=None, stage="qualify", **kwargs):
    return [
        DealFactory(
            org=world["org"],
            stage=world["stages"][stage],
            owner=(owner or world["admin"]).user,
            title=f"{stage} deal {next(NUMBERS)}",
            **kwargs,
        )
        for _ in range(n)
    ]


def post(client, action, selected=(), *, all_matching=False, **extra):
    data = {"bulk_action": action, "ids": [str(d.public_id) for d in selected], **extra}
    if all_matching:
        data["bulk_all"] = "1"
    return client.post(reverse(BULK), data, HTTP_HX_REQUEST="true")


def confirmed(client, action, selected=(), *, expected, **extra):
    return post(client, action, selected, bulk_confirmed="1", bulk_expected=str(expected), **extra)


def test_change_owner_asks_first_then_changes_each_deal(world, client_as):
    client = client_as(world["admin"])
    rows = deals(world, 3)
    target = world["rep"].user
    first = post(client, "change_owner", rows, bulk_owner=str(target.public_id))
    html = first.content.decode()
    assert "Change the owner of 3 deals" in html
    assert Deal.objects.for_org(world["org"]).filter(owner=target).count() == 0
    done = confirmed(client, "change_owner", rows, expected=3, bulk_owner=str(target.public_id))
    html = done.content.decode()
    assert "Changed the owner of 3 deals" in html
    assert Deal.objects.for_org(world["org"]).filter(owner=target).count() == 3
    audits = AuditEvent.objects.for_org(world["org"])
    assert audits.filter(verb="deal.updated").count() == 3
    summary = audits.get(verb="deals.bulk_action")
    assert summary.changes["changed"] == 3 and summary.changes["action"] == "change_owner"


def test_move_stage_writes_history_and_leaves_other_pipelines_alone(world, client_as):
    client = client_as(world["admin"])
    movers = deals(world, 2)
    stranger = deals(world, 1, stage="elsewhere")[0]
    already = deals(world, 1, stage="propose")[0]
    propose = world["stages"]["propose"]
    response = post(
        client, "move_stage", [*movers, stranger, already], bulk_stage=str(propose.public_id)
    )
    html = response.content.decode()
    assert "Moved 2 deals to Sales › Propose" in html
    assert "1 needed no change" in html and "1 skipped" in html
    assert "in another pipeline" in html and stranger.title in html
    for deal in movers:
        deal.refresh_from_db()
        assert deal.stage == propose
        history = StageHistory.objects.for_org(world["org"]).filter(deal=deal, to_stage=propose)
        assert history.count() == 1
        assert history.get().from_stage == world["stages"]["qualify"]
    stranger.refresh_from_db()
    assert stranger.stage == world["stages"]["elsewhere"]
    moved = Activity.objects.for_org(world["org"]).filter(type=Activity.Type.DEAL_STAGE_CHANGED)
    assert moved.count() == 2


def test_add_and_remove_tags(world, client_as):
    client = client_as(world["admin"])
    rows = deals(world, 2)
    vip = TagFactory(org=world["org"], name="VIP")
    DealTag.objects.create(org=world["org"], deal=rows[0], tag=vip)
    response = post(client, "add_tags", rows, **{"bulk_tags.add_tags": "vip, renewal"})
    assert "Tagged 2 deals" in response.content.decode()
    renewal = Tag.objects.for_org(world["org"]).get(name="renewal")
    for deal in rows:
        names = set(DealTag.objects.filter(deal=deal).values_list("tag__name", flat=True))
        assert names == {"VIP", "renewal"}
    assert (
        post(client, "add_tags", rows, **{"bulk_tags.add_tags": "VIP"})
        .content.decode()
        .count("needed no change")
    )
    response = post(client, "remove_tags", rows, **{"bulk_tags.remove_tags": "vip"})
    assert "Removed vip from 2 deals" in response.content.decode()
    assert list(DealTag.objects.filter(deal__in=rows).values_list("tag_id", flat=True)) == [
        renewal.pk,
        renewal.pk,
    ]
    # Removing a tag nobody has never creates it.
    post(client, "remove_tags", rows, **{"bulk_tags.remove_tags": "ghost"})
    assert not Tag.objects.for_org(world["org"]).filter(name="ghost").exists()


def test_archive_needs_the_delete_right(world, client_as):
    rep_deals = deals(world, 1, owner=world["rep"])
    response = post(client_as(world["rep"]), "archive", rep_deals)
    assert response.status_code == 403
    client = client_as(world["admin"])
    rows = deals(world, 2)
    assert "Archive 2 deals?" in post(client, "archive", rows).content.decode()
    done = confirmed(client, "archive", rows, expected=2)
    assert "Archived 2 deals" in done.content.decode()
    assert Deal.objects.for_org(world["org"]).filter(is_archived=True).count() == 2
    assert Deal.objects.for_org(world["org"]).count() == 3  # archived, never deleted


def test_out_of_scope_deals_are_skipped_and_reported(world, client_as):
    mine = deals(world, 1, owner=world["rep"])
    theirs = deals(world, 1, owner=world["admin"])
    response = post(
        client_as(world["rep"]), "add_tags", [*mine, *theirs], **{"bulk_tags.add_tags": "hot"}
    )
    html = response.content.decode()
    assert "Tagged 1 deal" in html and "1 skipped" in html
    assert "A deal you may not change" in html
    assert theirs[0].title not in html
    assert not DealTag.objects.filter(deal=theirs[0]).exists()
    assert DealTag.objects.filter(deal=mine[0]).exists()


def test_an_owner_outside_the_members_scope_is_refused_per_deal(world, client_as):
    mine = deals(world, 1, owner=world["rep"])
    response = confirmed(
        client_as(world["rep"]),
        "change_owner",
        mine,
        expected=1,
        bulk_owner=str(world["admin"].user.public_id),
    )
    html = response.content.decode()
    assert "1 could not be changed" in html and "within your scope" in html
    mine[0].refresh_from_db()
    assert mine[0].owner == world["rep"].user


def test_all_matching_follows_the_filter_and_the_scope(world, client_as):
    mine = deals(world, 2, owner=world["rep"], stage="qualify")
    deals(world, 1, owner=world["rep"], stage="propose")
    deals(world, 2, owner=world["admin"], stage="qualify")
    propose = world["stages"]["propose"]
    response = post(
        client_as(world["rep"]),
        "move_stage",
        all_matching=True,
        stage=str(world["stages"]["qualify"].public_id),
        bulk_stage=str(propose.public_id),
    )
    assert "Moved 2 deals" in response.content.decode()
    assert set(
        Deal.objects.for_org(world["org"]).filter(stage=propose, owner=world["rep"].user)
    ) >= set(Deal.objects.for_org(world["org"]).filter(pk__in=[d.pk for d in mine]))
    assert (
        Deal.objects.for_org(world["org"]).filter(owner=world["admin"].user, stage=propose).count()
        == 0
    )


def test_an_invalid_filter_never_widens_all_matching(world, client_as):
    rows = deals(world, 2)
    response = post(
        client_as(world["admin"]),
        "add_tags",
        all_matching=True,
        filters="{broken",
        **{"bulk_tags.add_tags": "x"},
    )
    assert "Fix the filter first" in response.content.decode()
    assert not DealTag.objects.filter(deal__in=rows).exists()


def test_another_orgs_deals_are_never_touched(world, client_as):
    other = OrganizationFactory()
    foreign = DealFactory(org=other, title="Foreign")
    response = post(client_as(world["admin"]), "add_tags", [foreign], **{"bulk_tags.add_tags": "x"})
    assert "Foreign" not in response.content.decode()
    assert not DealTag.objects.filter(deal=foreign).exists()


def test_rights_and_field_rules_are_checked_first(world, client_as):
    viewer = member(world["org"], "viewer")
    rows = deals(world, 1)
    assert post(client_as(viewer), "add_tags", rows, bulk_tags="x").status_code == 403
    admin_role = role(world["org"], "admin")
    locked = MembershipFactory(
        org=world["org"],
        role=custom_role(
            world["org"], permissions=admin_role.permissions, field_rules={"deal.tags": "visible"}
        ),
    )
    assert post(client_as(locked), "add_tags", rows, bulk_tags="x").status_code == 403
    assert not DealTag.objects.filter(deal__in=rows).exists()


def test_bad_arguments_get_a_message(world, client_as):
    client = client_as(world["admin"])
    rows = deals(world, 1)
    assert "Choose a stage" in post(client, "move_stage", rows, bulk_stage="nope").content.decode()
    assert "Choose a member" in post(client, "change_owner", rows).content.decode()
    assert (
        "Type at least one tag" in post(client, "add_tags", rows, bulk_tags=" , ").content.decode()
    )
    assert "Choose an action" in post(client, "explode", rows).content.decode()
    assert "Select at least one deal" in post(client, "add_tags", bulk_tags="x").content.decode()


def test_a_big_selection_runs_as_a_job(
    world, client_as, monkeypatch, django_capture_on_commit_callbacks
):
    monkeypatch.setattr(deal_bulk, "INLINE_LIMIT", 3)
    monkeypatch.setattr(deal_bulk, "CHUNK_SIZE", 2)
    rows = deals(world, 5)
    outsider = deals(world, 1, owner=world["admin"])[0]
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = post(client_as(world["admin"]), "add_tags", rows, bulk_tags="wave")
    job = BackgroundJob.objects.for_org(world["org"]).get(kind=deal_bulk.JOB_KIND)
    assert len(callbacks) == 1
    assert reverse("crm:job_progress", args=[job.public_id]) in response.content.decode()
    assert job.total == 5 and not DealTag.objects.filter(deal__in=rows).exists()
    assert run_job(job) == "ran"
    job.refresh_from_db()
    assert job.status == BackgroundJob.Status.DONE
    assert job.progress == 5
    assert job.result["changed"] == 5
    assert job.result["summary"].startswith("Tagged 5 deals with wave.")
    assert DealTag.objects.filter(deal__in=rows, tag__name="wave").count() == 5
    assert not DealTag.objects.filter(deal=outsider).exists()
    assert AuditEvent.objects.for_org(world["org"]).filter(verb="deals.bulk_action").count() == 1


def test_a_job_skips_deals_that_left_the_members_scope(world, client_as, monkeypatch):
    monkeypatch.setattr(deal_bulk, "INLINE_LIMIT", 1)
    rows = deals(world, 3, owner=world["rep"])
    post(client_as(world["rep"]), "add_tags", rows, bulk_tags="later")
    job = BackgroundJob.objects.for_org(world["org"]).get(kind=deal_bulk.JOB_KIND)
    # Before the job runs, one deal is given to someone else.
    Deal.objects.for_org(world["org"]).filter(pk=rows[0].pk).update(owner=world["admin"].user)
    run_job(job)
    job.refresh_from_db()
    assert job.result["changed"] == 2 and job.result["skipped"] == 1
    assert "1 skipped" in job.result["summary"]
    assert not DealTag.objects.filter(deal=rows[0]).exists()


def test_a_job_keeps_the_filter_it_was_started_with(world, client_as, monkeypatch):
    monkeypatch.setattr(deal_bulk, "INLINE_LIMIT", 1)
    client = client_as(world["admin"])
    chosen = deals(world, 2, stage="qualify")
    others = deals(world, 2, stage="propose")
    qualify = world["stages"]["qualify"]
    client.post(
        reverse("pipeline:deal_view_create"),
        {"name": "Qualifying", "stage": str(qualify.public_id)},
    )
    view = SmartView.objects.for_org(world["org"]).get(name="Qualifying")
    post(client, "add_tags", all_matching=True, view=str(view.public_id), bulk_tags="picked")
    job = BackgroundJob.objects.for_org(world["org"]).get(kind=deal_bulk.JOB_KIND)
    view.delete()  # the view goes before the job runs: the job still knows its filter
    run_job(job)
    assert DealTag.objects.filter(deal__in=chosen, tag__name="picked").count() == 2
    assert not DealTag.objects.filter(deal__in=others).exists()
