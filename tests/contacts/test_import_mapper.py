"""The mapper on header sets as the named products export them (from their public docs)."""

import pytest

from contacts.importing.mapper import CUSTOM, SKIP, normalize_header, suggest_mapping


def mapping(headers, rows=None, **kwargs):
    return {s.column: s.target for s in suggest_mapping(headers, rows, **kwargs)}


EXPORTS = {
    "hubspot": (
        [
            "Record ID",
            "First Name",
            "Last Name",
            "Email",
            "Phone Number",
            "Mobile Phone Number",
            "Job Title",
            "Company Name",
            "Lifecycle Stage",
            "Lead Status",
            "Contact owner",
            "Street Address",
            "City",
            "State/Region",
            "Postal Code",
            "Country/Region",
            "Website URL",
            "Original Source",
        ],
        {
            "Record ID": "external_id",
            "First Name": "first_name",
            "Email": "email",
            "Phone Number": "phone",
            "Mobile Phone Number": "mobile",
            "Company Name": "company",
            "Lifecycle Stage": "lifecycle_stage",
            # A lead status (NEW, OPEN...) is not the Active/Inactive status (issue 11).
            "Lead Status": CUSTOM,
            "Contact owner": "owner",
            "State/Region": "region",
            "Country/Region": "country",
            "Original Source": "source",
            "Website URL": "company_website",
        },
    ),
    "salesforce_report": (
        [
            "Contact ID",
            "First Name",
            "Last Name",
            "Title",
            "Account Name",
            "Email",
            "Phone",
            "Mobile",
            "Mailing Street",
            "Mailing City",
            "Mailing State/Province",
            "Mailing Zip/Postal Code",
            "Mailing Country",
            "Lead Source",
            "Contact Owner",
        ],
        {
            "Title": "job_title",
            "Account Name": "company",
            "Mobile": "mobile",
            "Mailing Street": "street",
            "Mailing City": "city",
            "Mailing State/Province": "region",
            "Mailing Zip/Postal Code": "postal_code",
            "Mailing Country": "country",
            "Lead Source": "source",
            "Contact Owner": "owner",
            "Contact ID": "external_id",
        },
    ),
    "salesforce_data_loader": (
        [
            "Id",
            "FirstName",
            "LastName",
            "Email",
            "Phone",
            "MobilePhone",
            "Title",
            "Department",
            "MailingStreet",
            "MailingCity",
            "MailingState",
            "MailingPostalCode",
            "MailingCountry",
            "LeadSource",
            "OwnerId",
            "HasOptedOutOfEmail",
            "DoNotCall",
        ],
        {
            "Id": "external_id",
            "FirstName": "first_name",
            "LastName": "last_name",
            "MobilePhone": "mobile",
            "MailingPostalCode": "postal_code",
            "LeadSource": "source",
            # A Salesforce user id (005...), not an owner email (issue 11).
            "OwnerId": CUSTOM,
            "HasOptedOutOfEmail": "consent_email",
            "DoNotCall": "consent_phone",
            "Department": "department",
        },
    ),
    "zoho": (
        [
            "Record Id",
            "Contact Owner",
            "First Name",
            "Last Name",
            "Account Name",
            "Email",
            "Secondary Email",
            "Title",
            "Department",
            "Phone",
            "Mobile",
            "Lead Source",
            "Mailing Street",
            "Mailing City",
            "Mailing State",
            "Mailing Zip",
            "Mailing Country",
            "Email Opt Out",
            "Twitter",
            "Description",
        ],
        {
            "Secondary Email": "other_emails",
            "Mailing Zip": "postal_code",
            "Twitter": "twitter_handle",
            "Email Opt Out": "consent_email",
            "Description": "note",
        },
    ),
    "pipedrive": (
        [
            "Person - Name",
            "Person - First name",
            "Person - Last name",
            "Person - Email - Work",
            "Person - Email - Home",
            "Person - Phone - Work",
            "Person - Phone - Mobile",
            "Person - Organization",
            "Person - Owner",
            "Person - Label",
            "Person - Job title",
        ],
        {
            "Person - First name": "first_name",
            "Person - Last name": "last_name",
            "Person - Email - Work": "email",
            "Person - Email - Home": "other_emails",
            "Person - Phone - Work": "phone",
            "Person - Phone - Mobile": "mobile",
            "Person - Organization": "company",
            "Person - Owner": "owner",
            "Person - Label": "tags",
            "Person - Job title": "job_title",
        },
    ),
    "google_contacts": (
        [
            "Name",
            "Given Name",
            "Family Name",
            "E-mail 1 - Type",
            "E-mail 1 - Value",
            "E-mail 2 - Value",
            "Phone 1 - Value",
            "Organization 1 - Name",
            "Organization 1 - Title",
            "Address 1 - City",
            "Address 1 - Postal Code",
            "Address 1 - Country",
            "Group Membership",
            "Notes",
        ],
        {
            "Given Name": "first_name",
            "Family Name": "last_name",
            "E-mail 1 - Value": "email",
            "E-mail 2 - Value": "other_emails",
            "Phone 1 - Value": "phone",
            "Organization 1 - Name": "company",
            "Organization 1 - Title": "job_title",
            "Address 1 - City": "city",
            "Group Membership": "tags",
            "Notes": "note",
        },
    ),
    "outlook": (
        [
            "First Name",
            "Middle Name",
            "Last Name",
            "Company",
            "Department",
            "Job Title",
            "Business Street",
            "Business City",
            "Business State",
            "Business Postal Code",
            "Business Country/Region",
            "Business Phone",
            "Mobile Phone",
            "E-mail Address",
            "E-mail 2 Address",
            "Categories",
            "Web Page",
        ],
        {
            "E-mail Address": "email",
            "E-mail 2 Address": "other_emails",
            "Business Phone": "phone",
            "Mobile Phone": "mobile",
            "Business City": "city",
            "Business State": "region",
            "Business Country/Region": "country",
            "Categories": "tags",
            "Web Page": "company_website",
        },
    ),
    "linkedin": (
        ["First Name", "Last Name", "URL", "Email Address", "Company", "Position", "Connected On"],
        {"Email Address": "email", "Position": "job_title", "Company": "company"},
    ),
    "mailchimp": (
        [
            "Email Address",
            "First Name",
            "Last Name",
            "Address",
            "Phone Number",
            "TAGS",
            "MEMBER_RATING",
            "OPTIN_TIME",
            "CONFIRM_IP",
            "LEID",
            "NOTES",
        ],
        {
            "Email Address": "email",
            "TAGS": "tags",
            "OPTIN_TIME": "consent_date",
            "Phone Number": "phone",
            "Address": "street",
            "NOTES": "note",
        },
    ),
    "german": (
        [
            "Vorname",
            "Nachname",
            "E-Mail-Adresse",
            "Telefon",
            "Handy",
            "Firma",
            "Straße",
            "PLZ",
            "Ort",
            "Land",
        ],
        {
            "Vorname": "first_name",
            "Nachname": "last_name",
            "E-Mail-Adresse": "email",
            "Telefon": "phone",
            "Handy": "mobile",
            "Firma": "company",
            "Straße": "street",
            "PLZ": "postal_code",
            "Ort": "city",
            "Land": "country",
        },
    ),
    "french": (
        [
            "Prénom",
            "Nom",
            "Courriel",
            "Téléphone",
            "Portable",
            "Société",
            "Poste",
            "Code postal",
            "Ville",
            "Pays",
        ],
        {
            "Prénom": "first_name",
            "Nom": "last_name",
            "Courriel": "email",
            "Téléphone": "phone",
            "Portable": "mobile",
            "Société": "company",
            "Poste": "job_title",
            "Code postal": "postal_code",
            "Ville": "city",
            "Pays": "country",
        },
    ),
    "spanish": (
        [
            "Nombre",
            "Apellidos",
            "Correo electrónico",
            "Teléfono",
            "Móvil",
            "Empresa",
            "Cargo",
            "Ciudad",
            "País",
        ],
        {
            "Nombre": "first_name",
            "Apellidos": "last_name",
            "Correo electrónico": "email",
            "Móvil": "mobile",
            "Empresa": "company",
            "Cargo": "job_title",
            "País": "country",
        },
    ),
    "plain_spreadsheet": (
        ["Full Name", "email", "phone", "company", "tags", "notes"],
        {"Full Name": "full_name", "email": "email", "tags": "tags", "notes": "note"},
    ),
}


