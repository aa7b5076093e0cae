"""Every destructive action asks first, the same way, or can be undone.

The walk reads the live URL configuration, so an endpoint added by any app is covered the
day it lands. An endpoint is destructive when its URL name or its view's name says so
(delete, remove, discard, revoke, purge, cancel, destroy, ...). Each must be one of:

- confirmed in place: every form in the templates that posts to it carries `data-confirm`
  (static/js/app.js opens the one confirmation dialog, which says what will be removed);
- confirmed on a page of its own: links reach it with GET, and the only forms that post to it
  without `data-confirm` sit in the template its own view renders (the confirmation page);
- undoable: listed in UNDOABLE with the endpoint that undoes it, which must exist.

htmx's hx-confirm is not used: one mechanism, which also works for forms without hx-post.
"""

from __future__ import annotations

import inspect
import re
import uuid
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.http import HttpResponse
from django.urls import (
    NoReverseMatch,
    URLPattern,
    URLResolver,
    get_resolver,
    include,
    path,
    reverse,
)

TEMPLATES_DIR = Path(settings.BASE_DIR) / "templates"

DESTRUCTIVE = re.compile(
    r"delete|remove|discard|revoke|purge|cancel|destroy|erase|wipe|undo|drop|clear|archive"
    r"|deactivate|release|unlink|detach|unsubscribe|withdraw",
    re.IGNORECASE,
)
# Views from these packages are outside this project (Django's admin asks on a page of its
# own; allauth's pages are forms the member fills in on purpose).
THIRD_PARTY = ("django.", "allauth.", "rest_framework.", "drf_spectacular.")

# Destructive-sounding endpoints that need no confirmation because one click puts it back.
UNDOABLE = {
    "contacts:contact_archive": ("contacts:contact_restore", "Restore brings it back"),
    "contacts:company_archive": ("contacts:company_restore", "Restore brings it back"),
    "contacts:custom_field_deactivate": (
        "contacts:custom_field_reactivate",
        "Turn on again: the values were kept",
    ),
    "crm:member_deactivate": ("crm:member_reactivate", "Reactivate gives the access back"),
    "compliance:unsubscribe": (
        "compliance:preferences",
        "The same link's preference center subscribes again; the page itself is the "
        "confirmation, and mail programs' one-click POST (RFC 8058) must not ask",
    ),
    "contacts:contact_release": (
        "contacts:contact_claim",
        "Claim (or Change owner) sets an owner again; nothing is removed",
    ),
}


# The URL configuration ---------------------------------------------------------------------


@dataclass
class Endpoint:
    name: str  # "namespace:name"
    view: object
    route: str

    @property
    def view_name(self) -> str:
        return getattr(self.view, "__name__", type(self.view).__name__)

    @property
    def module(self) -> str:
        return getattr(self.view, "__module__", "") or ""


def walk(patterns=None, namespace: str = "", prefix: str = ""):
    if patterns is None:
        patterns = get_resolver().url_patterns
    for entry in patterns:
        here = prefix + str(entry.pattern)
        if isinstance(entry, URLResolver):
            ns = namespace
            if entry.namespace:
                ns = f"{namespace}:{entry.namespace}" if namespace else entry.namespace
            yield from walk(entry.url_patterns, ns, here)
        elif isinstance(entry, URLPattern) and entry.name:
            name = f"{namespace}:{entry.name}" if namespace else entry.name
            yield Endpoint(name, entry.callback, here)


def destructive_endpoints() -> list[Endpoint]:
    found = []
    for endpoint in walk():
        if endpoint.module.startswith(THIRD_PARTY):
            continue
        short = endpoint.name.rsplit(":", 1)[-1]
        if DESTRUCTIVE.search(short) or DESTRUCTIVE.search(endpoint.view_name):
            found.append(endpoint)
    return found


# The templates -----------------------------------------------------------------------------

