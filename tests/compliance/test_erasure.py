"""Erasure: nothing of the person is left in any text column, and they do not come back."""

import pytest
from django.core.exceptions import ValidationError
from django.db import DatabaseError, connection, transaction

from compliance.models import ConsentRecord, ErasureTombstone, Suppression
from compliance.services.erasure import (
    ERASED_IMPORT_MESSAGE,
    RELATION_HANDLING,
    contact_relations,
    erase_contact,
    is_tombstoned,
    relation_key,
    tombstoned_emails,
)
from contacts import services as contact_services
from contacts.dedup.models import DuplicateDismissal, DuplicatePair
from contacts.importing.models import ImportRecord
from contacts.models import Activity, Contact, ContactList, ContactTag
from contacts.services.merge import merge_contacts
from crm.models import AuditEvent
from crm.services import Actor
from pipeline.models import Deal, Order, OrderRollup
from tests.contacts.test_import_pipeline import (  # noqa: F401 -- the fixture
    _uploads_in_tmp,
    import_file,
    rows_csv,
)
from tests.factories import (
    ActivityFactory,
    ContactFactory,
    ContactListFactory,
    DataRequestFactory,
    ImportJobFactory,
    NotificationFactory,
    SuppressionFactory,
    TagFactory,
    factory_for,
)

pytestmark = pytest.mark.django_db

EMAIL = "quintessa.vandermolen@erase.example"
OTHER_EMAIL = "q.vandermolen@old-job.example"
FIRST, LAST = "Quintessa", "Vandermolen"
PHONE = "+442079460958"
NEEDLES = [EMAIL, OTHER_EMAIL, f"{FIRST} {LAST}", PHONE]


def system():
    return Actor.system("tests")


def make_person(org, owner, **extra):
    """The person as the app makes them: through the service, so the audit log and the
    outbox hold their data too."""
    data = {"first_name": FIRST, "last_name": LAST, "email": EMAIL, "phone": PHONE, **extra}
    return contact_services.contact_create(org=org, actor=Actor.for_user(owner.user), data=data)


def _pair(model, org, first, second):
    a, b = (first, second) if first.pk < second.pk else (second, first)
    values = {"score": 0.97, "band": "probable", "reasons": ["same email"]}
    if model is DuplicateDismissal:
        values = {}
    return model.objects.for_org(org).create(org=org, contact_a=a, contact_b=b, **values)


def fill_every_relation(org, person):
    """A row in every relation to Contact, found by introspection; returns the keys filled."""
    filled = set()
    for fk in contact_relations():
        key = relation_key(fk)
        if key == "contacts.Contact.merged_into":
            twin = ContactFactory(org=org, first_name=FIRST, last_name=LAST, email=OTHER_EMAIL)
            merge_contacts(primary=person, secondary=twin, actor=system())
        elif key == "contacts.ContactTag.contact":
            ContactTag.objects.create(contact=person, tag=TagFactory(org=org))
        elif key == "contacts.ContactList_contacts.contact":
            ContactListFactory(org=org).contacts.add(person)
        elif key in ("contacts.DuplicatePair.contact_a", "contacts.DuplicatePair.contact_b"):
            _pair(DuplicatePair, org, person, ContactFactory(org=org))
        elif key.startswith("contacts.DuplicateDismissal."):
            _pair(DuplicateDismissal, org, person, ContactFactory(org=org))
        elif key.startswith("contacts.MergeRecord."):
            pass  # the merge above made one, with the person as primary and their twin
        elif key == "pipeline.OrderRollup.contact":
            pass  # the order below makes it (triggers)
        elif key == "compliance.Suppression.contact":
            SuppressionFactory(org=org, contact=person, address=EMAIL, note=f"{FIRST} {LAST}")
        elif key == "compliance.DataRequest.contact":
            DataRequestFactory(
                org=org,
                kind="erasure",
                contact=person,
                requester_email=EMAIL,
                details=f"I am {FIRST} {LAST}, call {PHONE}",
            )
        elif key == "pipeline.Order.contact":
            factory_for(fk.model)(org=org, contact=person, note=f"Ship to {FIRST} {LAST}")
        elif key == "pipeline.Deal.contact":
            factory_for(fk.model)(org=org, contact=person, title=f"Renewal {FIRST} {LAST}")
        else:
            maker = factory_for(fk.model)
            assert maker is not None, f"No factory for {key}"
            maker(org=org, **{fk.name: person})
        filled.add(key)
    return filled


