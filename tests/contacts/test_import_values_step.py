"""The import's "match values" step (issue 11, class 2): owners and choice values of the old
system are matched to members and choices here, suggested automatically, checked, kept with
the saved mapping, and applied by the import."""

import csv
import io

import pytest
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile

from contacts.importing import matching, services
from contacts.importing.mapper import SKIP
from contacts.importing.matching import DEFAULT_OWNER, OwnerIndex, suggest_owner
from contacts.importing.models import ImportJob, SavedMapping
from contacts.importing.values import RowConverter
from contacts.models import Contact, CustomFieldDefinition
from crm.permissions import Policy
from crm.services import Actor
from tests.contacts.test_import_views import text_of, url
from tests.factories import MembershipFactory, UserFactory, member, role

pytestmark = pytest.mark.django_db

HUBSPOT_LEAD_STATUSES = [
    "NEW",
    "OPEN",
    "IN_PROGRESS",
    "OPEN_DEAL",
    "UNQUALIFIED",
    "ATTEMPTED_TO_CONTACT",
    "CONNECTED",
    "BAD_TIMING",
]
HEADERS = ["First Name", "Last Name", "Email", "Contact owner", "Status"]
MAPPING = {
    "First Name": "first_name",
    "Last Name": "last_name",
    "Email": "email",
    "Contact owner": "owner",
    "Status": "status",
}


