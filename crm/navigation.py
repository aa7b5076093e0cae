"""The sidebar. Apps add entries here as their modules land; an entry shows only when its
URL exists and the member's role may see its module."""

from dataclasses import dataclass

from django.urls import NoReverseMatch, reverse


@dataclass(frozen=True)
class NavItem:
    label: str
    url_name: str
    module: str | None  # None: every member
    icon: str


SIDEBAR = [
    NavItem("Dashboard", "crm:dashboard", None, "home"),
    NavItem("Inbox", "contacts:inbox", "tasks", "inbox"),
    NavItem("Contacts", "contacts:contact_list", "contacts", "users"),
    NavItem("Companies", "contacts:company_list", "companies", "building"),
    NavItem("Pipeline", "pipeline:board", "pipeline", "columns"),
    NavItem("Messaging", "messaging:inbox", "messaging", "mail"),
    NavItem("Compliance", "compliance:home", "compliance", "shield"),
    NavItem("Developer", "webhooks:home", "developer", "code"),
]

SETTINGS_NAV = [
    NavItem("Customize", "crm:customize", None, "palette"),
    NavItem("Organization", "crm:organization_settings", "settings", "settings"),
    NavItem("Members", "crm:members", "settings", "users"),
    NavItem("Roles & Permissions", "crm:roles", "settings", "key"),
    NavItem("Custom fields", "contacts:custom_fields", "settings", "sliders"),
    NavItem("Lead scoring", "contacts:scoring", "settings", "check"),
    NavItem("Audit log", "crm:audit_log", "settings", "list"),
]


def _visible(items, policy):
    out = []
    for item in items:
        if item.module is not None and not policy.can_access(item.module):
            continue
        try:
            url = reverse(item.url_name)
        except NoReverseMatch:
            continue
        out.append({"label": item.label, "url": url, "icon": item.icon, "active": False})
    return out


def _mark_active(entries, current_path) -> None:
    """Only the closest match is active, across the sidebar and the settings menu together:
    /contacts/inbox/ is the Inbox, not also Contacts; /contacts/settings/scoring/ is Lead
    scoring, not also Contacts."""
    matches = [
        entry
        for entry in entries
        if current_path == entry["url"]
        or (entry["url"] != "/" and current_path.startswith(entry["url"]))
    ]
    if matches:
        max(matches, key=lambda entry: len(entry["url"]))["active"] = True


def navigation_for(policy, current_path) -> tuple[list[dict], list[dict]]:
    """(sidebar entries, settings entries) the member may see, with the current one marked."""
    sidebar = _visible(SIDEBAR, policy)
    settings_entries = _visible(SETTINGS_NAV, policy)
    _mark_active([*sidebar, *settings_entries], current_path)
    return sidebar, settings_entries
