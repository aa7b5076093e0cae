"""The public preference center and the one-click unsubscribe: the person behind a signed
link changes their own consents, with no login.

Such a request has no member, so no organization on the connection: `preference_visit()`
reads the link, finds its organization and runs the block in that organization's
transaction (crm.rls.tenant), the way the inbound order URL does. Every change goes through
set_consent(), so each lands in the ledger with the click's IP and browser.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

from django.db import transaction

from contacts.models import Contact
from crm import rls
from crm.models import Organization
from crm.services import Actor

from ..models import Channel, ConsentRecord, LegalBasis, PrivacySettings, Suppression
from ..selectors import CCPA, GDPR, address_for, jurisdictions, privacy_settings
from ..tokens import LinkError, read_preference_token
from .consent import ConsentVia, set_consent
from .links import list_unsubscribe_headers, person_language
from .suppression import suppress, unsuppress

__all__ = [
    "CHANNEL_FIELDS",
    "PreferenceVisit",
    "honour_gpc",
    "list_unsubscribe_headers",
    "one_click_unsubscribe",
    "preference_visit",
    "unsubscribe_everything",
    "update_preferences",
]

Status = Contact.ConsentStatus
Kind = ConsentRecord.ActorKind
# The channel consents the page offers, in its order.
CHANNEL_FIELDS = ("consent_email", "consent_sms", "consent_phone", "consent_whatsapp")
FORM = "Preference center"
ONE_CLICK_FORM = "One-click unsubscribe (RFC 8058)"


@dataclass
class PreferenceVisit:
    """The contact behind a preference link, with what the page needs to know of them."""

    org: Organization
    contact: Contact
    settings: PrivacySettings

    @property
    def regimes(self) -> frozenset[str]:
        return jurisdictions(self.settings.mode, self.contact.country)

    @property
    def ccpa(self) -> bool:
        return CCPA in self.regimes

    @property
    def gdpr(self) -> bool:
        return GDPR in self.regimes

    @property
    def language(self) -> str:
        return person_language(self.contact)

    @property
    def brand_name(self) -> str:
        return self.settings.brand_name or self.org.name


@contextmanager
def preference_visit(token: str) -> Iterator[PreferenceVisit]:
    """The block runs in the link's organization with its contact; LinkError (before or
    instead of the block) for a link that is altered, withdrawn or names a contact its
    organization does not have. An error in the block rolls its changes back."""
    target = read_preference_token(token)
    # Organizations are not tenant rows: found before an organization is set.
    org = Organization.objects.filter(public_id=target.org_public_id).first()
    if org is None:
        raise LinkError()
    with transaction.atomic(), rls.tenant(org.pk):
        contact = (
            Contact.objects.for_org(org)
            .select_for_update(of=("self",))
            .filter(public_id=target.record_public_id)
            .first()
        )
        if contact is None:
            raise LinkError()
        contact.org = org
        yield PreferenceVisit(org=org, contact=contact, settings=privacy_settings(org))


def _via(visit: PreferenceVisit, *, kind: str, ip, user_agent: str, **extra) -> ConsentVia:
    return ConsentVia(
        kind=kind,
        label="The contact",
        source=extra.pop("source", FORM),
        legal_basis=extra.pop("legal_basis", LegalBasis.CONSENT),
        form=extra.pop("form", FORM),
        ip=ip,
        user_agent=user_agent,
        **extra,
    )


def _lift_unsubscribe(visit: PreferenceVisit, address: str) -> None:
    """A person who turns email back on lifts their own unsubscribe. Suppressions for a
    bounce, a complaint or a member's decision stay."""
    found = (
        Suppression.objects.for_org(visit.org)
        .filter(
            channel=Channel.EMAIL,
            address=address,
            lifted_at__isnull=True,
            reason=Suppression.Reason.UNSUBSCRIBE,
        )
        .first()
    )
    if found is not None:
        unsuppress(
            suppression=found,
            actor=Actor.system(FORM),
            note="The contact turned email back on in the preference center.",
        )


def _suppress_email(visit: PreferenceVisit, *, source: str) -> None:
    """An unsubscribe suppression of the contact's email for marketing (an address already
    suppressed keeps its suppression as it is)."""
    address = address_for(visit.contact, Channel.EMAIL)
    if address:
        suppress(
            org=visit.org,
            channel=Channel.EMAIL,
            address=address,
            reason=Suppression.Reason.UNSUBSCRIBE,
            scope=Suppression.Scope.MARKETING,
            actor=Actor.system(source),
            contact=visit.contact,
            source=source,
        )


