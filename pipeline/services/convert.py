"""Convert: a lead becomes an opportunity in one step.

In one transaction it finds or creates the contact's company (when the contact has none:
from the company name the member typed, or the contact's email domain), creates the deal with
the contact as its primary contact and that company, and moves the contact's lifecycle stage to
Opportunity through contacts.services.contact_update (so the stage change, its timeline entry
and its event are the contact service's own). Any refusal on the way (a right missing, a field
rule, a bad value) undoes all of it: no company without its deal, no deal without the stage.

Which contacts convert: Lead and Qualified ones. A qualified lead is the usual one to turn into
a deal; a contact still under review ("Stage"), or already an Opportunity, Customer, Advocate
or Churned, gets "Create deal" instead, which leaves the lifecycle stage alone.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from contacts.models import Company, Contact
from contacts.services.companies import company_for
from contacts.services.contacts import contact_update
from crm.services import Actor, audit, emit_event

from ..models import Deal
from .deals import deal_create

CONVERTIBLE_STAGES = (Contact.Stage.LEAD, Contact.Stage.QUALIFIED)
# Webmail domains name a mailbox provider, not the contact's employer.
WEBMAIL_DOMAINS = frozenset(
    {
        "aol.com",
        "gmail.com",
        "googlemail.com",
        "gmx.com",
        "gmx.de",
        "gmx.net",
        "hotmail.com",
        "icloud.com",
        "live.com",
        "mail.com",
        "mail.ru",
        "me.com",
        "msn.com",
        "outlook.com",
        "proton.me",
        "protonmail.com",
        "qq.com",
        "web.de",
        "yahoo.com",
        "yandex.ru",
        "zoho.com",
    }
)
DEAL_FIELDS = ("title", "pipeline", "stage", "value", "currency", "expected_close_date", "owner")


@dataclass(frozen=True)
class Conversion:
    deal: Deal
    company: Company
    company_created: bool


def can_convert(contact: Contact) -> bool:
    return contact.lifecycle_stage in CONVERTIBLE_STAGES and not contact.is_archived


def email_domain(contact: Contact) -> str:
    """The contact's work email domain ("" for none or a webmail address)."""
    email = (contact.email or "").strip().lower()
    if "@" not in email:
        return ""
    domain = email.rsplit("@", 1)[1]
    return "" if domain in WEBMAIL_DOMAINS else domain


def suggested_company_name(contact: Contact) -> str:
    """A name to start from when the contact has no company: its email domain's name part
    ("ann@northwind-traders.com" → "Northwind Traders")."""
    domain = email_domain(contact)
    if not domain:
        return ""
    stem = domain.split(".")[-2] if domain.count(".") >= 1 else domain
    return " ".join(part.capitalize() for part in stem.replace("_", "-").split("-") if part)


def refusal(contact: Contact) -> str | None:
    if contact.is_archived:
        return "Restore the contact before converting it."
    if contact.lifecycle_stage not in CONVERTIBLE_STAGES:
        stage = contact.get_lifecycle_stage_display()
        return (
            f"Only a Lead or Qualified contact can be converted; this one is {stage}. "
            "Use “Create deal” instead."
        )
    return None


def _company(org, contact: Contact, data: dict, *, actor, policy) -> tuple[Company, bool]:
    if contact.company is not None:
        return contact.company, False
    name = " ".join(str(data.get("company_name") or "").split())
    domain = email_domain(contact) if data.get("use_email_domain") else ""
    domain = str(data.get("company_domain") or domain).strip()
    if not name and not domain:
        raise ValidationError(
            {"company_name": ["Name the contact's company: Convert adds it if it is new."]}
        )
    started = timezone.now()
    try:
        company = company_for(org, name=name, domain=domain, actor=actor, policy=policy)
    except PermissionDenied:
        raise ValidationError(
            {
                "company_name": [
                    "There is no such company yet, and your role may not add companies. "
                    "Pick an existing one, or ask a colleague who may."
                ]
            }
        ) from None
    except ValidationError as exc:
        if hasattr(exc, "error_dict"):
            raise ValidationError(
                {
                    ("company_domain" if key == "domain" else "company_name"): messages
                    for key, messages in exc.message_dict.items()
                }
            ) from None
        raise ValidationError({"company_name": exc.messages}) from None
    if company is None:  # only when neither a name nor a domain was given, checked above
        raise ValidationError({"company_name": ["Name the contact's company."]})
    return company, company.created_at >= started


@transaction.atomic
def contact_convert(*, contact: Contact, actor: Actor, data: dict, policy=None) -> Conversion:
    """Convert a Lead (or Qualified) contact: company if missing, deal, stage Opportunity."""
    org = contact.org
    contact = (
        Contact.objects.for_org(org)
        .select_for_update(of=("self",))
        .select_related("company")
        .get(pk=contact.pk)
    )
    if policy is not None:
        policy.require("pipeline", "create")
        if not policy.can_touch("contacts", "edit", contact.owner_id):
            raise PermissionDenied("Your role may not change this contact.")
    refused = refusal(contact)
    if refused:
        raise ValidationError(refused)
    company, created = _company(org, contact, data, actor=actor, policy=policy)
    deal_data = {key: data[key] for key in DEAL_FIELDS if data.get(key) not in (None, "")}
    deal_data.setdefault("title", f"{company.name} deal")
    deal_data["contact"] = contact
    deal_data["company"] = company
    deal = deal_create(org=org, actor=actor, data=deal_data, policy=policy)
    old_stage = contact.lifecycle_stage
    updates: dict = {"lifecycle_stage": Contact.Stage.OPPORTUNITY}
    recorded = {
        "lifecycle_stage": [old_stage, Contact.Stage.OPPORTUNITY],
        "deal": [None, deal.title],
    }
    if not contact.company_id:
        updates["company"] = company
        recorded["company"] = [None, company.name]
    contact_update(contact=contact, actor=actor, data=updates, policy=policy)
    audit(org=org, actor=actor, verb="contact.converted", obj=contact, changes=recorded)
    emit_event(
        org=org,
        event_type="contact.converted",
        payload={
            "contact": contact.public_id,
            "deal": deal.public_id,
            "company": company.public_id,
            "company_created": created,
        },
    )
    return Conversion(deal=deal, company=company, company_created=created)
