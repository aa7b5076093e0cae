"""Import a CSV/TSV/XLSX file into an organization from the command line.

    python manage.py import_contacts FILE --org SLUG [--user EMAIL]
        [--mapping auto|saved:NAME] [--policy create|update|upsert] [--blanks keep|overwrite]

Runs the same pipeline as the wizard (detection, mapping, the set-based load, audit, undo
records) in this process and prints a JSON summary.
"""

import json
import os
import time

from django.core.exceptions import ValidationError
from django.core.files import File
from django.core.management.base import BaseCommand, CommandError

from contacts.importing import services
from contacts.importing.mapper import CUSTOM, SKIP
from contacts.importing.models import ImportJob, SavedMapping
from crm.models import Membership, Organization
from crm.permissions import Policy
from crm.services import Actor


class Command(BaseCommand):
    help = "Import contacts from a file with the same pipeline as the import wizard."

    def add_arguments(self, parser):
        parser.add_argument("file")
        parser.add_argument("--org", required=True, help="organization slug")
        parser.add_argument("--user", help="email of the member the import runs as")
        parser.add_argument("--mapping", default="auto", help="auto, or saved:<name>")
        parser.add_argument("--policy", default="upsert", choices=ImportJob.Policy.values)
        parser.add_argument("--blanks", default="keep", choices=ImportJob.BlankPolicy.values)
        parser.add_argument("--chunk-rows", type=int, default=None)

    def handle(self, *args, **opts):
        path = opts["file"]
        if not os.path.isfile(path):
            raise CommandError(f"No such file: {path}")
        org = Organization.objects.filter(slug=opts["org"]).first()
        if org is None:
            raise CommandError(f"No organization with slug {opts['org']!r}.")
        members = Membership.objects.for_org(org).active().select_related("user", "role")
        if opts["user"]:
            membership = members.filter(user__email__iexact=opts["user"]).first()
            if membership is None:
                raise CommandError(f"{opts['user']} is not an active member of {org.slug}.")
        else:
            membership = members.filter(role__key="owner").order_by("created_at").first()
            if membership is None:
                raise CommandError(f"{org.slug} has no active owner; pass --user.")
        policy = Policy(membership)
        actor = Actor.for_user(membership.user)
        started = time.perf_counter()
        try:
            with open(path, "rb") as fh:
                upload = File(fh, name=os.path.basename(path))
                upload.size = os.path.getsize(path)
                job = services.import_create(org=org, actor=actor, policy=policy, upload=upload)
            mapping = self._mapping(job, org, opts["mapping"], policy)
            job = services.import_set_mapping(
                job=job,
                actor=actor,
                policy=policy,
                mapping=mapping,
                defaults={"consent_type": "imported"},
                import_policy=opts["policy"],
                blank_policy=opts["blanks"],
            )
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages)) from None
        except PermissionError as exc:
            raise CommandError(str(exc)) from None
        ImportJob.objects.for_org(job.org_id).filter(pk=job.pk).update(
            status=ImportJob.Status.QUEUED
        )
        load_started = time.perf_counter()
        services.run_import(org_id=org.pk, job_id=job.pk, chunk_rows=opts["chunk_rows"])
        job.refresh_from_db()
        seconds = time.perf_counter() - started
        rows = job.created_count + job.updated_count + job.skipped_count + job.error_count
        summary = {
            "import": str(job.public_id),
            "status": job.status,
            "failure": job.error,
            "created": job.created_count,
            "updated": job.updated_count,
            "skipped": job.skipped_count,
            "errors": job.error_count,
            "warnings": job.warning_count,
            "warnings_by_kind": job.warning_counts,
            "rows": rows,
            "seconds": round(seconds, 2),
            "load_seconds": round(time.perf_counter() - load_started, 2),
            "rows_per_second": round(rows / seconds) if seconds else None,
        }
        self.stdout.write(json.dumps(summary))
        if job.status != ImportJob.Status.DONE:
            raise CommandError(job.error or f"import ended as {job.status}")

    def _mapping(self, job, org, how: str, policy) -> dict:
        if how == "auto":
            mapping = dict(job.mapping)
            if not policy.can("settings", "edit"):
                mapping = {h: (SKIP if t == CUSTOM else t) for h, t in mapping.items()}
            return mapping
        if how.startswith("saved:"):
            saved = SavedMapping.objects.for_org(org).filter(name__iexact=how[6:]).first()
            if saved is None:
                raise CommandError(f"No saved mapping named {how[6:]!r}.")
            # Its matched values come along, as in the wizard (a file from the same system).
            job.value_map = {h: v for h, v in (saved.value_map or {}).items() if h in job.headers}
            job.save(update_fields=["value_map"])
            return {h: saved.mapping.get(h, SKIP) for h in job.headers}
        raise CommandError("--mapping is auto or saved:<name>.")