@pytest.fixture(autouse=True)
def _uploads_in_tmp(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")


def person(org, role_key, first, last, email):
    user = UserFactory(first_name=first, last_name=last, email=email)
    return MembershipFactory(org=org, user=user, role=role(org, role_key))


@pytest.fixture
def owner(org):
    return person(org, "owner", "Olga", "Owner", "olga@acme.test")


@pytest.fixture
def jane(org):
    return person(org, "team", "José", "Müller", "jose.mueller@acme.test")


def csv_of(rows, headers=HEADERS) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows([headers, *rows])
    return out.getvalue()


def upload(membership, content, name="export.csv") -> ImportJob:
    return services.import_create(
        org=membership.org,
        actor=Actor.for_user(membership.user),
        policy=Policy(membership),
        upload=SimpleUploadedFile(name, content.encode()),
    )


def map_job(membership, job, mapping=MAPPING, defaults=None, save_as="") -> ImportJob:
    return services.import_set_mapping(
        job=job,
        actor=Actor.for_user(membership.user),
        policy=Policy(membership),
        mapping={h: mapping.get(h, SKIP) for h in job.headers},
        defaults=defaults or {},
        import_policy="upsert",
        blank_policy="keep",
        save_as=save_as,
    )


def run(membership, job) -> ImportJob:
    services.import_start(job=job, actor=Actor.for_user(membership.user), policy=Policy(membership))
    services.run_import(org_id=job.org_id, job_id=job.pk)
    job.refresh_from_db()
    assert job.status == ImportJob.Status.DONE, job.error
    return job


def table(target):
    return matching._choice_table(target, {})


# Suggestions (pure rules) ----------------------------------------------------------------


def test_hubspot_lead_statuses_are_never_suggested_as_the_contact_status():
    for value in HUBSPOT_LEAD_STATUSES:
        assert matching.suggest_choice("status", value, table("status")) == "", value
    assert matching.suggest_choice("status", "Active", table("status")) == "active"
    assert matching.suggest_choice("status", "INACTIVE", table("status")) == "inactive"
    assert matching.suggest_choice("status", "Unsubscribed", table("status")) == "unsubscribed"


def test_a_lead_status_column_mapped_to_status_by_hand_keeps_no_status_either(org):
    """Today's rules (values.CHOICE_ALIASES) no longer read a lead status as Active either,
    so a value the step did not show is reported instead of turned into a status."""
    converter = RowConverter(
        org=org, headers=["Status"], mapping={"Status": "status"}, members_by_email={}
    )
    for value in ("OPEN", "New", "In progress", "Connected", "Unqualified", "Bad timing"):
        with pytest.raises(ValidationError):
            converter.cell_value("status", "Status", value)


def test_choice_suggestions_follow_labels_values_and_known_aliases():
    stage = table("lifecycle_stage")
    assert matching.suggest_choice("lifecycle_stage", "marketingqualifiedlead", stage) == (
        "qualified"
    )
    assert matching.suggest_choice("lifecycle_stage", "Evangelist", stage) == "advocate"
    assert matching.suggest_choice("lifecycle_stage", "UNQUALIFIED", stage) == ""
    assert matching.suggest_choice("consent_status", "Opted In", table("consent_status")) == (
        "opted_in"
    )
    assert matching.suggest_choice("gdpr_basis", "legitimate_interest", table("gdpr_basis")) == (
        "legitimate_interest"
    )
    assert matching.suggest_choice("deal_role", "Decision maker", table("deal_role")) == (
        "decision_maker"
    )
    assert matching.suggest_choice("deal_role", "Gatekeeper", table("deal_role")) == ""


def members_index():
    return OwnerIndex(
        [
            matching.Member(1, "Jose.Mueller@acme.test", "José", "Müller"),
            matching.Member(2, "ana@acme.test", "Ana", "Silva"),
            matching.Member(3, "ana.silva@acme.test", "Ana", "Silva"),
            matching.Member(4, "prince@acme.test", "Prince", ""),
        ]
    )


def test_an_owner_is_suggested_by_email_then_by_name_else_the_default_owner():
    index = members_index()
    assert suggest_owner("JOSE.MUELLER@ACME.TEST", index) == "1"
    assert suggest_owner("Jose Muller", index) == "1"  # accents and case folded
    assert suggest_owner("Müller, José", index) == "1"  # "Last, First"
    assert suggest_owner("  josé   müller ", index) == "1"
    assert suggest_owner("ana@acme.test", index) == "2"
    # Two members share the name: no guess. One name alone names nobody for sure.
    assert suggest_owner("Ana Silva", index) == DEFAULT_OWNER
    assert suggest_owner("Prince", index) == DEFAULT_OWNER
    # People of the old system who are not members here, and emails of nobody.
    assert suggest_owner("Piet Seller", index) == DEFAULT_OWNER
    assert suggest_owner("jose.mueller@old-crm.test", index) == DEFAULT_OWNER


def test_foreign_ids_go_to_the_default_owner():
    index = OwnerIndex([matching.Member(7, "x@acme.test", "005", "Rep")])
    assert suggest_owner("005x0000001AbCdEFG", index) == DEFAULT_OWNER  # Salesforce, 18 chars
    assert suggest_owner("005x0000001AbCd", index) == DEFAULT_OWNER  # 15 chars
    assert suggest_owner("51234567", index) == DEFAULT_OWNER  # HubSpot owner id


# The converter applies the matches -----------------------------------------------------


def test_the_converter_applies_matched_values_before_its_own_rules(org):
    converter = RowConverter(
        org=org,
        headers=HEADERS,
        mapping=MAPPING,
        members_by_email={"olga@acme.test": 11, "jose@acme.test": 12},
        value_map={
            "Contact owner": {"Piet Seller": DEFAULT_OWNER, "José": "12", "Gone": "99"},
            "Status": {"OPEN": "active", "BAD_TIMING": "", "Weird": "nonsense"},
        },
    )
    owner = "Contact owner"
    assert converter.cell_value("owner", owner, "Piet Seller") is None
    assert converter.cell_value("owner", owner, "José") == 12
    assert converter.cell_value("owner", owner, "olga@acme.test") == 11  # unmatched: rules
    with pytest.raises(ValidationError):
        converter.cell_value("owner", owner, "Gone")  # no longer one they may give to
    with pytest.raises(ValidationError):
        converter.cell_value("owner", owner, "Someone Else")
    assert converter.cell_value("status", "Status", "OPEN") == "active"
    assert converter.cell_value("status", "Status", "BAD_TIMING") is None
    assert converter.cell_value("status", "Status", "Inactive") == "inactive"
    with pytest.raises(ValidationError):
        converter.cell_value("status", "Status", "Weird")


# The step's data: counted when the mapping is saved ---------------------------------------


def hubspot_rows(n_open=3):
    rows = [["Ada", "Lovelace", "ada@x.test", "José Müller", "OPEN"]] * n_open
    rows += [
        ["Alan", "Turing", "alan@x.test", "Piet Seller", "BAD_TIMING"],
        ["Grace", "Hopper", "grace@x.test", "olga@acme.test", "Active"],
        ["Linus", "T", "linus@x.test", "005x0000001AbCdEFG", "Inactive"],
    ]
    return [[c if i != 2 else f"{k}{c}" for i, c in enumerate(r)] for k, r in enumerate(rows)]


def test_mapping_counts_the_values_and_prefills_the_suggestions(owner, jane):
    job = map_job(owner, upload(owner, csv_of(hubspot_rows())))

    columns = job.value_counts["columns"]
    assert set(columns) == {"Contact owner", "Status"}
    assert columns["Status"]["top"][0] == ["OPEN", 3]
    assert columns["Status"]["distinct"] == 4
    assert columns["Contact owner"]["rows"] == 6
    assert job.value_counts["pending"] == 8
    assert job.value_map["Contact owner"] == {
        "José Müller": str(jane.user_id),
        "Piet Seller": DEFAULT_OWNER,
        "olga@acme.test": str(owner.user_id),
        "005x0000001AbCdEFG": DEFAULT_OWNER,
    }
    assert job.value_map["Status"] == {
        "OPEN": "",
        "BAD_TIMING": "",
        "Active": "active",
        "Inactive": "inactive",
    }
    assert matching.suggest_value_map(job) == job.value_map


def test_only_the_top_values_are_listed_and_the_rest_follow_positive_suggestions(
    owner, jane, monkeypatch
):
    monkeypatch.setattr(matching, "TOP_VALUES", 2)
    rows = [["A", "B", f"p{i}@x.test", f"Stranger {i % 5}", "Active"] for i in range(10)]
    rows += [["C", "D", "q@x.test", "Müller, José", "Active"]]
    job = map_job(owner, upload(owner, csv_of(rows)))

    owners = job.value_counts["columns"]["Contact owner"]
    assert owners["distinct"] == 6 and len(owners["top"]) == 2
    # Not shown, but a member by name: kept, so the import gives Jose the contact; the
    # strangers not shown are left to the import's rules (reported, default owner).
    assert job.value_map["Contact owner"]["Müller, José"] == str(jane.user_id)
    assert len(job.value_map["Contact owner"]) == 3


def test_no_value_column_means_no_step(owner, client_as):
    content = csv_of([["Ada", "L", "ada@x.test"]], headers=["First Name", "Last Name", "Email"])
    job = map_job(owner, upload(owner, content))
    assert job.value_counts == {} and job.value_map == {}
    client = client_as(owner)
    assert client.get(url("import_values", job))["Location"] == url("import_preview", job)


# Saving: validation and permissions --------------------------------------------------------


def set_values(membership, job, choices, save_as=""):
    return services.import_set_value_map(
        job=job,
        actor=Actor.for_user(membership.user),
        policy=Policy(membership),
        choices=choices,
        save_as=save_as,
    )


def test_a_choice_that_is_not_allowed_saves_nothing(owner, jane, other_org):
    job = map_job(owner, upload(owner, csv_of(hubspot_rows())))
    before = dict(job.value_map)
    stranger = member(other_org, "owner")
    bad = [
        {"Status": {"OPEN": "lead"}},  # a lifecycle stage, not a status
        {"Status": {"OPEN": DEFAULT_OWNER}},
        {"Contact owner": {"Piet Seller": str(stranger.user_id)}},  # another org's user
        {"Contact owner": {"Piet Seller": "not-an-id"}},
        {"First Name": {"Ada": "x"}},  # not a matched column
    ]
    for choices in bad:
        with pytest.raises(ValidationError) as caught:
            set_values(owner, job, {"Status": {"BAD_TIMING": "inactive"}, **choices})
        if "First Name" not in choices:
            header, values = next(iter(choices.items()))
            assert matching.error_key(header, next(iter(values))) in caught.value.message_dict
        job.refresh_from_db()
        assert job.value_map == before
        assert job.value_counts["pending"] == 8


def test_a_member_may_match_owners_only_to_members_they_may_give_contacts_to(
    org, owner, jane, client_as
):
    rep = member(org, "team")  # "own" scope
    job = map_job(rep, upload(rep, csv_of(hubspot_rows())))
    # Only themselves was suggested: José is out of their reach.
    assert job.value_map["Contact owner"]["José Müller"] == DEFAULT_OWNER
    with pytest.raises(ValidationError) as caught:
        set_values(rep, job, {"Contact owner": {"José Müller": str(jane.user_id)}})
    assert caught.value.message_dict[matching.error_key("Contact owner", "José Müller")] == [
        "You may give imported contacts only to yourself."
    ]
    set_values(rep, job, {"Contact owner": {"José Müller": str(rep.user_id)}})
    job.refresh_from_db()
    assert job.value_map["Contact owner"]["José Müller"] == str(rep.user_id)

    page = client_as(rep).get(url("import_values", job)).content.decode()
    assert f'value="{rep.user_id}"' in page and f'value="{jane.user_id}"' not in page


def test_the_step_is_scoped_like_the_rest_of_the_import(org, other_org, owner, client_as):
    job = map_job(owner, upload(owner, csv_of(hubspot_rows())))
    outsider = member(other_org, "owner")
    rep = member(org, "team")
    viewer = member(org, "viewer")
    for who, status in ((outsider, 404), (rep, 404), (viewer, 403)):
        client = client_as(who)
        assert client.get(url("import_values", job)).status_code == status
        assert client.post(url("import_values", job), {"m_1_0": ""}).status_code == status
    with pytest.raises(Exception):  # noqa: B017 - PermissionDenied for a rep outside scope
        set_values(rep, job, {"Status": {"OPEN": "active"}})
    job.refresh_from_db()
    assert job.value_map["Status"]["OPEN"] == ""


def test_a_started_import_can_no_longer_change_its_matches(owner, client_as):
    job = map_job(owner, upload(owner, csv_of(hubspot_rows())))
    services.import_start(job=job, actor=Actor.for_user(owner.user), policy=Policy(owner))
    with pytest.raises(ValidationError):
        set_values(owner, job, {"Status": {"OPEN": "active"}})
    response = client_as(owner).get(url("import_values", job))
    assert response["Location"] == url("import_detail", job)


# The page -------------------------------------------------------------------------------------


def test_the_map_step_leads_to_the_values_step_and_its_form_saves(owner, jane, client_as):
    job = upload(owner, csv_of(hubspot_rows()))
    client = client_as(owner)
    data = {f"col_{i}": MAPPING.get(h, SKIP) for i, h in enumerate(job.headers)}
    data.update(policy="upsert", blank_policy="keep", default_consent_type="imported")
    response = client.post(url("import_map", job), data)
    assert response["Location"] == url("import_values", job)

    page = client.get(url("import_values", job))
    text = text_of(page)
    assert page.status_code == 200
    assert "Match values" in text and 'aria-current="step"' in text
    assert "José Müller" in text and "BAD_TIMING" in text
    assert "Default owner (unassigned)" in text

    job.refresh_from_db()
    columns = job.value_counts["columns"]
    order = [h for h in job.headers if h in columns]  # the page's order: the file's
    owner_col, status_col = order.index("Contact owner"), order.index("Status")
    status_rows = [v for v, _ in columns["Status"]["top"]]
    response = client.post(
        url("import_values", job),
        {
            f"m_{status_col}_{status_rows.index('OPEN')}": "active",
            f"m_{owner_col}_0": str(owner.user_id),
            "save_as": "HubSpot",
        },
    )
    assert response.status_code == 302, text_of(response)[-3000:]
    assert response["Location"] == url("import_preview", job)
    job.refresh_from_db()
    assert job.value_map["Status"]["OPEN"] == "active"
    saved = SavedMapping.objects.get(org=owner.org, name="HubSpot")
    assert saved.value_map["Status"]["OPEN"] == "active"
    assert saved.mapping == job.mapping


def test_a_refused_choice_is_shown_on_its_row_and_nothing_is_saved(owner, client_as):
    job = map_job(owner, upload(owner, csv_of(hubspot_rows())))
    before = dict(job.value_map)
    status_col = [h for h in job.headers if h in job.value_counts["columns"]].index("Status")
    response = client_as(owner).post(
        url("import_values", job),
        {f"m_{status_col}_0": "lead", f"m_{status_col}_1": "inactive"},
    )
    assert response.status_code == 400
    text = text_of(response)
    assert "Choose one of the listed values." in text
    assert f'id="id_m_{status_col}_0" aria-invalid="true"' in text
    assert "Nothing was saved" in text
    job.refresh_from_db()
    assert job.value_map == before


def test_the_page_reads_the_counts_kept_on_the_job_not_the_file(
    owner, client_as, monkeypatch, django_assert_max_num_queries
):
    job = map_job(owner, upload(owner, csv_of(hubspot_rows())))
    client = client_as(owner)
    client.get(url("import_values", job))  # warm the session and caches

    def no_file(*args, **kwargs):
        raise AssertionError("the page read the file")

    monkeypatch.setattr(matching, "count_values", no_file)
    with django_assert_max_num_queries(16):
        response = client.get(url("import_values", job))
    assert response.status_code == 200


def test_user_input_on_the_page_is_escaped(owner, client_as):
    rows = [["A", "B", "a@x.test", "<script>alert(1)</script>", '"><img src=x onerror=1>']]
    job = map_job(owner, upload(owner, csv_of(rows)))
    page = client_as(owner).get(url("import_values", job)).content.decode()
    assert "<script>alert(1)</script>" not in page
    assert "<img src=x" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


# Round trip and the import's result -----------------------------------------------------------


def test_the_next_file_from_the_same_system_needs_no_clicks(owner, jane, client_as):
    first = map_job(owner, upload(owner, csv_of(hubspot_rows())), save_as="HubSpot")
    set_values(owner, first, {"Status": {"OPEN": "active", "BAD_TIMING": "inactive"}})

    second = upload(owner, csv_of(hubspot_rows(n_open=1)), name="export-2.csv")
    assert second.mapping == {h: MAPPING[h] for h in HEADERS}
    assert second.value_map["Status"]["OPEN"] == "active"
    client = client_as(owner)
    data = {f"col_{i}": second.mapping[h] for i, h in enumerate(second.headers)}
    data.update(policy="upsert", blank_policy="keep", default_consent_type="imported")
    response = client.post(url("import_map", second), data)
    assert response["Location"] == url("import_preview", second)  # the step is skipped

    second = run(owner, ImportJob.objects.get(pk=second.pk))
    ada = Contact.objects.get(org=owner.org, email="0ada@x.test")
    alan = Contact.objects.get(org=owner.org, email="1alan@x.test")
    assert (ada.owner_id, ada.status) == (jane.user_id, "active")
    assert alan.status == "inactive"


def test_an_import_lands_the_matched_owner_and_status(org, owner, jane):
    default = person(org, "team", "Dora", "Default", "dora@acme.test")
    job = upload(owner, csv_of(hubspot_rows()))
    job = map_job(owner, job, defaults={"owner": str(default.user.public_id)})
    set_values(
        owner,
        job,
        {
            "Status": {"OPEN": "active", "BAD_TIMING": "", "Inactive": "inactive"},
            "Contact owner": {"Piet Seller": DEFAULT_OWNER, "olga@acme.test": str(jane.user_id)},
        },
    )
    job = run(owner, ImportJob.objects.get(pk=job.pk))

    by_email = {c.email: c for c in Contact.objects.filter(org=org)}
    assert (by_email["0ada@x.test"].owner_id, by_email["0ada@x.test"].status) == (
        jane.user_id,
        "active",
    )
    # Matched to the default owner, and "leave empty" keeps the field's own default.
    assert by_email["3alan@x.test"].owner_id == default.user_id
    assert by_email["3alan@x.test"].status == "active"
    assert by_email["4grace@x.test"].owner_id == jane.user_id  # email of Olga, matched to José
    assert by_email["5linus@x.test"].owner_id == default.user_id  # a Salesforce id
    assert by_email["5linus@x.test"].status == "inactive"
    assert job.error_count == 0


def test_a_list_custom_field_is_matched_too(org, owner):
    CustomFieldDefinition.objects.create(
        org=org,
        entity="contact",
        key="tier",
        label="Tier",
        field_type="list",
        choices=["Gold", "Silver"],
    )
    rows = [["A", "B", f"{i}@x.test", v] for i, v in enumerate(["gold", "G", "S", "Bronze"])]
    content = csv_of(rows, headers=["First Name", "Last Name", "Email", "Level"])
    mapping = {"First Name": "first_name", "Last Name": "last_name", "Email": "email"}
    job = map_job(owner, upload(owner, content), mapping={**mapping, "Level": "custom.tier"})
    assert job.value_map["Level"] == {"gold": "Gold", "G": "", "S": "", "Bronze": ""}
    with pytest.raises(ValidationError):
        set_values(owner, job, {"Level": {"G": "Platinum"}})
    set_values(owner, job, {"Level": {"G": "Gold", "S": "Silver"}})
    run(owner, ImportJob.objects.get(pk=job.pk))
    tiers = dict(Contact.objects.filter(org=org).values_list("email", "custom__tier"))
    assert tiers == {"0@x.test": "Gold", "1@x.test": "Gold", "2@x.test": "Silver", "3@x.test": None}


def test_use_the_suggestions_selects_them_again(owner, client_as):
    job = map_job(owner, upload(owner, csv_of(hubspot_rows())))
    set_values(owner, job, {"Status": {"Active": "bounced"}})
    client = client_as(owner)
    assert (
        '<option value="bounced" selected>'
        in client.get(url("import_values", job)).content.decode()
    )
    page = client.get(url("import_values", job) + "?reset=suggestions").content.decode()
    assert '<option value="bounced" selected>' not in page
    assert '<option value="active" selected>' in page


def test_default_owner_match_on_an_update_that_clears_blanks_gives_the_default_owner(
    org, owner, jane
):
    default = person(org, "team", "Dora", "Default", "dora@acme.test")
    existing = Contact.objects.create(org=org, email="alan@x.test", owner_id=jane.user_id)
    rows = [["Alan", "Turing", "alan@x.test", "Piet Seller", "Active"]]
    job = upload(owner, csv_of(rows))
    job = services.import_set_mapping(
        job=job,
        actor=Actor.for_user(owner.user),
        policy=Policy(owner),
        mapping=MAPPING,
        defaults={"owner": str(default.user.public_id)},
        import_policy="upsert",
        blank_policy="overwrite",
    )
    set_values(owner, job, {"Contact owner": {"Piet Seller": DEFAULT_OWNER}})
    run(owner, ImportJob.objects.get(pk=job.pk))

    existing.refresh_from_db()
    assert existing.owner_id == default.user_id


def test_a_header_written_again_is_no_value_to_match(owner):
    rows = [["Ada", "L", "a@x.test", "olga@acme.test", "Active"], HEADERS]
    rows += [["Bob", "M", "b@x.test", "olga@acme.test", "Inactive"]]
    job = upload(owner, csv_of(rows))

    counted = matching.count_values(job, {"Contact owner": "owner", "Status": "status"})

    assert dict(counted["Contact owner"]["counts"]) == {"olga@acme.test": 2}
    assert dict(counted["Status"]["counts"]) == {"Active": 1, "Inactive": 1}
