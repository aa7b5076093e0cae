"""The column-by-column converter and the COPY text it writes: rows are judged left to right,
memoised columns give every row its own value, and no cell can break the COPY stream."""

import pytest

from contacts import services as contact_services
from contacts.importing.convert import ChunkConverter, copy_parts
from contacts.importing.values import RowConverter
from contacts.models import Contact
from crm.services import Actor

from .test_import_pipeline import import_file, rows_csv

pytestmark = pytest.mark.django_db

HEADERS = ["Name", "First", "Email", "Phone", "Country", "Stage", "Tags", "Website"]
MAPPING = {
    "Name": "full_name",
    "First": "first_name",
    "Email": "email",
    "Phone": "phone",
    "Country": "country",
    "Stage": "lifecycle_stage",
    "Tags": "tags",
    "Website": "company_website",
}
FIELDS = [
    "first_name",
    "last_name",
    "email",
    "phone",
    "mobile",
    "country",
    "lifecycle_stage",
    "other_emails",
    "tags",
    "company_name",
    "company_domain",
    "company_key",
]


def converter(org, *, lanes=1, default_tags=()):
    rows = RowConverter(org=org, headers=HEADERS, mapping=MAPPING, members_by_email={})
    return ChunkConverter(rows, stage_fields=FIELDS, default_tags=list(default_tags), lanes=lanes)


def test_a_bad_value_is_a_field_warning_and_a_bad_phone_is_kept_as_typed(org):
    chunk = converter(org).convert(
        [
            (2, ["Ada King", "", "not-an-email", "12", "", "Nope", "", ""]),
            (3, ["Bob", "", "bob@example.com", "12", "", "Nope", "", ""]),
            (4, ["Cy", "", "cy@example.com", "", "", "Nope", "", ""]),
        ]
    )

    # Real exports are full of numbers the phone library calls invalid and of bad emails:
    # the person arrives, the value is reported. Any bad value costs that cell, not the row.
    assert chunk.bad == []
    assert chunk.numbers == [2, 3, 4]
    assert chunk.columns["email"] == [None, "bob@example.com", "cy@example.com"]
    assert chunk.columns["phone"] == ["12", "12", None]
    assert chunk.columns["lifecycle_stage"] == [None, None, None]
    warnings = dict(chunk.warnings)
    assert [(c, k, v) for c, k, v, _ in warnings[2]] == [
        ("Email", "email_left_out", "not-an-email"),
        ("Phone", "phone_as_typed", "12"),
        ("Stage", "choice_unmatched", "Nope"),
    ]
    assert warnings[3][0][3].endswith("Kept as typed and marked unverified.")
    assert [k for _, k, _, _ in warnings[4]] == ["choice_unmatched"]
    assert warnings[4][0][3].startswith("“Nope” is not a") and warnings[4][0][3].endswith(
        "Left out."
    )


def test_a_row_whose_only_identifier_was_refused_says_so(org):
    chunk = converter(org).convert([(2, ["", "", "not-an-email", "", "", "", "", ""])])

    ((number, message),) = chunk.bad
    assert number == 2
    assert message.startswith("The row has no name, email or phone. Email: “not-an-email”")


def test_googles_triple_colon_separates_several_emails_and_phones_in_one_cell(org):
    chunk = converter(org).convert(
        [
            (
                2,
                [
                    "Ada King",
                    "",
                    "ada@example.com ::: ada@home.example",
                    "+44 20 7946 0958 ::: +44 20 7946 0959",
                    "",
                    "",
                    "",
                    "",
                ],
            )
        ]
    )

    assert chunk.bad == []
    assert chunk.columns["email"] == ["ada@example.com"]
    assert chunk.columns["other_emails"] == ['["ada@home.example"]']  # staged as JSON
    assert chunk.columns["phone"] == ["+442079460958"]


def test_every_cell_a_kept_row_leaves_out_is_named_in_its_note(org):
    chunk = converter(org).convert(
        [(2, ["Cy", "", "cy@example.com", "", "Atlantis", "Nope", "", "ftp://acme.com"])]
    )

    assert chunk.numbers == [2] and chunk.bad == []
    ((_, found),) = chunk.warnings
    assert [(c, k) for c, k, _, _ in found] == [
        ("Country", "value_left_out"),
        ("Stage", "choice_unmatched"),
        ("Website", "value_left_out"),
    ]
    assert all(m.endswith("Left out.") for *_, m in found)
    assert chunk.columns["company_key"] == [None]


def test_repeated_cells_convert_once_yet_every_row_keeps_its_own_values(org):
    records = [
        (n, ["Ada King", "", f"A{n}@Example.com", "+44 20 7946 0958", "uk", "MQL", "vip", ""])
        for n in range(2, 6)
    ] + [(6, ["", "Zed", "z@example.com", "", "Germany", "", "VIP; new", "www.Acme.com/x"])]

    chunk = converter(org, default_tags=["Imported", "vip"]).convert(records)

    assert chunk.numbers == [2, 3, 4, 5, 6]
    assert chunk.columns["email"] == [f"a{n}@example.com" for n in range(2, 6)] + ["z@example.com"]
    assert chunk.columns["first_name"] == ["Ada"] * 4 + ["Zed"]
    assert chunk.columns["last_name"] == ["King"] * 4 + [None]
    assert chunk.columns["country"] == ["GB"] * 4 + ["DE"]
    assert chunk.columns["phone"][0] == "+442079460958"
    assert chunk.columns["lifecycle_stage"] == ["qualified"] * 4 + [None]
    # The file's tags first, then the job's, each name once whatever its case.
    assert chunk.columns["tags"][0] == ("vip", "Imported")
    assert chunk.columns["tags"][4] == ("VIP", "new", "Imported")
    assert chunk.columns["company_key"][4] == "acme.com"
    assert chunk.tag_names == {"vip", "imported", "new"}


