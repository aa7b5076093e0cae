"""Compliance URLs (namespace "compliance"). Each area keeps its routes in its own module."""

from django.urls import path

from ..views import home

app_name = "compliance"

urlpatterns: list = [
    path("", home.compliance_home, name="home"),
]
