from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView

from .views import audit, core

crm_patterns = [
    path("", core.dashboard, name="dashboard"),
    path("no-access/", core.no_access, name="no_access"),
    path("orgs/<uuid:org_public_id>/switch/", core.switch_org, name="switch_org"),
    path("settings/audit/", audit.audit_log, name="audit_log"),
    path("settings/audit/export.csv", audit.audit_export, name="audit_export"),
]

urlpatterns = [
    path("healthz", core.healthz, name="healthz"),
    path("accounts/", include("allauth.urls")),
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="api_schema"),
    path("contacts/", include("contacts.urls")),
    path("", include((crm_patterns, "crm"))),
]
