"""Suppression: suppress and lift (with its note), what may_contact makes of it, the CSV
import of other tools' lists, the export, and the list page's tenancy and permissions."""

import csv
import io

import pytest
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from compliance.models import Suppression
from compliance.selectors import may_contact
from compliance.services import suppression as service
from compliance.services.suppression import (
    SuppressionFilters,
    import_suppressions_csv,
    suppress,
    suppression_rows_for_export,
    unsuppress,
)
from crm.models import AuditEvent, OutboxEvent
from crm.services import Actor
from tests.factories import ContactFactory, SuppressionFactory, member

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin(org):
    return member(org, "admin")


@pytest.fixture
def by(admin):
    return Actor.for_user(admin.user)


def person(org, **fields):
    values = {"email": "eve@example.com", "mobile": "+4915112345678", "country": "DE"}
    return ContactFactory(org=org, **{**values, **fields})


def upload(text: str, name: str = "list.csv", encoding: str = "utf-8") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, text.encode(encoding), content_type="text/csv")


def active(org):
    return Suppression.objects.for_org(org).filter(lifted_at__isnull=True)


# suppress / unsuppress ----------------------------------------------------------------------


def test_suppress_normalizes_the_email_and_an_unsubscribe_covers_marketing_only(org, by):
    row = suppress(
        org=org, channel="email", address="  Eve@Example.COM ", reason="unsubscribe", actor=by
    )
    assert row.address == "eve@example.com"
    assert row.scope == Suppression.Scope.MARKETING
    assert row.created_by == by.user


def test_a_bounce_covers_every_message_and_phone_numbers_become_e164(org, by):
    row = suppress(org=org, channel="sms", address="+44 20 7946 0958", reason="bounce", actor=by)
    assert row.address == "+442079460958"
    assert row.scope == Suppression.Scope.ALL


@pytest.mark.parametrize(
    ("fields", "key"),
    [
        ({"channel": "fax", "address": "a@b.example", "reason": "manual"}, "channel"),
        ({"channel": "email", "address": "a@b.example", "reason": "bored"}, "reason"),
        ({"channel": "email", "address": "not an address", "reason": "manual"}, "address"),
        ({"channel": "sms", "address": "555 0100", "reason": "manual"}, "address"),
        ({"channel": "email", "address": "   ", "reason": "manual"}, "address"),
    ],
)
def test_suppress_refuses_what_it_cannot_store(org, by, fields, key):
    with pytest.raises(ValidationError) as caught:
        suppress(org=org, actor=by, **fields)
    assert key in caught.value.message_dict
    assert not Suppression.objects.for_org(org).exists()


def test_suppress_is_idempotent_for_an_active_suppression(org, by):
    first = suppress(org=org, channel="email", address="eve@example.com", reason="bounce", actor=by)
    again = suppress(
        org=org, channel="email", address="EVE@example.com", reason="complaint", actor=by
    )
    assert again.pk == first.pk
    assert again.reason == "bounce"  # returned unchanged
    assert active(org).count() == 1
    audits = AuditEvent.objects.for_org(org).filter(verb="suppression.added")
    assert audits.count() == 1


def test_the_same_address_on_another_channel_is_its_own_suppression(org, by):
    suppress(org=org, channel="sms", address="+4915112345678", reason="manual", actor=by)
    suppress(org=org, channel="whatsapp", address="+4915112345678", reason="manual", actor=by)
    assert active(org).count() == 2


def test_suppressing_a_contact_is_audited_and_emits_contact_suppressed(org, by):
    contact = person(org)
    row = suppress(
        org=org,
        channel="email",
        address=contact.email,
        reason="complaint",
        actor=by,
        contact=contact,
        note="Reported as spam",
        source="Compliance card",
    )
    entry = AuditEvent.objects.for_org(org).get(verb="suppression.added")
    assert entry.actor_user == by.user
    assert entry.object_id == str(row.public_id)
    assert entry.changes["reason"] == "complaint"
    event = OutboxEvent.objects.for_org(org).get(event_type="contact.suppressed")
    assert event.payload["contact"] == str(contact.public_id)
    assert event.payload["channel"] == "email"


def test_suppressing_an_address_without_a_contact_emits_no_contact_event(org, by):
    suppress(org=org, channel="email", address="x@example.com", reason="manual", actor=by)
    assert not OutboxEvent.objects.for_org(org).filter(event_type="contact.suppressed").exists()


