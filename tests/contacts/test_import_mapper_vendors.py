"""Columns whose names mislead (issue 11, class 3): the mapper on the header sets and sample
values that Outlook, Salesforce, Google Contacts and HubSpot really write."""

from contacts.importing.mapper import CUSTOM, SKIP, suggest_mapping

ADDRESS_PARTS = {"street", "city", "region", "postal_code", "country"}


def suggestions(headers, rows=None):
    return {s.column: s for s in suggest_mapping(headers, rows)}


def column_of(sample: dict[str, list[str]]):
    """Headers and rows from {header: [value per row]}."""
    headers = list(sample)
    rows = [list(r) for r in zip(*sample.values(), strict=True)]
    return headers, rows


OUTLOOK_EN = {
    "Title": ["Mr.", "Dr.", "Ms.", "", "Prof."],
    "First Name": ["Ann", "Ben", "Cleo", "Dan", "Eve"],
    "Last Name": ["Smith", "Jones", "Brown", "Weber", "Koch"],
    "Company": ["Acme", "Globex", "Initech", "Hooli", "Acme"],
    "Job Title": ["CTO", "Head of Sales", "CFO", "Founder", "Buyer"],
    "Business Street": ["500 Congress Ave", "1 Federal St", "", "2 Main St", "3 Elm St"],
    "Business Street 2": ["Suite 100", "", "", "", ""],
    "Business City": ["Austin", "Boston", "", "Denver", "Salem"],
    "Business State": ["TX", "MA", "", "CO", "OR"],
    "Business Postal Code": ["78701", "02110", "", "80202", "97301"],
    "Business Country/Region": ["United States", "USA", "", "US", "US"],
    "Home Street": ["9 Oak Rd", "", "12 Pine Ln", "", ""],
    "Home City": ["Round Rock", "", "Portland", "", ""],
    "Home State": ["TX", "", "OR", "", ""],
    "Home Postal Code": ["78664", "", "97201", "", ""],
    "Home Country/Region": ["United States", "", "US", "", ""],
    "Other Street": ["", "", "", "", ""],
    "Other City": ["", "", "", "", ""],
    "Other Postal Code": ["", "", "", "", ""],
    "E-mail Address": ["ann@acme.com", "ben@globex.com", "c@i.com", "d@h.com", "e@a.com"],
    "E-mail Type": ["SMTP"] * 5,
    "E-mail Display Name": [
        "Ann Smith (ann@acme.com)",
        "Ben Jones (ben@globex.com)",
        "Cleo Brown (c@i.com)",
        "Dan Weber (d@h.com)",
        "Eve Koch (e@a.com)",
    ],
    "E-mail 2 Address": ["", "b2@x.com", "", "", ""],
    "E-mail 2 Type": ["", "SMTP", "", "", ""],
}


def test_outlook_title_is_the_honorific_and_job_title_is_the_job():
    got = suggestions(*column_of(OUTLOOK_EN))

    assert got["Job Title"].target == "job_title"
    # There is no salutation field on a contact: the honorific is skipped, and says why.
    assert got["Title"].target == SKIP
    assert "honorific" in got["Title"].reason


def test_a_title_column_of_honorifics_is_never_the_job_title_even_alone():
    headers, rows = column_of(
        {"Title": ["Mr.", "Mrs", "Dr.", "Herr", "Frau"], "Email": ["a@x.io"] * 5}
    )

    got = suggestions(headers, rows)

    assert got["Title"].target == SKIP
    assert "honorific" in got["Title"].reason


def test_salesforce_salutation_is_the_honorific_and_title_stays_the_job_title():
    headers, rows = column_of(
        {
            "Salutation": ["Mr.", "Ms.", "Dr."],
            "First Name": ["Ann", "Ben", "Cleo"],
            "Last Name": ["Smith", "Jones", "Brown"],
            "Title": ["CTO", "VP Sales", "Buyer"],
            "Account Name": ["Acme", "Globex", "Initech"],
        }
    )

    got = suggestions(headers, rows)

    assert got["Title"].target == "job_title"
    assert got["Salutation"].target == SKIP
    assert "honorific" in got["Salutation"].reason


