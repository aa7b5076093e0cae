"""Django admin for staff: read-mostly views of contacts data across organizations, for
support and debugging. Members never use it; everything they do goes through the app."""

from django.contrib import admin

from .models import (
    Activity,
    Company,
    Contact,
    ContactList,
    CustomFieldDefinition,
    Note,
    ScoringRule,
    SmartView,
    Tag,
    Task,
)


class OrgScopedAdmin(admin.ModelAdmin):
    list_select_related = ["org"]
    readonly_fields = ["public_id", "created_at"]
    show_full_result_count = False  # a COUNT over millions of rows per page view is waste


@admin.register(Contact)
class ContactAdmin(OrgScopedAdmin):
    list_display = ["__str__", "email", "org", "owner", "lifecycle_stage", "is_archived"]
    list_filter = ["is_archived", "lifecycle_stage", "status"]
    search_fields = ["email", "first_name", "last_name"]
    raw_id_fields = ["company", "owner", "tags"]
    list_select_related = ["org", "owner"]


@admin.register(Company)
class CompanyAdmin(OrgScopedAdmin):
    list_display = ["name", "domain", "org", "is_archived"]
    search_fields = ["name", "domain"]
    raw_id_fields = ["owner"]


@admin.register(Tag)
class TagAdmin(OrgScopedAdmin):
    list_display = ["name", "org", "color"]
    search_fields = ["name"]


@admin.register(CustomFieldDefinition)
class CustomFieldDefinitionAdmin(OrgScopedAdmin):
    list_display = ["label", "key", "entity", "field_type", "org", "is_active"]
    list_filter = ["entity", "field_type", "is_active"]


@admin.register(Activity)
class ActivityAdmin(OrgScopedAdmin):
    list_display = ["type", "subject", "org", "occurred_at"]
    list_filter = ["type"]
    raw_id_fields = ["contact", "company", "actor"]


@admin.register(Note)
class NoteAdmin(OrgScopedAdmin):
    list_display = ["__str__", "org", "created_at"]
    raw_id_fields = ["contact", "company", "author"]


@admin.register(Task)
class TaskAdmin(OrgScopedAdmin):
    list_display = ["title", "org", "status", "due_at", "assignee"]
    list_filter = ["status", "priority"]
    raw_id_fields = ["contact", "company", "assignee", "created_by"]


@admin.register(SmartView)
class SmartViewAdmin(OrgScopedAdmin):
    list_display = ["name", "org", "owner", "is_shared"]
    raw_id_fields = ["owner"]


@admin.register(ContactList)
class ContactListAdmin(OrgScopedAdmin):
    list_display = ["name", "org"]
    raw_id_fields = ["contacts", "created_by"]


@admin.register(ScoringRule)
class ScoringRuleAdmin(OrgScopedAdmin):
    list_display = ["name", "org", "points", "is_active"]
