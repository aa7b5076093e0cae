"""Benchmark the inbound order URL alone: `manage.py bench_inbound_orders --orders 20000`.

Uses (or makes) the organization `--org` (default "bench-inbound") and hands over to
pipeline.bench_inbound.run_inbound_bench; `bench_orders --part inbound` runs the same."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from crm.models import Organization
from crm.services import Actor, organization_create
from pipeline.bench_inbound import run_inbound_bench


class Command(BaseCommand):
    help = "Orders per second through the signed inbound order URL, and an idempotent replay."

    def add_arguments(self, parser):
        parser.add_argument("--org", default="bench-inbound", help="organization slug")
        parser.add_argument("--orders", type=int, default=20_000, help="orders per run")
        parser.add_argument("--batch", type=int, default=500, help="orders per request")
        parser.add_argument("--repeats", type=int, default=3, help="timed runs")

    def handle(self, *args, **options):
        slug = options["org"]
        org = Organization.objects.filter(slug=slug).first()
        if org is None:
            email = f"owner@{slug}.test"
            owner = get_user_model().objects.filter(email__iexact=email).first()
            if owner is None:
                owner = get_user_model().objects.create_user(email=email, password=None)
            org = organization_create(
                name="Bench inbound", slug=slug, owner=owner, actor=Actor.system("bench_inbound")
            )
        run_inbound_bench(
            org,
            orders=options["orders"],
            batch=options["batch"],
            stdout=self.stdout,
            repeats=options["repeats"],
        )