def text_columns():
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT table_name, column_name FROM information_schema.columns
             WHERE table_schema = 'public'
               AND data_type IN ('text', 'character varying', 'jsonb', 'json')
             ORDER BY table_name, column_name
            """
        )
        return cursor.fetchall()


def leftovers(needles) -> list[str]:
    """Every (table.column: needle) where a needle still appears, case-insensitively."""
    found = []
    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        for table, column in text_columns():
            for needle in needles:
                # Table and column names come from the catalog, quoted.
                query = f"SELECT count(*) FROM {quote(table)} WHERE {quote(column)}::text ILIKE %s"  # noqa: S608
                cursor.execute(query, [f"%{needle}%"])
                if cursor.fetchone()[0]:
                    found.append(f"{table}.{column}: {needle}")
    return found


# Coverage -----------------------------------------------------------------------------------


def test_every_relation_to_contact_has_an_erasure_decision():
    keys = {relation_key(fk) for fk in contact_relations()}
    assert keys <= set(RELATION_HANDLING), keys - set(RELATION_HANDLING)
    assert set(RELATION_HANDLING) <= keys, set(RELATION_HANDLING) - keys


def test_erasure_leaves_no_personal_data_in_any_text_column(org, owner):
    person = make_person(org, owner, other_emails=[OTHER_EMAIL])
    filled = fill_every_relation(org, person)
    assert filled == {relation_key(fk) for fk in contact_relations()}
    NotificationFactory(
        org=org, title=f"{FIRST} {LAST} replied", url=f"/contacts/{person.public_id}/"
    )
    job = ImportJobFactory(org=org, suggestions=[{"header": "Email", "samples": [EMAIL]}])
    Contact.objects.for_org(org).filter(pk=person.pk).update(import_job=job)
    ImportRecord.objects.create(
        job=job,
        contact_id=person.pk,
        row_number=3,
        action="updated",
        changes={"email": ["", EMAIL]},
        written_at=person.created_at,
    )
    bystander = ContactFactory(org=org, first_name="Brook", last_name="Stander")
    # The needles are really there before, so the scan below can fail.
    assert len(leftovers(NEEDLES)) >= 8
    order_total = sum(o.value for o in Order.objects.for_org(org).filter(contact=person))

    report = erase_contact(contact=person, actor=system())

    assert leftovers(NEEDLES) == []
    assert report.contacts == 2  # the person and the twin merged into them
    assert not Contact.objects.for_org(org).filter(pk=person.pk).exists()
    assert Contact.objects.for_org(org).filter(pk=bystander.pk).exists()
    assert not Activity.objects.for_org(org).filter(contact_id=person.pk).exists()
    assert not ConsentRecord.objects.for_org(org).filter(contact_id=person.pk).exists()
    assert not ContactList.contacts.through.objects.filter(contact_id=person.pk).exists()
    kept = Order.objects.for_org(org).filter(contact__source="erasure")
    assert sum(o.value for o in kept) == order_total and all(o.note == "" for o in kept)
    assert not OrderRollup.objects.for_org(org).filter(contact_id=person.pk).exists()
    assert Deal.objects.for_org(org).filter(title__contains="[erased]").exists()
    erased = AuditEvent.objects.for_org(org).get(verb="contact.erased")
    assert erased.object_repr == "Erased person"


def test_erasure_is_audited_and_the_suppression_still_counts_as_a_hash(org, owner):
    person = make_person(org, owner)
    SuppressionFactory(org=org, address=EMAIL, reason="unsubscribe")
    erase_contact(contact=person, actor=system())
    row = Suppression.objects.for_org(org).get()
    assert row.address.startswith("erased:") and row.contact is None and row.lifted_at is None
    created = AuditEvent.objects.for_org(org).get(verb="contact.created")
    assert EMAIL not in str(created.changes) and created.object_repr == "Erased person"


# Tombstones ---------------------------------------------------------------------------------


def test_a_tombstone_keeps_hashes_only_and_answers_lookups(org, other_org, owner):
    person = make_person(org, owner)
    erase_contact(contact=person, actor=system())
    tombstone = ErasureTombstone.objects.for_org(org).get()
    assert len(tombstone.email_hash) == 64 and EMAIL not in tombstone.email_hash
    assert is_tombstoned(org, email=EMAIL.upper())
    assert is_tombstoned(org, phone="+44 20 7946 0958")
    assert not is_tombstoned(org, email="someone.else@example.com")
    assert not is_tombstoned(other_org, email=EMAIL)
    assert tombstoned_emails(org, [EMAIL, "fresh@example.com"]) == {EMAIL}


def test_a_tombstone_blocks_creating_the_person_again(org, owner):
    erase_contact(contact=make_person(org, owner), actor=system())
    with pytest.raises(ValidationError) as exc:
        make_person(org, owner)
    assert "erased on request" in " ".join(exc.value.message_dict["email"])
    assert not Contact.objects.for_org(org).filter(email=EMAIL).exists()


def test_legal_hold_refuses_and_changes_nothing(org, owner):
    person = make_person(org, owner)
    Contact.objects.for_org(org).filter(pk=person.pk).update(legal_hold=True)
    ActivityFactory(org=org, contact=person)
    activities = Activity.objects.for_org(org).filter(contact=person).count()
    with pytest.raises(ValidationError) as exc:
        erase_contact(contact=person, actor=system())
    assert "legal hold" in exc.value.messages[0] and FIRST in exc.value.messages[0]
    assert Contact.objects.for_org(org).filter(pk=person.pk).exists()
    assert Activity.objects.for_org(org).filter(contact=person).count() == activities >= 2
    assert not ErasureTombstone.objects.for_org(org).exists()


def test_a_merged_twin_on_legal_hold_holds_the_person_too(org, owner):
    person = make_person(org, owner)
    twin = ContactFactory(org=org, legal_hold=True)
    merge_contacts(primary=person, secondary=twin, actor=system())
    with pytest.raises(ValidationError):
        erase_contact(contact=person, actor=system())
    assert Contact.objects.for_org(org).filter(pk=person.pk).exists()


# The append-only tables ---------------------------------------------------------------------


def test_the_audit_log_still_refuses_update_and_delete_outside_an_erasure(org, owner):
    make_person(org, owner)
    event = AuditEvent.objects.for_org(org).first()
    with pytest.raises(DatabaseError), transaction.atomic():
        AuditEvent.objects.for_org(org).filter(pk=event.pk).update(object_repr="x")
    with pytest.raises(DatabaseError), transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SELECT set_config('crm.erasure', 'on', true)")
        AuditEvent.objects.for_org(org).filter(pk=event.pk).delete()
    event.refresh_from_db()
    assert event.object_repr != "x"


def test_an_import_skips_an_erased_persons_row_and_says_why(org, owner):
    erase_contact(contact=make_person(org, owner), actor=system())
    content = rows_csv(
        ["First name", "Email"], [[FIRST, EMAIL.upper()], ["Noor", "noor@example.com"]]
    )
    job = import_file(owner, content)
    assert (job.created_count, job.error_count) == (1, 1)
    error = job.row_errors.get()
    assert error.message == ERASED_IMPORT_MESSAGE
    assert not Contact.objects.for_org(org).filter(email__iexact=EMAIL).exists()
    assert Contact.objects.for_org(org).filter(email="noor@example.com").exists()


def test_a_deletion_without_tombstone_lets_the_person_be_added_again(org, owner):
    erase_contact(contact=make_person(org, owner), actor=system(), tombstone=False)
    assert not ErasureTombstone.objects.for_org(org).exists()
    assert not is_tombstoned(org, email=EMAIL)
    assert make_person(org, owner).email == EMAIL


def test_a_tombstone_blocks_the_phone_number_on_the_form_and_in_an_import(org, owner):
    erase_contact(contact=make_person(org, owner), actor=system())
    with pytest.raises(ValidationError) as exc:
        make_person(org, owner, email="new-address@example.com")
    assert "erased on request" in " ".join(exc.value.message_dict["phone"])
    # The same number as typed in a file, formatted another way.
    content = rows_csv(
        ["First name", "Email", "Phone"],
        [["Q", "other@example.com", "+44 20 7946 0958"], ["Noor", "noor@example.com", ""]],
    )
    job = import_file(owner, content)
    assert (job.created_count, job.error_count) == (1, 1)
    assert job.row_errors.get().message == ERASED_IMPORT_MESSAGE
    assert not Contact.objects.for_org(org).filter(email="other@example.com").exists()
