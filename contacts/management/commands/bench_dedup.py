"""Benchmark duplicate scans at scale: `manage.py bench_dedup --contacts 1000000`.

Seeds (or reuses) the organization `bench-dedup-<N>` with N contacts made by the labelled
generator (contacts.dedup.synth: people with 1-4 damaged copies each), loaded with COPY; each
contact's `source` is "synth <person>", the label. Then it runs the full scan and prints its
time per stage, peak memory (this process and its largest worker, from getrusage), pairs
found, candidate pairs per record, blocking recall (true pairs sharing a key whose block is
compared) and precision / recall / F1 against the labels at the probable and possible
thresholds; then an incremental scan after 1,000 contacts changed.

A copy keeping its original's email would break the one-active-contact-per-email rule, so a
repeated address is stored as the copy's other email (where an import would put it too).
"""

from __future__ import annotations

import json
import random
import resource
import subprocess
import sys
import time
import uuid
from collections import defaultdict

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import connection, transaction
from django.utils import timezone

from contacts.dedup import scan
from contacts.dedup.models import DedupKey
from contacts.dedup.scan import MAX_BLOCK
from contacts.dedup.synth import Generator
from contacts.demo.people import COLUMNS, NULL
from contacts.models import Company, Contact
from crm import rls
from crm.bulk_load import copy_lines, drop_for_load
from crm.models import Organization
from crm.services import Actor, organization_create

SEED_BATCH_PEOPLE = 20_000
CHANGED = 1000


