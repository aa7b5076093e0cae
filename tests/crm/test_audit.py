import csv
import datetime as dt
import io
from unittest import mock
from urllib.parse import urlencode

import pytest
from django.contrib.auth.models import AnonymousUser
from django.db import DatabaseError, connection, transaction
from django.test import RequestFactory
from django.urls import reverse

from crm.csvutils import safe_cell, stream_csv
from crm.models import AuditEvent
from crm.pagination import page as keyset_page
from crm.permissions import normalize_permissions
from crm.selectors import audit_events
from crm.services import Actor, audit, diff, organization_create, snapshot
from crm.views import audit as audit_views
from tests.factories import AuditEventFactory, TeamFactory, UserFactory, custom_role, member

UTC = dt.UTC


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    """These tests make many users and never type a password; skip the slow hasher."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def event_at(org, when: dt.datetime, **fields) -> AuditEvent:
    """An audit event written at `when` (created_at is auto_now_add, and the table refuses
    UPDATE, so the clock is set while the row is inserted)."""
    with mock.patch("django.utils.timezone.now", return_value=when):
        return AuditEventFactory(org=org, **fields)


def read_csv(response) -> list[list[str]]:
    body = b"".join(response.streaming_content).decode("utf-8")
    assert body.startswith("\ufeff"), "the export starts with a BOM so Excel reads UTF-8"
    return list(csv.reader(io.StringIO(body[1:])))


# Recording ------------------------------------------------------------------------------


def test_organization_create_records_actor_object_and_ip(db):
    user = UserFactory(email="founder@example.test")
    request = RequestFactory().post("/signup", REMOTE_ADDR="198.51.100.23")
    request.user = user

    org = organization_create(name="Initech", owner=user, actor=Actor.from_request(request))

    event = AuditEvent.objects.for_org(org).get(verb="organization.created")
    assert event.actor_type == AuditEvent.ActorType.USER
    assert event.actor_user == user
    assert event.actor_label == "founder@example.test"
    assert event.object_type == "organization"
    assert event.object_id == str(org.public_id)
    assert event.object_repr == "Initech"
    assert event.ip_address == "198.51.100.23"


def _actor_ip(remote_addr, forwarded=None):
    extra = {"HTTP_X_FORWARDED_FOR": forwarded} if forwarded is not None else {}
    request = RequestFactory().get("/", REMOTE_ADDR=remote_addr, **extra)
    request.user = AnonymousUser()
    return Actor.from_request(request).ip


def test_forwarded_for_is_ignored_when_no_proxy_is_trusted(settings):
    settings.TRUSTED_PROXIES = []

    # Anyone can send the header: a client must not pick the address the audit log records.
    assert _actor_ip("198.51.100.7", "203.0.113.9") == "198.51.100.7"


def test_forwarded_for_is_ignored_from_a_peer_that_is_not_a_trusted_proxy(settings):
    settings.TRUSTED_PROXIES = ["10.0.0.0/8"]

    assert _actor_ip("198.51.100.7", "203.0.113.9, 10.0.0.1") == "198.51.100.7"


def test_actor_ip_is_the_first_address_a_trusted_proxy_did_not_add(settings, db):
    settings.TRUSTED_PROXIES = ["10.0.0.0/8"]
    user = UserFactory()
    # The client forged the left-most entry; the load balancer (10.0.0.1) appended the real
    # address it saw, and the app's own proxy (10.0.0.2) is the peer.
    request = RequestFactory().get(
        "/", REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="1.2.3.4, 203.0.113.9, 10.0.0.1"
    )
    request.user = user

    org = organization_create(name="Hooli", owner=user, actor=Actor.from_request(request))

    assert AuditEvent.objects.for_org(org).get().ip_address == "203.0.113.9"


def test_garbage_in_forwarded_for_stops_at_the_last_vouched_address(settings):
    settings.TRUSTED_PROXIES = ["10.0.0.2"]

    assert _actor_ip("10.0.0.2", "<script>, 203.0.113.9") == "203.0.113.9"
    assert _actor_ip("10.0.0.2", "203.0.113.9, not-an-ip") == "10.0.0.2"
    assert _actor_ip("10.0.0.2", "") == "10.0.0.2"


def test_sign_in_rate_limits_count_the_same_client_address(settings, rf):
    """allauth keys its rate limits by client address; it asks our adapter, so a forged
    X-Forwarded-For cannot give each attempt a fresh budget."""
    from allauth.account.adapter import get_adapter

    settings.TRUSTED_PROXIES = []
    request = rf.post(
        "/accounts/login/", REMOTE_ADDR="198.51.100.7", HTTP_X_FORWARDED_FOR="1.1.1.1"
    )

    assert get_adapter(request).get_client_ip(request) == "198.51.100.7"


def test_service_change_records_before_and_after_of_changed_fields_only(org):
    team = TeamFactory(org=org, name="Inside sales")
    admin = member(org, "admin")
    request = RequestFactory().post("/", REMOTE_ADDR="192.0.2.44")
    request.user = admin.user

    # The shape every service follows: snapshot, write, diff, audit in one transaction.
    with transaction.atomic():
        before = snapshot(team, ["name", "org"])
        team.name = "Field sales"
        team.save()
        audit(
            org=org,
            actor=Actor.from_request(request),
            verb="team.updated",
            obj=team,
            changes=diff(before, snapshot(team, ["name", "org"])),
        )

    event = AuditEvent.objects.for_org(org).get(verb="team.updated")
    assert event.changes == {"name": ["Inside sales", "Field sales"]}
    assert event.actor_user == admin.user
    assert event.object_id == str(team.public_id)
    assert event.object_repr == "Field sales"
    assert event.ip_address == "192.0.2.44"


def test_audit_log_page_shows_before_and_after_table(org, client_as):
    admin = member(org, "admin")
    AuditEventFactory(
        org=org,
        actor_type=AuditEvent.ActorType.USER,
        actor_user=admin.user,
        actor_label=admin.user.email,
        verb="team.updated",
        object_type="team",
        object_repr="Field sales",
        changes={"name": ["Inside sales", "Field sales"]},
        ip_address="192.0.2.44",
    )

    page = client_as(admin).get(reverse("crm:audit_log")).content.decode()

    assert "team.updated" in page
    assert "192.0.2.44" in page
    assert admin.user.display_name in page
    assert "<details" in page
    assert "<td>Inside sales</td><td>Field sales</td>" in page


# Append-only ----------------------------------------------------------------------------


def test_database_refuses_to_update_an_audit_event(org):
    event = AuditEventFactory(org=org, verb="contact.created")
    event.verb = "contact.forged"

    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        event.save()
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        AuditEvent.objects.filter(pk=event.pk).update(ip_address="127.0.0.1")

    event.refresh_from_db()
    assert event.verb == "contact.created"
    assert event.ip_address is None


def test_database_refuses_to_delete_an_audit_event(org):
    event = AuditEventFactory(org=org)

    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        AuditEvent.objects.filter(pk=event.pk).delete()
    with (
        pytest.raises(DatabaseError, match="append-only"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute("DELETE FROM crm_auditevent WHERE id = %s", [event.pk])

    assert AuditEvent.objects.filter(pk=event.pk).exists()


# Filters --------------------------------------------------------------------------------


@pytest.fixture
def mixed_log(org):
    """Four events that differ in every filterable way."""
    alice = member(org, "admin")
    bob = member(org, "team")
    return {
        "alice": alice,
        "bob": bob,
        "alice_contact": AuditEventFactory(
            org=org,
            actor_type=AuditEvent.ActorType.USER,
            actor_user=alice.user,
            actor_label=alice.user.email,
            verb="contact.created",
            object_type="contact",
        ),
        "bob_deal": AuditEventFactory(
            org=org,
            actor_type=AuditEvent.ActorType.USER,
            actor_user=bob.user,
            actor_label=bob.user.email,
            verb="deal.updated",
            object_type="deal",
        ),
        "api_contact": AuditEventFactory(
            org=org,
            actor_type=AuditEvent.ActorType.API_KEY,
            actor_label="API key: Zapier sync",
            verb="contact.updated",
            object_type="contact",
        ),
        "ai_task": AuditEventFactory(
            org=org,
            actor_type=AuditEvent.ActorType.AI,
            actor_label="AI for bob",
            verb="task.created",
            object_type="task",
        ),
    }


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({"member": "alice"}, {"alice_contact"}),
        ({"actor": "zapier"}, {"api_contact"}),
        ({"actor_type": "ai"}, {"ai_task"}),
        ({"actor_type": "user"}, {"alice_contact", "bob_deal"}),
        ({"verb": "deal.updated"}, {"bob_deal"}),
        ({"object_type": "contact"}, {"alice_contact", "api_contact"}),
        ({"object_type": "contact", "actor_type": "api_key"}, {"api_contact"}),
        ({}, {"alice_contact", "bob_deal", "api_contact", "ai_task"}),
    ],
)
def test_each_filter_narrows_the_log(org, mixed_log, filters, expected):
    resolved = {k: (mixed_log[v] if k == "member" else v) for k, v in filters.items()}

    found = set(audit_events(org, resolved).values_list("pk", flat=True))

    assert found == {mixed_log[name].pk for name in expected}


@pytest.mark.parametrize(
    ("params", "shown", "hidden"),
    [
        ({"actor": "zapier"}, ["API key: Zapier sync"], ["AI for bob", "deal.updated"]),
        ({"actor_type": "ai"}, ["AI for bob"], ["API key: Zapier sync", "deal.updated"]),
        ({"verb": "deal.updated"}, ["deal.updated"], ["contact.created", "task.created"]),
        ({"object_type": "task"}, ["task.created"], ["contact.created", "deal.updated"]),
    ],
)
def test_audit_log_page_applies_filters(org, mixed_log, client_as, params, shown, hidden):
    page = client_as(mixed_log["alice"]).get(reverse("crm:audit_log"), params).content.decode()

    for text in shown:
        assert text in page
    rows = page.split("<tbody>", 1)[1]
    for text in hidden:
        assert text not in rows


def test_member_filter_on_page_uses_membership_public_id(org, mixed_log, client_as):
    bob = mixed_log["bob"]

    response = client_as(mixed_log["alice"]).get(
        reverse("crm:audit_log"), {"member": str(bob.public_id)}
    )

    rows = [event.pk for event in response.context["page"].rows]
    assert rows == [mixed_log["bob_deal"].pk]


def test_verb_select_offers_only_verbs_present_in_this_org(org, other_org, mixed_log, client_as):
    AuditEventFactory(org=other_org, verb="secret.other_org_verb")

    form = client_as(mixed_log["alice"]).get(reverse("crm:audit_log")).context["form"]

    verbs = [value for value, _ in form.fields["verb"].choices if value]
    assert verbs == ["contact.created", "contact.updated", "deal.updated", "task.created"]


def test_filter_with_unknown_verb_is_reported_not_applied(org, mixed_log, client_as):
    response = client_as(mixed_log["alice"]).get(reverse("crm:audit_log"), {"verb": "nope"})

    assert response.status_code == 200
    assert "this filter was not applied" in response.content.decode()
    assert len(response.context["page"].rows) == 4


def test_no_matching_events_shows_empty_state(org, mixed_log, client_as):
    response = client_as(mixed_log["alice"]).get(
        reverse("crm:audit_log"), {"actor": "nobody-like-this"}
    )

    page = response.content.decode()
    assert "No events match these filters" in page
    assert "<tbody>" not in page


# Dates in the organization's timezone ------------------------------------------------------


@pytest.fixture
def new_york_org(org):
    org.timezone = "America/New_York"
    org.save(update_fields=["timezone"])
    return org


def test_date_range_uses_org_timezone_day_boundaries(new_york_org):
    org = new_york_org
    # 03:30 UTC on 10 March is still 9 March (22:30 EST) in New York.
    late_on_ninth = event_at(org, dt.datetime(2026, 3, 10, 3, 30, tzinfo=UTC), verb="late.ninth")
    # 05:30 UTC on 10 March is 00:30 on 10 March in New York.
    early_on_tenth = event_at(org, dt.datetime(2026, 3, 10, 5, 30, tzinfo=UTC), verb="early.tenth")

    def verbs(**filters):
        return set(audit_events(org, filters).values_list("verb", flat=True))

    assert verbs(date_to=dt.date(2026, 3, 9)) == {late_on_ninth.verb}
    assert verbs(date_from=dt.date(2026, 3, 10)) == {early_on_tenth.verb}
    assert verbs(date_from=dt.date(2026, 3, 9), date_to=dt.date(2026, 3, 9)) == {"late.ninth"}
    assert verbs(date_from=dt.date(2026, 3, 10), date_to=dt.date(2026, 3, 10)) == {"early.tenth"}


def test_date_range_boundary_follows_daylight_saving(new_york_org):
    org = new_york_org
    # On 1 July New York is on EDT (UTC-4): the day starts at 04:00 UTC.
    event_at(org, dt.datetime(2026, 7, 1, 3, 59, tzinfo=UTC), verb="before.midnight")
    event_at(org, dt.datetime(2026, 7, 1, 4, 0, tzinfo=UTC), verb="at.midnight")

    found = audit_events(org, {"date_from": dt.date(2026, 7, 1), "date_to": dt.date(2026, 7, 1)})

    assert list(found.values_list("verb", flat=True)) == ["at.midnight"]


def test_page_shows_times_in_org_timezone(new_york_org, client_as):
    admin = member(new_york_org, "admin")
    event_at(new_york_org, dt.datetime(2026, 3, 10, 3, 30, tzinfo=UTC), verb="late.ninth")

    page = client_as(admin).get(reverse("crm:audit_log")).content.decode()

    assert "Mar 9, 2026, 23:30" in page  # the one format (docs/glossary.md), New York time
    assert "America/New_York" in page


def test_page_date_filters_use_org_timezone(new_york_org, client_as):
    admin = member(new_york_org, "admin")
    event_at(new_york_org, dt.datetime(2026, 3, 10, 3, 30, tzinfo=UTC), verb="late.ninth")

    client = client_as(admin)
    on_ninth = client.get(
        reverse("crm:audit_log"), {"date_from": "2026-03-09", "date_to": "2026-03-09"}
    )
    on_tenth = client.get(reverse("crm:audit_log"), {"date_from": "2026-03-10"})

    assert [e.verb for e in on_ninth.context["page"].rows] == ["late.ninth"]
    assert [e.verb for e in on_tenth.context["page"].rows if e.verb == "late.ninth"] == []


def test_end_date_before_start_date_is_an_error(org, client_as):
    admin = member(org, "admin")

    response = client_as(admin).get(
        reverse("crm:audit_log"), {"date_from": "2026-03-10", "date_to": "2026-03-01"}
    )

    assert "The end date is before the start date." in response.content.decode()


# Pagination ------------------------------------------------------------------------------


def test_keyset_pages_walk_older_and_back_newer(org):
    start = dt.datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    # Two events share each timestamp, so ties are broken by id.
    made = [event_at(org, start + dt.timedelta(minutes=i // 2)) for i in range(7)]
    newest_first = [e.pk for e in sorted(made, key=lambda e: (e.created_at, e.pk), reverse=True)]
    events = audit_events(org)
    order = audit_views.NEWEST_FIRST

    first = keyset_page(events, order, None, 3)
    second = keyset_page(events, order, first.next_cursor, 3)
    third = keyset_page(events, order, second.next_cursor, 3)
    back = keyset_page(events, order, third.prev_cursor, 3)

    assert [e.pk for e in first.rows] == newest_first[:3]
    assert [e.pk for e in second.rows] == newest_first[3:6]
    assert [e.pk for e in third.rows] == newest_first[6:]
    assert [e.pk for e in back.rows] == newest_first[3:6]
    assert (first.has_prev, first.has_next) == (False, True)
    assert (second.has_prev, second.has_next) == (True, True)
    assert (third.has_prev, third.has_next) == (True, False)
    assert back.has_prev and back.has_next


def test_tampered_cursor_falls_back_to_newest_page(org):
    AuditEventFactory(org=org)

    page = keyset_page(audit_events(org), audit_views.NEWEST_FIRST, "not-a-cursor!", 3)

    assert len(page.rows) == 1
    assert not page.has_prev


def test_older_and_newer_links_work_without_js_and_with_htmx(org, client_as, monkeypatch):
    monkeypatch.setattr(audit_views, "PAGE_SIZE", 2)
    admin = member(org, "admin")
    start = dt.datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    for i in range(3):
        event_at(org, start + dt.timedelta(minutes=i), verb=f"step.{i}")
    url = reverse("crm:audit_log")

    first = client_as(admin).get(url)
    older_query = "?" + urlencode({"before": first.context["page"].next_cursor})
    assert f'href="{older_query}"' in first.content.decode()
    assert "Older" in first.content.decode()

    older = client_as(admin).get(url + older_query)
    assert [e.verb for e in older.context["page"].rows] == ["step.0"]
    assert "Newer" in older.content.decode()
    newer_query = "?" + urlencode({"after": older.context["page"].prev_cursor})
    assert f'href="{newer_query}"' in older.content.decode()
    newer = client_as(admin).get(url + newer_query)
    assert [e.verb for e in newer.context["page"].rows] == ["step.2", "step.1"]

    partial = client_as(admin, htmx=True).get(url + older_query)
    body = partial.content.decode()
    assert body.lstrip().startswith('<div id="audit-results"')
    assert "<html" not in body
    assert "step.0" in body


def test_a_stale_older_cursor_starts_over_at_the_newest_page(org, client_as, monkeypatch):
    monkeypatch.setattr(audit_views, "PAGE_SIZE", 1)
    admin = member(org, "admin")
    AuditEventFactory(org=org, verb="kept.verb")
    AuditEventFactory(org=org, verb="other.verb")
    url = reverse("crm:audit_log")
    older = client_as(admin).get(url).context["page"].next_cursor

    # The same cursor under a filter that leaves nothing past it.
    response = client_as(admin).get(url, {"verb": "other.verb", "before": older})

    assert [e.verb for e in response.context["page"].rows] == ["other.verb"]


def test_pagination_links_keep_filters(org, client_as, monkeypatch):
    monkeypatch.setattr(audit_views, "PAGE_SIZE", 1)
    admin = member(org, "admin")
    AuditEventFactory.create_batch(2, org=org, verb="kept.verb")
    AuditEventFactory(org=org, verb="other.verb")

    page = client_as(admin).get(reverse("crm:audit_log"), {"verb": "kept.verb"}).content.decode()
    partial = client_as(admin, htmx=True).get(reverse("crm:audit_log"), {"verb": "kept.verb"})

    assert "?verb=kept.verb&amp;before=" in page
    # The export link lives in the swapped partial, so it follows filters applied via HTMX.
    export_link = f'href="{reverse("crm:audit_export")}?verb=kept.verb"'
    assert export_link in partial.content.decode()


# Export ---------------------------------------------------------------------------------


def test_export_streams_filtered_rows_in_org_timezone(new_york_org, client_as):
    admin = member(new_york_org, "admin")
    event_at(
        new_york_org,
        dt.datetime(2026, 3, 10, 3, 30, tzinfo=UTC),
        actor_type=AuditEvent.ActorType.API_KEY,
        actor_label="API key: Zapier",
        verb="contact.updated",
        object_type="contact",
        object_id="c-1",
        object_repr="Ada Lovelace",
        ip_address="203.0.113.5",
        changes={"phone": ["", "+44 20 7946 0000"]},
    )
    AuditEventFactory(org=new_york_org, verb="deal.created")

    response = client_as(admin).get(reverse("crm:audit_export"), {"verb": "contact.updated"})

    assert response.status_code == 200
    assert response.streaming
    assert response["Content-Type"].startswith("text/csv")
    assert "attachment;" in response["Content-Disposition"]
    header, *rows = read_csv(response)
    assert header == audit_views.EXPORT_HEADER
    assert rows == [
        [
            "2026-03-09T23:30:00-04:00",
            "America/New_York",
            "API key",
            "API key: Zapier",
            "contact.updated",
            "contact",
            "c-1",
            "Ada Lovelace",
            "203.0.113.5",
            '{"phone": ["", "+44 20 7946 0000"]}',
        ]
    ]


def test_export_neutralizes_spreadsheet_formulas(org, client_as):
    admin = member(org, "admin")
    for text in ['=HYPERLINK("http://evil.test")', "+1+1", "-2+3", "@SUM(A1)", "\tx", "\rx"]:
        AuditEventFactory(org=org, verb="contact.created", object_repr=text, actor_label=text)

    response = client_as(admin).get(reverse("crm:audit_export"), {"verb": "contact.created"})

    _, *rows = read_csv(response)
    objects = sorted(row[7] for row in rows)
    actors = sorted(row[3] for row in rows)
    expected = sorted(
        ['\'=HYPERLINK("http://evil.test")', "'+1+1", "'-2+3", "'@SUM(A1)", "'\tx", "'\rx"]
    )
    assert objects == expected
    assert actors == expected


def test_export_records_its_own_audit_event(org, client_as):
    admin = member(org, "admin")

    response = client_as(admin).get(reverse("crm:audit_export"), {"actor_type": "ai"})
    b"".join(response.streaming_content)

    event = AuditEvent.objects.for_org(org).get(verb="audit.exported")
    assert event.actor_user == admin.user
    assert event.ip_address == "127.0.0.1"
    assert event.changes == {"filters": {"actor_type": "ai"}}


def test_viewer_cannot_see_or_export_audit_log(org, client_as):
    viewer = member(org, "viewer")

    assert client_as(viewer).get(reverse("crm:audit_log")).status_code == 403
    assert client_as(viewer).get(reverse("crm:audit_export")).status_code == 403
    assert not AuditEvent.objects.for_org(org).filter(verb="audit.exported").exists()


def test_admin_can_export_audit_log(org, client_as):
    admin = member(org, "admin")

    assert client_as(admin).get(reverse("crm:audit_export")).status_code == 200


def test_settings_viewer_without_export_right_sees_log_but_cannot_export(org, client_as):
    auditor_role = custom_role(
        org, permissions=normalize_permissions({"settings": {"access": True, "view": True}})
    )
    auditor = member(org, "team")
    auditor.role = auditor_role
    auditor.save()

    client = client_as(auditor)
    page = client.get(reverse("crm:audit_log"))

    assert page.status_code == 200
    assert "Export CSV" not in page.content.decode()
    assert client.get(reverse("crm:audit_export")).status_code == 403


def test_logged_out_visitor_is_sent_to_login(client, db):
    response = client.get(reverse("crm:audit_export"))

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("account_login"))


# Tenancy --------------------------------------------------------------------------------


def test_other_orgs_events_never_show(org, other_org, client_as):
    admin = member(org, "admin")
    stranger = member(other_org, "owner")
    AuditEventFactory(org=org, verb="mine.created", object_repr="Our deal")
    AuditEventFactory(org=other_org, verb="theirs.created", object_repr="Their secret deal")
    client = client_as(admin)

    page = client.get(reverse("crm:audit_log")).content.decode()
    forged_filter = client.get(reverse("crm:audit_log"), {"member": str(stranger.public_id)})
    _, *rows = read_csv(client.get(reverse("crm:audit_export")))

    assert "Our deal" in page
    assert "Their secret deal" not in page
    assert "Their secret deal" not in forged_filter.content.decode()
    assert "member" in forged_filter.context["form"].errors
    assert [row[7] for row in rows] == ["Our deal"]


def test_selector_is_scoped_to_the_org(org, other_org):
    AuditEventFactory(org=org)
    AuditEventFactory(org=other_org)

    assert set(audit_events(org).values_list("org_id", flat=True)) == {org.pk}


# CSV helpers ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("=1+1", "'=1+1"),
        ("+33 6 12 34 56 78", "+33 6 12 34 56 78"),  # a phone number, not a formula
        ("+33 6 12 34 56 78+cmd", "'+33 6 12 34 56 78+cmd"),
        ("-x", "'-x"),
        ("@user", "'@user"),
        ("\tindent", "'\tindent"),
        ("\rreturn", "'\rreturn"),
        ("plain text", "plain text"),
        ("a=b", "a=b"),
        (None, ""),
        (-5, -5),
        (True, "true"),
        (dt.date(2026, 1, 2), "2026-01-02"),
    ],
)
def test_safe_cell_neutralizes_formula_starts(value, expected):
    assert safe_cell(value) == expected


def test_stream_csv_yields_header_then_one_line_per_row():
    lines = list(stream_csv(iter([["=cmd", 1], ["ok", None]]), ["name", "count"]))

    assert lines == ["\ufeffname,count\r\n", "'=cmd,1\r\n", "ok,\r\n"]


def test_audit_log_refuses_truncate(db):
    """TRUNCATE fires no row trigger; a statement trigger refuses it like UPDATE and DELETE."""
    AuditEventFactory()
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # no pending FK checks
        cursor.execute("SET LOCAL crm.allow_audit_truncate = 'off'")
        with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
            cursor.execute("TRUNCATE crm_auditevent")
    assert AuditEvent.objects.exists()
