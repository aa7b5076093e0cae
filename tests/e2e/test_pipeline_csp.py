"""Every pipeline page, filled with the demo's deals, loads in Chromium without a Content
Security Policy violation or a script error: the board and its drag library, the deal page
and each of its tabs, the table, the forecast with its SVG charts, the change view, the
report, the lifecycle board and the settings pages."""

import random

import pytest
from django.urls import reverse

from pipeline import demo
from pipeline.models import Deal, LineItem, Pipeline
from tests.e2e import test_csp
from tests.factories import CompanyFactory, ContactFactory, member

pytestmark = pytest.mark.e2e

# The CSP walk's fixture that collects violations.
violations = test_csp.violations


def visit(page, violations, path: str) -> None:
    response = page.goto(path)
    assert response is not None and response.status == 200, path
    page.wait_for_load_state("networkidle")
    assert violations() == [], f"{path}: {violations()}"


DEAL_TABS = ["timeline", "notes", "tasks", "checklists", "attachments", "lines", "history"]


@pytest.fixture
def pipeline_data(org, owner):
    for role in ("team", "team", "director"):
        member(org, role)
    company = CompanyFactory(org=org, name="Initech")
    for n in range(6):
        ContactFactory(org=org, company=company, first_name=f"Buyer{n}")
    demo.seed_pipelines(org, plans=demo.ACME_PLANS, rng=random.Random(7))
    with_lines = LineItem.objects.for_org(org).values_list("deal_id", flat=True).first()
    return {
        "deal": Deal.objects.for_org(org).get(pk=with_lines),
        "pipeline": Pipeline.objects.for_org(org).order_by("position", "id").first(),
    }


def test_every_pipeline_page_loads_without_a_policy_violation(
    page, login_as, owner, pipeline_data, violations
):
    login_as(owner.user)
    deal = pipeline_data["deal"]
    detail = reverse("pipeline:deal_detail", kwargs={"public_id": deal.public_id})
    pages = [
        reverse("pipeline:board"),
        reverse("pipeline:deal_list"),
        *(f"{detail}?tab={tab}" for tab in DEAL_TABS),
        reverse("pipeline:deal_edit", kwargs={"public_id": deal.public_id}),
        reverse("pipeline:deal_create"),
        reverse("pipeline:forecast"),
        reverse("pipeline:forecast_changes"),
        reverse("pipeline:pipeline_report"),
        reverse("pipeline:rates"),
        reverse("pipeline:quotas"),
        reverse("pipeline:lifecycle"),
        reverse("pipeline:settings"),
        reverse(
            "pipeline:pipeline_detail",
            kwargs={"pipeline_public_id": pipeline_data["pipeline"].public_id},
        ),
        reverse("pipeline:reasons"),
        reverse("pipeline:products"),
    ]
    for url in pages:
        visit(page, violations, url)
    assert Deal.objects.for_org(owner.org).count() > 100