@pytest.mark.parametrize("source", sorted(EXPORTS))
def test_known_export_headers_map_to_their_fields(source):
    headers, expected = EXPORTS[source]
    got = mapping(headers)
    wrong = {h: (got[h], want) for h, want in expected.items() if got[h] != want}
    assert not wrong, f"{source}: got vs expected {wrong}"


def test_each_single_field_is_taken_once_and_extra_emails_go_to_other_emails():
    got = mapping(["Email", "Work Email", "Email 2"])
    assert list(got.values()).count("email") == 1
    assert got["Email 2"] == "other_emails"


def test_unknown_header_becomes_custom_and_empty_column_is_skipped():
    got = mapping(["Favourite colour", "Blank"], [["blue", ""], ["red", ""]])
    assert got == {"Favourite colour": CUSTOM, "Blank": SKIP}


def test_values_decide_when_the_header_says_nothing():
    rows = [["ann@example.com", "+1 415 555 0100", "https://www.linkedin.com/in/ann"]] * 5
    got = mapping(["Col A", "Col B", "Col C"], rows)
    assert got == {"Col A": "email", "Col B": "phone", "Col C": "linkedin_url"}


def test_full_name_not_used_when_first_and_last_exist():
    got = mapping(["Name", "First Name", "Last Name"])
    assert got["Name"] == CUSTOM


