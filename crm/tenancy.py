"""The tenancy base: every tenant row carries its organization.

Views never query a tenant model without `for_org(request.org)`; an object of another
organization is therefore simply not found (404), never forbidden (403).
"""

import uuid

from django.db import models


class OrgQuerySet(models.QuerySet):
    def for_org(self, org):
        """The rows of one organization; none at all without one."""
        if org is None:
            return self.none()
        return self.filter(org=org)

    def all_orgs(self):
        """Every organization's rows: the named exception to `for_org`.

        Only for the rare sweep that spans organizations by design (a stalled-job sweep, a
        retention run, a benchmark's seeding). It returns the same rows as `all()`, but it is
        greppable and the tenancy lint (scripts/lint_tenancy.py) accepts it, so every such
        place can be found and reviewed; any other unscoped manager call is flagged.
        It widens only the Django query: where row-level security is on, the database still
        limits the rows to the connection's organization unless the sweep runs under the
        audited bypass.
        """
        return self.all()


class OrgScopedModel(models.Model):
    org = models.ForeignKey("crm.Organization", on_delete=models.CASCADE, db_index=True)
    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = OrgQuerySet.as_manager()

    class Meta:
        abstract = True
