"""PostgreSQL row-level security, the second wall between organizations (crm/rls.py).

Inside a request or `rls.tenant(org_id)` the connection works in the app role with the
organization set, so even a query that forgot `for_org` (an ORM call, raw SQL, an INSERT of
another organization's row) reaches only that organization. A Celery task that touches a
tenant table without entering an organization fails instead of silently reading nothing.
"""

from __future__ import annotations

import logging
import threading
from types import SimpleNamespace

import pytest
from django.apps import apps
from django.db import DatabaseError, connection, transaction
from django.db.models import Q
from django.db.models.functions import Lower
from django.http import HttpResponse, JsonResponse, StreamingHttpResponse
from django.test import RequestFactory
from django.urls import path

from contacts.models import Company, Contact
from contacts.selectors import search_q, search_query
from crm import rls
from crm.celery import app as celery_app
from crm.middleware import TenantContextMiddleware
from crm.tenancy import OrgScopedModel
from tests.factories import CompanyFactory, ContactFactory, OrganizationFactory, member

# The test-only views below, reached through `@pytest.mark.urls(__name__)` with the real
# middleware stack in front of them.


def unscoped_contacts_view(request):
    """Reads contacts without `for_org`, on purpose, then tries to write a row for the
    organization named in the query string."""
    seen = sorted(set(Contact.objects.values_list("org_id", flat=True)))
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM contacts_contact")
        (raw_count,) = cursor.fetchone()
    refused = ""
    try:
        with transaction.atomic():
            Contact.objects.create(org_id=int(request.GET["other"]), first_name="Smuggled")
    except DatabaseError as exc:
        refused = str(exc)
    return JsonResponse({"orgs": seen, "raw_count": raw_count, "refused": refused})


def streamed_contacts_view(request):
    """A streamed body is produced after the view returned (as the CSV export is)."""

    def rows():
        for first_name in Contact.objects.order_by("first_name").values_list(
            "first_name", flat=True
        ):
            yield f"{first_name}\n"

    return StreamingHttpResponse(rows(), content_type="text/plain")


def failing_view(request):
    """Writes, then fails: the request's transaction must take the write back."""
    Contact.objects.create(org=request.org, first_name="Half written")
    raise RuntimeError("the view broke after writing")


@rls.outside_request_transaction
def slow_call_view(request):
    """Waits on something outside the database: no transaction, still the member's org."""
    return JsonResponse(
        {
            "in_transaction": connection.in_atomic_block,
            "orgs": sorted(set(Contact.objects.values_list("org_id", flat=True))),
        }
    )


urlpatterns = [
    path("rls/slow-call/", slow_call_view),
    path("rls/unscoped/", unscoped_contacts_view),
    path("rls/streamed/", streamed_contacts_view),
    path("rls/failing/", failing_view),
]


def _role_and_org() -> tuple[str, str | None]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_user, current_setting('app.org_id', true)")
        return cursor.fetchone()


def _session_user() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT session_user")
        return cursor.fetchone()[0]


@pytest.fixture
def two_orgs(db):
    a = OrganizationFactory(name="Org A", slug="org-a")
    b = OrganizationFactory(name="Org B", slug="org-b")
    for name in ("Ann", "Abe"):
        ContactFactory(org=a, first_name=name)
    for name in ("Bea", "Bob", "Bud"):
        ContactFactory(org=b, first_name=name)
    return a, b


# The tables -----------------------------------------------------------------------------------


