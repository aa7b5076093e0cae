from django.apps import AppConfig


class ComplianceConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "compliance"
    verbose_name = "Privacy and compliance"

    def ready(self):
        # Background-job runners register with crm.jobs when the app loads, so a worker can
        # run any kind it is handed: retention runs and Export all data.
        from . import jobs  # noqa: F401
        from .services import org_export  # noqa: F401