def test_german_outlook_anrede_is_the_honorific_and_position_is_the_job():
    got = suggestions(["Anrede", "Vorname", "Nachname", "Firma", "Position"])

    assert got["Position"].target == "job_title"
    assert got["Anrede"].target == SKIP


SF_DATA_LOADER = {
    "Id": ["0035g00000AbCdEAA1", "0035g00000AbCdFAA1", "0035g00000AbCdGAA1"],
    "AccountId": ["001x0000003DGbQAAW", "0015g00000XyZ12AAB", ""],
    "LastName": ["Smith", "Jones", "Brown"],
    "FirstName": ["Ann", "Ben", "Cleo"],
    "OtherStreet": ["9 Oak Rd", "", ""],
    "OtherCity": ["Round Rock", "", "Lyon"],
    "OtherState": ["TX", "", ""],
    "OtherPostalCode": ["78664", "", "69002"],
    "OtherCountry": ["US", "", "FR"],
    "MailingStreet": ["500 Congress Ave", "1 Federal St", ""],
    "MailingCity": ["Austin", "Boston", ""],
    "MailingState": ["TX", "MA", ""],
    "MailingPostalCode": ["78701", "02110", ""],
    "MailingCountry": ["US", "US", ""],
    "Email": ["ann@acme.com", "ben@globex.com", "cleo@initech.com"],
    "OwnerId": ["0055g00000C0ffEAAR", "0055g00000C0ffEAAR", "005x0000001Ab2c"],
    "ReportsToId": ["", "0035g00000AbCdEAA1", ""],
}


def test_salesforce_account_id_is_an_id_never_a_company_name():
    got = suggestions(*column_of(SF_DATA_LOADER))

    assert got["Id"].target == "external_id"
    assert got["AccountId"].target == CUSTOM
    assert "Salesforce" in got["AccountId"].reason and "id" in got["AccountId"].reason
    assert got["OwnerId"].target == CUSTOM
    assert "owner" in got["OwnerId"].reason
    assert "company" not in {s.target for s in got.values()}
    assert "owner" not in {s.target for s in got.values()}


def test_salesforce_account_id_without_values_is_still_not_the_company():
    got = suggestions(["Account ID", "Owner ID", "Account Name", "Contact Owner"])

    assert got["Account ID"].target == CUSTOM
    assert got["Owner ID"].target == CUSTOM
    assert got["Account Name"].target == "company"
    assert got["Contact Owner"].target == "owner"


def test_a_column_of_salesforce_ids_is_never_a_company_whatever_its_header():
    headers, rows = column_of(
        {
            "Company": ["001x0000003DGbQAAW", "001x0000003DGbR", "0015g00000XyZ12AAB"],
            "Owner": ["0055g00000C0ffEAAR", "005x0000001Ab2c", "0055g00000C0ffEAAR"],
            "Email": ["a@x.io", "b@x.io", "c@x.io"],
        }
    )

    got = suggestions(headers, rows)

    assert got["Company"].target == CUSTOM
    assert "Salesforce" in got["Company"].reason
    assert got["Owner"].target == CUSTOM


def test_a_company_column_of_ordinary_names_is_still_the_company():
    headers, rows = column_of(
        {"Company": ["Acme GmbH", "Globex Ltd", "Initech Inc."], "Email": ["a@x.io"] * 3}
    )

    assert suggestions(headers, rows)["Company"].target == "company"


def _address_targets(got, prefix_test):
    return {c: s.target for c, s in got.items() if prefix_test(c)}


def test_salesforce_mailing_address_wins_whole_and_other_address_is_kept_aside():
    got = suggestions(*column_of(SF_DATA_LOADER))

    mailing = _address_targets(got, lambda c: c.startswith("Mailing"))
    assert mailing == {
        "MailingStreet": "street",
        "MailingCity": "city",
        "MailingState": "region",
        "MailingPostalCode": "postal_code",
        "MailingCountry": "country",
    }
    other = _address_targets(got, lambda c: c.startswith("Other"))
    assert set(other.values()) <= {CUSTOM, SKIP}
    assert "mailing" in got["OtherCity"].reason.lower()


