"""The forecast pages: what each role sees, record scope, CSV exports (with their right,
audited and safe from formula injection), quotas set through the page, bad input, and
another organization's objects."""

import csv
import datetime as dt
import io
from decimal import Decimal
from unittest import mock

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from crm.models import AuditEvent
from pipeline.models import Quota
from tests.factories import (
    DealFactory,
    ExchangeRateFactory,
    OrganizationFactory,
    PipelineFactory,
    QuotaFactory,
    StageFactory,
    member,
)

pytestmark = pytest.mark.django_db

D = Decimal
NOW = dt.datetime(2026, 5, 13, 12, 0, tzinfo=dt.UTC)


@pytest.fixture(autouse=True)
def fixed_clock():
    with mock.patch("django.utils.timezone.now", return_value=NOW):
        yield


@pytest.fixture
def world(org):
    rep = member(org, "team")
    other_rep = member(org, "team")
    pipeline = PipelineFactory(org=org, name='=HYPERLINK("http://evil.test","x")')
    stage = StageFactory(org=org, pipeline=pipeline, name="Propose", probability=50)
    ExchangeRateFactory(org=org, currency="EUR", rate="1.25", effective_date=dt.date(2026, 1, 1))
    DealFactory(
        org=org,
        stage=stage,
        owner=rep.user,
        value=D("1000"),
        currency="USD",
        expected_close_date=dt.date(2026, 5, 20),
    )
    DealFactory(
        org=org,
        stage=stage,
        owner=other_rep.user,
        value=D("2000"),
        currency="EUR",
        expected_close_date=dt.date(2026, 6, 20),
    )
    DealFactory(
        org=org,
        stage=stage,
        owner=other_rep.user,
        value=D("300"),
        currency="JPY",
        expected_close_date=dt.date(2026, 6, 20),
    )
    return {"org": org, "rep": rep, "other_rep": other_rep, "stage": stage}


def url(name, **query):
    base = reverse(f"pipeline:{name}")
    if not query:
        return base
    return base + "?" + "&".join(f"{k}={v}" for k, v in query.items())


def rows_of(response):
    text = b"".join(response.streaming_content).decode("utf-8-sig")
    return list(csv.reader(io.StringIO(text)))


def test_owner_sees_figures_charts_footnote_and_missing_rate_warning(world, client_as):
    page = client_as(member(world["org"], "owner")).get(url("forecast"))
    assert page.status_code == 200
    html = page.content.decode()
    assert "3,500.00" in html  # 1000 USD + 2000 EUR × 1.25
    assert "1,750.00" in html  # weighted at 50%
    assert "<svg" in html and "style=" not in html.split("<main", 1)[1]
    assert "1 EUR = 1.25 USD" in html
    assert "there is no exchange rate for JPY" in html
    assert "Q2 2026" in html


def test_htmx_gets_only_the_results(world, client_as):
    page = client_as(member(world["org"], "owner"), htmx=True).get(url("forecast"))
    assert page.status_code == 200
    assert b'id="forecast-results"' in page.content and b"<html" not in page.content


def test_rep_with_own_scope_sees_only_their_figures(world, client_as):
    page = client_as(world["rep"]).get(url("forecast"))
    html = page.content.decode()
    assert "1,000.00" in html and "3,500.00" not in html
    assert world["other_rep"].user.display_name not in html


def test_board_member_sees_the_forecast_read_only_and_may_export(world, client_as):
    client = client_as(member(world["org"], "board"))
    page = client.get(url("forecast"))
    assert page.status_code == 200
    assert b"3,500.00" in page.content
    assert b"Export CSV" in page.content
    assert b"Set quotas" not in page.content
    export = client.get(url("forecast", format="csv", table="summary"))
    assert export.status_code == 200
    assert export["Content-Type"] == "text/csv"


def test_a_member_without_pipeline_or_analytics_is_refused(world, client_as):
    client = client_as(member(world["org"], "support"))
    for name in ("forecast", "forecast_changes", "pipeline_report", "rates", "quotas"):
        assert client.get(url(name)).status_code == 403


