"""Settings → Privacy: the organization's privacy mode and what the public pages show.

Seeing the page needs the compliance module; saving needs compliance "edit". The member's
"Send double opt-in email" action on a contact lives here too: it is the same setting at
work on one record.
"""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from contacts.views.common import actor, get_contact, require_contact_edit, workspace_view
from crm.permissions import policy_for

from ..models import PrivacySettings
from ..selectors import privacy_settings
from ..services.consent import ConsentVia
from ..services.double_opt_in import OptInRefused, request_opt_in
from ..services.privacy import update_privacy_settings
from ..tokens import MAX_CONFIRMATION_HOURS

Mode = PrivacySettings.Mode
# One line per mode, as compliance.selectors.jurisdictions() applies it.
MODE_HELP = {
    Mode.OFF: "No privacy regime: consents are recorded and honoured, nothing more is asked.",
    Mode.GDPR: "Every contact under GDPR: marketing needs explicit consent, and marketing "
    "email needs consent confirmed by double opt-in.",
    Mode.CCPA: "Every contact under CCPA: marketing is allowed until the person opts out; "
    "“Do not sell or share” and Global Privacy Control are honoured.",
    Mode.BOTH: "By the contact's country: EEA, UK and Swiss residents get GDPR, US residents "
    "CCPA, and anyone else (or a contact without a country) both.",
}


class PrivacySettingsForm(forms.Form):
    mode = forms.ChoiceField(choices=Mode.choices, widget=forms.RadioSelect, label="Privacy mode")
    confirmation_hours = forms.IntegerField(
        min_value=1,
        max_value=MAX_CONFIRMATION_HOURS,
        label="Double opt-in link valid for (hours)",
    )
    consent_text = forms.CharField(
        required=False,
        max_length=4000,
        widget=forms.Textarea(attrs={"rows": 3}),
        label="Consent text",
    )
    consent_text_version = forms.CharField(
        required=False, max_length=40, label="Version of the consent text"
    )
    brand_name = forms.CharField(required=False, max_length=120, label="Brand name")
    brand_color = forms.CharField(
        required=False,
        max_length=7,
        label="Brand colour",
        widget=forms.TextInput(attrs={"type": "color"}),
    )


def _initial(row: PrivacySettings) -> dict:
    return {
        "mode": row.mode,
        "confirmation_hours": row.confirmation_hours,
        "consent_text": row.consent_text,
        "consent_text_version": row.consent_text_version,
        "brand_name": row.brand_name,
        "brand_color": row.brand_color or "#2563eb",
    }


@workspace_view("compliance")
def privacy_settings_page(request):
    policy = policy_for(request)
    row = privacy_settings(request.org)
    form = PrivacySettingsForm(initial=_initial(row))
    status = 200
    if request.method == "POST":
        policy.require("compliance", "edit")
        form = PrivacySettingsForm(request.POST)
        if form.is_valid():
            try:
                update_privacy_settings(
                    org=request.org, actor=actor(request), data=form.cleaned_data
                )
            except ValidationError as exc:
                for name, errors in exc.message_dict.items():
                    form.add_error(name if name in form.fields else None, errors)
            else:
                messages.success(request, "Privacy settings saved.")
                return redirect("compliance:privacy_settings")
        status = 400
    modes = [
        {"value": value, "label": label, "help": MODE_HELP[value]} for value, label in Mode.choices
    ]
    context = {
        "form": form,
        "modes": modes,
        "current_mode": form["mode"].value(),
        "can_edit": policy.can("compliance", "edit"),
        "row": row,
    }
    return render(request, "compliance/privacy_settings.html", context, status=status)


@require_POST
@workspace_view("contacts", "edit")
def send_opt_in(request, public_id):
    """Email the contact a double opt-in link (their consent status becomes pending)."""
    contact = get_contact(request, public_id, for_update=True)
    require_contact_edit(request, contact)
    via = ConsentVia.from_actor(actor(request), source="Double opt-in email sent by a member")
    try:
        confirmation = request_opt_in(contact=contact, via=via)
    except OptInRefused as exc:
        messages.error(request, exc.message)
    else:
        messages.success(
            request, f"Confirmation email sent to {confirmation.address}. Consent is pending."
        )
    return redirect("contacts:contact_detail", public_id=contact.public_id)