def test_outlook_business_address_wins_whole_over_home_and_other():
    got = suggestions(*column_of(OUTLOOK_EN))

    business = _address_targets(got, lambda c: c.startswith("Business") and "2" not in c)
    assert business == {
        "Business Street": "street",
        "Business City": "city",
        "Business State": "region",
        "Business Postal Code": "postal_code",
        "Business Country/Region": "country",
    }
    rest = _address_targets(got, lambda c: c.startswith(("Home", "Other")))
    assert set(rest.values()) <= {CUSTOM, SKIP}
    # A second street line has no field of its own: it must not take another's target.
    assert got["Business Street 2"].target in {CUSTOM, SKIP}


def test_outlook_business_address_wins_even_when_its_columns_come_after_home():
    headers = ["Home Street", "Home City", "Business City", "Business Street", "Home Postal Code"]
    headers += ["Business Postal Code"]

    got = suggestions(headers)

    assert got["Business City"].target == "city"
    assert got["Business Street"].target == "street"
    assert got["Business Postal Code"].target == "postal_code"
    assert {got[h].target for h in headers if h.startswith("Home")} <= {CUSTOM, SKIP}


def test_home_address_is_used_when_the_file_has_no_business_address():
    got = suggestions(["First Name", "Home Street", "Home City", "Home Postal Code"])

    assert got["Home Street"].target == "street"
    assert got["Home City"].target == "city"
    assert got["Home Postal Code"].target == "postal_code"


OUTLOOK_DE = [
    "Anrede",
    "Vorname",
    "Nachname",
    "Firma",
    "Abteilung",
    "Position",
    "Straße geschäftlich",
    "Straße geschäftlich 2",
    "Ort geschäftlich",
    "Region geschäftlich",
    "Postleitzahl geschäftlich",
    "Land/Region geschäftlich",
    "Straße privat",
    "Ort privat",
    "Region privat",
    "Postleitzahl privat",
    "Land/Region privat",
    "Weitere Straße",
    "Weiterer Ort",
    "Weitere Region",
    "Weitere Postleitzahl",
    "Weiteres Land/Region",
    "Telefon geschäftlich",
    "Mobiltelefon",
    "E-Mail-Adresse",
]


def test_german_outlook_business_address_lands_together():
    got = suggestions(OUTLOOK_DE)

    assert {
        h: got[h].target
        for h in [
            "Straße geschäftlich",
            "Ort geschäftlich",
            "Region geschäftlich",
            "Postleitzahl geschäftlich",
            "Land/Region geschäftlich",
        ]
    } == {
        "Straße geschäftlich": "street",
        "Ort geschäftlich": "city",
        "Region geschäftlich": "region",
        "Postleitzahl geschäftlich": "postal_code",
        "Land/Region geschäftlich": "country",
    }
    aside = [h for h in OUTLOOK_DE if "privat" in h or h.startswith("Weiter")]
    assert {got[h].target for h in aside} <= {CUSTOM, SKIP}
    assert got["Straße geschäftlich 2"].target in {CUSTOM, SKIP}


OUTLOOK_FR = [
    "Titre",
    "Prénom",
    "Nom",
    "Société",
    "Service",
    "Fonction",
    "Rue (bureau)",
    "Rue (bureau) 2",
    "Ville (bureau)",
    "Dép/Région (bureau)",
    "Code postal (bureau)",
    "Pays/Région (bureau)",
    "Rue (domicile)",
    "Ville (domicile)",
    "Dép/Région (domicile)",
    "Code postal (domicile)",
    "Pays/Région (domicile)",
    "Rue (autre)",
    "Ville (autre)",
    "Code postal (autre)",
    "Pays/Région (autre)",
    "Adresse de messagerie",
]


