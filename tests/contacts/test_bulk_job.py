"""Big bulk actions run as a background job: chunked, with progress on the job, claimed once,
resumable after a worker died without applying any chunk twice, and followed on a page that
polls until the job has finished."""

import datetime as dt
import time

import pytest
from django.urls import reverse
from django.utils import timezone

from contacts import bulk as bulk_service
from contacts import scoring
from contacts.bulk import run as bulk_run
from contacts.models import Activity, Contact
from crm import jobs
from crm.celery import app as celery_app
from crm.jobs.tasks import run_job_task
from crm.models import AuditEvent, BackgroundJob, Notification
from crm.services import Actor
from tests.factories import ContactFactory, member
from tests.jobhelpers import run_job


def resend_stalled_jobs() -> int:
    return jobs.sweep_stalled()


class WorkerDied(BaseException):
    """Stands in for a killed worker: not an Exception, so nothing cleans up after it."""


@pytest.fixture
def small_chunks(monkeypatch):
    """Five contacts per chunk, and anything above three runs in the background."""
    monkeypatch.setattr(bulk_run, "CHUNK_SIZE", 5)
    monkeypatch.setattr(bulk_run, "INLINE_LIMIT", 3)


def worker_dies_in_chunk(number: int, monkeypatch):
    """Make the worker die while processing its `number`th chunk; returns the real chunk
    processing (to put back) and the chunks it was handed."""
    process, calls = bulk_run._process_chunk, []

    def dies(run, ids):
        calls.append(ids)
        if len(calls) == number:
            raise WorkerDied
        return process(run, ids)

    monkeypatch.setattr(bulk_run, "_process_chunk", dies)
    return process, calls


def start_stage_job(client, contacts, stage="customer"):
    response = client.post(
        reverse("contacts:bulk_action"),
        {
            "bulk_action": "change_stage",
            "bulk_stage": stage,
            "ids": [str(c.public_id) for c in contacts],
        },
        HTTP_HX_REQUEST="true",
    )
    assert response.status_code == 200
    return response, BackgroundJob.objects.get(kind=bulk_service.JOB_KIND)


def test_a_big_selection_becomes_a_job_that_reaches_100_percent(
    org, owner, client_as, small_chunks, monkeypatch, django_capture_on_commit_callbacks
):
    contacts = ContactFactory.create_batch(12, org=org, lifecycle_stage="lead")
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response, job = start_stage_job(client_as(owner), contacts)

    assert job.status == BackgroundJob.Status.QUEUED
    assert job.total == 12
    assert len(callbacks) == 1  # the task is sent only once the job row is committed
    assert f'hx-get="{reverse("crm:job_progress", args=[job.public_id])}"' in (
        response.content.decode()
    )
    assert Contact.objects.filter(lifecycle_stage="customer").count() == 0

    seen_progress = []
    process = bulk_run._process_chunk

    def watching(run, ids):
        seen_progress.append(BackgroundJob.objects.get(pk=job.pk).progress)
        return process(run, ids)

    monkeypatch.setattr(bulk_run, "_process_chunk", watching)
    assert run_job(job) == "ran"

    job.refresh_from_db()
    assert job.status == BackgroundJob.Status.DONE
    assert job.progress == job.total == 12
    assert job.percent == 100
    assert seen_progress == [0, 5, 10]
    assert job.result["changed"] == 12
    assert job.result["summary"] == "Changed the stage of 12 contacts to Customer."
    assert Contact.objects.filter(lifecycle_stage="customer").count() == 12
    assert Activity.objects.filter(type=Activity.Type.STAGE_CHANGE).count() == 12


