"""The orders registry: the Orders list and export, an order's page and forms, and the Orders
sections of contact and deal pages."""

from django.urls import path

from ..views import order_actions, orders

urlpatterns: list = [
    path("orders/", orders.order_list, name="order_list"),
    path("orders/export/", orders.order_export, name="order_export"),
    path("orders/new/", order_actions.order_create, name="order_create"),
    path("orders/deal-options/", order_actions.order_deal_options, name="order_deal_options"),
    path("orders/<uuid:order_public_id>/", orders.order_detail, name="order_detail"),
    path("orders/<uuid:order_public_id>/edit/", order_actions.order_edit, name="order_edit"),
    path("orders/<uuid:order_public_id>/status/", order_actions.order_status, name="order_status"),
    path("orders/<uuid:order_public_id>/delete/", order_actions.order_delete, name="order_delete"),
    # The Orders sections of a contact's and a deal's page
    path("contacts/<uuid:contact_public_id>/orders/", orders.contact_orders, name="contact_orders"),
    path("deals/<uuid:deal_public_id>/orders/", orders.deal_orders, name="deal_orders"),
]
