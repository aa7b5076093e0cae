"""The sidebar. Entries of apps that are not built yet are listed already: an entry shows
only when its app is installed and the member's role may see its module. An installed app's
entry always reverses its URL, so a renamed URL fails loudly rather than vanishing."""

from dataclasses import dataclass

from django.apps import apps
from django.urls import reverse

from .optional_modules import is_enabled


@dataclass(frozen=True)
class NavItem:
    label: str
    url_name: str
    module: str | None  # None: every member
    icon: str
    # An optional module (crm.optional_modules) the organization must have turned on.
    feature: str | None = None

    @property
    def app(self) -> str:
        """The app the entry belongs to: every app's URL namespace is its label."""
        return self.url_name.split(":", 1)[0]


SIDEBAR = [
    NavItem("Dashboard", "crm:dashboard", None, "home"),
    NavItem("Inbox", "contacts:inbox", "tasks", "inbox"),
    NavItem("Contacts", "contacts:contact_list", "contacts", "users"),
    NavItem("Companies", "contacts:company_list", "companies", "building"),
    NavItem("Pipeline", "pipeline:board", "pipeline", "columns"),
    NavItem("Orders", "pipeline:order_list", "pipeline", "clipboard", feature="orders"),
    NavItem(
        "Objects", "pipeline:object_index", "custom_objects", "briefcase", feature="custom_objects"
    ),
    # Members with Analytics but not Pipeline read the forecast through their own scope.
    NavItem("Forecast", "pipeline:forecast", "analytics", "chart"),
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
    NavItem("Products", "pipeline:products", "settings", "tag"),
    NavItem("Pipelines", "pipeline:settings", "settings", "columns"),
    NavItem(
        "Orders registry", "pipeline:order_inbound_settings", "settings", "clipboard", "orders"
    ),
    NavItem("Custom objects", "pipeline:object_types", "settings", "briefcase", "custom_objects"),
    NavItem("Audit log", "crm:audit_log", "settings", "list"),
    NavItem("Privacy", "compliance:privacy_settings", "compliance", "shield"),
]


def _visible(items, policy):
    membership = policy.membership
    org = membership.org if membership is not None else None
    out = []
    for item in items:
        if not apps.is_installed(item.app):
            continue
        if item.feature is not None and not is_enabled(org, item.feature):
            continue
        if item.module is not None and not policy.can_access(item.module):
            continue
        url = reverse(item.url_name)
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
