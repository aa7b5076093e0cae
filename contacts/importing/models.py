"""What an import keeps: the job, the rows it could not take, what it did to each record
(so the diff view and Undo are exact) and saved column mappings."""

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.db.models.functions import Lower

from crm.jobs.models import ClaimableJob
from crm.tenancy import OrgScopedModel


class ImportJob(ClaimableJob):
    """One import: the wizard's state (file, detection, mapping, values) and, once started,
    a claimable job (crm.jobs) of kind "contacts.import", or "contacts.import_undo" while it
    is undone. `progress` of `total` counts rows; `error` says why it stopped."""

    class Status(models.TextChoices):
        UPLOADED = "uploaded", "Uploaded"
        MAPPED = "mapped", "Mapped"
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Importing"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"
        UNDOING = "undoing", "Undoing"
        UNDONE = "undone", "Undone"

    class UndoPhase(models.TextChoices):
        RESTORE = "restore", "Restoring updated contacts"
        DELETE = "delete", "Deleting created contacts"

    class Policy(models.TextChoices):
        CREATE = "create", "Create new contacts only"
        UPDATE = "update", "Update existing contacts only"
        UPSERT = "upsert", "Create new and update existing"

    class BlankPolicy(models.TextChoices):
        KEEP = "keep", "Keep the existing value"
        OVERWRITE = "overwrite", "Clear the existing value"

    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    file = models.FileField(upload_to="imports/%Y/%m/", max_length=300)
    file_name = models.CharField(max_length=255)
    file_size = models.BigIntegerField(default=0)
    file_kind = models.CharField(max_length=8, default="csv")  # csv | xlsx
    # "contacts.import" until an undo starts, "contacts.import_undo" from then on.
    kind = models.CharField(max_length=60, default="contacts.import")
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.UPLOADED)
    # What detection found, possibly corrected by the user.
    encoding = models.CharField(max_length=20, blank=True)
    delimiter = models.CharField(max_length=2, blank=True)
    header_row = models.PositiveIntegerField(default=0)
    headers = models.JSONField(default=list, blank=True)
    # column name -> target key, "__custom__" or "__skip__"; suggestions kept for "Reset".
    mapping = models.JSONField(default=dict, blank=True)
    suggestions = models.JSONField(default=list, blank=True)
    defaults = models.JSONField(default=dict, blank=True)
    # The "match values" step: column name -> {value as in the file -> what to store}; the
    # stored side is a choice's value, a member's user id (as text), "" to leave the field
    # empty, or DEFAULT_OWNER for the import's default owner.
    value_map = models.JSONField(default=dict, blank=True)
    # The distinct values of those columns with their counts, counted when the mapping is
    # saved so the step's page reads them instead of the file (matching.counts_cache).
    value_counts = models.JSONField(default=dict, blank=True)
    policy = models.CharField(max_length=10, choices=Policy.choices, default=Policy.UPSERT)
    blank_policy = models.CharField(
        max_length=10, choices=BlankPolicy.choices, default=BlankPolicy.KEEP
    )
    # Progress and results
    created_count = models.PositiveIntegerField(default=0)
    updated_count = models.PositiveIntegerField(default=0)
    skipped_count = models.PositiveIntegerField(default=0)
    error_count = models.PositiveIntegerField(default=0)
    # Rows kept with some values left out or kept as typed, and those values per kind
    # ({"phone_as_typed": 142, ...}); counted in the transaction that writes each part.
    warning_count = models.PositiveIntegerField(default=0)
    warning_counts = models.JSONField(default=dict, blank=True)
    # How the file is cut, fixed on the first run so a resumed job cuts it the same way:
    # chunk N (numbered from the top) is split into merge lanes, and part N * lanes + L is
    # listed in chunks_done by the transaction that wrote it.
    chunk_rows = models.PositiveIntegerField(default=0)
    merge_lanes = models.PositiveSmallIntegerField(default=0)
    chunks_done = ArrayField(models.PositiveIntegerField(), default=list, blank=True)
    cancel_requested = models.BooleanField(default=False)
    undone_at = models.DateTimeField(null=True, blank=True)
    # What Undo did: running tallies while it runs, the final counts once it is done.
    undo_result = models.JSONField(default=dict, blank=True)
    # Who asked for the undo: the worker audits and notifies as them.
    undo_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    undo_by_type = models.CharField(max_length=16, blank=True)
    undo_by_label = models.CharField(max_length=200, blank=True)
    undo_by_ip = models.GenericIPAddressField(null=True, blank=True)
    # The finished status to go back to if the undo stops on an error.
    status_before_undo = models.CharField(max_length=12, choices=Status.choices, blank=True)
    # Where a resumed undo carries on: each batch moves these in the transaction that does
    # its work, so nothing is done or counted twice. Updated contacts are restored first, by
    # record id; then created ones are deleted part by part, `undo_part_position` being how
    # many ids of part `undo_part` (sorted) are already handled.
    undo_phase = models.CharField(max_length=8, choices=UndoPhase.choices, blank=True)
    undo_after_record = models.BigIntegerField(default=0)
    undo_part = models.PositiveIntegerField(default=0)
    undo_part_position = models.PositiveIntegerField(default=0)
    # Progress for the page: contacts handled (restored, deleted, kept or gone) of the total.
    undo_done = models.PositiveIntegerField(default=0)
    undo_total = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["org", "-created_at"], name="importjob_org_time")]

    def __str__(self):
        return f"{self.file_name} ({self.get_status_display()})"

    @property
    def timeline_subject(self) -> str:
        """What a contact's timeline says of the import that created or updated it."""
        return f"Imported from {self.file_name}"[:300]

    @property
    def timeline_data(self) -> dict:
        return {"import": str(self.public_id), "file": self.file_name}


