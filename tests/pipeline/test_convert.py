"""Convert: a Lead (or Qualified) contact gets its company (created when missing), a deal
with it as the primary contact, and the Opportunity stage, all in one transaction: any
refusal leaves nothing behind."""

from decimal import Decimal

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.urls import reverse

from contacts.models import Activity, Company, Contact
from crm.models import AuditEvent, OutboxEvent
from crm.permissions import Policy
from crm.services import Actor
from pipeline.models import Deal, DealContact
from pipeline.services.convert import contact_convert, suggested_company_name
from tests.factories import (
    CompanyFactory,
    ContactFactory,
    MembershipFactory,
    OrganizationFactory,
    PipelineFactory,
    StageFactory,
    custom_role,
    member,
    role,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(org):
    admin = member(org, "admin")
    pipeline = PipelineFactory(org=org, name="Sales", is_default=True)
    stage = StageFactory(org=org, pipeline=pipeline, name="Discovery", position=0)
    return org, admin, pipeline, stage


def _convert(contact, who, **data):
    return contact_convert(
        contact=contact, actor=Actor.for_user(who.user), data=data, policy=Policy(who)
    )


def _lead(org, who, **kwargs):
    fields = {
        "first_name": "Ann",
        "last_name": "Lee",
        "email": "ann@northwind-traders.com",
        "lifecycle_stage": "lead",
        "owner": who.user,
        **kwargs,
    }
    return ContactFactory(org=org, **fields)


def test_convert_creates_the_company_the_deal_and_moves_the_contact(world):
    org, admin, pipeline, stage = world
    contact = _lead(org, admin)
    assert suggested_company_name(contact) == "Northwind Traders"
    result = _convert(
        contact,
        admin,
        company_name="Northwind Traders",
        use_email_domain=True,
        value="12,000",
        currency="EUR",
    )
    contact.refresh_from_db()
    company = Company.objects.for_org(org).get()
    assert result.company_created and result.company == company
    assert (company.name, company.domain) == ("Northwind Traders", "northwind-traders.com")
    deal = result.deal
    assert (deal.contact, deal.company, deal.pipeline, deal.stage) == (
        contact,
        company,
        pipeline,
        stage,
    )
    assert (deal.title, deal.value, deal.currency) == (
        "Northwind Traders deal",
        Decimal("12000.00"),
        "EUR",
    )
    assert deal.owner == admin.user
    assert DealContact.objects.for_org(org).filter(deal=deal, contact=contact).exists()
    assert contact.lifecycle_stage == "opportunity" and contact.company == company
    assert Activity.objects.for_org(org).filter(contact=contact, type="stage_change").exists()
    assert Activity.objects.for_org(org).filter(contact=contact, type="deal_created").exists()
    assert AuditEvent.objects.for_org(org).filter(verb="contact.converted").exists()
    event = OutboxEvent.objects.for_org(org).get(event_type="contact.converted")
    assert event.payload["deal"] == str(deal.public_id) and event.payload["company_created"] is True


def test_an_existing_company_is_used_not_duplicated(world):
    org, admin, *_ = world
    acme = CompanyFactory(org=org, name="Acme", domain="acme.example")
    linked = _lead(org, admin, email="bo@acme.example", company=acme)
    result = _convert(linked, admin, title="Acme renewal")
    assert result.company == acme and not result.company_created
    by_domain = _lead(org, admin, email="cy@acme.example")
    result = _convert(by_domain, admin, company_name="Whatever", use_email_domain=True)
    assert result.company == acme and not result.company_created
    assert Company.objects.for_org(org).count() == 1


def test_a_qualified_contact_converts_and_a_customer_does_not(world):
    org, admin, *_ = world
    qualified = _lead(org, admin, email="q@firm.example", lifecycle_stage="qualified")
    assert _convert(qualified, admin, company_name="Firm").deal.pk
    customer = _lead(org, admin, email="c@firm.example", lifecycle_stage="customer")
    with pytest.raises(ValidationError) as exc:
        _convert(customer, admin, company_name="Firm")
    assert "Lead or Qualified" in " ".join(exc.value.messages)
    archived = _lead(org, admin, email="a@firm.example", is_archived=True)
    with pytest.raises(ValidationError):
        _convert(archived, admin, company_name="Firm")
    assert Deal.objects.for_org(org).count() == 1


def test_without_a_company_name_or_domain_nothing_happens(world):
    org, admin, *_ = world
    contact = _lead(org, admin, email="ann@gmail.com")
    assert suggested_company_name(contact) == ""  # a webmail domain names no employer
    with pytest.raises(ValidationError) as exc:
        _convert(contact, admin, use_email_domain=True)
    assert "company_name" in exc.value.message_dict
    assert not Deal.objects.for_org(org).exists()


def test_all_or_nothing_when_the_deal_is_refused(world):
    org, admin, *_ = world
    contact = _lead(org, admin)
    with pytest.raises(ValidationError):
        _convert(contact, admin, company_name="Northwind Traders", value="-5")
    contact.refresh_from_db()
    assert contact.lifecycle_stage == "lead" and contact.company is None
    assert not Company.objects.for_org(org).exists()
    assert not Deal.objects.for_org(org).exists()


def test_all_or_nothing_when_the_stage_change_is_refused(world):
    """The company and the deal are written before the contact's stage: a field rule that
    locks the stage undoes both."""
    org, _admin, *_ = world
    locked = MembershipFactory(
        org=org,
        role=custom_role(
            org,
            permissions=role(org, "admin").permissions,
            field_rules={"lifecycle_stage": "visible"},
        ),
    )
    contact = _lead(org, locked)
    with pytest.raises(PermissionDenied):
        _convert(contact, locked, company_name="Northwind Traders", use_email_domain=True)
    contact.refresh_from_db()
    assert contact.lifecycle_stage == "lead" and contact.company is None
    assert not Company.objects.for_org(org).exists()
    assert not Deal.objects.for_org(org).exists()
    assert not OutboxEvent.objects.for_org(org).filter(event_type="deal.created").exists()


def test_rights_are_checked(world):
    org, admin, *_ = world
    contact = _lead(org, admin)
    for role_key in ("viewer", "support", "team"):  # no pipeline create / not their contact
        with pytest.raises(PermissionDenied):
            _convert(contact, member(org, role_key), company_name="X")
    assert not Deal.objects.for_org(org).exists()


# Views ---------------------------------------------------------------------------------------


def test_convert_page_suggests_the_company_and_converts(world, client_as):
    org, admin, _pipeline, stage = world
    contact = _lead(org, admin)
    client = client_as(admin)
    url = reverse("pipeline:contact_convert", args=[contact.public_id])
    page = client.get(url).content.decode()
    assert 'value="Northwind Traders"' in page and "northwind-traders.com" in page
    assert "Ann Lee deal" in page
    response = client.post(
        url,
        {
            "company_name": "Northwind Traders",
            "use_email_domain": "on",
            "title": "Northwind pilot",
            "stage": str(stage.public_id),
            "value": "500",
            "currency": "USD",
        },
    )
    deal = Deal.objects.for_org(org).get(title="Northwind pilot")
    assert response.status_code == 302
    assert response["Location"] == reverse("pipeline:deal_detail", args=[deal.public_id])
    contact.refresh_from_db()
    assert contact.lifecycle_stage == "opportunity"
    assert contact.company.domain == "northwind-traders.com"


def test_convert_page_reports_errors_in_place(world, client_as):
    org, admin, _pipeline, stage = world
    contact = _lead(org, admin, email="ann@gmail.com")
    url = reverse("pipeline:contact_convert", args=[contact.public_id])
    response = client_as(admin).post(
        url, {"title": "T", "stage": str(stage.public_id), "currency": "USD"}
    )
    assert response.status_code == 200
    assert "Name the contact" in response.content.decode()
    assert not Deal.objects.for_org(org).exists()


def test_convert_page_refuses_a_customer(world, client_as):
    org, admin, _pipeline, stage = world
    contact = _lead(org, admin, lifecycle_stage="customer")
    url = reverse("pipeline:contact_convert", args=[contact.public_id])
    body = client_as(admin).get(url).content.decode()
    assert "Only a Lead or Qualified contact can be converted" in body
    client_as(admin).post(
        url, {"company_name": "X", "title": "T", "stage": str(stage.public_id), "currency": "USD"}
    )
    assert not Deal.objects.for_org(org).exists()
    assert Contact.objects.get(pk=contact.pk).lifecycle_stage == "customer"


def test_convert_is_404_outside_org_or_scope_and_403_without_rights(world, client_as):
    org, admin, *_ = world
    contact = _lead(org, admin)
    url = reverse("pipeline:contact_convert", args=[contact.public_id])
    assert client_as(member(OrganizationFactory(), "owner")).get(url).status_code == 404
    assert client_as(member(org, "team")).get(url).status_code == 404  # not their contact
    assert client_as(member(org, "viewer")).get(url).status_code == 403