def test_existing_custom_field_label_is_matched():
    got = mapping(["Annual Budget"], custom_labels={"custom.annual_budget": "Annual budget"})
    assert got["Annual Budget"] == "custom.annual_budget"


def test_targets_the_member_may_not_edit_are_not_suggested():
    got = mapping(["Email", "Lead Score"], allowed_targets={"email"})
    assert got == {"Email": "email", "Lead Score": CUSTOM}


def test_confidence_is_reported_and_lower_for_loose_matches():
    [exact] = suggest_mapping(["Email"])
    [loose] = suggest_mapping(["Emial Adress"])
    assert exact.confidence > 0.9
    assert loose.target == "email" and loose.confidence < exact.confidence


def test_normalize_header_handles_camel_case_accents_and_punctuation():
    assert normalize_header("MailingPostalCode") == "mailing postal code"
    assert normalize_header("  Código_postal ") == "codigo postal"
    assert normalize_header("Person - Email - Work") == "person email work"


@pytest.mark.parametrize(
    ("values", "kind"),
    [
        (["2024-03-01", "2023-12-31", ""], "date"),
        (["01/02/2024", "31.12.2023"], "date"),
        (["12", "-3.5", "1,250", "0.75"], "number"),
        (["02134", "10001"], "text"),  # a leading zero: postal or account codes stay text
        (["Yes", "no", "TRUE"], "checkbox"),
        (["https://example.com", "www.example.org/page"], "link"),
        (["12", "twelve"], "text"),  # mixed: a typed field would refuse some cells
        (["", " "], "text"),
    ],
)
def test_a_new_custom_field_is_typed_only_when_every_sampled_value_fits(values, kind):
    from contacts.importing.mapper import custom_type_for

    assert custom_type_for(values) == kind


def test_a_column_of_dates_is_not_taken_for_phone_numbers_nor_dotted_phones_for_dates():
    from contacts.importing.mapper import custom_type_for

    rows = [
        ["2024-03-01", "01/02/2024", "01.23.45.67.89"],
        ["2023-11-15", "15.11.2023 09:30", "06.12.34.56.78"],
    ]

    got = mapping(["Joined", "Renewal", "Col C"], rows)

    assert got == {"Joined": CUSTOM, "Renewal": CUSTOM, "Col C": "phone"}
    assert custom_type_for(["01.23.45.67.89"]) == "text"