def test_french_outlook_business_address_lands_together_and_titre_is_the_honorific():
    got = suggestions(OUTLOOK_FR)

    assert {
        h: got[h].target
        for h in [
            "Rue (bureau)",
            "Ville (bureau)",
            "Dép/Région (bureau)",
            "Code postal (bureau)",
            "Pays/Région (bureau)",
        ]
    } == {
        "Rue (bureau)": "street",
        "Ville (bureau)": "city",
        "Dép/Région (bureau)": "region",
        "Code postal (bureau)": "postal_code",
        "Pays/Région (bureau)": "country",
    }
    aside = [h for h in OUTLOOK_FR if "domicile" in h or "autre" in h]
    assert {got[h].target for h in aside} <= {CUSTOM, SKIP}
    assert got["Fonction"].target == "job_title"
    assert got["Titre"].target == SKIP


GOOGLE = {
    "Given Name": ["Ann", "Ben"],
    "Family Name": ["Smith", "Jones"],
    "E-mail 1 - Type": ["* Work", "Home"],
    "E-mail 1 - Value": ["ann@acme.com", "ben@home.net"],
    "Phone 1 - Type": ["Mobile", "Work"],
    "Phone 1 - Value": ["+1 512 555 0199", "+1 617 555 0142"],
    "Phone 1 - Label": ["", ""],
    "Address 1 - Type": ["Home", "Home"],
    "Address 1 - Formatted": ["9 Oak Rd\nRound Rock, TX 78664", "12 Pine Ln\nSalem"],
    "Address 1 - Street": ["9 Oak Rd", "12 Pine Ln"],
    "Address 1 - City": ["Round Rock", "Salem"],
    "Address 1 - Region": ["TX", "OR"],
    "Address 1 - Postal Code": ["78664", "97301"],
    "Address 1 - Country": ["US", "US"],
    "Address 2 - Type": ["Work", "Work"],
    "Address 2 - Street": ["500 Congress Ave", "1 Federal St"],
    "Address 2 - City": ["Austin", "Boston"],
    "Address 2 - Postal Code": ["78701", "02110"],
    "Address 2 - Country": ["US", "US"],
    "Organization 1 - Type": ["Work", ""],
    "Organization 1 - Name": ["Acme", "Globex"],
    "Website 1 - Label": ["Blog", ""],
    "Website 1 - Value": ["https://ann.example", ""],
}


def test_google_type_and_label_columns_describe_the_next_column_and_are_skipped():
    got = suggestions(*column_of(GOOGLE))

    for header in [h for h in GOOGLE if h.endswith(("- Type", "- Label"))]:
        assert got[header].target == SKIP, header
        assert "describes" in got[header].reason, header
    assert got["E-mail 1 - Value"].target == "email"
    assert got["Phone 1 - Value"].target == "phone"


def test_outlook_email_type_and_display_name_are_not_data():
    got = suggestions(*column_of(OUTLOOK_EN))

    assert got["E-mail Type"].target == SKIP
    assert got["E-mail 2 Type"].target == SKIP
    assert got["E-mail Display Name"].target == SKIP
    assert got["E-mail Address"].target == "email"
    assert got["E-mail 2 Address"].target == "other_emails"


def test_pipedrive_person_label_is_still_tags():
    got = suggestions(["Person - Name", "Person - Label", "Person - Email - Work"])

    assert got["Person - Label"].target == "tags"


def test_google_work_address_family_wins_whole_over_the_home_one():
    got = suggestions(*column_of(GOOGLE))

    assert _address_targets(got, lambda c: c.startswith("Address 2")) == {
        "Address 2 - Type": SKIP,
        "Address 2 - Street": "street",
        "Address 2 - City": "city",
        "Address 2 - Postal Code": "postal_code",
        "Address 2 - Country": "country",
    }
    home = _address_targets(got, lambda c: c.startswith("Address 1"))
    assert set(home.values()) <= {CUSTOM, SKIP}


