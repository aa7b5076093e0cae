"""Custom objects: the types an admin defines (Settings → Custom objects) and their records.

A record and a field are addressed by their own public id (their type is found through
them), so a URL never pairs a type with another type's row."""

from django.urls import path

from ..views import object_types, objects

urlpatterns: list = [
    # Settings → Custom objects
    path("settings/objects/", object_types.object_types, name="object_types"),
    path("settings/objects/new/", object_types.object_type_create, name="object_type_create"),
    path(
        "settings/objects/<uuid:object_type_public_id>/",
        object_types.object_type_detail,
        name="object_type_detail",
    ),
    path(
        "settings/objects/<uuid:object_type_public_id>/edit/",
        object_types.object_type_edit,
        name="object_type_edit",
    ),
    path(
        "settings/objects/<uuid:object_type_public_id>/delete/",
        object_types.object_type_delete,
        name="object_type_delete",
    ),
    path(
        "settings/objects/<uuid:object_type_public_id>/fields/new/",
        object_types.object_field_create,
        name="object_field_create",
    ),
    path(
        "settings/objects/fields/<uuid:objectfield_public_id>/edit/",
        object_types.object_field_edit,
        name="object_field_edit",
    ),
    path(
        "settings/objects/fields/<uuid:objectfield_public_id>/delete/",
        object_types.object_field_delete,
        name="object_field_delete",
    ),
    path(
        "settings/objects/fields/<uuid:objectfield_public_id>/move/",
        object_types.object_field_move,
        name="object_field_move",
    ),
    path(
        "settings/objects/fields/<uuid:objectfield_public_id>/primary/",
        object_types.object_field_make_primary,
        name="object_field_make_primary",
    ),
    # Records
    path("objects/", objects.object_index, name="object_index"),
    path(
        "objects/<uuid:object_type_public_id>/",
        objects.object_record_list,
        name="object_record_list",
    ),
    path(
        "objects/<uuid:object_type_public_id>/new/",
        objects.object_record_create,
        name="object_record_create",
    ),
    path(
        "objects/<uuid:object_type_public_id>/export/",
        objects.object_record_export,
        name="object_record_export",
    ),
    path(
        "objects/records/<uuid:objectrecord_public_id>/",
        objects.object_record_detail,
        name="object_record_detail",
    ),
    path(
        "objects/records/<uuid:objectrecord_public_id>/edit/",
        objects.object_record_edit,
        name="object_record_edit",
    ),
    path(
        "objects/records/<uuid:objectrecord_public_id>/delete/",
        objects.object_record_delete,
        name="object_record_delete",
    ),
]
