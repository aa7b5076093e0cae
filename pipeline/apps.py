from django.apps import AppConfig


class PipelineConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "pipeline"
    verbose_name = "Pipeline"

    def ready(self):
        # Deal fields that a role's field rules can hide or lock (Settings → Roles).
        from crm.fields_registry import register_field_catalog

        # The "pipeline.bulk" job runner, and the dashboard's deal figures.
        from . import bulk, widgets  # noqa: F401
        from .contact_filters import register as register_contact_filters
        from .fields import DEAL_RULE_FIELDS

        # Contact filter conditions over orders and associated records (contacts.filters).
        register_contact_filters()

        register_field_catalog(
            "pipeline",
            "Deal fields",
            lambda org: DEAL_RULE_FIELDS,
            help="A deal's title, pipeline and stage are always shown to whoever sees the "
            "deal; hiding the value hides its currency too.",
        )