def test_a_job_resumed_after_its_worker_died_does_not_apply_twice(
    org, owner, client_as, small_chunks, monkeypatch, django_capture_on_commit_callbacks
):
    contacts = ContactFactory.create_batch(12, org=org, lifecycle_stage="lead")
    with django_capture_on_commit_callbacks(execute=False):
        _, job = start_stage_job(client_as(owner), contacts)
    process, calls = worker_dies_in_chunk(3, monkeypatch)
    with pytest.raises(WorkerDied):
        run_job(job, throw=True)

    job.refresh_from_db()
    assert job.status == BackgroundJob.Status.RUNNING
    assert (job.progress, job.cursor) == (10, calls[1][-1])
    assert Contact.objects.filter(lifecycle_stage="customer").count() == 10

    # Re-delivered while the dead worker's lease still holds: nobody may take it yet.
    monkeypatch.setattr(bulk_run, "_process_chunk", process)
    assert run_job(job) == "not claimed"

    # Once the dead worker has been quiet long enough, the next message takes the job over.
    quiet = timezone.now() - dt.timedelta(seconds=jobs.STALE_AFTER_SECONDS + 1)
    BackgroundJob.objects.filter(pk=job.pk).update(heartbeat_at=quiet)
    assert run_job(job) == "ran"

    job.refresh_from_db()
    assert job.status == BackgroundJob.Status.DONE
    assert job.progress == 12
    assert Contact.objects.filter(lifecycle_stage="customer").count() == 12
    for contact in contacts:
        events = AuditEvent.objects.filter(verb="contact.updated", object_id=str(contact.public_id))
        assert events.count() == 1, contact
    assert Activity.objects.filter(type=Activity.Type.STAGE_CHANGE).count() == 12
    assert AuditEvent.objects.filter(verb="contacts.bulk_action").count() == 1


def test_a_finished_job_is_not_run_again(
    org, owner, client_as, small_chunks, django_capture_on_commit_callbacks
):
    contacts = ContactFactory.create_batch(6, org=org)
    with django_capture_on_commit_callbacks(execute=False):
        _, job = start_stage_job(client_as(owner), contacts)
    run_job(job)

    assert run_job(job) == "not claimed"
    assert AuditEvent.objects.filter(verb="contact.updated").count() == 6


def test_a_job_is_only_claimed_under_its_own_organization(
    org, other_org, owner, client_as, small_chunks, django_capture_on_commit_callbacks
):
    contacts = ContactFactory.create_batch(6, org=org)
    with django_capture_on_commit_callbacks(execute=False):
        _, job = start_stage_job(client_as(owner), contacts)

    wrong_org = run_job_task.apply(args=[job.kind, other_org.pk, job.pk]).get()
    assert wrong_org == "not claimed"
    job.refresh_from_db()
    assert job.status == BackgroundJob.Status.QUEUED
    assert run_job(job) == "ran"


def test_a_job_fails_cleanly_when_its_member_lost_the_right(
    org, members, client_as, small_chunks, django_capture_on_commit_callbacks
):
    admin = members["admin"]
    contacts = ContactFactory.create_batch(6, org=org, lifecycle_stage="lead")
    with django_capture_on_commit_callbacks(execute=False):
        _, job = start_stage_job(client_as(admin), contacts)
    admin.role = members["viewer"].role
    admin.save(update_fields=["role"])

    run_job(job)

    job.refresh_from_db()
    assert job.status == BackgroundJob.Status.FAILED
    assert "may not" in job.error
    assert Contact.objects.filter(lifecycle_stage="customer").count() == 0


def test_the_progress_page_polls_until_the_job_has_finished(
    org, owner, client_as, small_chunks, django_capture_on_commit_callbacks
):
    contacts = ContactFactory.create_batch(6, org=org)
    with django_capture_on_commit_callbacks(execute=False):
        _, job = start_stage_job(client_as(owner), contacts)
    url = reverse("crm:job_progress", args=[job.public_id])
    client = client_as(owner, htmx=True)

    running = client.get(url)
    page = client_as(owner).get(url)
    run_job(job)
    finished = client.get(url)

    assert 'hx-trigger="every 1s"' in running.content.decode()
    assert "Waiting for a worker" in running.content.decode()
    assert "<html" in page.content.decode() and "Background job" in page.content.decode()
    assert 'hx-trigger="every 1s"' not in finished.content.decode()
    assert "Changed the stage of 6 contacts" in finished.content.decode()
    assert "jobFinished" in finished["HX-Trigger"]


