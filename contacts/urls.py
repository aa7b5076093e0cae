"""Contacts URLs (namespace "contacts"): the record, companies, tasks and the inbox,
custom-field settings, and the contact list with its smart views."""

from django.urls import path

from .importing.views import detail as import_job
from .importing.views import history as import_history
from .importing.views import mapping as import_mapping
from .importing.views import preview as import_preview
from .importing.views import upload as import_upload
from .importing.views import values as import_values
from .views import bulk, companies, data_health, export, record, scoring, settings, todos
from .views import list as contact_list_views
from .views import search as search_views
from .views.data_health_companies import company_duplicates, company_merge
from .views.duplicate_check import contact_duplicate_check

app_name = "contacts"

urlpatterns: list = [
    # Import: the wizard, the job's page (progress, diff, errors, undo) and the history.
    path("import/", import_upload.import_start, name="import_start"),
    path("import/<uuid:public_id>/", import_job.import_detail, name="import_detail"),
    path("import/<uuid:public_id>/map/", import_mapping.import_map, name="import_map"),
    path("import/<uuid:public_id>/values/", import_values.import_values, name="import_values"),
    path("import/<uuid:public_id>/preview/", import_preview.import_preview, name="import_preview"),
    path("import/<uuid:public_id>/progress/", import_job.import_progress, name="import_progress"),
    path("import/<uuid:public_id>/cancel/", import_job.import_cancel, name="import_cancel"),
    path("import/<uuid:public_id>/undo/", import_job.import_undo, name="import_undo"),
    path("import/<uuid:public_id>/errors.csv", import_job.import_errors, name="import_errors"),
    path("imports/", import_history.import_history, name="import_history"),
    # The contact list, its smart views and global search.
    path("", contact_list_views.contact_list, name="contact_list"),
    path("count/", contact_list_views.contact_count, name="contact_count"),
    path("columns/", contact_list_views.save_columns, name="list_columns"),
    path("views/", contact_list_views.smart_view_create, name="smart_view_create"),
    path("views/<uuid:public_id>/", contact_list_views.smart_view_edit, name="smart_view_edit"),
    path(
        "views/<uuid:public_id>/delete/",
        contact_list_views.smart_view_delete,
        name="smart_view_delete",
    ),
    path("search/", search_views.search, name="search"),
    path("search/suggest/", search_views.search_suggest, name="search_suggest"),
    # The contact record.
    path("new/", record.contact_create, name="contact_create"),
    path("new/duplicates/", contact_duplicate_check, name="contact_duplicate_check"),
    path("<uuid:public_id>/", record.contact_detail, name="contact_detail"),
    path("<uuid:public_id>/edit/", record.contact_edit, name="contact_edit"),
    path("<uuid:public_id>/fields/<str:key>/", record.contact_field, name="contact_field"),
    path(
        "<uuid:public_id>/fields/<str:key>/edit/",
        record.contact_field_edit,
        name="contact_field_edit",
    ),
    path("<uuid:public_id>/claim/", record.contact_claim, name="contact_claim"),
    path("<uuid:public_id>/release/", record.contact_release, name="contact_release"),
    path("<uuid:public_id>/archive/", record.contact_archive, name="contact_archive"),
    path("<uuid:public_id>/restore/", record.contact_restore, name="contact_restore"),
    path("<uuid:public_id>/log/", record.contact_log, name="contact_log"),
    path("<uuid:public_id>/notes/", record.contact_note_create, name="contact_note_create"),
    path("<uuid:public_id>/tasks/", record.contact_task_create, name="contact_task_create"),
    path("notes/<uuid:public_id>/edit/", record.note_edit, name="note_edit"),
    path("notes/<uuid:public_id>/delete/", record.note_delete, name="note_delete"),
    # Tasks and the inbox.
    path("inbox/", todos.inbox, name="inbox"),
    path("inbox/tasks/", todos.inbox_task_create, name="inbox_task_create"),
    path("inbox/log/", todos.inbox_log, name="inbox_log"),
    path("picker/", todos.contact_picker, name="contact_picker"),
    path("tasks/<uuid:public_id>/edit/", todos.task_edit, name="task_edit"),
    path("tasks/<uuid:public_id>/complete/", todos.task_complete, name="task_complete"),
    path("tasks/<uuid:public_id>/reopen/", todos.task_reopen, name="task_reopen"),
    path("tasks/<uuid:public_id>/delete/", todos.task_delete, name="task_delete"),
    # Companies.
    path("companies/", companies.company_list, name="company_list"),
    path("companies/new/", companies.company_create, name="company_create"),
    path("companies/options/", companies.company_options, name="company_options"),
    path("companies/<uuid:public_id>/", companies.company_detail, name="company_detail"),
    path("companies/<uuid:public_id>/edit/", companies.company_edit, name="company_edit"),
    path("companies/<uuid:public_id>/archive/", companies.company_archive, name="company_archive"),
    path("companies/<uuid:public_id>/restore/", companies.company_restore, name="company_restore"),
    # Settings → Custom fields.
    path("settings/fields/", settings.custom_fields, name="custom_fields"),
    path("settings/fields/new/", settings.custom_field_create, name="custom_field_create"),
    path(
        "settings/fields/<uuid:public_id>/edit/",
        settings.custom_field_edit,
        name="custom_field_edit",
    ),
    path(
        "settings/fields/<uuid:public_id>/deactivate/",
        settings.custom_field_deactivate,
        name="custom_field_deactivate",
    ),
    path(
        "settings/fields/<uuid:public_id>/reactivate/",
        settings.custom_field_reactivate,
        name="custom_field_reactivate",
    ),
]

