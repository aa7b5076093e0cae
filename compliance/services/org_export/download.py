"""The download of a finished export: the signed link (which export, until when), who may
follow it (the starter or an Owner, still holding the right), the audit of each download,
and the deletion of the files whose link has expired.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.core import signing
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from crm.models import BackgroundJob
from crm.permissions import Policy
from crm.selectors import org_timezone
from crm.services import Actor, audit

from ._base import JOB_KIND, TITLE, may_export
from .writer import _remove, zip_path

LINK_SALT = "compliance.org_export.download"


def expires_at(job: BackgroundJob) -> dt.datetime | None:
    text = (job.result or {}).get("expires_at")
    if not text:
        return None
    try:
        return dt.datetime.fromisoformat(text)
    except ValueError:
        return None


def is_expired(job: BackgroundJob, now: dt.datetime | None = None) -> bool:
    moment = expires_at(job)
    return moment is not None and (now or timezone.now()) >= moment


def download_token(job: BackgroundJob) -> str:
    """The signed part of the link: which export, and until when (both tamper-proof)."""
    moment = expires_at(job)
    return signing.dumps(
        {"job": str(job.public_id), "exp": int(moment.timestamp()) if moment else 0},
        salt=LINK_SALT,
    )


def download_path(job: BackgroundJob) -> str:
    return reverse("compliance:org_export_download", args=[download_token(job)])


@dataclass(frozen=True)
class LinkContents:
    job_public_id: str
    expires_at: dt.datetime


def read_download_token(token: str) -> LinkContents | None:
    """What a link says, or None when it was not made here (or was changed)."""
    try:
        data = signing.loads(token, salt=LINK_SALT)
        return LinkContents(
            job_public_id=str(data["job"]),
            expires_at=dt.datetime.fromtimestamp(int(data["exp"]), tz=dt.UTC),
        )
    except (signing.BadSignature, KeyError, TypeError, ValueError, OverflowError):
        return None


def may_download(policy: Policy, job: BackgroundJob) -> bool:
    """The member who started the export, or an Owner; both still holding the right."""
    if not may_export(policy) or policy.membership is None:
        return False
    return policy.is_owner or job.created_by_id == policy.membership.user_id


def record_download(job: BackgroundJob, actor: Actor) -> None:
    """Who took the organization's data, in the audit log."""
    with transaction.atomic():
        audit(
            org=job.org,
            actor=actor,
            verb="compliance.org_export_downloaded",
            obj=job,
            object_repr=TITLE,
            changes={"size": (job.result or {}).get("size")},
        )


def download_file_name(job: BackgroundJob) -> str:
    stamp = (job.finished_at or job.created_at).astimezone(org_timezone(job.org))
    return f"{job.org.slug or 'organization'}-all-data-{stamp:%Y%m%d-%H%M}.zip"


def purge_expired(org, now: dt.datetime | None = None) -> int:
    """Delete the files of the organization's expired exports; how many went."""
    now = now or timezone.now()
    done = BackgroundJob.objects.for_org(org).filter(
        kind=JOB_KIND, status=BackgroundJob.Status.DONE
    )
    purged = 0
    # An organization keeps a handful of exports: reading their results is cheap.
    for job in done.only("pk", "org_id", "public_id", "result"):
        if (job.result or {}).get("purged") or not is_expired(job, now):
            continue
        _remove(zip_path(job))
        BackgroundJob.objects.for_org(org).filter(pk=job.pk).update(
            result={**(job.result or {}), "purged": True}
        )
        purged += 1
    return purged
