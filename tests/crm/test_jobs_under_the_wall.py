"""Jobs run by a worker work behind the tenant wall (crm.rls): a Celery task starts in the app
role with no organization, and the job runner puts the job's organization on the connection
for the whole run, so a runner's unscoped query still sees its own organization only, and a
sweep that spans organizations says so. These run outside a test transaction, as a worker
does (an eager task inside a transaction keeps that transaction's context)."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection

from contacts.importing import services as import_services
from contacts.importing.models import ImportJob
from contacts.models import Contact, ScoringRule
from contacts.tasks import nightly_rescore_task
from crm import jobs
from crm.celery import app as celery_app
from crm.jobs.tasks import run_job_task
from crm.models import BackgroundJob
from crm.permissions import Policy
from crm.services import Actor
from tests.factories import BackgroundJobFactory, ContactFactory, OrganizationFactory, member

pytestmark = pytest.mark.django_db(transaction=True)

KIND = "crm.test_counting_job"
seen: list[tuple[str, int]] = []


@jobs.runner(KIND, model="crm.BackgroundJob")
def counting_job(job):
    """Counts contacts without for_org, between chunks and inside them."""
    seen.append(("before", Contact.objects.count()))

    def process(ids):
        seen.append(("chunk", Contact.objects.count()))
        return {}

    done = jobs.run_chunks(job, lambda cursor: [1] if cursor == 0 else [], process)
    seen.append(("after", Contact.objects.count()))
    if done:
        jobs.finish(job)


def session_role() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_user = session_user")
        return "session user" if cursor.fetchone()[0] else "app role"


@pytest.fixture
def two_orgs():
    a = OrganizationFactory(name="Wall A", slug="wall-a")
    b = OrganizationFactory(name="Wall B", slug="wall-b")
    ContactFactory.create_batch(2, org=a)
    ContactFactory.create_batch(3, org=b)
    return a, b


def test_a_worker_runs_a_job_in_its_organization_only(two_orgs):
    a, _ = two_orgs
    seen.clear()
    job = BackgroundJobFactory(org=a, kind=KIND, total=1)

    assert run_job_task.apply(args=[KIND, a.pk, job.pk]).get() == "ran"

    assert seen == [("before", 2), ("chunk", 2), ("after", 2)]
    assert BackgroundJob.objects.get(pk=job.pk).status == "done"
    # The worker's connection is itself again once the task is over.
    assert session_role() == "session user"


def test_the_sweep_and_the_nightly_rescore_span_organizations_on_purpose(two_orgs, monkeypatch):
    a, b = two_orgs
    for org in (a, b):
        ScoringRule.objects.create(
            org=org,
            name="Recently active",
            points=5,
            condition={"field": "last_activity_at", "op": "in_last_days", "value": 30},
        )
    monkeypatch.setitem(celery_app.conf, "task_always_eager", True)

    assert nightly_rescore_task.apply().get() == 2

    rescores = BackgroundJob.objects.filter(kind="contacts.rescore")
    assert sorted(rescores.values_list("org_id", "status")) == sorted(
        [(a.pk, "done"), (b.pk, "done")]
    )
    assert session_role() == "session user"


def test_an_import_runs_through_a_worker_behind_the_wall(two_orgs, monkeypatch):
    a, _ = two_orgs
    owner = member(a, "owner")
    actor, policy = Actor.for_user(owner.user), Policy(owner)
    job = import_services.import_create(
        org=a,
        actor=actor,
        policy=policy,
        upload=SimpleUploadedFile("people.csv", b"Email\nnew1@example.com\nnew2@example.com\n"),
    )
    job = import_services.import_set_mapping(
        job=job,
        actor=actor,
        policy=policy,
        mapping=job.mapping,
        defaults={},
        import_policy="upsert",
        blank_policy="keep",
    )
    monkeypatch.setitem(celery_app.conf, "task_always_eager", True)

    import_services.import_start(job=job, actor=actor, policy=policy)

    job = ImportJob.objects.get(pk=job.pk)
    assert (job.status, job.created_count, job.progress) == ("done", 2, 2), job.error
    assert Contact.objects.filter(org=a).count() == 4
    assert session_role() == "session user"