@pytest.mark.parametrize("note", ["", "   "])
def test_lifting_needs_a_note(org, by, note):
    row = SuppressionFactory(org=org)
    with pytest.raises(ValidationError) as caught:
        unsuppress(suppression=row, actor=by, note=note)
    assert "note" in caught.value.message_dict
    row.refresh_from_db()
    assert row.lifted_at is None
    assert not AuditEvent.objects.for_org(org).filter(verb="suppression.lifted").exists()


def test_lifting_keeps_the_row_and_audits_the_note(org, by):
    row = SuppressionFactory(org=org, address="eve@example.com")
    unsuppress(suppression=row, actor=by, note="She asked to hear from us again")
    row.refresh_from_db()
    assert row.lifted_at is not None
    assert row.lifted_by == by.user
    assert row.lift_note == "She asked to hear from us again"
    entry = AuditEvent.objects.for_org(org).get(verb="suppression.lifted")
    assert entry.changes["note"] == "She asked to hear from us again"
    assert entry.actor_user == by.user


def test_lifting_a_lifted_suppression_is_refused_and_changes_nothing(org, by):
    row = SuppressionFactory(org=org)
    unsuppress(suppression=row, actor=by, note="first")
    with pytest.raises(ValidationError, match="already lifted"):
        unsuppress(suppression=row, actor=by, note="second")
    row.refresh_from_db()
    assert row.lift_note == "first"


def test_suppressing_again_after_a_lift_keeps_both_in_the_history(org, by):
    first = suppress(org=org, channel="email", address="eve@example.com", reason="bounce", actor=by)
    unsuppress(suppression=first, actor=by, note="Mailbox fixed")
    second = suppress(
        org=org, channel="email", address="eve@example.com", reason="complaint", actor=by
    )
    assert second.pk != first.pk
    rows = Suppression.objects.for_org(org).filter(address="eve@example.com")
    assert rows.count() == 2
    assert active(org).get().reason == "complaint"


# may_contact -------------------------------------------------------------------------------


@pytest.mark.parametrize("channel", ["email", "sms", "phone", "whatsapp"])
@pytest.mark.parametrize("reason", ["bounce", "complaint", "manual", "do_not_contact"])
def test_a_suppressed_address_is_refused_for_every_purpose_and_names_its_reason(
    org, by, channel, reason
):
    contact = person(org, consent_email=True, consent_sms=True, consent_phone=True)
    address = contact.email if channel == "email" else contact.mobile
    suppress(org=org, channel=channel, address=address, reason=reason, actor=by)
    label = dict(Suppression.Reason.choices)[reason].lower()
    for purpose in ("marketing", "transactional"):
        verdict = may_contact(contact, channel, purpose)
        assert not verdict.allowed
        assert verdict.code == f"suppressed_{reason}"
        assert label in verdict.reason


def test_a_suppression_on_one_channel_leaves_the_others_alone(org, by):
    contact = person(org)
    suppress(org=org, channel="sms", address=contact.mobile, reason="bounce", actor=by)
    assert not may_contact(contact, "sms", "transactional")
    assert may_contact(contact, "whatsapp", "marketing").allowed
    assert may_contact(contact, "email", "marketing").allowed


@pytest.mark.parametrize("channel", ["email", "sms", "phone", "whatsapp"])
def test_a_marketing_only_suppression_still_allows_transactional(org, by, channel):
    contact = person(org)
    address = contact.email if channel == "email" else contact.mobile
    suppress(org=org, channel=channel, address=address, reason="unsubscribe", actor=by)
    marketing = may_contact(contact, channel, "marketing")
    assert not marketing.allowed and marketing.code == "suppressed_unsubscribe"
    assert "unsubscribed" in marketing.reason
    assert may_contact(contact, channel, "transactional").allowed


def test_a_lifted_suppression_no_longer_refuses(org, by):
    contact = person(org)
    row = suppress(org=org, channel="email", address=contact.email, reason="bounce", actor=by)
    unsuppress(suppression=row, actor=by, note="Address works again")
    assert may_contact(contact, "email", "transactional").allowed


def test_another_organizations_suppression_does_not_refuse(org, other_org, by):
    contact = person(org)
    SuppressionFactory(org=other_org, address=contact.email, reason="bounce")
    assert may_contact(contact, "email", "transactional").allowed


# CSV import ---------------------------------------------------------------------------------