def test_an_email_cell_with_several_addresses_keeps_the_rest_as_other_emails(org):
    chunk = converter(org).convert(
        [(2, ["", "Ann", "ann@example.com; Ann@Work.example, ann@example.com", "", "", "", "", ""])]
    )

    assert chunk.columns["email"] == ["ann@example.com"]
    assert chunk.columns["other_emails"] == ['["ann@work.example","ann@example.com"]']


def test_a_row_with_nothing_to_know_a_contact_by_is_refused(org):
    chunk = converter(org).convert([(2, ["", "", "", "", "France", "Lead", "", ""])])

    assert chunk.bad == [(2, "The row has no name, email or phone.")]


def test_copy_text_escapes_what_would_break_a_copy_stream(org):
    chunk = converter(org).convert(
        [(2, ["Tab\tName", "Back\\slash", "t@example.com", "", "", "", 'say "hi"', ""])]
    )

    text, rows = copy_parts(chunk, {"first_name": "text", "tags": "text[]"}, [0])[0]

    assert rows == 1
    assert text == b'2\tBack\\\\slash\t{"say \\\\"hi\\\\""}\n'


def test_rows_are_split_into_lanes_by_their_match_key(org):
    records = [(n, ["", f"P{n}", f"p{n}@example.com", "", "", "", "", ""]) for n in range(2, 40)]
    chunk = converter(org, lanes=2).convert(records)

    parts = copy_parts(chunk, {"email": "text"}, [0, 1])

    assert parts[0][1] + parts[1][1] == 38
    assert parts[0][1] and parts[1][1]
    again = converter(org, lanes=2).convert(records)
    assert again.lanes == chunk.lanes


def test_cells_with_tabs_new_lines_backslashes_and_nul_bytes_import_as_written(org, owner):
    contact_services.customfield_create(
        org=org,
        actor=Actor.system("test"),
        data={"label": "Motto", "key": "motto", "field_type": "text"},
    )
    content = rows_csv(
        ["First Name", "Last Name", "Email", "Motto"],
        [["Line\none", "Tab\there", "esc@example.com", "C:\\path\\to \u0000 \\N"]],
    )

    job = import_file(
        owner,
        content,
        mapping={
            "First Name": "first_name",
            "Last Name": "last_name",
            "Email": "email",
            "Motto": "custom.motto",
        },
    )

    assert job.status == "done", job.error
    contact = Contact.objects.get(org=org, email="esc@example.com")
    assert (contact.first_name, contact.last_name) == ("Line\none", "Tab\there")
    assert contact.custom["motto"] == "C:\\path\\to  \\N"


@pytest.mark.parametrize(
    ("cell", "code"),
    [
        ("Germany", "DE"),
        ("Deutschland", "DE"),
        ("Allemagne", "DE"),
        ("United Kingdom", "GB"),
        ("UK", "GB"),
        ("España", "ES"),
        ("united states", "US"),
        ("Brasil", "BR"),
        ("nl", "NL"),
    ],
)
def test_countries_are_read_from_their_names_in_several_languages_or_codes(cell, code):
    from contacts.importing.values import parse_country

    assert parse_country(cell) == code


def test_tags_from_google_labels_and_mailchimp_tags_come_in_clean():
    from contacts.importing.values import tag_names

    assert tag_names("* myContacts ::: Friends ::: * starred") == ("Friends", "starred")
    assert tag_names("VIP; Paris , *") == ("VIP", "Paris")
    assert tag_names('"Customers","Trade show 2026"') == ("Customers", "Trade show 2026")
    assert tag_names('say "hi"') == ('say "hi"',)  # quotes inside a name stay


def test_a_whole_address_in_one_mailchimp_cell_splits_into_its_fields():
    from contacts.importing.values import split_address

    assert split_address("500 Congress Ave    Austin  TX  78701  US") == (
        "500 Congress Ave",
        "Austin",
        "TX",
        "78701",
        "US",
    )
    assert split_address("1 Main St  Suite 4  Salem  OR  97301  United States") == (
        "1 Main St, Suite 4",
        "Salem",
        "OR",
        "97301",
        "US",
    )
    # Any other shape stays whole in the street: nothing is guessed away.
    assert split_address("12 Rue de la Paix, Paris") == ("12 Rue de la Paix, Paris", "", "", "", "")


def test_a_header_written_again_and_a_group_title_above_it_are_not_people(org):
    # monday.com exports each group of a board under its own title and header row.
    chunk = converter(org).convert(
        [
            (2, ["Ada King", "", "ada@example.com", "", "", "", "", ""]),
            (3, ["Past contacts", "", "", "", "", "", "", ""]),
            (4, list(HEADERS)),
            (5, ["Bob Stone", "", "bob@example.com", "", "", "", "", ""]),
            # A one-cell row that is not above a header is a person with a name only.
            (6, ["Cy Young", "", "", "", "", "", "", ""]),
        ]
    )
    assert chunk.numbers == [2, 5, 6]
    assert chunk.bad == []


def test_a_region_written_with_its_country_code_keeps_the_region(org):
    rows = RowConverter(
        org=org, headers=["State"], mapping={"State": "region"}, members_by_email={}
    )
    assert rows.cell_value("region", "State", "TX (US)") == "TX"
    assert rows.cell_value("region", "State", "Île-de-France (FR)") == "Île-de-France"
    # Only a real country code in the brackets is taken for one.
    assert rows.cell_value("region", "State", "North (XX)") == "North (XX)"
    assert rows.cell_value("region", "State", "Bayern") == "Bayern"