def test_every_tenant_table_has_forced_row_level_security_and_the_policy(db):
    tables = rls.tenant_tables()
    org_scoped = {
        m._meta.db_table
        for m in apps.get_models()
        if issubclass(m, OrgScopedModel) and not m._meta.proxy
    }
    assert org_scoped <= set(tables)
    assert {"contacts_contact", "crm_membership", "contacts_importjob"} <= set(tables)
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity, p.qual, p.with_check
              FROM pg_class c
              LEFT JOIN pg_policies p ON p.tablename = c.relname AND p.policyname = %s
             WHERE c.relname = ANY(%s) AND c.relnamespace = current_schema()::regnamespace
            """,
            [rls.POLICY_NAME, tables],
        )
        found = {name: rest for name, *rest in cursor.fetchall()}
    assert set(found) == set(tables)
    for table, (enabled, forced, qual, check) in found.items():
        assert enabled and forced, table
        assert qual == check, table
        assert qual.replace(" ", "") == "(org_id=(current_setting('app.org_id'::text))::bigint)"


def test_tables_without_an_org_column_are_left_alone(db):
    # The links and the import's child rows carry no org_id; they are reached through
    # their (walled) parents.
    assert not {"contacts_contact_tags", "contacts_importpart", "contacts_importrowerror"} & set(
        rls.tenant_tables()
    )


def test_ensure_puts_back_a_wall_that_was_taken_down(db):
    with connection.cursor() as cursor:
        cursor.execute(f"DROP POLICY {rls.POLICY_NAME} ON contacts_tag")
        cursor.execute("ALTER TABLE contacts_tag NO FORCE ROW LEVEL SECURITY")
    assert rls.ensure_row_level_security() == ["contacts_tag"]
    assert rls.ensure_row_level_security() == []
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT relforcerowsecurity, EXISTS (SELECT FROM pg_policies WHERE "
            "tablename = 'contacts_tag' AND policyname = %s) FROM pg_class "
            "WHERE oid = 'contacts_tag'::regclass",
            [rls.POLICY_NAME],
        )
        assert cursor.fetchone() == (True, True)


def test_the_app_role_may_not_bypass_row_level_security(db):
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT rolsuper, rolbypassrls, rolcanlogin FROM pg_roles WHERE rolname = %s",
            [rls.app_role()],
        )
        assert cursor.fetchone() == (False, False, False)


# The wall ----------------------------------------------------------------------------------


@pytest.mark.urls(__name__)
def test_an_unscoped_query_in_a_request_sees_only_the_requests_org(two_orgs, client_as):
    a, b = two_orgs
    client = client_as(member(a, "owner"))
    response = client.get("/rls/unscoped/", {"other": b.pk})
    body = response.json()
    assert body["orgs"] == [a.pk]
    assert body["raw_count"] == 2
    assert "row-level security" in body["refused"]
    assert not Contact.objects.filter(first_name="Smuggled").exists()
    # Back in the test's own transaction, the request's organization is gone.
    assert _role_and_org() == (_session_user(), "")
    assert Contact.objects.count() == 5


@pytest.mark.urls(__name__)
@pytest.mark.django_db(transaction=True)
def test_a_request_in_its_own_transaction_leaves_nothing_behind(client_as):
    a = OrganizationFactory(name="Org A", slug="org-a")
    b = OrganizationFactory(name="Org B", slug="org-b")
    ContactFactory(org=a)
    ContactFactory(org=b)
    client = client_as(member(a, "owner"))
    body = client.get("/rls/unscoped/", {"other": b.pk}).json()
    assert (body["orgs"], body["raw_count"]) == ([a.pk], 1)
    assert "row-level security" in body["refused"]
    # The request's COMMIT ended its settings: the connection is itself again.
    assert _role_and_org() == (_session_user(), "")
    assert Contact.objects.count() == 2


@pytest.mark.urls(__name__)
@pytest.mark.django_db(transaction=True)
def test_a_view_outside_the_request_transaction_is_still_walled(client_as):
    a = OrganizationFactory(name="Org A", slug="org-a")
    ContactFactory(org=a)
    ContactFactory(org=OrganizationFactory(name="Org B", slug="org-b"))
    body = client_as(member(a, "owner")).get("/rls/slow-call/").json()
    assert body == {"in_transaction": False, "orgs": [a.pk]}
    # Its session settings were reset with the response.
    assert _role_and_org() == (_session_user(), "")
    assert Contact.objects.count() == 2


@pytest.mark.urls(__name__)
def test_a_streamed_body_is_produced_inside_the_requests_org(two_orgs, client_as):
    a, _ = two_orgs
    client = client_as(member(a, "owner"))
    response = client.get("/rls/streamed/")
    assert b"".join(response.streaming_content).decode().split() == ["Abe", "Ann"]
    assert _role_and_org()[0] == _session_user()


@pytest.mark.urls(__name__)
def test_a_request_that_fails_takes_its_writes_back(two_orgs, client_as):
    a, _ = two_orgs
    client = client_as(member(a, "owner"))
    client.raise_request_exception = False
    response = client.get("/rls/failing/")
    assert response.status_code == 500
    assert not Contact.objects.filter(first_name="Half written").exists()
    assert _role_and_org()[0] == _session_user()


def test_a_request_without_an_organization_gets_no_context(two_orgs):
    seen = {}

    def view(request):
        seen["in_transaction"] = len(connection.atomic_blocks)
        seen["count"] = Contact.objects.count()
        return HttpResponse()

    before = len(connection.atomic_blocks)
    request = RequestFactory().get("/")
    request.org = None
    TenantContextMiddleware(view)(request)
    assert seen == {"in_transaction": before, "count": 5}


def test_raw_sql_inside_tenant_counts_only_that_org(two_orgs):
    a, b = two_orgs
    with transaction.atomic(), rls.tenant(a.pk), connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM contacts_contact")
        assert cursor.fetchone()[0] == 2
        cursor.execute("SELECT count(*) FROM contacts_contact WHERE org_id = %s", [b.pk])
        assert cursor.fetchone()[0] == 0
        assert rls.current_org_id() == a.pk


@pytest.mark.django_db(transaction=True)
def test_tenant_and_bypass_need_a_transaction():
    org = OrganizationFactory()
    with pytest.raises(rls.TenantContextError, match=r"transaction\.atomic"), rls.tenant(org.pk):
        pass
    with pytest.raises(rls.TenantContextError, match=r"transaction\.atomic"), rls.bypass("a sweep"):
        pass


def test_tenant_restores_the_previous_role_and_org_when_nested(two_orgs):
    a, b = two_orgs
    session_user = _session_user()
    with transaction.atomic():
        with rls.tenant(a.pk):
            assert _role_and_org() == (rls.app_role(), str(a.pk))
            with rls.tenant(b.pk):
                assert _role_and_org() == (rls.app_role(), str(b.pk))
                assert set(Contact.objects.values_list("org_id", flat=True)) == {b.pk}
            assert _role_and_org() == (rls.app_role(), str(a.pk))
            with rls.bypass("the test looks across organizations"):
                assert _role_and_org()[0] == session_user
                assert Contact.objects.count() == 5
            assert _role_and_org() == (rls.app_role(), str(a.pk))
        assert _role_and_org()[0] == session_user


def test_an_exception_inside_tenant_leaves_the_previous_context(two_orgs):
    a, _ = two_orgs
    with transaction.atomic():
        with pytest.raises(ValueError, match="boom"), rls.tenant(a.pk):
            raise ValueError("boom")
        assert _role_and_org()[0] == _session_user()
        # A failed statement aborts the transaction: the original error comes out, not
        # one from putting the settings back.
        with (
            pytest.raises(DatabaseError, match="no_such_table"),
            transaction.atomic(),
            rls.tenant(a.pk),
            connection.cursor() as cursor,
        ):
            cursor.execute("SELECT * FROM no_such_table")
        assert _role_and_org()[0] == _session_user()


def test_bypass_sees_every_org_and_logs_its_reason(two_orgs, caplog):
    a, _ = two_orgs
    with (
        caplog.at_level(logging.INFO, logger="crm.rls"),
        transaction.atomic(),
        rls.tenant(a.pk),
        rls.bypass("stalled-job sweep spans organizations"),
    ):
        assert Contact.objects.count() == 5
    assert any(
        r.name == "crm.rls" and "stalled-job sweep spans organizations" in r.getMessage()
        for r in caplog.records
    )


def test_bypass_needs_a_reason(two_orgs):
    with transaction.atomic(), pytest.raises(ValueError), rls.bypass("  "):
        pass


def test_with_the_setting_off_the_role_stays_and_only_the_org_is_set(two_orgs, settings):
    a, _ = two_orgs
    settings.CRM_RLS_ENABLED = False
    with transaction.atomic(), rls.tenant(a.pk):
        assert _role_and_org() == (_session_user(), str(a.pk))
        assert Contact.objects.count() == 5


# Tasks -------------------------------------------------------------------------------------


@celery_app.task(name="tests.crm.test_rls.count_contacts")
def count_contacts(org_id=None):
    if org_id is None:
        return Contact.objects.count()
    with transaction.atomic(), rls.tenant(org_id):
        return Contact.objects.count()


@pytest.mark.django_db(transaction=True)
def test_a_task_that_forgot_the_organization_fails_loudly():
    a = OrganizationFactory(name="Org A", slug="org-a")
    ContactFactory(org=a)
    ContactFactory(org=OrganizationFactory(name="Org B", slug="org-b"))
    result = count_contacts.apply()
    assert result.failed()
    assert "no organization" in str(result.result)
    # The worker's connection is itself again once the task is over.
    assert _role_and_org()[0] == _session_user()
    assert count_contacts.apply(kwargs={"org_id": a.pk}).get() == 1
    assert _role_and_org()[0] == _session_user()


@pytest.mark.django_db(transaction=True)
def test_a_connection_opened_during_a_task_gets_the_guard_too():
    ContactFactory(org=OrganizationFactory(name="Org A", slug="org-a"))
    seen = {}

    @celery_app.task(name="tests.crm.test_rls.reconnects")
    def reconnects():
        connection.close()
        try:
            Contact.objects.count()
        except DatabaseError as exc:
            seen["error"] = str(exc)

    reconnects.apply()
    assert "no organization" in seen["error"]
    assert _role_and_org()[0] == _session_user()


@pytest.mark.django_db(transaction=True)
def test_in_a_worker_process_the_tasks_own_threads_are_guarded_too(monkeypatch):
    # A prefork child runs tasks only; the import's merge lanes open connections of their own.
    ContactFactory(org=OrganizationFactory(name="Org A", slug="org-a"))
    monkeypatch.setattr(rls, "_pool_child", True)
    task = SimpleNamespace(request=SimpleNamespace(is_eager=False))
    seen = {}

    def lane():
        try:
            Contact.objects.count()
        except DatabaseError as exc:
            seen["error"] = str(exc)
        finally:
            connection.close()

    rls.on_task_prerun(task=task)
    try:
        thread = threading.Thread(target=lane)
        thread.start()
        thread.join()
    finally:
        rls.on_task_postrun(task=task)
    assert "no organization" in seen["error"]
    assert _role_and_org()[0] == _session_user()
    assert rls._worker_guards == 0


def test_an_eager_task_inside_a_request_keeps_the_requests_org(two_orgs):
    a, _ = two_orgs
    with transaction.atomic(), rls.tenant(a.pk):
        assert count_contacts.apply().get() == 2
        assert _role_and_org() == (rls.app_role(), str(a.pk))


# Indexes stay usable under the policy ---------------------------------------------------------


def _plan(queryset) -> str:
    with connection.cursor() as cursor:
        # A plain scan of a few thousand rows can still look as cheap; the point is that the
        # index *can* serve the condition under the policy.
        cursor.execute("SET LOCAL enable_seqscan = off")
    return queryset.explain()


@pytest.fixture
def indexed(two_orgs):
    """Org A with enough contacts and companies (and fresh statistics) that a probe beats
    reading them all."""
    a, _ = two_orgs
    ContactFactory(
        org=a,
        first_name="Maria",
        last_name="Garcia",
        email="maria@example.com",
        custom={"tier": "gold"},
    )
    CompanyFactory(org=a, name="Initech")
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO contacts_contact
                (org_id, public_id, created_at, updated_at, first_name, last_name, email,
                 other_emails, phone, mobile, job_title, department, deal_role, status,
                 lifecycle_stage, lead_score, source, street, city, region, postal_code,
                 country, language, timezone, linkedin_url, twitter_handle, consent_status,
                 consent_type, consent_source, gdpr_basis, custom, is_archived)
            SELECT %s, gen_random_uuid(), now(), now(), 'First' || n, 'Last' || n,
                   'person' || n || '@example.org', '[]', '', '', '', '', '', 'active',
                   'lead', 0, '', '', '', '', '', '', '', '', '', '', 'unknown', '', '', '',
                   jsonb_build_object('tier', 'tier' || n %% 50), false
              FROM generate_series(1, 20000) AS n
            """,
            [a.pk],
        )
        cursor.execute(
            """
            INSERT INTO contacts_company
                (org_id, public_id, created_at, updated_at, name, domain, website, industry,
                 size, description, custom, is_archived)
            SELECT %s, gen_random_uuid(), now(), now(), 'Company ' || n, '', '', '', '', '',
                   '{}', false
              FROM generate_series(1, 3000) AS n
            """,
            [a.pk],
        )
        cursor.execute("ANALYZE contacts_company")
        # New entries wait in the GIN indexes' pending lists, which the planner prices as
        # a scan of their own; merged in, the indexes are priced as they would be in use.
        cursor.execute("SELECT gin_clean_pending_list('contact_search')")
        cursor.execute("SELECT gin_clean_pending_list('contact_custom')")
        cursor.execute("ANALYZE contacts_contact")
    return a