def test_google_single_address_family_maps_and_formatted_repeats_it():
    headers = ["Address 1 - Formatted", "Address 1 - Street", "Address 1 - City"]
    got = suggestions(headers, [["1 Main St\nSalem", "1 Main St", "Salem"]])

    assert got["Address 1 - Street"].target == "street"
    assert got["Address 1 - City"].target == "city"
    assert got["Address 1 - Formatted"].target == SKIP


HUBSPOT = {
    "Record ID": ["51000000001", "51000000102", "51000000203", "51000000304"],
    "First Name": ["Ann", "Ben", "Cleo", "Dan"],
    "Email": ["a@x.io", "b@x.io", "c@x.io", "d@x.io"],
    "Lifecycle Stage": ["lead", "customer", "lead", "subscriber"],
    "Lead Status": ["NEW", "IN_PROGRESS", "ATTEMPTED_TO_CONTACT", "BAD_TIMING"],
    "Marketing contact status": [
        "Marketing contact",
        "Non-marketing contact",
        "Marketing contact",
        "Non-marketing contact",
    ],
    "Street Address": ["1 Main St", "", "2 Elm St", ""],
    "City": ["Austin", "", "Salem", ""],
    "State/Region": ["TX", "", "OR", ""],
    "Country/Region": ["United States", "", "US", ""],
    "IP Country": ["us", "de", "fr", "us"],
}


def test_hubspot_lead_status_is_never_the_contact_status():
    got = suggestions(*column_of(HUBSPOT))

    assert got["Lead Status"].target == CUSTOM
    assert "lead status" in got["Lead Status"].reason
    assert "status" not in {s.target for s in got.values()}


def test_a_status_column_holding_hubspot_lead_statuses_is_not_the_contact_status():
    headers, rows = column_of(
        {
            "Status": ["NEW", "OPEN", "OPEN_DEAL", "UNQUALIFIED", "CONNECTED"],
            "Email": ["a@x.io"] * 5,
        }
    )

    got = suggestions(headers, rows)

    assert got["Status"].target == CUSTOM


def test_hubspot_marketing_contact_status_is_a_billing_flag_not_consent():
    got = suggestions(*column_of(HUBSPOT))

    assert got["Marketing contact status"].target == CUSTOM
    assert "billing" in got["Marketing contact status"].reason
    assert not any(s.target.startswith("consent") for s in got.values())


def test_hubspot_plain_address_keeps_its_fields_and_ip_country_stays_aside():
    got = suggestions(*column_of(HUBSPOT))

    assert got["Street Address"].target == "street"
    assert got["City"].target == "city"
    assert got["State/Region"].target == "region"
    assert got["Country/Region"].target == "country"
    assert got["IP Country"].target in {CUSTOM, SKIP}


# More vendors' quirks: Close, Freshsales, Copper, Mailchimp, vCard-to-CSV.


def test_close_lead_name_is_the_company_when_a_person_name_column_exists():
    got = suggestions(
        *column_of(
            {
                "id": ["lead_1", "lead_2"],
                "display_name": ["Umbrella B.V.", "Hooli LLC"],
                "primary_contact_name": ["Olivia Smith", "Valérie Clarke"],
                "primary_contact_primary_email": ["o@u.example", "v@h.example"],
                "address_1_zipcode": ["3511 AB", "M5V 2T6"],
            }
        )
    )
    assert got["primary_contact_name"].target == "full_name"
    assert got["display_name"].target == "company"
    assert got["address_1_zipcode"].target == "postal_code"


def test_a_lone_display_name_is_still_the_persons_name():
    got = suggestions(*column_of({"Display Name": ["Ann Smith"], "Email": ["a@b.example"]}))
    assert got["Display Name"].target == "full_name"


def test_freshsales_and_copper_name_owners_and_accounts_their_own_way():
    got = suggestions(
        *column_of(
            {
                "First name": ["Ann"],
                "Zipcode": ["10115"],
                "Sales accounts": ["Globex Ltd"],
                "Sales owner": ["Piet Seller"],
            }
        )
    )
    assert got["Zipcode"].target == "postal_code"
    assert got["Sales accounts"].target == "company"
    assert got["Sales owner"].target == "owner"
    assert suggestions(["Owned By"], [["Corra Owner"]])["Owned By"].target == "owner"


