"""Beat's schedule names tasks by string: a renamed or moved task would only show up as an
error in beat's log, once a day or once every few minutes, so each name is checked here."""

from django.conf import settings

from crm.celery import app as celery_app


def test_every_scheduled_task_is_a_registered_task():
    celery_app.loader.import_default_modules()
    scheduled = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}

    assert scheduled <= set(celery_app.tasks), scheduled - set(celery_app.tasks)
    assert "crm.jobs.tasks.sweep_stalled_jobs_task" in scheduled


def test_the_outbox_relay_runs_every_few_seconds():
    """Notifications (and later webhooks) wait for the relay: a slow tick is a slow product."""
    entry = settings.CELERY_BEAT_SCHEDULE["relay-outbox"]

    assert entry["task"] == "crm.tasks.relay_outbox_task"
    assert entry["schedule"] <= 10


OUR_APPS = {"crm", "contacts", "ai"}


def test_every_task_of_ours_ends_in_task():
    """A `_task` suffix tells a Celery task from the service it wraps wherever either is
    named, and keeps task modules apart from the to-dos (`todos` modules)."""
    celery_app.loader.import_default_modules()
    ours = [
        task.run
        for task in celery_app.tasks.values()
        if task.run.__module__.split(".")[0] in OUR_APPS
    ]

    assert ours
    assert [f"{f.__module__}.{f.__name__}" for f in ours if not f.__name__.endswith("_task")] == []