MAILCHIMP_UNSUBSCRIBED = (
    "\ufeffEmail Address,First Name,Last Name,MEMBER_RATING,OPTIN_TIME,UNSUB_TIME,"
    "UNSUB_CAMPAIGN_TITLE,UNSUB_REASON\r\n"
    "Ann@Example.com,Ann,Lee,2,2024-01-03 10:00:00,2024-06-01 08:00:00,June news,"
    "No longer interested\r\n"
    "bob@example.com,Bob,Ray,1,2024-01-03 10:00:00,2024-06-02 08:00:00,June news,\r\n"
    "not-an-email,Cy,Doe,1,,,June news,\r\n"
    "ann@example.com,Ann,Lee,2,,,,\r\n"
)


def test_a_mailchimp_unsubscribed_export_imports_with_its_headers(org, by):
    result = import_suppressions_csv(
        org=org,
        actor=by,
        file=upload(MAILCHIMP_UNSUBSCRIBED, "members_unsubscribed.csv"),
        default_reason="unsubscribe",
        source="Import of members_unsubscribed.csv",
    )
    assert result["added"] == 2
    assert result["already"] == 1  # Ann twice
    assert result["invalid"] == 1
    assert result["errors"][0]["row"] == 4
    assert "not-an-email" in result["errors"][0]["message"]
    rows = {s.address: s for s in active(org)}
    assert set(rows) == {"ann@example.com", "bob@example.com"}
    assert rows["bob@example.com"].reason == "unsubscribe"
    assert rows["bob@example.com"].scope == "marketing"
    assert rows["bob@example.com"].source == "Import of members_unsubscribed.csv"
    entry = AuditEvent.objects.for_org(org).get(verb="suppression.imported")
    assert entry.changes["added"] == 2


def test_a_twilio_opt_out_list_imports_as_sms_suppressions(org, by):
    text = "Phone Number,Date Created\n+1 415 555 0100,2024-05-01\n+14155550101,2024-05-02\n"
    result = import_suppressions_csv(
        org=org, actor=by, file=upload(text, "opt-outs.csv"), source="Import of opt-outs.csv"
    )
    assert result["added"] == 2 and result["invalid"] == 0
    assert {(s.channel, s.address, s.reason) for s in active(org)} == {
        ("sms", "+14155550100", "manual"),
        ("sms", "+14155550101", "manual"),
    }


def test_channel_and_reason_columns_are_read_and_bad_rows_do_not_cost_the_others(org, by):
    SuppressionFactory(org=org, channel="email", address="old@example.com", reason="bounce")
    text = (
        "email;phone;channel;reason\n"
        "old@example.com;;email;bounce\n"
        ";+4915112345678;WhatsApp;spam\n"
        ";+4915112345679;calls;do not contact\n"
        "x@example.com;;email;angry\n"
        ";+4915112345670;pigeon;manual\n"
        ";;email;manual\n"
        f"{'a' * 300}@example.com;;email;manual\n"
        "new@example.com;;;hard bounce\n"
    )
    result = import_suppressions_csv(org=org, actor=by, file=upload(text), source="Import")
    assert result["added"] == 3
    assert result["already"] == 1
    assert result["invalid"] == 4
    assert [error["row"] for error in result["errors"]] == [5, 6, 7, 8]
    messages = " ".join(error["message"] for error in result["errors"])
    assert "angry" in messages and "pigeon" in messages and "254 characters" in messages
    got = {(s.channel, s.address, s.reason, s.scope) for s in active(org)}
    assert ("whatsapp", "+4915112345678", "complaint", "all") in got
    assert ("phone", "+4915112345679", "do_not_contact", "all") in got
    assert ("email", "new@example.com", "bounce", "all") in got


def test_an_import_reads_windows_1252_text(org, by):
    text = "E-mail,Name\nrene@example.com,Ren\u00e9\n"
    result = import_suppressions_csv(
        org=org, actor=by, file=upload(text, encoding="cp1252"), source="Import"
    )
    assert result["added"] == 1


def test_a_file_without_an_address_column_is_refused_whole(org, by):
    with pytest.raises(ValidationError, match="no column"):
        import_suppressions_csv(
            org=org, actor=by, file=upload("name,city\nAnn,Oslo\n"), source="Import"
        )
    assert not Suppression.objects.for_org(org).exists()


def test_a_file_over_five_megabytes_is_refused(org, by):
    big = "email\n" + "x" * (service.MAX_UPLOAD_BYTES)
    with pytest.raises(ValidationError, match="MB"):
        import_suppressions_csv(org=org, actor=by, file=upload(big), source="Import")
    assert not Suppression.objects.for_org(org).exists()


