"""What duplicate detection and merging keep: an organization's rules, the pairs a scan
found, the pairs a member said are not duplicates, and each merge with what undoing it needs.

A pair is always stored with the lower contact id first (`contact_a`), so that one pair has
one row whichever side found it.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.utils import timezone

from crm.tenancy import OrgQuerySet, OrgScopedModel


class DedupSettings(OrgScopedModel):
    """An organization's duplicate rules; thresholds left empty use the model's defaults."""

    org = models.OneToOneField(
        "crm.Organization", on_delete=models.CASCADE, related_name="dedup_settings"
    )
    probable_threshold = models.FloatField(null=True, blank=True)
    possible_threshold = models.FloatField(null=True, blank=True)
    # jane+news@example.com is jane@example.com; j.ane@gmail.com is jane@gmail.com.
    plus_addressing = models.BooleanField(default=True)
    gmail_dots = models.BooleanField(default=True)
    last_scan_at = models.DateTimeField(null=True, blank=True)
    last_full_scan_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self):
        return f"Duplicate rules of {self.org_id}"


def ordered_pair(first_id: int, second_id: int) -> tuple[int, int]:
    return (first_id, second_id) if first_id < second_id else (second_id, first_id)


class DuplicatePair(OrgScopedModel):
    class Band(models.TextChoices):
        PROBABLE = "probable", "Probable"
        POSSIBLE = "possible", "Possible"

    class FoundBy(models.TextChoices):
        SCAN = "scan", "Scan"
        IMPORT = "import", "Import"

    contact_a = models.ForeignKey(
        "contacts.Contact", on_delete=models.CASCADE, related_name="+", db_index=False
    )
    contact_b = models.ForeignKey("contacts.Contact", on_delete=models.CASCADE, related_name="+")
    score = models.FloatField()
    band = models.CharField(max_length=10, choices=Band.choices)
    # The comparison in words, e.g. ["same phone", "names 93% alike", "same postal code"].
    reasons = models.JSONField(default=list)
    found_by = models.CharField(max_length=10, choices=FoundBy.choices, default=FoundBy.SCAN)
    import_job = models.ForeignKey(
        "contacts.ImportJob",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        db_index=False,
        related_name="+",
    )
    found_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["org", "contact_a", "contact_b"], name="duplicate_pair_once"
            ),
            models.CheckConstraint(
                condition=Q(contact_a__lt=F("contact_b")), name="duplicate_pair_ordered"
            ),
        ]
        indexes = [
            # Data Health: the pairs of a band, best first.
            models.Index(fields=["org", "band", "-score", "id"], name="duplicate_pair_rank"),
        ]

    def __str__(self):
        return f"{self.contact_a_id} ~ {self.contact_b_id} ({self.score:.2f})"


class DuplicateDismissal(OrgScopedModel):
    """ "Not a duplicate": the pair never comes back from a scan."""

    contact_a = models.ForeignKey(
        "contacts.Contact", on_delete=models.CASCADE, related_name="+", db_index=False
    )
    contact_b = models.ForeignKey("contacts.Contact", on_delete=models.CASCADE, related_name="+")
    dismissed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["org", "contact_a", "contact_b"], name="duplicate_dismissal_once"
            ),
            models.CheckConstraint(
                condition=Q(contact_a__lt=F("contact_b")), name="duplicate_dismissal_ordered"
            ),
        ]

    def __str__(self):
        return f"{self.contact_a_id} is not {self.contact_b_id}"


class DedupKey(models.Model):
    """One blocking key of one contact (contacts.dedup.blocking), as a stable 64-bit hash:
    the index through which a nightly scan, the contact form and an import find the
    contacts worth comparing with a changed or new one without reading the organization.
    Written by the full scan (all of an organization's keys) and the incremental scan (the
    keys of the contacts it rescanned).

    Deliberately lean, since there are about eight rows per contact: no public id, no
    timestamps, and the primary key (org, key, contact) is the one index look-ups use.
    `contact_id` is a plain column, not a relation: a contact is deleted without a cascade
    through millions of rows (its keys are dropped with the next scan; a key pointing at a
    contact that is gone simply finds nothing), and the merge engine, which moves every
    relation to Contact, has nothing to move here."""

    pk = models.CompositePrimaryKey("org_id", "key", "contact_id")
    org = models.ForeignKey(
        "crm.Organization", on_delete=models.CASCADE, db_index=False, related_name="+"
    )
    key = models.BigIntegerField()
    contact_id = models.BigIntegerField()

    objects = OrgQuerySet.as_manager()

    class Meta:
        indexes = [
            # The keys of given contacts: rewritten when an incremental scan rescans them.
            models.Index(fields=["org", "contact_id"], name="dedup_key_contact"),
        ]

    def __str__(self):
        return f"{self.contact_id}: {self.key}"


class MergeRecord(OrgScopedModel):
    """One merge of `secondary` into `primary`, with what undoing it needs: both contacts'
    values before, the primary's values right after (a later edit is told apart from them),
    and the ids of every related row that moved, per relation."""

    class State(models.TextChoices):
        MERGED = "merged", "Merged"
        UNDONE = "undone", "Undone"

    primary = models.ForeignKey(
        "contacts.Contact", on_delete=models.CASCADE, related_name="+", db_index=False
    )
    secondary = models.ForeignKey(
        "contacts.Contact", on_delete=models.CASCADE, related_name="+", db_index=False
    )
    state = models.CharField(max_length=10, choices=State.choices, default=State.MERGED)
    merged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    primary_before = models.JSONField(default=dict)
    secondary_before = models.JSONField(default=dict)
    primary_after = models.JSONField(default=dict)
    # {"<app_label>.<model>.<field>": [row ids]}, plus tag and list links added to the primary.
    moved = models.JSONField(default=dict)
    undone_at = models.DateTimeField(null=True, blank=True)
    undone_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        indexes = [
            models.Index(fields=["org", "primary", "-created_at"], name="merge_record_primary"),
            models.Index(fields=["org", "secondary"], name="merge_record_secondary"),
        ]

    def __str__(self):
        return f"{self.secondary_id} into {self.primary_id} ({self.state})"