def _hot_query_plans(org) -> dict[str, tuple[str, str]]:
    """{index: (plan, what its Index Cond must hold)} for the hot queries, as the app
    spells them, planned under the policy."""
    contacts = Contact.objects.for_org(org)
    email = (
        contacts.filter(is_archived=False)
        .exclude(email="")
        .annotate(email_lower=Lower("email"))
        .filter(email_lower="maria@example.com")
    )
    company = (
        Company.objects.for_org(org).annotate(name_lower=Lower("name")).filter(name_lower="initech")
    )
    with transaction.atomic(), rls.tenant(org.pk):
        return {
            # The search box: full-text match on the GIN index.
            "contact_search": (
                _plan(contacts.filter(search_vector=search_query("garcia"))),
                "search_vector @@",
            ),
            # The email check before a save: (org, lower(email)) among active contacts.
            "contact_email_per_org_active": (_plan(email), "lower((email)::text) ="),
            # A custom-field filter of the list: jsonb containment on the GIN index.
            "contact_custom": (
                _plan(contacts.filter(custom__contains={"tier": "gold"})),
                "custom @>",
            ),
            # A company found by name (the import's company match, the company filter).
            "company_org_lower_name": (_plan(company), "lower((name)::text) ="),
            # The list filtered by status, in its (org, status, id) order.
            "contact_org_status": (
                _plan(contacts.filter(status="inactive").order_by("id")),
                "status)::text =",
            ),
        }