def test_a_file_with_too_many_rows_is_refused_before_anything_is_written(org, by, monkeypatch):
    monkeypatch.setattr(service, "MAX_ROWS", 3)
    text = "email\n" + "".join(f"p{n}@example.com\n" for n in range(4))
    with pytest.raises(ValidationError, match="more than 3 rows"):
        import_suppressions_csv(org=org, actor=by, file=upload(text), source="Import")
    assert not Suppression.objects.for_org(org).exists()
    ok = "email\n" + "".join(f"p{n}@example.com\n" for n in range(3))
    assert (
        import_suppressions_csv(org=org, actor=by, file=upload(ok), source="Import")["added"] == 3
    )


def test_only_the_first_hundred_row_errors_are_listed(org, by):
    text = "email\n" + "bad\n" * 150 + "good@example.com\n"
    result = import_suppressions_csv(org=org, actor=by, file=upload(text), source="Import")
    assert result["invalid"] == 150
    assert len(result["errors"]) == 100
    assert result["errors_more"] == 50
    assert result["added"] == 1


# Export -------------------------------------------------------------------------------------


def test_export_rows_follow_the_filters(org, other_org, by):
    kept = suppress(org=org, channel="email", address="a@example.com", reason="bounce", actor=by)
    lifted = suppress(org=org, channel="sms", address="+14155550100", reason="manual", actor=by)
    unsuppress(suppression=lifted, actor=by, note="Fixed")
    SuppressionFactory(org=other_org, address="z@example.com")
    everything = list(suppression_rows_for_export(org, SuppressionFilters(status="all")))
    assert {row[1] for row in everything} == {"a@example.com", "+14155550100"}
    only_active = list(suppression_rows_for_export(org, SuppressionFilters()))
    assert [row[1] for row in only_active] == [kept.address]
    assert only_active[0][:5] == ["Email", "a@example.com", "Bounced", "All messages", "Active"]
    lifted_rows = list(suppression_rows_for_export(org, SuppressionFilters(status="lifted")))
    assert lifted_rows[0][4] == "Lifted" and lifted_rows[0][11] == "Fixed"


def test_the_export_view_streams_a_csv_and_is_audited(client_as, org, admin):
    SuppressionFactory(org=org, address="=cmd@example.com", reason="complaint")
    SuppressionFactory(org=org, channel="sms", address="+14155550100")
    response = client_as(admin).get(reverse("compliance:suppression_export") + "?channel=email")
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv"
    body = b"".join(response.streaming_content).decode("utf-8-sig")
    rows = list(csv.reader(io.StringIO(body)))
    assert rows[0][:3] == ["Channel", "Address", "Reason"]
    assert [row[1] for row in rows[1:]] == ["'=cmd@example.com"]
    assert AuditEvent.objects.for_org(org).filter(verb="suppression.exported").exists()


def test_a_member_without_compliance_export_cannot_export(client_as, org):
    executive = member(org, "executive")  # compliance: view only
    response = client_as(executive).get(reverse("compliance:suppression_export"))
    assert response.status_code == 403


# The list page ------------------------------------------------------------------------------


def test_the_list_shows_active_suppressions_and_filters(client_as, org, admin):
    SuppressionFactory(org=org, address="shown@example.com", reason="bounce")
    SuppressionFactory(org=org, channel="sms", address="+14155550100", reason="manual")
    lifted = SuppressionFactory(org=org, address="lifted@example.com")
    unsuppress(suppression=lifted, actor=Actor.for_user(admin.user), note="ok")
    client = client_as(admin)
    url = reverse("compliance:suppression_list")
    page = client.get(url).content.decode()
    assert "shown@example.com" in page and "+14155550100" in page
    assert "lifted@example.com" not in page
    assert "Export CSV" in page and "Import a suppression list" in page
    filtered = client.get(url, {"channel": "email", "q": "SHOWN"}).content.decode()
    assert "shown@example.com" in filtered and "+14155550100" not in filtered
    lifted_page = client.get(url, {"status": "lifted"}).content.decode()
    assert "lifted@example.com" in lifted_page and "shown@example.com" not in lifted_page
    partial = client_as(admin, htmx=True).get(url, {"reason": "manual"}).content.decode()
    assert "<html" not in partial and "+14155550100" in partial


