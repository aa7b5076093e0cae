"""Retention rules: the list, a rule, its preview, turning it on and off, running it."""

from django.urls import path

from ..views import retention as views

urlpatterns: list = [
    path("retention/", views.retention_list, name="retention"),
    path("retention/<uuid:public_id>/", views.retention_detail, name="retention_detail"),
    path("retention/<uuid:public_id>/preview/", views.retention_preview, name="retention_preview"),
    path("retention/<uuid:public_id>/enable/", views.retention_enable, name="retention_enable"),
    path("retention/<uuid:public_id>/disable/", views.retention_disable, name="retention_disable"),
    path("retention/<uuid:public_id>/run/", views.retention_run, name="retention_run"),
    path("retention/<uuid:public_id>/delete/", views.retention_delete, name="retention_delete"),
]
