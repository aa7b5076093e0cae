"""The tenancy base: every tenant row carries its organization.

Views never query a tenant model without `for_org(request.org)`; an object of another
organization is therefore simply not found (404), never forbidden (403).
"""

import uuid

from django.db import models


class OrgQuerySet(models.QuerySet):
    def for_org(self, org):
        if org is None:
            return self.none()
        return self.filter(org=org)


class OrgScopedModel(models.Model):
    org = models.ForeignKey("crm.Organization", on_delete=models.CASCADE, db_index=True)
    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = OrgQuerySet.as_manager()

    class Meta:
        abstract = True
