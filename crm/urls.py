from allauth.account.decorators import secure_admin_login
from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView

from .views import (
    assets,
    audit,
    core,
    errors,
    jobs,
    members,
    notifications,
    organization,
    preferences,
)
from .views import roles as role_views

# The admin signs people in through the same page as the app, so its logins are rate limited
# (allauth) like every other; its own password form would let anyone guess without a limit.
# mypy refuses assigning to a method; replacing the one site's bound login is the intent.
admin.site.login = secure_admin_login(admin.site.login)  # type: ignore[method-assign]

crm_patterns = [
    path("", core.dashboard, name="dashboard"),
    path("no-access/", core.no_access, name="no_access"),
    path("orgs/<uuid:org_public_id>/switch/", core.switch_org, name="switch_org"),
    path("jobs/<uuid:public_id>/", jobs.job_progress, name="job_progress"),
    path("notifications/", notifications.notifications, name="notifications"),
    path("notifications/read/", notifications.notifications_read, name="notifications_read"),
    path("settings/customize/", preferences.customize, name="customize"),
    path(
        "settings/organization/",
        organization.organization_settings,
        name="organization_settings",
    ),
    path(
        "settings/organization/modules/",
        organization.organization_modules,
        name="organization_modules",
    ),
    path("settings/audit/", audit.audit_log, name="audit_log"),
    path("settings/audit/export.csv", audit.audit_export, name="audit_export"),
    path("settings/members/", members.members, name="members"),
    path("settings/members/invite/", members.member_invite, name="member_invite"),
    path(
        "settings/members/invitations/<uuid:invitation_public_id>/revoke/",
        members.invitation_revoke_view,
        name="invitation_revoke",
    ),
    path(
        "settings/members/<uuid:membership_public_id>/",
        members.member_update_view,
        name="member_update",
    ),
    path(
        "settings/members/<uuid:membership_public_id>/deactivate/",
        members.member_deactivate_view,
        name="member_deactivate",
    ),
    path(
        "settings/members/<uuid:membership_public_id>/reactivate/",
        members.member_reactivate_view,
        name="member_reactivate",
    ),
    path("settings/teams/", members.team_create_view, name="team_create"),
    path(
        "settings/teams/<uuid:team_public_id>/rename/",
        members.team_rename_view,
        name="team_rename",
    ),
    path("invitations/<str:token>/", members.accept_invitation, name="accept_invitation"),
    path("settings/roles/", role_views.role_list, name="roles"),
    path("settings/roles/<uuid:public_id>/", role_views.role_detail, name="role_detail"),
    path(
        "settings/roles/<uuid:public_id>/permission/",
        role_views.role_permission,
        name="role_permission",
    ),
    path(
        "settings/roles/<uuid:public_id>/field/",
        role_views.role_field_rule,
        name="role_field_rule",
    ),
    path("settings/roles/<uuid:public_id>/rename/", role_views.role_rename, name="role_rename"),
    path("settings/roles/<uuid:public_id>/delete/", role_views.role_delete, name="role_delete"),
]

urlpatterns = [
    path("healthz", core.healthz, name="healthz"),
    path("favicon.ico", assets.favicon, name="favicon"),
    path("accounts/", include("allauth.urls")),
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="api_schema"),
    path("contacts/", include("contacts.urls")),
    path("pipeline/", include("pipeline.urls")),
    path("compliance/", include("compliance.urls")),
    path("", include((crm_patterns, "crm"))),
]

# Styled error pages: 403 and 404 inside the app's layout (a public one when signed out),
# 500 a static page rendered without the request.
handler403 = errors.permission_denied
handler404 = errors.page_not_found
handler500 = errors.server_error
