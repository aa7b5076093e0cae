"""Settings → Privacy, and the member's "Send double opt-in email" action on a contact."""

from django.urls import path

from ..views import privacy_settings

urlpatterns = [
    path(
        "settings/privacy/",
        privacy_settings.privacy_settings_page,
        name="privacy_settings",
    ),
    path(
        "contacts/<uuid:public_id>/opt-in/",
        privacy_settings.send_opt_in,
        name="send_opt_in",
    ),
]
