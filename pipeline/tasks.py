"""Celery tasks of the pipeline app: thin wrappers around its services."""

from __future__ import annotations

from celery import shared_task

from .forecast.snapshot import snapshot_all_orgs


@shared_task(ignore_result=True)
def weekly_forecast_snapshot_task() -> int:
    """Beat runs this every Monday morning: each organization's forecast is snapshotted
    (in its own tenant context), so "what changed since last week" has a week to compare
    with. An organization snapshotted in the last six days is skipped, so a retry or a
    second run does no harm."""
    return snapshot_all_orgs()
