"""The consent ledger: every write of a consent column leaves a row, attributed to its
writer, and no row can be rewritten, deleted or truncated away."""

import pytest
from django.db import DatabaseError, connection, transaction

from compliance.models import ConsentRecord
from compliance.services.consent import (
    ConsentVia,
    consent_context,
    erasure_mode,
    set_consent,
)
from contacts import services
from contacts.models import Contact
from crm.services import Actor
from tests.factories import ContactFactory, member

pytestmark = pytest.mark.django_db


def ledger(contact):
    return list(
        ConsentRecord.objects.for_org(contact.org_id)
        .filter(contact=contact)
        .order_by("id")
        .values_list("field", "old_value", "new_value", "actor_kind", "source")
    )


def test_a_new_contact_with_consents_gets_a_row_per_given_value(org):
    user = member(org, "owner").user
    contact = services.contact_create(
        org=org,
        actor=Actor.for_user(user),
        data={"email": "ada@example.com", "consent_email": True, "consent_status": "opted_in"},
    )
    rows = ConsentRecord.objects.for_org(org).filter(contact=contact)
    assert {(r.field, r.old_value, r.new_value) for r in rows} == {
        ("consent_email", "", "true"),
        ("consent_status", "unknown", "opted_in"),
    }
    assert {r.actor_kind for r in rows} == {"member"}
    assert {r.actor_user_id for r in rows} == {user.pk}
    assert {r.source for r in rows} == {"Contact record"}


def test_a_contact_without_consent_values_gets_no_rows(org):
    contact = ContactFactory(org=org)
    assert ledger(contact) == []


def test_an_edit_records_old_and_new_value_and_who(org):
    user = member(org, "owner").user
    contact = ContactFactory(org=org, consent_sms=True)
    services.contact_update(
        contact=contact,
        actor=Actor.for_user(user, ip="203.0.113.9"),
        data={"consent_sms": False, "job_title": "CTO"},
    )
    row = ConsentRecord.objects.for_org(org).filter(contact=contact).latest("id")
    assert (row.field, row.old_value, row.new_value) == ("consent_sms", "true", "false")
    assert row.actor_user_id == user.pk
    assert row.ip_address == "203.0.113.9"


def test_an_edit_that_leaves_consents_alone_writes_no_row(org):
    contact = ContactFactory(org=org, consent_email=True)
    before = len(ledger(contact))
    Contact.objects.for_org(org).filter(pk=contact.pk).update(lead_score=40, job_title="CEO")
    assert len(ledger(contact)) == before


def test_raw_sql_cannot_change_a_consent_around_the_ledger(org):
    contact = ContactFactory(org=org)
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE contacts_contact SET consent_whatsapp = true, do_not_sell = true WHERE id = %s",
            [contact.pk],
        )
    assert set(ledger(contact)) == {
        ("consent_whatsapp", "", "true", "system", ""),
        ("do_not_sell", "false", "true", "system", ""),
    }


def test_the_writers_context_names_the_actor_and_evidence(org):
    contact = ContactFactory(org=org)
    via = ConsentVia(
        kind="preference_center",
        source="Preference center",
        ip="198.51.100.4",
        user_agent="Mozilla/5.0",
        consent_text="I agree to receive news.",
        consent_text_version="3",
        legal_basis="consent",
        evidence={"gpc": False},
    )
    with transaction.atomic(), consent_context(via):
        Contact.objects.for_org(org).filter(pk=contact.pk).update(consent_email=True)
    row = ConsentRecord.objects.for_org(org).get(contact=contact)
    assert row.actor_kind == "preference_center"
    assert row.ip_address == "198.51.100.4"
    assert row.user_agent == "Mozilla/5.0"
    assert (row.consent_text, row.consent_text_version) == ("I agree to receive news.", "3")
    assert row.legal_basis == "consent"
    assert row.evidence == {"gpc": False}


def test_the_context_ends_with_its_block(org):
    contact = ContactFactory(org=org)
    with transaction.atomic():
        with consent_context(ConsentVia(kind="api", source="API")):
            pass
        Contact.objects.for_org(org).filter(pk=contact.pk).update(consent_sms=False)
    assert ledger(contact) == [("consent_sms", "", "false", "system", "")]


