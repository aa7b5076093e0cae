"""Settings → Pipelines: pipelines, their stages, and the won and lost reasons."""

from django.urls import path

from ..views import settings as views

urlpatterns: list = [
    path("settings/", views.pipeline_settings, name="settings"),
    path("settings/new/", views.pipeline_create, name="pipeline_create"),
    path("settings/reasons/", views.reasons, name="reasons"),
    path(
        "settings/reasons/<uuid:deal_reason_public_id>/",
        views.reason_update,
        name="reason_update",
    ),
    path(
        "settings/reasons/<uuid:deal_reason_public_id>/deactivate/",
        views.reason_deactivate,
        name="reason_deactivate",
    ),
    path(
        "settings/reasons/<uuid:deal_reason_public_id>/reactivate/",
        views.reason_reactivate,
        name="reason_reactivate",
    ),
    path("settings/<uuid:pipeline_public_id>/", views.pipeline_detail, name="pipeline_detail"),
    path(
        "settings/<uuid:pipeline_public_id>/rename/",
        views.pipeline_rename,
        name="pipeline_rename",
    ),
    path(
        "settings/<uuid:pipeline_public_id>/default/",
        views.pipeline_set_default,
        name="pipeline_set_default",
    ),
    path(
        "settings/<uuid:pipeline_public_id>/delete/",
        views.pipeline_delete,
        name="pipeline_delete",
    ),
    path("settings/<uuid:pipeline_public_id>/stages/add/", views.stage_add, name="stage_add"),
    path(
        "settings/<uuid:pipeline_public_id>/stages/order/",
        views.stage_reorder,
        name="stage_reorder",
    ),
    path("settings/stages/<uuid:stage_public_id>/", views.stage_update, name="stage_update"),
    path("settings/stages/<uuid:stage_public_id>/move/", views.stage_move, name="stage_move"),
    path("settings/stages/<uuid:stage_public_id>/delete/", views.stage_delete, name="stage_delete"),
]