# Bulk actions, exports and lead scoring (contacts.bulk, contacts.export, contacts.scoring).
urlpatterns += [
    path("bulk/actions/", bulk.bulk_actions, name="bulk_actions"),
    path("bulk/count/", bulk.bulk_count, name="bulk_count"),
    path("bulk/", bulk.bulk_action, name="bulk_action"),
    path("export.csv", export.export_csv, name="export_csv"),
    path("export.json", export.export_json, name="export_json"),
    path("<uuid:public_id>/score/", scoring.contact_score_reasons, name="score_reasons"),
    path("settings/scoring/", scoring.scoring, name="scoring"),
    path("settings/scoring/rescore/", scoring.scoring_rescore, name="scoring_rescore"),
    path(
        "settings/scoring/<uuid:public_id>/edit/",
        scoring.scoring_rule_edit,
        name="scoring_rule_edit",
    ),
    path(
        "settings/scoring/<uuid:public_id>/delete/",
        scoring.scoring_rule_delete,
        name="scoring_rule_delete",
    ),
]

# Data Health: duplicate pairs, compare and merge, "Not a duplicate", undo (contacts.dedup).
urlpatterns += [
    path("data-health/", data_health.data_health, name="data_health"),
    path("data-health/scan/", data_health.data_health_scan, name="data_health_scan"),
    path(
        "merge/<uuid:primary>/<uuid:secondary>/",
        data_health.merge_compare,
        name="merge_compare",
    ),
    path(
        "merge/<uuid:primary>/<uuid:secondary>/dismiss/",
        data_health.merge_dismiss,
        name="merge_dismiss",
    ),
    path("merge/selected/", data_health.merge_selected, name="merge_selected"),
    path("merges/<uuid:public_id>/undo/", data_health.merge_undo, name="merge_undo"),
    path("<uuid:public_id>/merge/", data_health.merge_pick, name="merge_pick"),
    path("<uuid:public_id>/merges/", data_health.merge_banner, name="merge_banner"),
]

# Data Health → Companies: duplicate companies and their merge (contacts.dedup.companies).
urlpatterns += [
    path("data-health/companies/", company_duplicates, name="company_duplicates"),
    path("data-health/companies/merge/", company_merge, name="company_merge"),
]