def _text(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\t", " ").replace("\n", " ").replace("\r", " ")


def _peak_mb() -> tuple[float, float]:
    """Peak resident memory (MB) of this process and of its largest child so far."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return own, children


class Command(BaseCommand):
    help = "Seed labelled contacts with known duplicates and time the duplicate scans."

    def add_arguments(self, parser):
        parser.add_argument("--contacts", type=int, default=1_000_000, metavar="N")
        parser.add_argument("--seed", type=int, default=11)
        parser.add_argument("--workers", type=int, default=None)
        parser.add_argument("--skip-incremental", action="store_true")
        parser.add_argument("--skip-quality", action="store_true")

    def handle(self, *args, contacts, seed, workers, skip_incremental, skip_quality, **options):
        if contacts < 10:
            raise CommandError("--contacts must be at least 10.")
        out = self.stdout.write
        org = self._org(f"bench-dedup-{contacts}")
        have = self._count(org)
        if have < contacts:
            started = time.perf_counter()
            self._seed(org, contacts - have, seed + have)
            out(f"seeded {contacts - have:,} contacts in {time.perf_counter() - started:.1f}s")
            with connection.cursor() as cursor:
                cursor.execute("VACUUM ANALYZE contacts_contact")
            # Measured in a fresh process, so the seeding's memory is not the scan's peak.
            out("measuring in a fresh process…")
            subprocess.run([sys.executable, *sys.argv], check=True)  # noqa: S603 (our own command line)
            return
        else:
            out(f"reusing {org.slug}: {have:,} contacts")
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE contacts_contact")

        figures: dict = {"contacts": contacts}
        began = time.perf_counter()
        result = scan.scan_full(org, workers=workers, progress=self._progress(began))
        figures["full_scan_seconds"] = round(time.perf_counter() - began, 1)
        figures["stage_seconds"] = {k: round(v, 1) for k, v in result.seconds.items()}
        own, child = _peak_mb()
        figures["peak_rss_mb"] = {"scan_process": round(own), "largest_worker": round(child)}
        figures.update(
            pairs_found=len(result.pairs),
            compared=result.compared,
            candidates_per_record=result.candidates_per_record,
            keys=result.keys,
            blocks=result.blocks,
            oversized_blocks=result.oversized_blocks,
        )
        if not skip_quality:
            figures.update(self._quality(org, result))
        out(
            f"full scan of {result.contacts:,} contacts: {figures['full_scan_seconds']}s "
            f"({figures['stage_seconds']}); peak RSS {figures['peak_rss_mb']['scan_process']} MB"
            f" (largest worker {figures['peak_rss_mb']['largest_worker']} MB)"
        )
        out(
            f"compared {result.compared:,} pairs ({result.candidates_per_record} per record); "
            f"{result.keys:,} keys, {result.blocks:,} blocks, {result.oversized_blocks:,} "
            f"blocks over {MAX_BLOCK} left to other keys"
        )
        for band in ("probable", "possible") if not skip_quality else ():
            if band == "probable":
                out(
                    f"true pairs {figures['true_pairs']:,}; blocking recall "
                    f"{figures['blocking_recall']:.4f}"
                )
            row = figures[band]
            out(
                f"{band:>8} ≥ {row['threshold']:.6f}: precision {row['precision']:.4f} "
                f"recall {row['recall']:.4f} F1 {row['f1']:.4f} ({row['pairs']:,} pairs, "
                f"{row['false_positives']:,} wrong)"
            )
        if not skip_incremental:
            figures.update(self._incremental(org, seed))
            out(
                f"incremental scan of {CHANGED:,} changed contacts: "
                f"{figures['incremental_seconds']}s, {figures['incremental_compared']:,} pairs "
                "compared"
            )
        out(json.dumps(figures))

    # Seeding -------------------------------------------------------------------------------

    def _org(self, slug: str) -> Organization:
        org = Organization.objects.filter(slug=slug).first()
        if org is None:
            User = get_user_model()
            email = f"owner@{slug}.test"
            owner = User.objects.filter(email__iexact=email).first() or User.objects.create_user(
                email=email, password=None, first_name="Owner"
            )
            org = organization_create(
                name=slug, slug=slug, owner=owner, actor=Actor.system("bench_dedup")
            )
        return org

    def _count(self, org) -> int:
        with transaction.atomic(), rls.tenant(org.id):
            return Contact.objects.for_org(org).count()

    def _companies(self, org, names: set[str]) -> dict[str, int]:
        with transaction.atomic(), rls.tenant(org.id):
            existing = dict(Company.objects.for_org(org).values_list("name", "id"))
            missing = [Company(org=org, name=name) for name in sorted(names - existing.keys())]
            Company.objects.for_org(org).bulk_create(missing, batch_size=1000)
            return dict(Company.objects.for_org(org).values_list("name", "id"))

    def _seed(self, org, count: int, seed: int) -> None:
        generator = Generator(seed)
        rows = []
        batch = 0
        while len(rows) < count:
            for row in generator.rows(SEED_BATCH_PEOPLE):
                rows.append((f"{seed}-{batch}-{row.entity}", row))
            batch += 1
        rows = rows[:count]
        companies = self._companies(org, {row.company for _, row in rows if row.company})
        now = timezone.now().isoformat()
        seen_emails: set[str] = set()

        def line(contact_id: int, label: str, row) -> str:
            email = row.email.strip().lower()
            others = "[]"
            if email in seen_emails:
                others, email = json.dumps([email]), ""
            elif email:
                seen_emails.add(email)
            values = dict.fromkeys(COLUMNS, "")
            values.update(
                id=str(contact_id),
                public_id=uuid.uuid4().hex,
                created_at=now,
                updated_at=now,
                org_id=str(org.id),
                first_name=_text(row.first_name),
                last_name=_text(row.last_name),
                email=_text(email),
                other_emails=_text(others),
                phone=_text(row.phone),
                company_id=str(companies[row.company]) if row.company else NULL,
                status="active",
                lifecycle_stage="lead",
                lead_score="0",
                source=f"synth {label}",
                owner_id=NULL,
                street=_text(row.street),
                city=_text(row.city),
                postal_code=_text(row.postal_code),
                consent_status="unknown",
                consent_date=NULL,
                consent_email=NULL,
                consent_sms=NULL,
                consent_phone=NULL,
                consent_whatsapp=NULL,
                consent_data_processing=NULL,
                custom="{}",
                is_archived="f",
                archived_at=NULL,
                last_contacted_at=NULL,
                last_activity_at=NULL,
            )
            return "\t".join(values[column] for column in COLUMNS) + "\n"

        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("LOCK TABLE contacts_contact IN SHARE ROW EXCLUSIVE MODE")
            cursor.execute(
                "SELECT setval(pg_get_serial_sequence('contacts_contact', 'id'), "
                "GREATEST((SELECT COALESCE(MAX(id), 0) FROM contacts_contact), "
                "nextval(pg_get_serial_sequence('contacts_contact', 'id'))) + %s)",
                [count],
            )
            first_id = cursor.fetchone()[0] - count + 1
            restore: list[str] = []
            if count >= 100_000:
                cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
                cursor.execute("SET LOCAL maintenance_work_mem = '512MB'")
                restore = drop_for_load(cursor, ["contacts_contact"])
            copy_lines(
                cursor,
                "contacts_contact",
                list(COLUMNS),
                (line(first_id + i, label, row) for i, (label, row) in enumerate(rows)),
            )
            for statement in restore:
                cursor.execute(statement)
            if restore:
                cursor.execute("SET CONSTRAINTS ALL DEFERRED")

    # Measuring -----------------------------------------------------------------------------

    def _progress(self, began: float):
        last = {"stage": None}

        def report(stage: str, done: int, total: int) -> None:
            if stage != last["stage"] or done == total:
                self.stdout.write(
                    f"  {stage} {done:,}/{total:,} at {time.perf_counter() - began:.1f}s"
                )
                last["stage"] = stage

        return report

    def _quality(self, org, result) -> dict:
        """Precision, recall and F1 at both thresholds against the labels, and blocking
        recall: the share of true pairs that share a key whose block is compared."""
        label_of: dict[int, str] = {}
        groups: dict[str, list[int]] = defaultdict(list)
        with transaction.atomic(), rls.tenant(org.id):
            rows = (
                Contact.objects.for_org(org)
                .filter(is_archived=False)
                .values_list("id", "source")
                .iterator(chunk_size=20_000)
            )
            for contact_id, source in rows:
                label_of[contact_id] = source
                groups[source].append(contact_id)
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT key FROM contacts_dedupkey WHERE org_id = %s GROUP BY key "
                    "HAVING count(*) > %s",
                    [org.id, MAX_BLOCK],
                )
                oversized = {row[0] for row in cursor.fetchall()}
            duplicated = [ids for ids in groups.values() if len(ids) > 1]
            keys_of: dict[int, set[int]] = defaultdict(set)
            wanted = [contact_id for ids in duplicated for contact_id in ids]
            for start in range(0, len(wanted), 20_000):
                for key, contact_id in (
                    DedupKey.objects.for_org(org)
                    .filter(contact_id__in=wanted[start : start + 20_000])
                    .values_list("key", "contact_id")
                ):
                    if key not in oversized:
                        keys_of[contact_id].add(key)
        true_pairs = sum(len(ids) * (len(ids) - 1) // 2 for ids in duplicated)
        kept = 0
        for ids in duplicated:
            for index, a in enumerate(ids):
                for b in ids[index + 1 :]:
                    kept += bool(keys_of[a] & keys_of[b])
        rules = scan.org_rules(org)
        figures = {
            "true_pairs": true_pairs,
            "blocking_recall": round(kept / true_pairs, 4) if true_pairs else 1.0,
        }
        for band, threshold in (("probable", rules.probable), ("possible", rules.possible)):
            hits = [p for p in result.pairs if p.score >= threshold]
            good = sum(1 for p in hits if label_of[p.a] == label_of[p.b])
            precision = good / len(hits) if hits else 1.0
            recall = good / true_pairs if true_pairs else 1.0
            f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
            figures[band] = {
                "threshold": threshold,
                "pairs": len(hits),
                "false_positives": len(hits) - good,
                "precision": round(precision, 4),
                "recall": round(recall, 4),
                "f1": round(f1, 4),
            }
        return figures

    def _incremental(self, org, seed: int) -> dict:
        """1,000 contacts edited (a street re-typed), then the nightly scan's work."""
        rng = random.Random(seed)
        with transaction.atomic(), rls.tenant(org.id):
            top = Contact.objects.for_org(org).order_by("-id").values_list("id", flat=True)[:1]
            last_id = top[0]
            first_id = (
                Contact.objects.for_org(org).order_by("id").values_list("id", flat=True)[:1][0]
            )
            ids = rng.sample(range(first_id, last_id + 1), CHANGED)
            with connection.cursor() as cursor:
                cursor.execute(
                    "UPDATE contacts_contact SET street = street || ' ', updated_at = now() "
                    "WHERE org_id = %s AND id = ANY(%s)",
                    [org.id, ids],
                )
        began = time.perf_counter()
        result = scan.scan_incremental(org)
        return {
            "incremental_seconds": round(time.perf_counter() - began, 2),
            "incremental_contacts": result.contacts,
            "incremental_compared": result.compared,
            "incremental_pairs": len(result.pairs),
        }