def test_export_needs_the_export_right(world, client_as):
    client = client_as(world["rep"])  # Team role: pipeline and analytics without export
    assert client.get(url("forecast")).status_code == 200
    assert client.get(url("forecast", format="csv", table="month")).status_code == 403


def test_csv_export_is_audited_and_safe_from_formulas(world, client_as):
    owner = member(world["org"], "owner")
    export = client_as(owner).get(url("forecast", format="csv", table="pipeline"))
    rows = rows_of(export)
    assert rows[0][0] == "Pipeline" and rows[0][2] == "Open pipeline (USD)"
    assert rows[1][0].startswith("'=HYPERLINK")
    assert rows[1][2] == "3500.00"
    event = AuditEvent.objects.for_org(world["org"]).get(verb="forecast.exported")
    assert event.changes["table"] == "forecast-pipeline"


def test_every_breakdown_exports(world, client_as):
    client = client_as(member(world["org"], "owner"))
    for table in ("summary", "month", "stage", "owner", "team", "pipeline", "quotas"):
        response = client.get(url("forecast", format="csv", table=table))
        assert response.status_code == 200, table
        assert len(rows_of(response)) >= 1
    assert client.get(url("forecast", format="csv", table="nope")).status_code == 404


def test_bad_filters_are_reported_and_ignored(world, client_as):
    client = client_as(member(world["org"], "owner"))
    page = client.get(
        url("forecast", owner="not-a-uuid", period="custom", start="2026-06-01", end="2026-01-01")
    )
    assert page.status_code == 200
    html = page.content.decode()
    assert "not applied" in html
    assert "3,500.00" in html  # the default period, every owner


def test_custom_range_and_manager_view(world, client_as):
    client = client_as(member(world["org"], "owner"))
    page = client.get(
        url("forecast", period="custom", start="2026-06-01", end="2026-06-30", view="manager")
    )
    html = page.content.decode()
    assert "2,500.00" in html  # the EUR deal alone
    assert "By team" in html and "No team" in html


def test_forecast_page_queries_do_not_grow_with_deals(world, client_as):
    client = client_as(member(world["org"], "owner"))
    client.get(url("forecast"))

    def count():
        with CaptureQueriesContext(connection) as ctx:
            assert client.get(url("forecast")).status_code == 200
        return len(ctx.captured_queries)

    before = count()
    for n in range(30):
        DealFactory(
            org=world["org"],
            stage=world["stage"],
            owner=world["rep"].user,
            value=D(n),
            expected_close_date=dt.date(2026, 4, 1 + n),
        )
    assert count() == before


# Quotas ----------------------------------------------------------------------------------


def test_admin_sets_edits_and_deletes_a_quota(world, client_as):
    org, rep = world["org"], world["rep"]
    client = client_as(member(org, "admin"))
    data = {"user": rep.user.public_id, "period_choice": "quarter:2026-04-01", "amount": "12000"}
    assert client.post(url("quotas"), data).status_code == 302
    quota = Quota.objects.for_org(org).get()
    assert (quota.user, quota.period, quota.amount) == (rep.user, "quarter", D("12000.00"))
    # Setting it again for the same rep and period changes the amount.
    assert client.post(url("quotas"), {**data, "amount": "15000"}).status_code == 302
    quota.refresh_from_db()
    assert quota.amount == D("15000.00") and Quota.objects.for_org(org).count() == 1
    page = client.get(url("quotas") + "?year=2026")
    assert rep.user.display_name.encode() in page.content and b"Q2 2026" in page.content
    edit = reverse("pipeline:quota_edit", args=[quota.public_id])
    assert client.post(edit, {**data, "period_choice": "month:2026-05-01"}).status_code == 302
    quota.refresh_from_db()
    assert (quota.period, quota.period_start) == ("month", dt.date(2026, 5, 1))
    assert client.post(reverse("pipeline:quota_delete", args=[quota.public_id])).status_code == 302
    assert not Quota.objects.for_org(org).exists()
    verbs = set(AuditEvent.objects.for_org(org).values_list("verb", flat=True))
    assert {"quota.created", "quota.updated", "quota.deleted"} <= verbs