def test_only_the_jobs_starter_and_admins_follow_it(org, other_org, owner, client_as):
    job = BackgroundJob.objects.create(org=org, kind=bulk_service.JOB_KIND, created_by=owner.user)
    url = reverse("crm:job_progress", args=[job.public_id])

    assert client_as(member(org, "admin")).get(url).status_code == 200
    assert client_as(member(org, "team")).get(url).status_code == 404
    assert client_as(member(other_org, "owner")).get(url).status_code == 404


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_bulk_job_runs_through_a_real_celery_worker(org, owner, client_as, small_chunks):
    from celery.contrib.testing.worker import start_worker

    from crm.celery import app

    contacts = ContactFactory.create_batch(9, org=org, lifecycle_stage="lead")
    # Tasks left on this broker by earlier runs must not interfere. (Changing the app's default
    # queue here instead would outlive the test: Celery caches its queue set, and later tests'
    # workers would listen on the wrong queue.)
    app.control.purge()
    with start_worker(app, perform_ping_check=False, pool="solo", concurrency=1):
        _, job = start_stage_job(client_as(owner), contacts)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            job.refresh_from_db()
            if job.is_finished:
                break
            time.sleep(0.2)

    assert job.status == BackgroundJob.Status.DONE
    assert job.progress == 9
    assert Contact.objects.filter(lifecycle_stage="customer").count() == 9


def test_a_lost_database_connection_is_retried_from_where_the_job_stopped(
    org, owner, client_as, small_chunks, monkeypatch, django_capture_on_commit_callbacks
):
    from django.db import OperationalError

    contacts = ContactFactory.create_batch(12, org=org, lifecycle_stage="lead")
    with django_capture_on_commit_callbacks(execute=False):
        _, job = start_stage_job(client_as(owner), contacts)
    process = bulk_run._process_chunk
    calls = []

    def drops_once(run, ids):
        calls.append(ids)
        if len(calls) == 2:
            raise OperationalError("server closed the connection unexpectedly")
        return process(run, ids)

    monkeypatch.setattr(bulk_run, "_process_chunk", drops_once)
    run_job(job)

    job.refresh_from_db()
    assert job.status == BackgroundJob.Status.DONE
    assert Contact.objects.filter(lifecycle_stage="customer").count() == 12
    assert AuditEvent.objects.filter(verb="contact.updated").count() == 12


def test_the_starter_is_notified_when_the_job_is_done(
    org, owner, client_as, small_chunks, django_capture_on_commit_callbacks
):
    from crm.models import Notification

    contacts = ContactFactory.create_batch(6, org=org)
    with django_capture_on_commit_callbacks(execute=False):
        _, job = start_stage_job(client_as(owner), contacts)

    run_job(job)

    note = Notification.objects.get(user=owner.user)
    assert note.title == "Done: Change stage 6 contacts"
    assert note.body == "Changed the stage of 6 contacts to Customer."
    assert note.url == reverse("crm:job_progress", args=[job.public_id])


def stalled_job(org, kind, *, status="queued", sent_minutes_ago=None, **fields) -> BackgroundJob:
    sent_at = None
    if sent_minutes_ago is not None:
        sent_at = timezone.now() - dt.timedelta(minutes=sent_minutes_ago)
    return BackgroundJob.objects.create(
        org=org, kind=kind, status=status, sent_at=sent_at, **fields
    )


def test_the_sweeper_sends_the_task_again_only_for_stalled_jobs(
    org, other_org, django_capture_on_commit_callbacks
):
    now = timezone.now()
    quiet = now - dt.timedelta(seconds=jobs.STALE_AFTER_SECONDS + 1)
    rescore = scoring.JOB_KIND
    stalled = [
        stalled_job(org, bulk_service.JOB_KIND, sent_minutes_ago=11),
        stalled_job(other_org, rescore, status="running", claimed_by="w1", heartbeat_at=quiet),
    ]
    fine = [
        stalled_job(org, bulk_service.JOB_KIND, sent_minutes_ago=1),  # waiting its turn
        stalled_job(  # its worker went quiet, but a message was just sent again
            org, rescore, status="running", claimed_by="w1", heartbeat_at=quiet, sent_minutes_ago=1
        ),
        stalled_job(org, rescore, status="running", claimed_by="w1", heartbeat_at=now),
        stalled_job(org, bulk_service.JOB_KIND, status="done", sent_minutes_ago=90),
        stalled_job(org, "crm.something_else", sent_minutes_ago=90),  # no runner runs it
    ]
    sent_before = [job.sent_at for job in fine]

    with django_capture_on_commit_callbacks() as callbacks:
        assert resend_stalled_jobs() == 2

    sent = sorted(c.args for c in callbacks)
    assert sent == sorted(
        [
            (bulk_service.JOB_KIND, org.pk, stalled[0].pk),
            (rescore, other_org.pk, stalled[1].pk),
        ]
    )
    untouched = [BackgroundJob.objects.get(pk=job.pk).sent_at for job in fine]
    assert untouched == sent_before
    # One extra message per stalled job at a time, not one per sweep.
    with django_capture_on_commit_callbacks() as again:
        assert resend_stalled_jobs() == 0
    assert again == []


