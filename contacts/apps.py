from django.apps import AppConfig


class ContactsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "contacts"

    def ready(self):
        # Registers the app's dashboard figures with crm.widgets.
        from . import widgets  # noqa: F401