def test_many_rows_in_one_statement_each_get_their_rows(org):
    contacts = [ContactFactory(org=org) for _ in range(3)]
    with transaction.atomic(), consent_context(ConsentVia(kind="import", source="Import of a.csv")):
        Contact.objects.for_org(org).filter(pk__in=[c.pk for c in contacts]).update(
            consent_email=False
        )
    for contact in contacts:
        assert ledger(contact) == [("consent_email", "", "false", "import", "Import of a.csv")]


def test_set_consent_audits_and_emits_and_returns_the_changes(org):
    from crm.models import AuditEvent, OutboxEvent

    user = member(org, "admin").user
    contact = ContactFactory(org=org, consent_email=None)
    changed = set_consent(
        contact=contact,
        changes={"consent_email": True, "consent_status": "opted_in"},
        via=ConsentVia.from_actor(Actor.for_user(user), source="Compliance card"),
    )
    assert changed == {"consent_email": ["", "true"], "consent_status": ["unknown", "opted_in"]}
    contact.refresh_from_db()
    assert contact.consent_date is not None and contact.consent_source == "Compliance card"
    assert AuditEvent.objects.for_org(org).filter(verb="contact.consent_changed").exists()
    assert OutboxEvent.objects.for_org(org).filter(event_type="contact.consent_changed").exists()
    # Unchanged values change nothing and add nothing.
    assert (
        set_consent(contact=contact, changes={"consent_email": True}, via=ConsentVia("member"))
        == {}
    )
    assert len(ledger(contact)) == 2


def test_set_consent_refuses_what_is_not_a_consent(org):
    from django.core.exceptions import ValidationError

    contact = ContactFactory(org=org)
    with pytest.raises(ValidationError):
        set_consent(contact=contact, changes={"email": "x@example.com"}, via=ConsentVia("member"))
    with pytest.raises(ValidationError):
        set_consent(contact=contact, changes={"consent_status": "maybe"}, via=ConsentVia("member"))
    assert ledger(contact) == []


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE compliance_consentrecord SET new_value = 'false' WHERE id = %s",
        "DELETE FROM compliance_consentrecord WHERE id = %s",
    ],
)
def test_the_ledger_refuses_rewrites_and_deletes(org, statement):
    contact = ContactFactory(org=org, consent_email=True)
    row_id = ConsentRecord.objects.for_org(org).get(contact=contact).pk
    with (
        pytest.raises(DatabaseError, match="append-only"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(statement, [row_id])
    assert ConsentRecord.objects.for_org(org).get(pk=row_id).new_value == "true"


def test_the_ledger_refuses_truncate(org):
    ContactFactory(org=org, consent_email=True)
    with (
        pytest.raises(DatabaseError, match="append-only"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute("SET LOCAL crm.allow_audit_truncate = 'off'")
        cursor.execute("TRUNCATE compliance_consentrecord")
    assert ConsentRecord.objects.for_org(org).exists()


def test_an_erasure_may_delete_rows_but_never_rewrite_them(org):
    contact = ContactFactory(org=org, consent_email=True)
    row_id = ConsentRecord.objects.for_org(org).get(contact=contact).pk
    with transaction.atomic(), erasure_mode():
        with (
            pytest.raises(DatabaseError, match="append-only"),
            transaction.atomic(),
            connection.cursor() as cursor,
        ):
            cursor.execute(
                "UPDATE compliance_consentrecord SET new_value = '' WHERE id = %s", [row_id]
            )
        ConsentRecord.objects.for_org(org).filter(pk=row_id).delete()
    assert not ConsentRecord.objects.for_org(org).filter(pk=row_id).exists()
    # Outside the block the wall is back.
    other = ContactFactory(org=org, consent_sms=True)
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        ConsentRecord.objects.for_org(org).filter(contact=other).delete()


def test_rows_reach_only_their_organization(org, other_org):
    ContactFactory(org=org, consent_email=True)
    theirs = ContactFactory(org=other_org, consent_email=True)
    assert not ConsentRecord.objects.for_org(org).filter(contact=theirs).exists()
    assert ConsentRecord.objects.for_org(other_org).filter(contact=theirs).count() == 1
