"""Compliance → Export all data."""

from django.urls import path

from ..views import org_export

urlpatterns = [
    path("export-all/", org_export.org_export_page, name="org_export"),
    path("export-all/start/", org_export.org_export_start, name="org_export_start"),
    path(
        "export-all/<uuid:public_id>/progress/",
        org_export.org_export_progress,
        name="org_export_progress",
    ),
    path(
        "export-all/download/<str:token>/",
        org_export.org_export_download,
        name="org_export_download",
    ),
]
