"""The one job runner (crm.jobs): kinds register their runner, services enqueue on commit,
a job is claimed once, a lost worker's job is taken over (and fails after too many), chunks
commit with their cursor, and one sweep resends every kind's stalled jobs."""

import datetime as dt

import pytest
from django.utils import timezone

from crm import jobs
from crm.jobs.tasks import run_job_task
from crm.models import BackgroundJob
from tests.factories import BackgroundJobFactory

KIND = "crm.test_job"
processed: list[list[int]] = []


@jobs.runner(KIND, model="crm.BackgroundJob")
def run_test_job(job):
    """Counts to `params.upto` in chunks of `params.chunk`; `params.die_at` raises there."""
    upto, chunk = job.params["upto"], job.params.get("chunk", 3)

    def next_ids(cursor):
        return list(range(cursor + 1, min(cursor + chunk, upto) + 1))

    def process(ids):
        if job.params.get("die_at") in ids:
            raise RuntimeError("boom")
        processed.append(ids)
        return {"seen": len(ids)}

    if jobs.run_chunks(job, next_ids, process):
        jobs.finish(job, result={**job.result, "summary": "counted"})


@pytest.fixture(autouse=True)
def fresh_log():
    processed.clear()


def make_job(org, **params):
    job = BackgroundJobFactory(org=org, kind=KIND, total=params.get("upto", 0), params=params)
    return job


def stale():
    return timezone.now() - dt.timedelta(seconds=jobs.STALE_AFTER_SECONDS + 1)


def test_every_app_kind_is_registered():
    assert {
        "contacts.bulk",
        "contacts.rescore",
        "contacts.import",
        "contacts.import_undo",
    } <= set(jobs.registered_kinds())


def test_a_second_runner_for_a_kind_is_refused():
    with pytest.raises(ValueError, match="already registered"):
        jobs.runner(KIND, model="crm.BackgroundJob")(lambda job: None)


def test_enqueue_sends_the_task_only_once_the_transaction_commits(
    org, django_capture_on_commit_callbacks
):
    job = make_job(org, upto=1)
    with django_capture_on_commit_callbacks() as callbacks:
        jobs.enqueue(job)
    assert [c.args for c in callbacks] == [(KIND, org.pk, job.pk)]
    job.refresh_from_db()
    assert job.sent_at is not None


def test_enqueue_refuses_a_kind_without_a_runner(org):
    job = BackgroundJobFactory(org=org, kind="crm.nobody_runs_this")
    with pytest.raises(LookupError):
        jobs.enqueue(job)


def test_a_job_runs_in_chunks_to_the_end_with_its_cursor_and_progress(org):
    job = make_job(org, upto=7)

    assert run_job_task.apply(args=[KIND, org.pk, job.pk]).get() == "ran"

    job.refresh_from_db()
    assert processed == [[1, 2, 3], [4, 5, 6], [7]]
    assert (job.status, job.cursor, job.progress, job.percent) == ("done", 7, 7, 100)
    assert job.result == {"seen": 7, "summary": "counted"}
    assert (job.claimed_by, job.takeovers) == ("", 0)


def test_a_job_is_claimed_once(org):
    job = make_job(org, upto=1)
    assert jobs.claim(KIND, org.pk, job.pk, "worker-1") is not None
    assert jobs.claim(KIND, org.pk, job.pk, "worker-2") is None
    # The same task again (a retry keeps its id) takes it back at once.
    assert jobs.claim(KIND, org.pk, job.pk, "worker-1") is not None


def test_a_job_is_not_claimed_under_another_organization_or_kind(org, other_org):
    job = make_job(org, upto=1)
    assert jobs.claim(KIND, other_org.pk, job.pk, "w") is None
    assert jobs.claim("contacts.bulk", org.pk, job.pk, "w") is None
    job.refresh_from_db()
    assert (job.status, job.claimed_by) == ("queued", "")


def test_a_chunk_that_fails_leaves_the_cursor_where_the_last_commit_put_it(org):
    job = make_job(org, upto=9, die_at=5)

    run_job_task.apply(args=[KIND, org.pk, job.pk])

    job.refresh_from_db()
    assert processed == [[1, 2, 3]]
    assert (job.cursor, job.progress, job.status) == (3, 3, "failed")
    assert job.error == "The job stopped on an unexpected error (RuntimeError)."


def test_a_quiet_workers_job_is_taken_over_and_resumes_from_its_cursor(org):
    job = make_job(org, upto=6)
    first = jobs.claim(KIND, org.pk, job.pk, "dead-worker")
    BackgroundJob.objects.filter(pk=job.pk).update(cursor=3, progress=3)
    assert jobs.claim(KIND, org.pk, job.pk, "next-worker") is None  # still alive

    BackgroundJob.objects.filter(pk=first.pk).update(heartbeat_at=stale())
    assert run_job_task.apply(args=[KIND, org.pk, job.pk]).get() == "ran"

    job.refresh_from_db()
    assert processed == [[4, 5, 6]]
    assert (job.status, job.progress, job.takeovers) == ("done", 6, 0)


def test_a_job_that_keeps_losing_its_worker_fails_once(org):
    job = make_job(org, upto=3)
    assert jobs.claim(KIND, org.pk, job.pk, "w0")
    for number in range(jobs.MAX_TAKEOVERS):
        BackgroundJob.objects.filter(pk=job.pk).update(heartbeat_at=stale())
        assert jobs.claim(KIND, org.pk, job.pk, f"w{number + 1}")
    BackgroundJob.objects.filter(pk=job.pk).update(heartbeat_at=stale())

    assert jobs.claim(KIND, org.pk, job.pk, "last") is None
    assert jobs.claim(KIND, org.pk, job.pk, "after") is None

    job.refresh_from_db()
    assert job.status == "failed"
    assert job.error == jobs.GAVE_UP.format(times=jobs.MAX_TAKEOVERS + 1)


def test_heartbeat_tells_a_worker_it_lost_the_job(org):
    job = jobs.claim(KIND, org.pk, make_job(org, upto=1).pk, "w1")
    assert jobs.heartbeat(job) is True
    BackgroundJob.objects.filter(pk=job.pk).update(status="cancelled")
    assert jobs.heartbeat(job) is False


def test_a_released_job_is_claimed_again_at_once(org):
    job = jobs.claim(KIND, org.pk, make_job(org, upto=1).pk, "w1")
    jobs.release(job)
    job.refresh_from_db()
    assert (job.status, job.claimed_by, job.heartbeat_at) == ("queued", "", None)
    assert jobs.claim(KIND, org.pk, job.pk, "w2") is not None


def test_the_sweep_resends_lost_and_quiet_jobs_once(
    org, other_org, django_capture_on_commit_callbacks
):
    long_ago = timezone.now() - dt.timedelta(seconds=jobs.RESEND_WAITING_AFTER_SECONDS + 1)
    lost = make_job(org, upto=1)
    BackgroundJob.objects.filter(pk=lost.pk).update(sent_at=long_ago)
    quiet = make_job(other_org, upto=1)
    BackgroundJob.objects.filter(pk=quiet.pk).update(
        status="running", claimed_by="w", heartbeat_at=stale()
    )
    waiting = make_job(org, upto=1)
    jobs.enqueue(waiting)  # just sent

    with django_capture_on_commit_callbacks() as callbacks:
        assert jobs.sweep_stalled() == 2
    assert sorted(c.args for c in callbacks) == sorted(
        [(KIND, org.pk, lost.pk), (KIND, other_org.pk, quiet.pk)]
    )
    with django_capture_on_commit_callbacks() as again:
        assert jobs.sweep_stalled() == 0
    assert again == []
