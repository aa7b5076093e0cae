"""Compliance URLs (namespace "compliance"). Each area keeps its routes in its own module."""

from django.urls import path

from ..views import home
from . import org_export as org_export_urls
from . import privacy, public, requests, retention, suppressions

app_name = "compliance"

urlpatterns: list = [
    path("", home.compliance_home, name="home"),
    *suppressions.urlpatterns,
    *requests.urlpatterns,
    *privacy.urlpatterns,
    *public.urlpatterns,
    *org_export_urls.urlpatterns,
    *retention.urlpatterns,
]
