"""The privacy demo: added once, and every Compliance page has something to show."""

import io

import pytest
from django.core.management import call_command

from compliance.models import DataRequest, PrivacySettings, RetentionPolicy, Suppression
from crm.models import Organization

pytestmark = pytest.mark.django_db


def test_seed_demo_gives_acme_privacy_data_once(db):
    out = io.StringIO()
    call_command("seed_demo", contacts=200, stdout=out)
    acme = Organization.objects.get(slug="acme")
    assert PrivacySettings.objects.for_org(acme).get().mode == "both"
    suppressions = Suppression.objects.for_org(acme)
    assert suppressions.filter(lifted_at__isnull=True).count() == 4
    assert suppressions.filter(lifted_at__isnull=False).exclude(lift_note="").count() == 1
    requests = DataRequest.objects.for_org(acme)
    assert set(requests.values_list("status", flat=True)) == {"open", "in_progress", "done"}
    assert any(req.is_overdue for req in requests)
    assert RetentionPolicy.objects.for_org(acme).get().enabled is False

    call_command("seed_demo", contacts=200, stdout=out)
    assert Suppression.objects.for_org(acme).count() == 5
    assert DataRequest.objects.for_org(acme).count() == 4
