"""The orders registry: the Orders list and export, an order's page and forms, and the Orders
sections of contact and deal pages."""

urlpatterns: list = []
