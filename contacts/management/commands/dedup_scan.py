"""Scan an organization for duplicate contacts and print the pairs with scores and reasons:

    manage.py dedup_scan --org SLUG [--full] [--json] [--threshold X]

Without --full, the contacts changed since the last scan are rescanned (an organization never
scanned gets a full scan). The pairs printed are the organization's stored pairs after the
scan, best first: the same ones the Data Health page lists. --threshold X (0 to 1) prints
only pairs scored X or more; pairs below the organization's "possible" threshold are never
kept. With --json, one JSON object per line:

    {"a": "<contact public_id>", "b": "<contact public_id>", "score": 0.97, "reasons": ["…"]}
"""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from contacts.dedup.models import DuplicatePair
from contacts.dedup.scan import scan_full, scan_incremental
from crm import rls
from crm.models import Organization

PRINT_CHUNK = 2000


def _name(first: str, last: str, email: str) -> str:
    return f"{first} {last}".strip() or email or "(no name)"


class Command(BaseCommand):
    help = "Scan an organization for duplicate contacts and print the pairs found."

    def add_arguments(self, parser):
        parser.add_argument("--org", required=True, metavar="SLUG")
        parser.add_argument("--full", action="store_true", help="Scan every contact")
        parser.add_argument("--json", action="store_true", help="One JSON object per line")
        parser.add_argument("--threshold", type=float, default=None, metavar="X")

    def handle(self, *args, org, full, json: bool, threshold, **options):
        if threshold is not None and not 0 <= threshold <= 1:
            raise CommandError("--threshold must be between 0 and 1.")
        organization = Organization.objects.filter(slug=org).first()
        if organization is None:
            raise CommandError(f"No organization has the slug {org!r}.")
        result = (scan_full if full else scan_incremental)(organization)
        if not json:
            self.stderr.write(result.summary())
        printed = 0
        for row in self._pairs(organization, threshold):
            printed += 1
            self.stdout.write(self._json(row) if json else self._text(row))
        if not json:
            self.stderr.write(f"{printed:,} pairs printed.")

    def _pairs(self, org, threshold):
        with transaction.atomic(), rls.tenant(org.id):
            pairs = DuplicatePair.objects.for_org(org)
            if threshold is not None:
                pairs = pairs.filter(score__gte=threshold)
            yield from (
                pairs.order_by("-score", "id")
                .values_list(
                    "contact_a__public_id",
                    "contact_b__public_id",
                    "score",
                    "band",
                    "reasons",
                    "contact_a__first_name",
                    "contact_a__last_name",
                    "contact_a__email",
                    "contact_b__first_name",
                    "contact_b__last_name",
                    "contact_b__email",
                )
                .iterator(chunk_size=PRINT_CHUNK)
            )

    @staticmethod
    def _json(row) -> str:
        a, b, score, _band, reasons = row[:5]
        return json.dumps(
            {"a": str(a), "b": str(b), "score": round(score, 4), "reasons": list(reasons)},
            ensure_ascii=False,
        )

    @staticmethod
    def _text(row) -> str:
        a, b, score, band, reasons = row[:5]
        first = _name(*row[5:8])
        second = _name(*row[8:11])
        return (
            f"{score:.4f}  {band:<8}  {first} ({a})  ~  {second} ({b})\n"
            f"          {'; '.join(reasons)}"
        )