def test_a_rescore_whose_message_was_lost_no_longer_holds_off_the_next_one(
    org, monkeypatch, django_capture_on_commit_callbacks
):
    ContactFactory.create_batch(3, org=org)
    lost = stalled_job(org, scoring.JOB_KIND, sent_minutes_ago=15)
    actor = Actor.system("test")
    # While it waits, asking for a rescore reuses it: that is what made a lost one stick.
    with django_capture_on_commit_callbacks():
        assert scoring.start_rescore_job(org, actor) == lost
    monkeypatch.setitem(celery_app.conf, "task_always_eager", True)

    with django_capture_on_commit_callbacks(execute=True):
        assert resend_stalled_jobs() == 1

    lost.refresh_from_db()
    assert lost.status == BackgroundJob.Status.DONE
    # It went through every contact of the org.
    assert lost.cursor == Contact.objects.filter(org=org).latest("id").id
    with django_capture_on_commit_callbacks():
        assert scoring.start_rescore_job(org, actor) != lost


def redelivered(job) -> str:
    """Run `job` as a worker runs a message the broker handed out again because the worker
    that had it died (same task id, `redelivered` set by the broker)."""
    run_job_task.push_request(id="task-of-the-dead-worker", delivery_info={"redelivered": True})
    try:
        return run_job_task.run(job.kind, job.org_id, job.pk)
    finally:
        run_job_task.pop_request()


def job_claim(job, holder: str, *, redelivered: bool = False):
    return jobs.claim(job.kind, job.org_id, job.pk, holder, redelivered=redelivered)


def test_a_job_that_keeps_killing_its_worker_fails_instead_of_looping(
    org, owner, client_as, small_chunks, django_capture_on_commit_callbacks
):
    contacts = ContactFactory.create_batch(6, org=org, lifecycle_stage="lead")
    with django_capture_on_commit_callbacks(execute=False):
        _, job = start_stage_job(client_as(owner), contacts)
    # The first worker claims it and dies before committing a chunk.
    assert job_claim(job, "task-of-the-dead-worker")
    for _ in range(jobs.MAX_TAKEOVERS):
        assert job_claim(job, "task-of-the-dead-worker", redelivered=True)

    assert redelivered(job) == "not claimed"

    job.refresh_from_db()
    assert job.status == BackgroundJob.Status.FAILED
    assert job.error == (
        "Its worker stopped 3 times in a row while running it, so the job was stopped. "
        "What it finished before stays done."
    )
    assert Contact.objects.filter(lifecycle_stage="customer").count() == 0
    assert Notification.objects.filter(user=owner.user, level="error").count() == 1


def test_retries_and_takeovers_after_progress_are_not_counted_against_the_job(
    org, owner, client_as, small_chunks, monkeypatch, django_capture_on_commit_callbacks
):
    contacts = ContactFactory.create_batch(12, org=org, lifecycle_stage="lead")
    with django_capture_on_commit_callbacks(execute=False):
        _, job = start_stage_job(client_as(owner), contacts)
    holder = "task-of-the-dead-worker"
    assert job_claim(job, holder)
    # A task retried after a lost database connection keeps its id but is a new message.
    for _ in range(jobs.MAX_TAKEOVERS + 2):
        assert job_claim(job, holder)
    assert job_claim(job, holder, redelivered=True)
    # The next worker commits a chunk before it dies: that clears the count.
    process, _ = worker_dies_in_chunk(2, monkeypatch)
    with pytest.raises(WorkerDied):
        redelivered(job)
    assert BackgroundJob.objects.get(pk=job.pk).takeovers == 0
    monkeypatch.setattr(bulk_run, "_process_chunk", process)
    assert job_claim(job, holder, redelivered=True)

    # Four takeovers of redelivered messages in all, never more than two in a row.
    assert redelivered(job) == "ran"

    job.refresh_from_db()
    assert job.status == BackgroundJob.Status.DONE
    assert Contact.objects.filter(lifecycle_stage="customer").count() == 12