def test_bad_quota_input_is_a_form_error(world, client_as):
    client = client_as(member(world["org"], "admin"))
    outsider = member(OrganizationFactory(), "team")
    response = client.post(
        url("quotas"),
        {"user": outsider.user.public_id, "period_choice": "quarter:2026-02-01", "amount": "-5"},
    )
    assert response.status_code == 400
    assert not Quota.objects.for_org(world["org"]).exists()


def test_quota_service_refuses_a_period_that_does_not_start_a_quarter(world):
    from django.core.exceptions import ValidationError

    from crm.services import Actor
    from pipeline.services.forecast_settings import quota_set

    with pytest.raises(ValidationError) as caught:
        quota_set(
            org=world["org"],
            actor=Actor.system("test"),
            data={
                "user": world["rep"].user,
                "period": "quarter",
                "period_start": dt.date(2026, 2, 1),
                "amount": "100",
            },
        )
    assert "first day of a quarter" in caught.value.message_dict["period_start"][0]


def test_board_member_reads_quotas_but_cannot_set_them(world, client_as):
    org = world["org"]
    quota = QuotaFactory(org=org, user=world["rep"].user, period_start=dt.date(2026, 4, 1))
    client = client_as(member(org, "board"))
    page = client.get(url("quotas") + "?year=2026")
    assert page.status_code == 200 and b"Q2 2026" in page.content
    assert b"Set a quota" not in page.content
    data = {
        "user": world["rep"].user.public_id,
        "period_choice": "quarter:2026-04-01",
        "amount": "1",
    }
    assert client.post(url("quotas"), data).status_code == 403
    assert client.post(reverse("pipeline:quota_delete", args=[quota.public_id])).status_code == 403


def test_rep_sees_only_their_own_quota(world, client_as):
    org = world["org"]
    QuotaFactory(org=org, user=world["rep"].user, period_start=dt.date(2026, 4, 1))
    QuotaFactory(org=org, user=world["other_rep"].user, period_start=dt.date(2026, 4, 1))
    page = client_as(world["rep"]).get(url("quotas") + "?year=2026")
    assert world["rep"].user.display_name.encode() in page.content
    assert world["other_rep"].user.display_name.encode() not in page.content


def test_another_organizations_quota_is_a_404(world, client_as):
    other = OrganizationFactory()
    quota = QuotaFactory(org=other, user=member(other, "team").user)
    client = client_as(member(world["org"], "owner"))
    assert client.get(reverse("pipeline:quota_edit", args=[quota.public_id])).status_code == 404
    assert client.post(reverse("pipeline:quota_delete", args=[quota.public_id])).status_code == 404
    assert Quota.objects.for_org(other).count() == 1


def test_report_and_changes_pages_render_empty_states(world, client_as):
    client = client_as(member(world["org"], "owner"))
    report = client.get(url("pipeline_report"))
    assert report.status_code == 200 and b"No deal entered or left a stage" in report.content
    changes = client.get(url("forecast_changes"))
    assert changes.status_code == 200 and b"No snapshot to compare with yet" in changes.content
    assert b"Take a snapshot now" in changes.content


def test_a_settings_admin_with_own_pipeline_scope_reaches_only_their_own_quota(world, client_as):
    from crm.permissions import _matrix, _module
    from tests.factories import MembershipFactory, custom_role

    org = world["org"]
    role = custom_role(
        org, permissions=_matrix("vcedx", scope="all", pipeline=_module("vcedx", scope="own"))
    )
    admin = MembershipFactory(org=org, role=role)
    theirs = QuotaFactory(org=org, user=world["rep"].user, period_start=dt.date(2026, 4, 1))
    mine = QuotaFactory(org=org, user=admin.user, period_start=dt.date(2026, 4, 1))
    client = client_as(admin)
    assert client.get(reverse("pipeline:quota_edit", args=[theirs.public_id])).status_code == 404
    assert client.post(reverse("pipeline:quota_delete", args=[theirs.public_id])).status_code == 404
    assert client.get(reverse("pipeline:quota_edit", args=[mine.public_id])).status_code == 200
    page = client.get(url("quotas") + "?year=2026")
    assert world["rep"].user.display_name.encode() not in page.content