class ImportPart(models.Model):
    """One committed part of an import (a merge lane's share of a chunk), written in the
    same transaction as its contacts, with the contacts it created. A million new contacts
    are a hundred rows here instead of a million, which is what makes big imports fast;
    the diff view, Undo and the "duplicate inside the file" check read them back."""

    # importpart_number_per_job (job, number) serves the foreign key too.
    job = models.ForeignKey(
        ImportJob, on_delete=models.CASCADE, related_name="parts", db_index=False
    )
    number = models.PositiveIntegerField()  # chunk * lanes + lane, as in job.chunks_done
    # The contacts it created and their rows in the file, in row order.
    created_ids = ArrayField(models.BigIntegerField(), default=list, blank=True)
    created_rows = ArrayField(models.PositiveIntegerField(), default=list, blank=True)
    # Ranges of the two arrays, so look-ups open only the parts that can hold a row or id.
    first_row = models.PositiveIntegerField(null=True, blank=True)
    last_row = models.PositiveIntegerField(null=True, blank=True)
    min_id = models.BigIntegerField(null=True, blank=True)
    max_id = models.BigIntegerField(null=True, blank=True)
    # The contacts' updated_at right after this part wrote them: a later edit moves it on.
    written_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint("job", "number", name="importpart_number_per_job"),
        ]

    def __str__(self):
        return f"part {self.number} of import {self.job_id}"


class ImportRecord(models.Model):
    """One contact the import updated, with the values it replaced (contacts it created
    are listed on its parts)."""

    class Action(models.TextChoices):
        CREATED = "created", "Created"  # before imports listed their new contacts on parts
        UPDATED = "updated", "Updated"

    # importrecord_job (job, action, row_number) serves the foreign key too.
    job = models.ForeignKey(
        ImportJob, on_delete=models.CASCADE, related_name="records", db_index=False
    )
    contact_id = models.BigIntegerField()
    row_number = models.PositiveIntegerField()
    action = models.CharField(max_length=8, choices=Action.choices)
    # {field: [before, after]} for updates; {} for creations.
    changes = models.JSONField(default=dict, blank=True)
    # contact.updated_at right after the import wrote it: a later edit moves it on.
    written_at = models.DateTimeField()

    class Meta:
        indexes = [
            models.Index(fields=["job", "action", "row_number"], name="importrecord_job"),
            models.Index(fields=["contact_id"], name="importrecord_contact"),
        ]

    def __str__(self):
        return f"{self.action} contact {self.contact_id} (row {self.row_number})"


class ImportRowError(models.Model):
    """A row the import could not take, or took with warnings, kept whole for the
    downloadable report."""

    job = models.ForeignKey(ImportJob, on_delete=models.CASCADE, related_name="row_errors")
    row_number = models.PositiveIntegerField()
    values = models.JSONField(default=list)
    message = models.TextField()
    # A warning row was imported; its `fields` say which values were left out or kept as
    # typed: [{"column": header, "kind": kind, "value": cell, "message": text}, ...].
    is_warning = models.BooleanField(default=False, db_default=False)
    fields = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["row_number"]
        indexes = [models.Index(fields=["job", "row_number"], name="importerror_job_row")]

    def __str__(self):
        return f"row {self.row_number}: {self.message}"


class SavedMapping(OrgScopedModel):
    """A mapping kept for the next file with the same headers."""

    name = models.CharField(max_length=120)
    headers_signature = models.CharField(max_length=64, db_index=True)
    headers = models.JSONField(default=list)
    mapping = models.JSONField(default=dict)
    value_map = models.JSONField(default=dict, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint("org", Lower("name"), name="savedmapping_name_per_org")
        ]

    def __str__(self):
        return self.name
