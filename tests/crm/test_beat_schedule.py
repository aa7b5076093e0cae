"""Beat's schedule names tasks by string: a renamed or moved task would only show up as an
error in beat's log, once a day or once every few minutes, so each name is checked here."""

from django.conf import settings

from crm.celery import app as celery_app


def test_every_scheduled_task_is_a_registered_task():
    celery_app.loader.import_default_modules()
    scheduled = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}

    assert scheduled <= set(celery_app.tasks), scheduled - set(celery_app.tasks)
    assert "contacts.importing.tasks.resend_stalled_imports" in scheduled