# An opening tag, allowing {% %} / {{ }} inside (they may hold ">" nowhere, but "%}" and "}}").
TAG = re.compile(r"<(?P<tag>form|a|button|input)\b(?P<attrs>(?:\{[%{#].*?[%}#]\}|[^>])*)>", re.S)
URL_AS = re.compile(r"""\{%\s*url\s+['"](?P<name>[\w:.-]+)['"][^%]*?\bas\s+(?P<var>\w+)\s*%\}""")
ATTR = re.compile(
    r"""\b(?P<attr>action|hx-post|hx-delete|formaction|href|hx-get)\s*=\s*"(?P<value>(?:\{[%{#].*?[%}#]\}|[^"])*)\"""",
    re.S,
)
POST_ATTRS = {"action", "hx-post", "hx-delete", "formaction"}


@dataclass
class Trigger:
    template: str
    tag: str
    attr: str
    confirmed: bool
    snippet: str

    @property
    def posts(self) -> bool:
        return self.attr in POST_ATTRS

    def __str__(self) -> str:
        return f"{self.template}: <{self.tag} {self.attr}=…> {self.snippet[:90]!r}"


def _names_in(value: str, variables: dict[str, set[str]]) -> set[str]:
    names = set(re.findall(r"""\{%\s*url\s+['"]([\w:.-]+)['"]""", value))
    for var in re.findall(r"\{\{\s*(\w+)", value):
        names |= variables.get(var, set())
    return names


def template_triggers(root: Path = TEMPLATES_DIR) -> dict[str, list[Trigger]]:
    """URL name → every element of every template that links to it or posts to it."""
    triggers: dict[str, list[Trigger]] = {}
    for file in sorted(root.rglob("*.html")):
        text = file.read_text(encoding="utf-8")
        variables: dict[str, set[str]] = {}
        for match in URL_AS.finditer(text):
            variables.setdefault(match["var"], set()).add(match["name"])
        relative = str(file.relative_to(root))
        for tag in TAG.finditer(text):
            attrs = tag["attrs"]
            confirmed = tag["tag"] == "form" and re.search(r'\bdata-confirm="[^"]+', attrs)
            for attr in ATTR.finditer(attrs):
                for name in _names_in(attr["value"], variables):
                    triggers.setdefault(name, []).append(
                        Trigger(
                            relative,
                            tag["tag"],
                            attr["attr"],
                            bool(confirmed),
                            " ".join(tag.group(0).split()),
                        )
                    )
    return triggers


def templates_rendered_by(view) -> set[str]:
    """Template paths named in the view's source: the page a GET of it shows."""
    try:
        source = inspect.getsource(inspect.unwrap(view))
    except (OSError, TypeError):
        return set()
    return {m.split("#")[0] for m in re.findall(r"""["']([\w/.-]+\.html(?:#\w+)?)["']""", source)}


# The rule ----------------------------------------------------------------------------------


def problems(endpoints=None, triggers=None) -> list[str]:
    """What is wrong, one line per endpoint; empty when every destructive action is safe."""
    endpoints = destructive_endpoints() if endpoints is None else endpoints
    triggers = template_triggers() if triggers is None else triggers
    found = []
    for endpoint in endpoints:
        if endpoint.name in UNDOABLE:
            undo_name, _reason = UNDOABLE[endpoint.name]
            if not any(e.name == undo_name for e in walk()):
                found.append(f"{endpoint.name}: listed as undoable by {undo_name}, which is gone")
            continue
        own_pages = templates_rendered_by(endpoint.view)
        uses = triggers.get(endpoint.name, [])
        posts = [t for t in uses if t.posts]
        links = [t for t in uses if not t.posts]
        unconfirmed = [t for t in posts if not t.confirmed and t.template not in own_pages]
        for trigger in unconfirmed:
            found.append(
                f"{endpoint.name} (/{endpoint.route}) is posted without confirmation from "
                f'{trigger}: add data-confirm="…what it removes…" to the form, or answer GET '
                "with a confirmation page"
            )
        confirmed_in_place = any(t.confirmed for t in posts)
        confirmation_page = bool(links) and any(t.template in own_pages for t in posts)
        if not unconfirmed and not (confirmed_in_place or confirmation_page):
            found.append(
                f"{endpoint.name} (/{endpoint.route}, view {endpoint.module}.{endpoint.view_name})"
                " has no confirmation step: no template posts to it through a form with "
                "data-confirm, and it shows no confirmation page of its own. Add one, or list "
                "it in UNDOABLE with the endpoint that undoes it."
            )
    return found