def test_the_list_pages_with_a_cursor(client_as, org, admin):
    for n in range(55):
        SuppressionFactory(org=org, address=f"p{n:02d}@example.com")
    client = client_as(admin)
    url = reverse("compliance:suppression_list")
    first = client.get(url)
    assert first.context["page"].has_next
    second = client.get(url, {"cursor": first.context["page"].next_cursor})
    shown = {row["suppression"].address for row in first.context["rows"]}
    more = {row["suppression"].address for row in second.context["rows"]}
    assert len(shown) == 50 and len(more) == 5 and not shown & more


def test_an_empty_list_says_so(client_as, org, admin):
    page = client_as(admin).get(reverse("compliance:suppression_list")).content.decode()
    assert "No suppressed addresses" in page


def test_importing_through_the_page_shows_the_result(client_as, org, admin):
    text = "Email Address\nok@example.com\nbroken\n"
    response = client_as(admin).post(
        reverse("compliance:suppression_import"),
        {"file": upload(text, "mailchimp.csv"), "default_reason": "unsubscribe"},
    )
    assert response.status_code == 200
    page = response.content.decode()
    assert "Import of mailchimp.csv" in page
    assert "Row 3:" in page
    row = active(org).get()
    assert row.address == "ok@example.com" and row.source == "Import of mailchimp.csv"


def test_a_refused_file_shows_its_reason_on_the_form(client_as, org, admin):
    response = client_as(admin).post(
        reverse("compliance:suppression_import"),
        {"file": upload("name\nAnn\n"), "default_reason": "manual"},
    )
    assert response.status_code == 400
    assert "no column" in response.content.decode()


def test_a_member_with_compliance_view_only_sees_no_import_or_lift(client_as, org):
    SuppressionFactory(org=org, address="shown@example.com")
    executive = member(org, "executive")
    client = client_as(executive)
    page = client.get(reverse("compliance:suppression_list")).content.decode()
    assert "shown@example.com" in page
    assert "Import a suppression list" not in page and "Lift suppression" not in page
    response = client.post(
        reverse("compliance:suppression_import"),
        {"file": upload("email\na@example.com\n"), "default_reason": "manual"},
    )
    assert response.status_code == 403
    assert not active(org).filter(address="a@example.com").exists()


def test_lifting_from_the_list_needs_a_note(client_as, org, admin):
    row = SuppressionFactory(org=org)
    client = client_as(admin)
    url = reverse("compliance:suppression_lift", args=[row.public_id])
    refused = client.post(url, {"note": ""})
    assert refused.status_code == 400
    assert "Say why this address may be contacted again." in refused.content.decode()
    row.refresh_from_db()
    assert row.lifted_at is None
    done = client.post(url, {"note": "Verified the mailbox", "next": "/compliance/suppressions/"})
    assert done.status_code == 302 and done["Location"] == "/compliance/suppressions/"
    row.refresh_from_db()
    assert row.lift_note == "Verified the mailbox"


@pytest.mark.parametrize("role_key", ["viewer", "executive", "team"])
def test_members_without_compliance_edit_cannot_lift(client_as, org, role_key):
    row = SuppressionFactory(org=org)
    response = client_as(member(org, role_key)).post(
        reverse("compliance:suppression_lift", args=[row.public_id]), {"note": "please"}
    )
    assert response.status_code == 403
    row.refresh_from_db()
    assert row.lifted_at is None


@pytest.mark.parametrize("role_key", ["viewer", "team"])
def test_members_without_the_compliance_module_cannot_see_the_list(client_as, org, role_key):
    response = client_as(member(org, role_key)).get(reverse("compliance:suppression_list"))
    assert response.status_code == 403


def test_another_organizations_suppression_is_404_and_never_listed(
    client_as, org, other_org, admin
):
    theirs = SuppressionFactory(org=other_org, address="theirs@example.com")
    client = client_as(admin)
    url = reverse("compliance:suppression_lift", args=[theirs.public_id])
    assert client.get(url).status_code == 404
    assert client.post(url, {"note": "mine now"}).status_code == 404
    theirs.refresh_from_db()
    assert theirs.lifted_at is None
    page = client.get(reverse("compliance:suppression_list"), {"status": "all"})
    assert "theirs@example.com" not in page.content.decode()
    export = client.get(reverse("compliance:suppression_export"), {"status": "all"})
    assert b"theirs@example.com" not in b"".join(export.streaming_content)


def test_the_compliance_overview_links_to_the_list(client_as, org, admin):
    page = client_as(admin).get(reverse("compliance:home")).content.decode()
    assert reverse("compliance:suppression_list") in page
