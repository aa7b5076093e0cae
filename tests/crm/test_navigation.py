import pytest
from django.urls import NoReverseMatch, reverse

from crm import navigation
from crm.navigation import NavItem, navigation_for
from crm.permissions import Policy

from ..factories import member

pytestmark = pytest.mark.django_db


def active_labels(policy, path):
    sidebar, settings_entries = navigation_for(policy, path)
    return [e["label"] for e in [*sidebar, *settings_entries] if e["active"]]


@pytest.mark.parametrize(
    ("url_name", "expected"),
    [
        ("contacts:contact_list", ["Contacts"]),
        ("contacts:inbox", ["Inbox"]),
        ("contacts:scoring", ["Lead scoring"]),
        ("contacts:custom_fields", ["Custom fields"]),
        ("crm:roles", ["Roles & Permissions"]),
        ("crm:dashboard", ["Dashboard"]),
    ],
)
def test_exactly_one_entry_is_active_across_sidebar_and_settings(org, url_name, expected):
    policy = Policy(member(org, "owner"))
    assert active_labels(policy, reverse(url_name)) == expected


def test_entries_follow_the_role(org):
    viewer_sidebar, viewer_settings = navigation_for(Policy(member(org, "viewer")), "/")
    board_sidebar, _ = navigation_for(Policy(member(org, "board")), "/")
    assert [e["label"] for e in viewer_settings] == ["Customize"]
    assert "Contacts" in [e["label"] for e in viewer_sidebar]
    assert "Contacts" not in [e["label"] for e in board_sidebar]


def test_a_renamed_url_of_an_installed_app_fails_loudly(org, monkeypatch):
    """The sidebar used to drop an entry whose URL did not reverse, hiding a broken link."""
    renamed = NavItem("Contacts", "contacts:contact_list_renamed", "contacts", "users")
    monkeypatch.setattr(navigation, "SIDEBAR", [*navigation.SIDEBAR, renamed])
    with pytest.raises(NoReverseMatch):
        navigation_for(Policy(member(org, "owner")), "/")


def test_entries_of_apps_not_installed_are_left_out(org, monkeypatch):
    future = NavItem("Forecasts", "forecasts:home", None, "chart")
    monkeypatch.setattr(navigation, "SIDEBAR", [*navigation.SIDEBAR, future])
    sidebar, _ = navigation_for(Policy(member(org, "owner")), "/")
    labels = [e["label"] for e in sidebar]
    assert "Forecasts" not in labels
    assert "Contacts" in labels


def _labels(policy, path="/"):
    sidebar, settings_entries = navigation_for(policy, path)
    return [e["label"] for e in sidebar], [e["label"] for e in settings_entries]


def test_entries_of_an_optional_module_show_only_while_it_is_on(org):
    owner = member(org, "owner")
    sidebar, settings_entries = _labels(Policy(owner))
    assert "Orders" not in sidebar and "Objects" not in sidebar
    assert "Orders registry" not in settings_entries
    assert "Custom objects" not in settings_entries

    org.enabled_modules = ["orders", "custom_objects"]
    org.save()
    owner.org.refresh_from_db()
    sidebar, settings_entries = _labels(Policy(owner))
    assert "Orders" in sidebar and "Objects" in sidebar
    assert "Orders registry" in settings_entries and "Custom objects" in settings_entries


def test_a_module_that_is_on_still_follows_the_role(org):
    org.enabled_modules = ["orders", "custom_objects"]
    org.save()
    sidebar, settings_entries = _labels(Policy(member(org, "partner")))
    assert "Orders" in sidebar  # partners work the pipeline
    assert "Objects" not in sidebar  # but have no custom objects
    assert "Custom objects" not in settings_entries


def test_the_orders_settings_page_is_not_also_the_pipelines_entry(org):
    org.enabled_modules = ["orders"]
    org.save()
    policy = Policy(member(org, "owner"))
    assert active_labels(policy, reverse("pipeline:order_inbound_settings")) == ["Orders registry"]
