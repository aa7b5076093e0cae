"""Links between custom object records and contacts or deals (associations).

A link is addressed by its own public id; the section of a contact or a deal by that contact's
or deal's, a record's links by the record's. Each look-up goes through the member's scope."""

from django.urls import path

from ..views import object_links

urlpatterns: list = [
    # The Linked records section of a contact's and a deal's page
    path(
        "object-links/contacts/<uuid:contact_public_id>/",
        object_links.contact_objects,
        name="contact_objects",
    ),
    path(
        "object-links/contacts/<uuid:contact_public_id>/associate/",
        object_links.contact_object_associate,
        name="contact_object_associate",
    ),
    path(
        "object-links/deals/<uuid:deal_public_id>/",
        object_links.deal_objects,
        name="deal_objects",
    ),
    path(
        "object-links/deals/<uuid:deal_public_id>/associate/",
        object_links.deal_object_associate,
        name="deal_object_associate",
    ),
    # From a record's page
    path(
        "object-links/records/<uuid:objectrecord_public_id>/contacts/",
        object_links.object_record_link_contact,
        name="object_record_link_contact",
    ),
    path(
        "object-links/records/<uuid:objectrecord_public_id>/deals/",
        object_links.object_record_link_deal,
        name="object_record_link_deal",
    ),
    # One link
    path(
        "object-links/<uuid:objectassociation_public_id>/edit/",
        object_links.object_link_edit,
        name="object_link_edit",
    ),
    path(
        "object-links/<uuid:objectassociation_public_id>/remove/",
        object_links.object_link_remove,
        name="object_link_remove",
    ),
    # Pickers
    path("object-links/records/", object_links.object_record_picker, name="object_record_picker"),
    path("object-links/deals/", object_links.object_deal_picker, name="object_deal_picker"),
]