def update_preferences(
    visit: PreferenceVisit,
    wanted: Mapping[str, bool],
    *,
    ip: str | None,
    user_agent: str,
    do_not_sell: bool | None = None,
) -> dict:
    """The person's choices from the page: {channel consent field: ticked}. Only what they
    changed is written (a consent never given stays unknown while its box stays empty).
    Turning a channel on opts them in; turning every channel off opts them out. Returns the
    ledger's {field: [old, new]}."""
    contact = visit.contact
    changes: dict[str, object] = {}
    for name in CHANNEL_FIELDS:
        if name in wanted and bool(wanted[name]) != bool(getattr(contact, name)):
            changes[name] = bool(wanted[name])
    if do_not_sell is not None and visit.ccpa and do_not_sell != contact.do_not_sell:
        changes["do_not_sell"] = do_not_sell
    after = {name: changes.get(name, getattr(contact, name)) for name in CHANNEL_FIELDS}
    turned_on = any(changes.get(name) is True for name in CHANNEL_FIELDS)
    if turned_on and contact.consent_status != Status.OPTED_IN:
        # The link reached the person at their own address, so their choice on this page
        # is confirmed consent, as a double opt-in click is.
        changes["consent_status"] = Status.OPTED_IN
    elif all(value is False for value in after.values()) and any(
        name in changes for name in CHANNEL_FIELDS
    ):
        changes["consent_status"] = Status.OPTED_OUT
    if not changes:
        return {}
    email_on = changes.get("consent_email") is True
    via = _via(
        visit,
        kind=Kind.PREFERENCE_CENTER,
        ip=ip,
        user_agent=user_agent,
        consent_text=visit.settings.consent_text if email_on else "",
        consent_text_version=visit.settings.consent_text_version if email_on else "",
        evidence={"changed": sorted(changes)},
    )
    changed = set_consent(contact=contact, changes=changes, via=via)
    if email_on:
        _lift_unsubscribe(visit, address_for(contact, Channel.EMAIL))
    return changed


def unsubscribe_everything(visit: PreferenceVisit, *, ip: str | None, user_agent: str) -> dict:
    """Every channel off, marketing opted out, and the email address suppressed for
    marketing."""
    changes: dict[str, object] = dict.fromkeys(CHANNEL_FIELDS, False)
    changes["consent_status"] = Status.OPTED_OUT
    via = _via(
        visit,
        kind=Kind.UNSUBSCRIBE,
        ip=ip,
        user_agent=user_agent,
        source="Preference center: unsubscribe from everything",
        evidence={"everything": True},
    )
    changed = set_consent(contact=visit.contact, changes=changes, via=via)
    _suppress_email(visit, source="Preference center")
    return changed


def one_click_unsubscribe(visit: PreferenceVisit, *, ip: str | None, user_agent: str) -> dict:
    """A mail program's unsubscribe button (RFC 8058): marketing email off, marketing
    opted out, the address suppressed for marketing."""
    via = _via(
        visit,
        kind=Kind.UNSUBSCRIBE,
        ip=ip,
        user_agent=user_agent,
        source="Unsubscribe link",
        form=ONE_CLICK_FORM,
        evidence={"one_click": True},
    )
    changed = set_consent(
        contact=visit.contact,
        changes={"consent_email": False, "consent_status": Status.OPTED_OUT},
        via=via,
    )
    _suppress_email(visit, source="Unsubscribe link")
    return changed


def honour_gpc(visit: PreferenceVisit, *, ip: str | None, user_agent: str) -> bool:
    """The browser sent Global Privacy Control (Sec-GPC: 1). Where CCPA applies to the
    contact, that is a request to opt out of sale and sharing: do_not_sell is set (once,
    ledgered). True when the signal was honoured, now or before."""
    if not visit.ccpa:
        return False
    if not visit.contact.do_not_sell:
        via = _via(
            visit,
            kind=Kind.PREFERENCE_CENTER,
            ip=ip,
            user_agent=user_agent,
            source="Global Privacy Control",
            legal_basis=LegalBasis.LEGAL_OBLIGATION,
            evidence={"gpc": True},
        )
        set_consent(contact=visit.contact, changes={"do_not_sell": True}, via=via)
    return True
