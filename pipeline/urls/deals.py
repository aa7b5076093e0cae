"""The deal page and what starts from it: create, edit, close, reopen, archive, the tabs'
actions (notes, tasks, line items, checklists, files), the deals of a contact or company,
Convert, and Settings → Products.

A row of a deal is addressed by its own public id (its deal is found through it, in the
member's scope), so a URL never pairs a deal with another deal's row."""

from django.urls import path

from ..views import catalog, deal_actions, deal_related, deal_tabs, deals

urlpatterns: list = [
    # The deal
    path("deals/new/", deal_actions.deal_create, name="deal_create"),
    path("deals/<uuid:public_id>/", deals.deal_detail, name="deal_detail"),
    path("deals/<uuid:public_id>/edit/", deal_actions.deal_edit, name="deal_edit"),
    path("deals/<uuid:public_id>/close/", deal_actions.deal_close, name="deal_close"),
    path("deals/<uuid:public_id>/reopen/", deal_actions.deal_reopen, name="deal_reopen"),
    path("deals/<uuid:public_id>/archive/", deal_actions.deal_archive, name="deal_archive"),
    path("deals/<uuid:public_id>/restore/", deal_actions.deal_restore, name="deal_restore"),
    # Contacts with roles
    path(
        "deals/<uuid:public_id>/contacts/", deal_actions.deal_contact_add, name="deal_contact_add"
    ),
    path(
        "deals/contacts/<uuid:dealcontact_public_id>/remove/",
        deal_actions.deal_contact_remove,
        name="deal_contact_remove",
    ),
    # Notes and tasks
    path("deals/<uuid:public_id>/notes/", deal_tabs.deal_note_create, name="deal_note_create"),
    path(
        "deals/notes/<uuid:note_public_id>/edit/", deal_tabs.deal_note_edit, name="deal_note_edit"
    ),
    path(
        "deals/notes/<uuid:note_public_id>/delete/",
        deal_tabs.deal_note_delete,
        name="deal_note_delete",
    ),
    path("deals/<uuid:public_id>/tasks/", deal_tabs.deal_task_create, name="deal_task_create"),
    # Line items
    path("deals/<uuid:public_id>/lines/", deal_tabs.line_item_add, name="line_item_add"),
    path(
        "deals/lines/<uuid:lineitem_public_id>/edit/",
        deal_tabs.line_item_edit,
        name="line_item_edit",
    ),
    path(
        "deals/lines/<uuid:lineitem_public_id>/delete/",
        deal_tabs.line_item_delete,
        name="line_item_delete",
    ),
    path(
        "deals/lines/<uuid:lineitem_public_id>/move/",
        deal_tabs.line_item_move,
        name="line_item_move",
    ),
    # Checklists
    path("deals/<uuid:public_id>/checklists/", deal_tabs.checklist_add, name="checklist_add"),
    path(
        "deals/checklists/<uuid:checklist_public_id>/rename/",
        deal_tabs.checklist_rename,
        name="checklist_rename",
    ),
    path(
        "deals/checklists/<uuid:checklist_public_id>/delete/",
        deal_tabs.checklist_delete,
        name="checklist_delete",
    ),
    path(
        "deals/checklists/<uuid:checklist_public_id>/items/",
        deal_tabs.checklist_item_add,
        name="checklist_item_add",
    ),
    path(
        "deals/steps/<uuid:checklistitem_public_id>/toggle/",
        deal_tabs.checklist_item_toggle,
        name="checklist_item_toggle",
    ),
    path(
        "deals/steps/<uuid:checklistitem_public_id>/rename/",
        deal_tabs.checklist_item_rename,
        name="checklist_item_rename",
    ),
    path(
        "deals/steps/<uuid:checklistitem_public_id>/delete/",
        deal_tabs.checklist_item_delete,
        name="checklist_item_delete",
    ),
    # Files
    path(
        "deals/<uuid:public_id>/attachments/",
        deal_tabs.attachment_upload,
        name="attachment_upload",
    ),
    path(
        "attachments/<uuid:attachment_public_id>/download/",
        deal_tabs.attachment_download,
        name="attachment_download",
    ),
    path(
        "attachments/<uuid:attachment_public_id>/delete/",
        deal_tabs.attachment_delete,
        name="attachment_delete",
    ),
    # From a contact or a company
    path("convert/<uuid:contact_public_id>/", deal_related.contact_convert, name="contact_convert"),
    path(
        "contacts/<uuid:contact_public_id>/deals/", deal_related.contact_deals, name="contact_deals"
    ),
    path(
        "companies/<uuid:company_public_id>/deals/",
        deal_related.company_deals,
        name="company_deals",
    ),
    # Settings → Products
    path("settings/products/", catalog.products, name="products"),
    path("settings/products/new/", catalog.product_create, name="product_create"),
    path(
        "settings/products/<uuid:product_public_id>/edit/",
        catalog.product_edit,
        name="product_edit",
    ),
    path(
        "settings/products/<uuid:product_public_id>/deactivate/",
        catalog.product_deactivate,
        name="product_deactivate",
    ),
    path(
        "settings/products/<uuid:product_public_id>/reactivate/",
        catalog.product_reactivate,
        name="product_reactivate",
    ),
]
