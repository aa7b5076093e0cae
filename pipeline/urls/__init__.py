"""Pipeline URLs (namespace "pipeline"). Each area keeps its routes in its own module."""

from . import board, deals, forecast, object_links, objects, order_inbound, orders, settings, table

app_name = "pipeline"

urlpatterns: list = [
    *board.urlpatterns,
    *deals.urlpatterns,
    *forecast.urlpatterns,
    *orders.urlpatterns,
    *order_inbound.urlpatterns,
    *objects.urlpatterns,
    *object_links.urlpatterns,
    *settings.urlpatterns,
    *table.urlpatterns,
]
