from django.apps import AppConfig


class ContactsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "contacts"

    def ready(self):
        # Modules that register the app with crm: its dashboard figures (crm.widgets), its
        # outbox consumers (crm.outbox: owners told of contacts given to them) and its
        # background-job runners (crm.jobs: bulk actions, rescores, imports and undos, so a
        # worker can run any kind it is handed).
        from crm.fields_registry import register_field_catalog

        from . import bulk, consumers, scoring, widgets  # noqa: F401
        from .fields import contact_field_catalog
        from .importing.services import run, undo  # noqa: F401

        # The contact fields a role's field rules can name (Settings → Roles).
        register_field_catalog("contacts", "Contact fields", contact_field_catalog)
