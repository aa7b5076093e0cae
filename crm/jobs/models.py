"""The abstract model of every claimable background job.

A job row is the job's whole state: which worker holds it (`claimed_by`), when that worker
last reported (`heartbeat_at`), how often in a row a worker was lost while holding it
(`takeovers`), when its task message was last sent (`sent_at`), where a resumed run carries on
(`cursor`), how far it got (`progress` of `total`), what it found (`result`) and why it stopped
(`error`). All of them are real columns, so a claim, a heartbeat or a sweep is one small
conditional UPDATE and every state can be read with plain SQL.
"""

from __future__ import annotations

from django.db import models

from crm.tenancy import OrgScopedModel


class ClaimableJob(OrgScopedModel):
    # The registered runner that runs the job ("contacts.bulk", "contacts.import", ...).
    kind = models.CharField(max_length=60)
    # Each concrete model gives the choices; the runner registered for a kind says which
    # statuses mean "waiting for a worker" and "a worker holds it".
    status = models.CharField(max_length=12)
    claimed_by = models.CharField(max_length=255, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    takeovers = models.PositiveSmallIntegerField(default=0)
    sent_at = models.DateTimeField(null=True, blank=True)
    # The last id (or position) a committed chunk reached; 0 before the first one.
    cursor = models.BigIntegerField(default=0)
    progress = models.PositiveIntegerField(default=0)
    total = models.PositiveIntegerField(default=0)
    result = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        abstract = True

    @property
    def percent(self) -> int:
        if self.total:
            return min(100, int(self.progress * 100 / self.total))
        return 0