def test_freshsales_lead_statuses_are_not_the_active_inactive_status():
    values = ["New", "Contacted", "Interested", "Under review", "Demo", "Won", "Lost"]
    got = suggestions(["Status"], [[v] for v in values])
    assert got["Status"].target == CUSTOM
    assert "lead status" in got["Status"].reason


def test_mailchimp_address_cell_is_a_whole_address_and_ip_places_are_kept_aside():
    headers = ["Email Address", "Address", "LATITUDE", "LONGITUDE", "GMTOFF", "DSTOFF", "CC"]
    headers += ["REGION"]
    geo = ["30", "-97", "-6", "-5"]
    rows = [
        ["a@b.example", "500 Congress Ave    Austin  TX  78701  US", *geo, "US", "TX"],
        ["c@d.example", "1 St Martin's Le Grand    London    EC1A 1BB  GB", *geo, "GB", "ENG"],
    ]
    got = suggestions(headers, rows)
    assert got["Address"].target == "full_address"
    assert got["CC"].target == CUSTOM and "IP address" in got["CC"].reason
    assert got["REGION"].target == CUSTOM
    # Without the IP columns beside it, "Region" is the person's region.
    assert suggestions(["Region"], [["TX"]])["Region"].target == "region"


def test_vcard_organization_with_a_unit_and_address_work_state():
    got = suggestions(
        *column_of(
            {
                "Organization": ["Soylent SAS;Finance", "Acme GmbH;Operations", "Hooli LLC;"],
                "Address (Work) Street": ["1 Rue", "2 Weg", "3 St"],
                "Address (Work) State": ["Bayern", "NSW", "TX"],
            }
        )
    )
    assert got["Organization"].target == "company_department"
    assert got["Address (Work) State"].target == "region"
    assert got["Address (Work) Street"].target == "street"
    # A company named with no ";" stays a company.
    assert suggestions(["Organization"], [["Acme"]])["Organization"].target == "company"


def test_google_second_typed_phone_column_is_read_row_by_row_as_the_mobile():
    headers = ["Phone 1 - Type", "Phone 1 - Value", "Phone 2 - Type", "Phone 2 - Value"]
    got = suggestions(headers, [["Work", "+49 30 1", "Mobile", "+49 151 2"]])
    assert got["Phone 1 - Value"].target == "phone"
    assert got["Phone 2 - Value"].target == "mobile"
    # Outlook's untyped second business phone is not taken for a mobile.
    got = suggestions(["Business Phone", "Business Phone 2"], [["+1 512 1", "+1 512 2"]])
    assert got["Business Phone 2"].target != "mobile"


# Systems beyond the first fifteen (Odoo, Keap, SugarCRM, Dynamics 365, monday.com).


def test_odoo_title_spelled_out_is_the_honorific_and_job_position_is_the_job():
    headers, rows = column_of(
        {
            "Name": ["Ann Smith", "Ben Jones", "Cleo Brown", "Dan Weber", "Eve Koch"],
            "Title": ["Doctor", "Mister", "Madam", "", "Professor"],
            "Job Position": ["CTO", "Head of Sales", "CFO", "Founder", "Buyer"],
        }
    )

    got = suggestions(headers, rows)

    assert got["Job Position"].target == "job_title"
    assert got["Title"].target == SKIP
    assert "honorific" in got["Title"].reason


def test_a_company_column_with_one_value_on_every_row_yields_to_the_varied_one():
    # Odoo's "Company" (multi-company) is the exporting business; "Related Company" is the
    # employer. Put first, the constant column would otherwise win the company field.
    headers, rows = column_of(
        {
            "Company": ["Our Shop Ltd"] * 6,
            "Name": ["Ann Smith", "Ben Jones", "Cleo Brown", "Dan Weber", "Eve Koch", "Fay Li"],
            "Related Company": ["Acme", "Globex", "", "Initech", "Acme", "Hooli"],
        }
    )

    got = suggestions(headers, rows)

    assert got["Related Company"].target == "company"
    assert got["Company"].target == CUSTOM
    assert "same value" in got["Company"].reason


