"""Suppression list, import, export and lift; the contact page's Compliance card."""

from django.urls import path

from ..views import contact_card, suppressions

urlpatterns = [
    path("suppressions/", suppressions.suppression_list, name="suppression_list"),
    path("suppressions/import/", suppressions.suppression_import, name="suppression_import"),
    path("suppressions/export/", suppressions.suppression_export, name="suppression_export"),
    path(
        "suppressions/<uuid:public_id>/lift/",
        suppressions.suppression_lift,
        name="suppression_lift",
    ),
    path(
        "contacts/<uuid:contact_public_id>/card/",
        contact_card.contact_card,
        name="contact_card",
    ),
    path(
        "contacts/<uuid:contact_public_id>/consent-history/",
        contact_card.contact_consent_history,
        name="contact_consent_history",
    ),
    path(
        "contacts/<uuid:contact_public_id>/suppress/",
        contact_card.contact_suppress,
        name="contact_suppress",
    ),
    path(
        "contacts/<uuid:contact_public_id>/suppressions/<uuid:public_id>/lift/",
        contact_card.contact_lift,
        name="contact_lift",
    ),
    path(
        "contacts/<uuid:contact_public_id>/legal-hold/",
        contact_card.contact_legal_hold,
        name="contact_legal_hold",
    ),
    path(
        "contacts/<uuid:contact_public_id>/consent/",
        contact_card.contact_consent,
        name="contact_consent",
    ),
]
