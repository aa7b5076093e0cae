"""The deal table: the list, its count, bulk actions, exports and saved deal views."""

from django.urls import path

from ..views import table

urlpatterns: list = [
    path("deals/", table.deal_list, name="deal_list"),
    path("deals/count/", table.deal_list_count, name="deal_list_count"),
    path("deals/bulk/", table.deal_list_bulk, name="deal_list_bulk"),
    path("deals/bulk/count/", table.deal_list_bulk_count, name="deal_list_bulk_count"),
    path("deals/export/", table.deal_export, name="deal_export"),
    path("deals/views/", table.deal_view_create, name="deal_view_create"),
    path("deals/views/<uuid:public_id>/edit/", table.deal_view_edit, name="deal_view_edit"),
    path("deals/views/<uuid:public_id>/delete/", table.deal_view_delete, name="deal_view_delete"),
]
