"""The pages people outside the app reach from our emails: the preference center, the
one-click unsubscribe (RFC 8058) and the double opt-in confirmation.

No login and no member: the signed link in the URL is the only credential (compliance.tokens),
and the services run the work in the link's organization. The POSTs are exempt from CSRF on
purpose: there is no session to ride on, a forged form would need the link itself, and mail
programs send the one-click POST with no cookie at all. A link that is altered, withdrawn,
expired or belongs to another organization gets the same plain page, says nothing about why
beyond "expired" or "not valid", and changes nothing.

Each page speaks the contact's language (English or German: locale/).
"""

from __future__ import annotations

from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.utils import translation
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from crm.client_ip import client_ip

from ..services import preferences as prefs
from ..services.double_opt_in import confirm_opt_in, peek_opt_in
from ..services.links import person_language
from ..tokens import LinkError

ONE_CLICK_FIELD, ONE_CLICK_VALUE = "List-Unsubscribe", "One-Click"
DONE_STATES = ("saved", "unsubscribed")
USER_AGENT_MAX = 400


def _evidence(request) -> dict:
    return {
        "ip": client_ip(request),
        "user_agent": request.headers.get("User-Agent", "")[:USER_AGENT_MAX],
    }


def _brand(org, settings) -> dict:
    return {
        "brand_name": (settings.brand_name if settings else "") or (org.name if org else ""),
        "brand_color": (settings.brand_color if settings else "") or "",
    }


def _private(response):
    """Pages behind a personal link: no cache keeps them, no referrer carries the link."""
    response["Cache-Control"] = "no-store"
    response["Referrer-Policy"] = "no-referrer"
    response["X-Robots-Tag"] = "noindex"
    return response


def link_error(request, *, expired: bool = False, language: str = "en"):
    with translation.override(language):
        response = render(
            request,
            "compliance/public/link_error.html",
            {"expired": expired},
            status=400 if expired else 404,
        )
    return _private(response)


def _channels(contact) -> list[dict]:
    from django.utils.translation import gettext as _

    labels = {
        "consent_email": _("Email"),
        "consent_sms": _("Text messages (SMS)"),
        "consent_phone": _("Phone calls"),
        "consent_whatsapp": _("WhatsApp"),
    }
    return [
        {"name": name, "label": labels[name], "on": getattr(contact, name) is True}
        for name in prefs.CHANNEL_FIELDS
    ]


@csrf_exempt
@never_cache
@require_http_methods(["GET", "POST"])
def preference_center(request, token):
    evidence = _evidence(request)
    try:
        with prefs.preference_visit(token) as visit, translation.override(visit.language):
            if request.method == "POST":
                if request.POST.get("action") == "unsubscribe":
                    prefs.unsubscribe_everything(visit, **evidence)
                    done = "unsubscribed"
                else:
                    wanted = {name: name in request.POST for name in prefs.CHANNEL_FIELDS}
                    do_not_sell = "do_not_sell" in request.POST if visit.ccpa else None
                    prefs.update_preferences(visit, wanted, do_not_sell=do_not_sell, **evidence)
                    done = "saved"
                return _private(redirect(f"{request.path}?done={done}"))
            gpc = request.headers.get("Sec-GPC", "").strip() == "1"
            honoured = gpc and prefs.honour_gpc(visit, **evidence)
            done = request.GET.get("done", "")
            context = {
                **_brand(visit.org, visit.settings),
                "visit": visit,
                "contact": visit.contact,
                "channels": _channels(visit.contact),
                "gpc_honoured": honoured,
                "done": done if done in DONE_STATES else "",
                "consent_text": visit.settings.consent_text,
            }
            response = render(request, "compliance/public/preferences.html", context)
    except LinkError as exc:
        return link_error(request, expired=exc.expired)
    return _private(response)


@csrf_exempt
@never_cache
@require_http_methods(["GET", "POST"])
def unsubscribe(request, token):
    """GET: a page with one button. POST "List-Unsubscribe=One-Click" (a mail program's
    button, RFC 8058, or ours): unsubscribed, answered in plain text, or with the page when
    it came from the page's own button."""
    evidence = _evidence(request)
    from_page = request.POST.get("from_page") == "1"
    try:
        with prefs.preference_visit(token) as visit:
            language = visit.language
            with translation.override(language):
                context = {**_brand(visit.org, visit.settings), "contact": visit.contact}
                if request.method == "GET":
                    response = render(request, "compliance/public/unsubscribe.html", context)
                elif request.POST.get(ONE_CLICK_FIELD) != ONE_CLICK_VALUE:
                    response = HttpResponse(
                        "Send List-Unsubscribe=One-Click to unsubscribe.\n",
                        status=400,
                        content_type="text/plain; charset=utf-8",
                    )
                else:
                    prefs.one_click_unsubscribe(visit, **evidence)
                    if from_page:
                        context["done"] = True
                        response = render(request, "compliance/public/unsubscribe.html", context)
                    else:
                        response = HttpResponse(
                            "Unsubscribed.\n", content_type="text/plain; charset=utf-8"
                        )
    except LinkError as exc:
        if request.method == "POST" and not from_page:
            return _private(
                HttpResponse(
                    "This link is not valid.\n",
                    status=400 if exc.expired else 404,
                    content_type="text/plain; charset=utf-8",
                )
            )
        return link_error(request, expired=exc.expired)
    return _private(response)


@csrf_exempt
@never_cache
@require_http_methods(["GET", "POST"])
def confirm(request, token):
    """GET shows the consent text with a confirm button (so a mail scanner that opens the
    link confirms nothing); the POST of that button is the click that counts."""
    if request.method == "POST":
        outcome = confirm_opt_in(token, **_evidence(request))
    else:
        outcome = peek_opt_in(token)
    language = person_language(outcome.contact) if outcome.contact is not None else "en"
    if outcome.outcome in ("expired", "invalid"):
        return link_error(request, expired=outcome.outcome == "expired", language=language)
    with translation.override(language):
        context = {
            **_brand(outcome.org, outcome.settings),
            "outcome": outcome.outcome,
            "contact": outcome.contact,
            "consent_text": outcome.consent_text,
        }
        response = render(request, "compliance/public/confirm.html", context)
    return _private(response)
