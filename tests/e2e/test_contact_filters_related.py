"""The contact list's filter builder with the related conditions, in a real browser: "has an
order with status Paid in the last 30 days" and "associated with a Course where Level is
Advanced" are built with their own inputs, applied, saved as a view, and come back into the
builder when the view is opened again."""

import datetime as dt
import re

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from contacts.models import SmartView
from pipeline.models import ObjectField
from tests.factories import (
    ContactFactory,
    ObjectAssociationFactory,
    ObjectFieldFactory,
    ObjectRecordFactory,
    ObjectTypeFactory,
    OrderFactory,
)

pytestmark = pytest.mark.e2e


def row_names(page) -> list[str]:
    return sorted(page.locator("#contact-table tbody th.col-name a").all_inner_texts())


@pytest.fixture
def shop(org):
    org.enabled_modules = ["orders", "custom_objects"]
    org.save()
    today = timezone.localdate()
    course = ObjectTypeFactory(org=org, key="course", name="Course", plural="Courses")
    ObjectFieldFactory(
        org=org,
        object_type=course,
        key="level",
        label="Level",
        field_type=ObjectField.FieldType.LIST,
        choices=["Beginner", "Advanced"],
    )
    advanced = ObjectRecordFactory(org=org, object_type=course, values={"level": "Advanced"})
    beginner = ObjectRecordFactory(org=org, object_type=course, values={"level": "Beginner"})
    ann = ContactFactory(org=org, first_name="Ann", last_name="Buyer")
    bob = ContactFactory(org=org, first_name="Bob", last_name="Buyer")
    ContactFactory(org=org, first_name="Cid", last_name="Browser")
    OrderFactory(org=org, contact=ann, status="paid", order_date=today - dt.timedelta(days=3))
    OrderFactory(org=org, contact=bob, status="paid", order_date=today - dt.timedelta(days=3))
    ObjectAssociationFactory(org=org, record=advanced, contact=ann)
    ObjectAssociationFactory(org=org, record=beginner, contact=bob)
    return course


def test_build_apply_and_save_related_conditions(page, login_as, owner, shop):
    login_as(owner.user)
    page.goto("/contacts/")
    expect(page.locator("#contact-table tbody tr")).to_have_count(3)

    builder = page.locator(".filter-builder")
    if builder.get_attribute("open") is None:
        builder.locator("summary").click()
    builder.locator("[data-builder-add]").click()
    first = builder.locator('[data-condition="1"]')
    first.locator("[data-builder-field]").select_option("orders")
    first.locator("[data-builder-op]").select_option("has")
    first.get_by_label("Order status (any of) for condition 1").select_option(["paid"])
    first.get_by_label("Order date for condition 1").select_option("days")
    first.get_by_label("Number of days for condition 1").fill("30")

    builder.locator(".builder-group button", has_text="+ Add filter").click()
    second = builder.locator('[data-condition="2"]')
    second.locator("[data-builder-field]").select_option("objects")
    second.get_by_label("Record type for condition 2").select_option(label="Course")
    second.get_by_label("Record field for condition 2").select_option("level")
    second.get_by_label("Value of Level for condition 2").select_option("Advanced")
    builder.locator("[data-builder-apply]").click()

    expect(page.locator("#contact-table tbody tr")).to_have_count(1)
    assert row_names(page) == ["Ann Buyer"]
    expect(page.get_by_text("has an order with status Paid in the last 30 days")).to_be_visible()

    page.locator(".save-view summary").click()
    page.fill("#save-view-name", "Advanced buyers")
    page.locator(".save-view-form button[type=submit]").click()
    page.wait_for_url(re.compile(r"/contacts/\?view="))
    saved = SmartView.objects.get(name="Advanced buyers")
    conditions = saved.filters["groups"][0]["conditions"]
    assert conditions == [
        {"field": "orders", "op": "has", "value": {"status": ["paid"], "days": 30}},
        {
            "field": "objects",
            "op": "associated",
            "value": {
                "type": str(shop.public_id),
                "where": {"field": "level", "op": "eq", "value": "Advanced"},
            },
        },
    ]
    assert row_names(page) == ["Ann Buyer"]

    # Opened again, the builder shows the saved conditions in their own inputs.
    page.reload()
    builder = page.locator(".filter-builder")
    if builder.get_attribute("open") is None:
        builder.locator("summary").click()
    expect(builder.get_by_label("Number of days for condition 1")).to_have_value("30")
    expect(builder.get_by_label("Value of Level for condition 2")).to_have_value("Advanced")
