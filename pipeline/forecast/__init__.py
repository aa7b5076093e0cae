"""The forecast: figures for a period in the organization's base currency, the weekly
snapshot and what changed since, the pipeline report (conversion and time in stage) and the
server-rendered charts that go with their tables.

- periods: the period picker's periods (this month, this quarter, next quarter, custom).
- rates: conversion to the base currency with dated exchange rates.
- figures: open, weighted, commit, best case and closed won, with their breakdowns and the
  quotas' attainment, from a few GROUP BY queries whatever the number of deals.
- snapshot / changes: the weekly snapshot and "what changed since last week".
- report: stage-to-stage conversion and median time in stage from the stage history.
- charts: SVG bar charts, each shown beside the table it draws.
"""
