from django.apps import AppConfig
from django.db.models.signals import post_migrate


def _ensure_row_level_security(sender, using="default", apps=None, **kwargs):
    """After every migrate (and flush), every table with an org_id column has the wall,
    including one a migration just created."""
    from . import rls

    rls.ensure_row_level_security(using=using, app_registry=apps)


class CrmConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "crm"
    verbose_name = "CRM core"

    def ready(self):
        from . import rls

        # Sent once per app after a migrate; answering crm's alone runs it once, after all.
        post_migrate.connect(
            _ensure_row_level_security, sender=self, dispatch_uid="crm.rls.post_migrate"
        )
        # Celery tasks run in the app role with no organization until they enter one.
        rls.connect_signals()
        # The job runner's task, registered with Celery wherever Django runs, so a service's
        # `jobs.enqueue()` finds it (and honours task_always_eager) without importing it.
        from .jobs import tasks  # noqa: F401
