"""Pipeline URLs (namespace "pipeline"). Each area keeps its routes in its own module."""

from . import board, deals, forecast, settings, table

app_name = "pipeline"

urlpatterns: list = [
    *board.urlpatterns,
    *deals.urlpatterns,
    *forecast.urlpatterns,
    *settings.urlpatterns,
    *table.urlpatterns,
]
