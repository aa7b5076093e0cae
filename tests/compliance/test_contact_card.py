"""The contact's Compliance card: verdicts per channel, suppressions with Suppress and Lift,
the consent history, a consent change with its ledger rows, and who may do what."""

import pytest
from django.urls import reverse

from compliance.models import ConsentRecord, Suppression
from compliance.services.suppression import suppress
from crm.models import AuditEvent
from crm.services import Actor
from tests.factories import (
    ConsentRecordFactory,
    ContactFactory,
    MembershipFactory,
    SuppressionFactory,
    custom_role,
    member,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin(org):
    return member(org, "admin")


def person(org, **fields):
    values = {"email": "eve@example.com", "mobile": "+4915112345678", "country": "DE"}
    return ContactFactory(org=org, **{**values, **fields})


def card_url(contact):
    return reverse("compliance:contact_card", args=[contact.public_id])


def action_url(name, contact, *args):
    return reverse(f"compliance:{name}", args=[contact.public_id, *args])


def test_the_contact_page_loads_the_card_with_a_link_fallback(client_as, org, admin):
    contact = person(org)
    page = client_as(admin).get(reverse("contacts:contact_detail", args=[contact.public_id]))
    html = page.content.decode()
    assert f'hx-get="{card_url(contact)}"' in html
    assert f'href="{card_url(contact)}"' in html


def test_the_card_shows_each_channels_verdicts_with_their_reasons(client_as, org, admin):
    contact = person(org, consent_email=True)
    suppress(
        org=org,
        channel="sms",
        address=contact.mobile,
        reason="bounce",
        actor=Actor.for_user(admin.user),
    )
    response = client_as(admin, htmx=True).get(card_url(contact))
    assert response.status_code == 200
    html = response.content.decode()
    assert "<html" not in html
    channels = {row["key"]: row for row in response.context["channels"]}
    assert set(channels) == {"email", "sms", "phone", "whatsapp"}
    assert channels["email"]["consent"] == "yes"
    assert channels["email"]["marketing"].allowed
    assert not channels["sms"]["marketing"].allowed
    assert not channels["sms"]["transactional"].allowed
    assert channels["sms"]["transactional"].code == "suppressed_bounce"
    assert "bounced" in channels["sms"]["transactional_reason"]
    assert "The contact consented to email." in html
    assert "is suppressed for text messages: bounced" in html
    assert "Transactional messages need no marketing consent." in html


def test_the_card_without_javascript_is_a_page_of_its_own(client_as, org, admin):
    contact = person(org)
    response = client_as(admin).get(card_url(contact))
    assert response.status_code == 200
    assert "<html" in response.content.decode()
    assert "May we contact this person?" in response.content.decode()


def test_the_card_shows_flags_and_status(client_as, org, admin):
    contact = person(org, do_not_sell=True, legal_hold=True, consent_status="opted_in")
    html = client_as(admin, htmx=True).get(card_url(contact)).content.decode()
    assert "Do not sell or share" in html and "On hold" in html
    assert "Opted In" in html


def test_the_card_shows_the_consent_history_newest_first(client_as, org, admin):
    contact = person(org)
    client = client_as(admin, htmx=True)
    client.post(
        action_url("contact_consent", contact),
        {
            "consent_email": "yes",
            "consent_sms": "unknown",
            "consent_phone": "unknown",
            "consent_whatsapp": "no",
            "legal_basis": "consent",
            "note": "Asked at the trade fair",
        },
        HTTP_USER_AGENT="CardTest/1.0",
    )
    response = client.get(card_url(contact))
    history = response.context["history"]
    assert {row["field"] for row in history} == {"WhatsApp consent", "Email consent"}
    email = next(row for row in history if row["field"] == "Email consent")
    assert (email["old"], email["new"]) == ("Unknown", "Yes")
    assert email["kind"] == "Member"
    assert email["legal_basis"] == "Consent"
    assert email["note"] == "Asked at the trade fair"
    html = response.content.decode()
    assert "Unknown → Yes" in html and "CardTest/1.0" in html and "Compliance card" in html


def test_the_card_shows_twenty_changes_and_links_to_all(client_as, org, admin):
    contact = person(org)
    for n in range(25):
        ConsentRecordFactory(org=org, contact=contact, source=f"Source {n}")
    client = client_as(admin, htmx=True)
    response = client.get(card_url(contact))
    assert len(response.context["history"]) == 20
    history_url = action_url("contact_consent_history", contact)
    assert history_url in response.content.decode()
    full = client_as(admin).get(history_url)
    assert full.status_code == 200
    assert len(full.context["history"]) == 25


def test_a_consent_change_on_the_card_writes_ledger_rows_naming_the_member(client_as, org, admin):
    contact = person(org)
    response = client_as(admin).post(
        action_url("contact_consent", contact),
        {
            "consent_email": "yes",
            "consent_sms": "no",
            "consent_phone": "unknown",
            "consent_whatsapp": "unknown",
            "legal_basis": "legitimate_interest",
            "note": "Phone call",
        },
        HTTP_USER_AGENT="Browser/2.0",
    )
    assert response.status_code == 302
    contact.refresh_from_db()
    assert contact.consent_email is True and contact.consent_sms is False
    rows = ConsentRecord.objects.for_org(org).filter(contact=contact)
    assert {row.field for row in rows} == {"consent_email", "consent_sms"}
    for row in rows:
        assert row.source == "Compliance card"
        assert row.form == "Compliance card"
        assert row.actor_kind == "member"
        assert row.actor_user == admin.user
        assert row.legal_basis == "legitimate_interest"
        assert row.user_agent == "Browser/2.0"
    assert AuditEvent.objects.for_org(org).filter(verb="contact.consent_changed").exists()


def test_a_consent_form_with_a_bad_value_changes_nothing(client_as, org, admin):
    contact = person(org)
    response = client_as(admin).post(
        action_url("contact_consent", contact),
        {
            "consent_email": "maybe",
            "consent_sms": "no",
            "consent_phone": "unknown",
            "consent_whatsapp": "unknown",
        },
    )
    assert response.status_code == 400
    contact.refresh_from_db()
    assert contact.consent_sms is None
    assert not ConsentRecord.objects.for_org(org).filter(contact=contact).exists()


def test_a_consent_field_the_role_may_only_see_is_not_changed(client_as, org):
    rights = {"access": True, "view": True, "create": True, "edit": True, "scope": "all"}
    role = custom_role(
        org,
        permissions={"contacts": rights},
        field_rules={"consent_email": "visible", "consent_sms": "hidden"},
    )
    someone = MembershipFactory(org=org, role=role)
    contact = person(org, consent_email=False)
    client = client_as(someone)
    card = client_as(someone, htmx=True).get(card_url(contact))
    form = card.context["consent_form"]
    assert "consent_email" not in form.fields and "consent_sms" not in form.fields
    sms = next(row for row in card.context["channels"] if row["key"] == "sms")
    assert not sms["consent_visible"]
    client.post(
        action_url("contact_consent", contact),
        {
            "consent_email": "yes",
            "consent_sms": "yes",
            "consent_phone": "yes",
            "consent_whatsapp": "unknown",
        },
    )
    contact.refresh_from_db()
    assert contact.consent_email is False
    assert contact.consent_sms is None
    assert contact.consent_phone is True


def test_suppressing_from_the_card_uses_the_contacts_address(client_as, org, admin):
    contact = person(org)
    response = client_as(admin, htmx=True).post(
        action_url("contact_suppress", contact),
        {"channel": "whatsapp", "reason": "do_not_contact", "note": "Asked us to stop"},
    )
    assert response.status_code == 200
    row = Suppression.objects.for_org(org).get()
    assert (row.channel, row.address, row.reason, row.scope) == (
        "whatsapp",
        "+4915112345678",
        "do_not_contact",
        "all",
    )
    assert row.contact == contact and row.source == "Compliance card"
    assert row.note == "Asked us to stop"
    assert "Asked us to stop" in response.content.decode()


def test_suppressing_a_channel_without_an_address_says_so(client_as, org, admin):
    contact = person(org, mobile="", phone="")
    response = client_as(admin).post(
        action_url("contact_suppress", contact), {"channel": "sms", "reason": "manual"}
    )
    assert response.status_code == 400
    assert "Enter a phone number." in response.content.decode()
    assert not Suppression.objects.for_org(org).exists()


def test_lifting_from_the_card_needs_a_note(client_as, org, admin):
    contact = person(org)
    row = SuppressionFactory(org=org, address=contact.email, reason="bounce")
    client = client_as(admin, htmx=True)
    url = action_url("contact_lift", contact, row.public_id)
    refused = client.post(url, {"note": "  "})
    assert "Say why this address may be contacted again." in refused.content.decode()
    row.refresh_from_db()
    assert row.lifted_at is None
    client.post(url, {"note": "Bounce was temporary"})
    row.refresh_from_db()
    assert row.lift_note == "Bounce was temporary" and row.lifted_by == admin.user
    card = client.get(card_url(contact))
    assert card.context["active_suppressions"] == []
    assert [s.pk for s in card.context["lifted_suppressions"]] == [row.pk]


def test_a_suppression_of_another_address_cannot_be_lifted_through_this_contact(
    client_as, org, admin
):
    contact = person(org)
    elsewhere = SuppressionFactory(org=org, address="someone-else@example.com")
    response = client_as(admin).post(
        action_url("contact_lift", contact, elsewhere.public_id), {"note": "sneaky"}
    )
    assert response.status_code == 404
    elsewhere.refresh_from_db()
    assert elsewhere.lifted_at is None


def test_a_viewer_sees_the_card_but_cannot_suppress_lift_or_change_consent(client_as, org):
    contact = person(org)
    row = SuppressionFactory(org=org, address=contact.email)
    viewer = member(org, "viewer")
    client = client_as(viewer, htmx=True)
    card = client.get(card_url(contact))
    assert card.status_code == 200
    assert not card.context["can_suppress"]
    assert not card.context["can_lift"]
    assert not card.context["can_change_consent"]
    assert "Lift suppression" not in card.content.decode()
    assert (
        client.post(action_url("contact_lift", contact, row.public_id), {"note": "x"}).status_code
        == 403
    )
    assert (
        client.post(
            action_url("contact_suppress", contact), {"channel": "email", "reason": "manual"}
        ).status_code
        == 403
    )
    assert (
        client.post(
            action_url("contact_consent", contact),
            {
                "consent_email": "yes",
                "consent_sms": "yes",
                "consent_phone": "yes",
                "consent_whatsapp": "yes",
            },
        ).status_code
        == 403
    )
    row.refresh_from_db()
    assert row.lifted_at is None
    assert Suppression.objects.for_org(org).count() == 1


def test_a_rep_suppresses_their_own_contact_but_not_another_reps(client_as, org):
    rep = member(org, "team")
    other_rep = member(org, "team")
    mine = person(org, owner=rep.user, email="mine@example.com")
    theirs = person(org, owner=other_rep.user, email="theirs@example.com")
    client = client_as(rep)
    ok = client.post(action_url("contact_suppress", mine), {"channel": "email", "reason": "manual"})
    assert ok.status_code == 302
    refused = client.post(
        action_url("contact_suppress", theirs), {"channel": "email", "reason": "manual"}
    )
    assert refused.status_code == 404
    addresses = set(Suppression.objects.for_org(org).values_list("address", flat=True))
    assert addresses == {"mine@example.com"}


def test_a_rep_with_own_scope_gets_404_on_every_card_url_of_another_reps_contact(client_as, org):
    rep = member(org, "team")
    other_rep = member(org, "team")
    theirs = person(org, owner=other_rep.user)
    client = client_as(rep)
    assert client.get(card_url(theirs)).status_code == 404
    assert client.get(action_url("contact_consent_history", theirs)).status_code == 404
    assert client.post(action_url("contact_consent", theirs), {}).status_code == 404
    assert client.post(action_url("contact_suppress", theirs), {}).status_code == 404


def test_another_organizations_contact_is_404_on_every_card_url(client_as, org, other_org):
    theirs = person(other_org)
    row = SuppressionFactory(org=other_org, address=theirs.email)
    admin_here = member(org, "admin")
    client = client_as(admin_here)
    assert client.get(card_url(theirs)).status_code == 404
    assert client.get(action_url("contact_consent_history", theirs)).status_code == 404
    assert client.post(action_url("contact_consent", theirs), {}).status_code == 404
    assert (
        client.post(
            action_url("contact_suppress", theirs), {"channel": "email", "reason": "manual"}
        ).status_code
        == 404
    )
    lift = client.post(action_url("contact_lift", theirs, row.public_id), {"note": "x"})
    assert lift.status_code == 404
    row.refresh_from_db()
    assert row.lifted_at is None
    assert not Suppression.objects.for_org(org).exists()


def test_the_cards_queries_do_not_grow_with_its_rows(
    client_as, org, admin, django_assert_max_num_queries
):
    contact = person(org)
    client = client_as(admin, htmx=True)
    with django_assert_max_num_queries(40) as few:
        client.get(card_url(contact))
    for _ in range(25):
        ConsentRecordFactory(org=org, contact=contact, actor_user=member(org, "team").user)
    for channel in ("email", "sms", "phone", "whatsapp"):
        address = contact.email if channel == "email" else contact.mobile
        row = SuppressionFactory(org=org, channel=channel, address=address, created_by=admin.user)
        if channel == "phone":
            row.lifted_at, row.lifted_by, row.lift_note = row.created_at, admin.user, "ok"
            row.save()
    with django_assert_max_num_queries(len(few.captured_queries)):
        client.get(card_url(contact))
