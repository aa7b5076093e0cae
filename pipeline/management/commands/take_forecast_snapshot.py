"""Take a forecast snapshot now: of one organization (--org SLUG) or of every one.

python manage.py take_forecast_snapshot --org acme
python manage.py take_forecast_snapshot --all --weekly   # what beat does on Mondays
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from crm import rls
from crm.models import Organization
from pipeline.forecast.snapshot import snapshot_all_orgs, take_snapshot, take_weekly_snapshot


class Command(BaseCommand):
    help = "Snapshot the forecast of one organization or of all of them."

    def add_arguments(self, parser):
        target = parser.add_mutually_exclusive_group(required=True)
        target.add_argument("--org", help="The organization's slug.")
        target.add_argument("--all", action="store_true", help="Every organization.")
        parser.add_argument(
            "--weekly",
            action="store_true",
            help="Skip an organization snapshotted in the last six days, as beat does.",
        )

    def handle(self, *args, **options):
        if options["all"]:
            if not options["weekly"]:
                raise CommandError("--all runs the weekly snapshot: add --weekly.")
            taken = snapshot_all_orgs()
            self.stdout.write(f"{taken} snapshot(s) taken.")
            return
        org = Organization.objects.filter(slug=options["org"]).first()
        if org is None:
            raise CommandError(f"No organization has the slug {options['org']!r}.")
        with transaction.atomic(), rls.tenant(org.id):
            snapshot = take_weekly_snapshot(org) if options["weekly"] else take_snapshot(org)
        if snapshot is None:
            self.stdout.write(f"{org.name}: a snapshot from the last six days exists; none taken.")
        else:
            lines = snapshot.totals.get("lines", 0)
            self.stdout.write(f"{org.name}: snapshot taken with {lines} deal line(s).")
