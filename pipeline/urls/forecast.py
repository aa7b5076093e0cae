"""Forecast routes: the figures, what changed, the pipeline report, exchange rates, quotas."""

from django.urls import path

from ..views import forecast

urlpatterns: list = [
    path("forecast/", forecast.forecast, name="forecast"),
    path("forecast/changes/", forecast.forecast_changes, name="forecast_changes"),
    path(
        "forecast/snapshots/take/", forecast.forecast_snapshot_take, name="forecast_snapshot_take"
    ),
    path("forecast/report/", forecast.report, name="pipeline_report"),
    path("forecast/rates/", forecast.rates, name="rates"),
    path("forecast/rates/<uuid:public_id>/", forecast.rate_edit, name="rate_edit"),
    path("forecast/rates/<uuid:public_id>/delete/", forecast.rate_delete, name="rate_delete"),
    path("forecast/quotas/", forecast.quotas, name="quotas"),
    path("forecast/quotas/<uuid:public_id>/", forecast.quota_edit, name="quota_edit"),
    path("forecast/quotas/<uuid:public_id>/delete/", forecast.quota_delete, name="quota_delete"),
]
