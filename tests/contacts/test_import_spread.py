"""Cells read by their row (issue 11, classes 3 and 4): a phone typed Mobile on its own row,
an address in a second family when the first is empty, one cell that fills two fields."""

from contacts.importing.spread import (
    fall_back_on_other_addresses,
    is_mobile_type,
    plan_spread,
    route_phone_cells,
    spread_combined,
)

GOOGLE = ["Name", "Phone 1 - Type", "Phone 1 - Value", "Phone 2 - Type", "Phone 2 - Value"]
OUTLOOK = [
    "First Name",
    "Business Street",
    "Business City",
    "Business Postal Code",
    "Home Street",
    "Home City",
    "Home Postal Code",
    "Home Country/Region",
    "Other Street",
    "Other City",
]


def plan_of(headers, mapping):
    return [(headers.index(h), t, h) for h, t in mapping.items()]


def test_a_phone_column_is_typed_by_the_type_column_of_its_number():
    plan = plan_of(GOOGLE, {"Phone 1 - Value": "phone", "Phone 2 - Value": "other_phone"})
    spread = plan_spread(GOOGLE, plan)
    assert spread.phone_types == {2: 1}
    # A phone column with no type beside it is read as mapped.
    assert plan_spread(["Phone"], [(0, "phone", "Phone")]).phone_types == {}


def test_the_row_type_says_mobile_in_the_words_exports_use():
    for word in ("Mobile", "* Mobile", "Cell", "mobile phone", "Handy", "Mobil"):
        assert is_mobile_type(word), word
    for word in ("Work", "Home", "Main", "", "Work Fax"):
        assert not is_mobile_type(word), word
    phones, mobiles = route_phone_cells(["+1 1", "+1 2", ""], ["Work", "Mobile", "Mobile"])
    assert phones == ["+1 1", "", ""]
    assert mobiles == ["", "+1 2", ""]


def test_other_address_families_are_the_fallback_in_their_rank_order():
    plan = plan_of(
        OUTLOOK,
        {
            "Business Street": "street",
            "Business City": "city",
            "Business Postal Code": "postal_code",
        },
    )
    spread = plan_spread(OUTLOOK, plan)
    assert spread.address_fallbacks == [
        [(4, "street"), (5, "city"), (6, "postal_code"), (7, "country")],
        [(8, "street"), (9, "city")],
    ]
    # No address mapped: nothing to fall back for.
    assert plan_spread(OUTLOOK, [(0, "first_name", "First Name")]).address_fallbacks == []


def test_a_row_without_the_first_address_takes_the_next_family_whole():
    spread = plan_spread(
        OUTLOOK, plan_of(OUTLOOK, {"Business Street": "street", "Business City": "city"})
    )
    rows = [
        # business address: kept, the home one is not mixed in
        ["A", "1 Main St", "Austin", "", "9 Oak Rd", "Round Rock", "78664", "US", "", ""],
        # home only: taken whole
        ["B", "", "", "", "9 Oak Rd", "Round Rock", "78664", "United States", "", ""],
        # other only
        ["C", "", "", "", "", "", "", "", "5 Elm St", "Salem"],
        # no address at all
        ["D", "", "", "", "", "", "", "", "", ""],
    ]
    plain = {"street": ["1 Main St", None, None, None], "city": ["Austin", None, None, None]}
    fall_back_on_other_addresses(
        spread,
        plain,
        4,
        cells_of=lambda index: [r[index] for r in rows],
        value_of=lambda name, cell: "US" if name == "country" else cell,
    )
    assert plain["street"] == ["1 Main St", "9 Oak Rd", "5 Elm St", None]
    assert plain["city"] == ["Austin", "Round Rock", "Salem", None]
    assert plain["postal_code"] == [None, "78664", None, None]
    assert plain["country"] == [None, "US", None, None]


def test_combined_cells_fill_their_fields_unless_a_column_of_their_own_does():
    plain = {
        "full_address": [("1 Main St", "Austin", "TX", "78701", "US"), None],
        "company_department": [("Soylent SAS", "Finance"), ("Acme", "")],
        "city": [None, "Lyon"],
        "company": [None, "Acme Corp"],
    }
    spread_combined(plain, 2)
    assert "full_address" not in plain and "company_department" not in plain
    assert plain["street"] == ["1 Main St", None]
    assert plain["city"] == ["Austin", "Lyon"]
    assert plain["company"] == ["Soylent SAS", "Acme Corp"]
    assert plain["department"] == ["Finance", None]