def test_a_lone_company_column_with_one_value_stays_the_company():
    headers, rows = column_of(
        {"Email": [f"p{i}@acme.example" for i in range(6)], "Company": ["Acme"] * 6}
    )

    assert suggestions(headers, rows)["Company"].target == "company"


def test_sugarcrm_primary_address_lands_whole_and_alternate_is_kept_aside():
    parts = ["Street", "City", "State", "Postal Code", "Country"]
    primary = [
        ["1 Federal St", "Boston", "MA", "02110", "USA"],
        ["9 Oak Rd", "Lyon", "", "69002", "FR"],
    ]
    alternate = [["", "", "", "", ""], ["12 Pine Ln", "Portland", "OR", "97201", "US"]]
    headers = [f"Primary Address {p}" for p in parts] + [f"Alternate Address {p}" for p in parts]
    rows = [a + b for a, b in zip(primary, alternate, strict=True)]

    got = suggestions(headers, rows)

    assert [got[f"Primary Address {p}"].target for p in parts] == [
        "street",
        "city",
        "region",
        "postal_code",
        "country",
    ]
    assert {got[f"Alternate Address {p}"].target for p in parts} <= {CUSTOM, SKIP}


def test_keap_bare_numbered_phone_with_a_type_column_is_read_row_by_row():
    from contacts.importing.spread import plan_spread

    headers, rows = column_of(
        {
            "Email": ["a@x.io", "b@x.io", "c@x.io"],
            "Phone 1": ["(512) 555-0101", "(512) 555-0102", "(512) 555-0103"],
            "Phone 1 Type": ["Work", "Work", "Work"],
            "Phone 2": ["(512) 555-0111", "", "(512) 555-0113"],
            "Phone 2 Type": ["Mobile", "", "Mobile"],
        }
    )

    got = suggestions(headers, rows)
    assert got["Phone 1"].target == "phone"
    assert got["Phone 2"].target == "mobile"
    assert got["Phone 2 Type"].target == SKIP

    plan = [
        (i, got[h].target, h) for i, h in enumerate(headers) if got[h].target in ("phone", "mobile")
    ]
    spread = plan_spread(headers, plan)
    # Each number's own "Type" cell decides, so a "Work" number in Phone 2 stays a phone.
    assert spread.phone_types == {1: 2, 3: 4}


def test_dynamics_do_not_modify_columns_are_the_id_and_bookkeeping():
    headers, rows = column_of(
        {
            "(Do Not Modify) Contact": ["0f8fad5b-d9cb-469f-a165-70867728950e"] * 2,
            "(Do Not Modify) Row Checksum": ["k3Qz+7mWb/AbC01==", "k9Qz+7mWb/AbC02=="],
            "(Do Not Modify) Modified On": ["2025-03-05 10:00:00", "2025-04-05 10:00:00"],
            "Full Name": ["Ann Smith", "Ben Jones"],
        }
    )

    got = suggestions(headers, rows)

    assert got["(Do Not Modify) Contact"].target == "external_id"
    assert got["(Do Not Modify) Row Checksum"].target == SKIP
    assert got["(Do Not Modify) Modified On"].target == SKIP
    assert got["Full Name"].target == "full_name"


def test_a_status_column_of_board_states_is_not_the_contact_status():
    board = column_of(
        {"Name": ["Ann", "Ben", "Cleo", "Dan"], "Status": ["Working on it", "Done", "Stuck", ""]}
    )
    own = column_of(
        {"Name": ["Ann", "Ben", "Cleo", "Dan"], "Status": ["Active", "Inactive", "Active", ""]}
    )

    assert suggestions(*board)["Status"].target == CUSTOM
    assert "not a contact status" in suggestions(*board)["Status"].reason
    assert suggestions(*own)["Status"].target == "status"