def _index_serves(plan: str, index: str, condition: str) -> bool:
    lines = plan.splitlines()
    for number, line in enumerate(lines):
        if f" on {index} " in f"{line} " or f" using {index} " in f"{line} ":
            conditions = [
                other
                for other in lines[number + 1 : number + 3]
                if "Index Cond:" in other and condition in other
            ]
            if conditions:
                return True
    return False


def test_the_hot_queries_keep_their_indexes_under_the_policy(indexed):
    for index, (plan, condition) in _hot_query_plans(indexed).items():
        assert _index_serves(plan, index, condition), plan


def test_without_leakproof_the_policy_costs_a_query_its_index(indexed):
    # Why the migration marks the functions: take a mark away (in this test's transaction
    # only) and the condition is left to filter the whole organization.
    with connection.cursor() as cursor:
        cursor.execute("ALTER FUNCTION ts_match_vq(tsvector, tsquery) NOT LEAKPROOF")
        cursor.execute("ALTER FUNCTION lower(text) NOT LEAKPROOF")
    plans = _hot_query_plans(indexed)
    for index in ("contact_search", "contact_email_per_org_active", "company_org_lower_name"):
        assert not _index_serves(plans[index][0], index, plans[index][1]), plans[index][0]
    assert _index_serves(*plans["contact_custom"][:1], "contact_custom", "custom @>")


def test_a_search_in_a_request_leaves_the_planner_settings_as_they_were(indexed):
    # The search turns plain scans off for its id look-up; in a request's transaction that
    # must not last for the rest of the request.
    with transaction.atomic(), rls.tenant(indexed.pk), connection.cursor() as cursor:
        assert search_q(indexed, "garcia") == Q(
            id__in=list(Contact.objects.filter(last_name="Garcia").values_list("id", flat=True))
        )
        cursor.execute(
            "SELECT current_setting('enable_seqscan'), current_setting('enable_indexscan')"
        )
        assert cursor.fetchone() == ("on", "on")


def test_the_vetted_functions_are_leakproof(db):
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT p.oid::regprocedure::text FROM pg_proc p WHERE p.proleakproof "
            "AND p.oid::regprocedure::text = ANY(%s)",
            [list(rls.LEAKPROOF_FUNCTIONS)],
        )
        assert {row[0] for row in cursor.fetchall()} == set(rls.LEAKPROOF_FUNCTIONS)
