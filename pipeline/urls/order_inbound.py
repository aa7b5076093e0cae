"""The inbound order URL for shops and payment tools, its settings and its deliveries log."""

from django.urls import path

from ..views import order_inbound as views

urlpatterns: list = [
    # Public: no member, a secret token in the path and a signed body (no CSRF, no session).
    path("inbound/orders/<str:token>/", views.order_inbound, name="order_inbound"),
    path("settings/orders/", views.order_inbound_settings, name="order_inbound_settings"),
    path(
        "settings/orders/reveal/",
        views.order_inbound_reveal,
        name="order_inbound_reveal",
    ),
    path(
        "settings/orders/contacts/",
        views.order_inbound_create_contacts,
        name="order_inbound_create_contacts",
    ),
    path("settings/orders/rotate/", views.order_inbound_rotate, name="order_inbound_rotate"),
    path("settings/orders/deliveries/", views.order_deliveries, name="order_deliveries"),
]