# Tests -------------------------------------------------------------------------------------


def test_the_walk_finds_the_destructive_endpoints():
    names = {e.name for e in destructive_endpoints()}
    expected = {
        "contacts:task_delete",
        "contacts:note_delete",
        "contacts:import_cancel",
        "contacts:import_undo",
        "contacts:smart_view_delete",
        "contacts:scoring_rule_delete",
        "crm:invitation_revoke",
        "crm:role_delete",
        "contacts:contact_archive",
    }
    assert expected <= names, expected - names


def test_every_destructive_endpoint_asks_first_or_can_be_undone():
    assert problems() == []


def test_every_undoable_entry_is_still_a_destructive_endpoint():
    names = {e.name for e in destructive_endpoints()}
    stale = set(UNDOABLE) - names
    assert not stale, f"UNDOABLE lists endpoints that no longer exist: {sorted(stale)}"


def test_one_confirmation_mechanism():
    """htmx's hx-confirm would be a second kind of question (and only for hx-post forms)."""
    offenders = [
        str(file.relative_to(TEMPLATES_DIR))
        for file in TEMPLATES_DIR.rglob("*.html")
        if "hx-confirm" in file.read_text(encoding="utf-8")
    ]
    assert offenders == []


def test_data_confirm_sits_on_forms_only():
    """app.js asks on a form's submit event; on any other element the attribute does nothing."""
    offenders = []
    for file in TEMPLATES_DIR.rglob("*.html"):
        for tag in re.finditer(r"<(\w+)\b[^>]*\bdata-confirm=", file.read_text(encoding="utf-8")):
            if tag.group(1) != "form":
                offenders.append(f"{file.relative_to(TEMPLATES_DIR)}: <{tag.group(1)}>")
    assert offenders == []


# The check fails for a new destructive endpoint that does not ask --------------------------


def purge_everything(request, public_id):  # a view that would act at once
    return HttpResponse("gone")


urlpatterns = [
    path("", include(settings.ROOT_URLCONF)),
    path("probe/<uuid:public_id>/purge/", purge_everything, name="probe_purge"),
]


def test_a_new_destructive_endpoint_without_confirmation_fails(settings, tmp_path):
    settings.ROOT_URLCONF = __name__
    probe = reverse("probe_purge", kwargs={"public_id": uuid.uuid4()})
    assert probe.startswith("/probe/")
    # Unused anywhere: no confirmation step at all.
    assert any("probe_purge" in line and "no confirmation step" in line for line in problems())
    # A button that posts to it without asking.
    page = tmp_path / "probe.html"
    page.write_text(
        '<form method="post" action="{% url \'probe_purge\' thing.public_id %}">'
        '<button type="submit">Purge</button></form>'
    )
    found = problems(triggers=template_triggers(tmp_path))
    assert any("probe_purge" in line and "without confirmation" in line for line in found)
    # The same form with data-confirm passes.
    page.write_text(
        "{% url 'probe_purge' thing.public_id as purge_url %}<form method=\"post\" "
        'action="{{ purge_url }}" data-confirm="Purge “{{ thing }}”? This can\'t be undone.">'
        '<button type="submit">Purge</button></form>'
    )
    found = problems(triggers=template_triggers(tmp_path))
    assert not any("probe_purge" in line for line in found)


def test_undoable_entries_name_a_real_undo():
    for undo_name, reason in UNDOABLE.values():
        assert reason
        for key, value in (
            ("public_id", uuid.uuid4()),
            ("membership_public_id", uuid.uuid4()),
            ("token", "signed-token"),  # public pages reached by a signed link
        ):
            try:
                reverse(undo_name, kwargs={key: value})
                break
            except NoReverseMatch:
                continue
        else:
            raise AssertionError(f"{undo_name} is not a URL that takes an id or a token")
