"""Record scope on imports: an import is its creator's, as a contact is its owner's.

A member reaches the imports of the members their contacts scope covers (their own; their
team's; everyone's) and gets a 404 for any other; Undo is for a member who could delete or
restore by hand every contact it would touch; imported contacts go only to members the
importer may give contacts to; and what an import's pages show of contacts and of the file
follows the reader's scope and field rules. Background jobs follow the same rule."""

import csv
import io

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.urls import reverse

from contacts import services as contact_services
from contacts.importing import services
from contacts.importing.models import ImportJob
from contacts.models import Contact
from crm.models import BackgroundJob
from crm.permissions import Policy
from crm.services import Actor
from tests.contacts.test_import_views import (
    PEOPLE,
    finished,
    mapped,
    mapping_post,
    text_of,
    uploaded,
    url,
)
from tests.factories import MembershipFactory, TeamFactory, custom_role, member, role

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _uploads_in_tmp(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")


@pytest.fixture
def sales(org):
    return TeamFactory(org=org, name="Sales")


@pytest.fixture
def admin(org, sales):
    """An Admin in the Sales team: sees everything, imports for everyone."""
    return member(org, "admin", team=sales)


@pytest.fixture
def director(org, sales):
    return member(org, "director", team=sales)


@pytest.fixture
def rep(org, sales):
    """A Team-role member of Sales: "own" scope, may import, may not delete."""
    return member(org, "team", team=sales)


@pytest.fixture
def outsider(org):
    """A rep in no team: outside the Director's reach."""
    return member(org, "team")


def as_actor(membership):
    return Actor.for_user(membership.user)


def owned_by(membership) -> dict:
    return {"owner": str(membership.user.public_id)}


def status_of(job) -> str:
    job.refresh_from_db()
    return job.status


# Another member's import is a 404 ------------------------------------------------------------


def test_own_scope_member_gets_404_for_every_page_of_anothers_finished_import(
    admin, rep, client_as
):
    job = finished(admin)
    client = client_as(rep)

    assert client.get(url("import_detail", job)).status_code == 404
    assert client.get(url("import_detail", job, show="created")).status_code == 404
    assert client.get(url("import_detail", job, show="updated")).status_code == 404
    assert client_as(rep, htmx=True).get(url("import_progress", job)).status_code == 404
    assert client.get(url("import_errors", job)).status_code == 404
    assert client.get(url("import_undo", job)).status_code == 404
    assert client.post(url("import_undo", job)).status_code == 404
    assert client.post(url("import_cancel", job)).status_code == 404
    assert status_of(job) == ImportJob.Status.DONE
    assert Contact.objects.filter(org=admin.org).count() == 2


def test_own_scope_member_can_neither_edit_start_nor_cancel_anothers_pending_import(
    admin, rep, client_as
):
    job = mapped(admin)
    client = client_as(rep)

    assert client.get(url("import_map", job)).status_code == 404
    remap = client.post(url("import_map", job), mapping_post(job, policy="create"))
    redetect = client.post(url("import_map", job), {"step": "detect", "header_row": 2})
    start = client.post(url("import_preview", job))
    cancel = client.post(url("import_cancel", job))

    assert [remap.status_code, redetect.status_code, start.status_code] == [404, 404, 404]
    assert cancel.status_code == 404
    job.refresh_from_db()
    assert (job.status, job.policy, job.header_row) == (ImportJob.Status.MAPPED, "upsert", 0)


def test_the_services_refuse_another_members_import_too(admin, rep):
    job = mapped(admin)

    for call in (services.import_start, services.import_cancel):
        with pytest.raises(PermissionDenied) as refused:
            call(job=job, actor=as_actor(rep), policy=Policy(rep))
        assert "outside your records" in str(refused.value)
    assert status_of(job) == ImportJob.Status.MAPPED


def test_history_dashboard_and_upload_page_list_only_imports_in_scope(
    admin, rep, director, client_as
):
    theirs = finished(admin, PEOPLE)
    mine = finished(rep, "Email\nrep-own@example.com\n")

    for page in ("import_history", "import_start"):
        text = text_of(client_as(rep).get(url(page)))
        assert url("import_detail", mine) in text
        assert str(theirs.public_id) not in text
    dashboard = text_of(client_as(rep).get(reverse("crm:dashboard")))
    assert str(mine.public_id) in dashboard and str(theirs.public_id) not in dashboard
    # The Director's team scope covers both members of Sales.
    lead = text_of(client_as(director).get(url("import_history")))
    assert str(mine.public_id) in lead and str(theirs.public_id) in lead


def test_a_director_sees_the_imports_of_the_team_only(director, rep, outsider, client_as):
    teammate_job = finished(rep)
    outside_job = finished(outsider, "Email\nfar@example.com\n")
    client = client_as(director)

    assert client.get(url("import_detail", teammate_job)).status_code == 200
    assert client.get(url("import_detail", outside_job)).status_code == 404
    assert client.get(url("import_errors", outside_job)).status_code == 404


# Undo touches only what the undoer could touch by hand ---------------------------------------


def test_a_director_cannot_undo_an_admins_import_of_contacts_outside_the_team(
    admin, director, outsider, client_as
):
    job = finished(admin, defaults=owned_by(outsider))
    client = client_as(director)

    confirm = client.get(url("import_undo", job), follow=True)
    response = client.post(url("import_undo", job), follow=True)

    refusal = "You can&#x27;t undo this import: 2 contacts it created or changed are outside"
    assert refusal in text_of(confirm)
    assert refusal in text_of(response)
    assert status_of(job) == ImportJob.Status.DONE
    assert Contact.objects.filter(org=admin.org, owner=outsider.user).count() == 2
    with pytest.raises(ValidationError):
        services.import_undo(job=job, actor=as_actor(director), policy=Policy(director))


def test_a_director_cannot_undo_an_import_that_changed_a_contact_outside_the_team(
    admin, director, outsider
):
    far = contact_services.contact_create(
        org=admin.org,
        actor=as_actor(outsider),
        data={"email": "ada@example.com", "city": "Paris"},
        policy=Policy(outsider),
    )
    job = finished(admin, defaults=owned_by(director))  # creates Alan, updates Ada

    with pytest.raises(ValidationError) as refused:
        services.import_undo(job=job, actor=as_actor(director), policy=Policy(director))

    assert "1 contact it created or changed is outside" in refused.value.messages[0]
    assert status_of(job) == ImportJob.Status.DONE
    assert Contact.objects.filter(org=admin.org, email="alan@example.com").exists()
    far.refresh_from_db()
    assert far.first_name == "Ada"  # not restored to its value before the import


def test_a_director_undoes_an_admins_import_of_the_teams_contacts(admin, director, rep, client_as):
    job = finished(admin, defaults=owned_by(rep))

    response = client_as(director).post(url("import_undo", job))
    services.run_undo(org_id=job.org_id, job_id=job.pk)

    assert response.status_code == 302
    assert status_of(job) == ImportJob.Status.UNDONE
    assert not Contact.objects.filter(org=admin.org).exists()


@pytest.mark.parametrize("undoer", ["creator", "another admin"])
def test_the_imports_creator_and_an_admin_still_undo_it(org, admin, outsider, client_as, undoer):
    job = finished(admin, defaults=owned_by(outsider))
    who = admin if undoer == "creator" else member(org, "admin")

    client_as(who).post(url("import_undo", job))
    services.run_undo(org_id=job.org_id, job_id=job.pk)

    assert status_of(job) == ImportJob.Status.UNDONE
    assert not Contact.objects.filter(org=org).exists()


# Whom imported contacts may go to -------------------------------------------------------------


def test_a_rep_may_give_imported_contacts_only_to_themselves(admin, rep, client_as):
    job = uploaded(rep)
    client = client_as(rep)

    form = client.get(url("import_map", job)).context["form"]
    offered = [value for value, _ in form.fields["default_owner"].choices]
    forged = client.post(
        url("import_map", job), mapping_post(job, default_owner=str(admin.user.public_id))
    )

    assert offered == ["", str(rep.user.public_id)]
    assert forged.status_code == 400
    assert "You may give imported contacts only to yourself." in text_of(forged)
    assert status_of(job) == ImportJob.Status.UPLOADED
    own = client.post(
        url("import_map", job), mapping_post(job, default_owner=str(rep.user.public_id))
    )
    assert own.status_code == 302
    job.refresh_from_db()
    assert job.defaults["owner"] == rep.user.pk


def test_the_service_refuses_an_owner_outside_the_importers_reach(admin, director, outsider):
    job = uploaded(director)
    mapping = {h: t for h, t in job.mapping.items() if t != "__custom__"}

    def set_owner(who):
        return services.import_set_mapping(
            job=job,
            actor=as_actor(director),
            policy=Policy(director),
            mapping=mapping,
            defaults=owned_by(who),
            import_policy="upsert",
            blank_policy="keep",
        )

    with pytest.raises(ValidationError) as refused:
        set_owner(outsider)
    assert refused.value.message_dict["default_owner"] == [
        "You may give imported contacts only to yourself or a member of your team."
    ]
    assert set_owner(admin).defaults["owner"] == admin.user.pk  # a teammate


def test_an_admin_may_give_imported_contacts_to_anyone(admin, outsider, client_as):
    job = uploaded(admin)

    response = client_as(admin).post(
        url("import_map", job), mapping_post(job, default_owner=str(outsider.user.public_id))
    )

    assert response.status_code == 302
    job.refresh_from_db()
    assert job.defaults["owner"] == outsider.user.pk


def test_an_owner_column_may_name_only_members_the_importer_may_give_contacts_to(admin, rep):
    content = (
        f"Email,Owner\nmine@example.com,{rep.user.email}\ntheirs@example.com,{admin.user.email}\n"
    )
    job = finished(rep, content, mapping={"Email": "email", "Owner": "owner"})

    mine = Contact.objects.get(org=rep.org, email="mine@example.com")
    assert mine.owner_id == rep.user.pk
    assert not Contact.objects.filter(org=rep.org, owner=admin.user).exists()
    # The contact arrives without that owner; the report says why.
    theirs = Contact.objects.get(org=rep.org, email="theirs@example.com")
    assert theirs.owner_id != admin.user.pk
    (warning,) = job.row_errors.filter(is_warning=True)
    assert warning.fields[0]["kind"] == "owner_unmatched"
    assert admin.user.email in warning.message and "member" in warning.message


# What the pages show: scope and field rules ---------------------------------------------------


def email_hidden_director(org, team):
    """A Director whose role hides contacts' email addresses."""
    director_role = role(org, "director")
    hidden = custom_role(
        org, permissions=director_role.permissions, field_rules={"email": "hidden"}
    )
    return MembershipFactory(org=org, role=hidden, team=team)


def test_the_diff_names_no_contact_outside_the_readers_scope(
    admin, director, rep, outsider, client_as
):
    content = "First Name,Email,Owner\nInside,in@example.com,{}\nFaraway,far@example.com,{}\n"
    job = finished(
        admin,
        content.format(rep.user.email, outsider.user.email),
        mapping={"First Name": "first_name", "Email": "email", "Owner": "owner"},
    )

    page = text_of(client_as(director).get(url("import_detail", job, show="created")))

    assert "Inside" in page and "in@example.com" in page
    assert "Faraway" not in page and "far@example.com" not in page
    assert "Not among your records" in page


def test_the_diff_never_names_a_contact_by_an_email_hidden_from_the_reader(
    org, sales, admin, client_as
):
    job = finished(admin, "Email\nhidden-only@example.com\n", defaults=owned_by(admin))
    reader = email_hidden_director(org, sales)

    page = text_of(client_as(reader).get(url("import_detail", job, show="created")))

    assert "hidden-only@example.com" not in page
    assert "(no name)" in page


ERRORS_FILE = (
    "First Name,Email,Private notes\nAda,ada@example.com,fine\nBob,bob-at-nowhere,owes us money\n"
)


def error_report(client, job) -> list[list[str]]:
    response = client.get(url("import_errors", job))
    assert response.status_code == 200
    body = b"".join(response.streaming_content) if response.streaming else response.content
    return list(csv.reader(io.StringIO(body.decode("utf-8-sig"))))


def test_the_error_report_blanks_columns_hidden_from_a_reader_who_did_not_upload_it(
    org, sales, admin, client_as
):
    job = finished(admin, ERRORS_FILE, mapping={"First Name": "first_name", "Email": "email"})
    reader = email_hidden_director(org, sales)

    theirs = error_report(client_as(reader), job)
    uploader = error_report(client_as(admin), job)

    # Bob has a name, so he is imported without the bad email: a warning, not an error.
    assert theirs[0] == ["First Name", "Email", "Private notes", "Error", "Warnings"]
    assert theirs[1] == ["Bob", "", "", "", "Email: Not a valid email address: left out."]
    assert "bob-at-nowhere" not in str(theirs)
    assert uploader[1][:3] == ["Bob", "bob-at-nowhere", "owes us money"]
    assert "bob-at-nowhere" in uploader[1][4]


def test_the_preview_shows_no_hidden_value_to_a_reader_who_did_not_upload_the_file(
    org, sales, admin, client_as
):
    job = mapped(admin)
    reader = email_hidden_director(org, sales)

    page = text_of(client_as(reader).get(url("import_preview", job)))
    own = text_of(client_as(admin).get(url("import_preview", job)))

    assert "Lovelace" in page
    assert "ada@example.com" not in page and "green" not in page
    assert "ada@example.com" in own


def test_the_mapping_page_shows_no_sample_of_a_hidden_column_to_a_reader_who_did_not_upload(
    org, sales, admin, client_as
):
    job = mapped(admin)
    reader = email_hidden_director(org, sales)

    page = text_of(client_as(reader).get(url("import_map", job)))
    own = text_of(client_as(admin).get(url("import_map", job)))

    assert "Lovelace" in page
    assert "ada@example.com" not in page and "green" not in page
    assert "ada@example.com" in own and "green" in own


# Background jobs follow the same rule ---------------------------------------------------------


def job_of(membership) -> BackgroundJob:
    return BackgroundJob.objects.create(
        org=membership.org, kind="contacts.bulk", created_by=membership.user, total=3
    )


def test_a_bulk_jobs_progress_is_for_its_starter_and_those_whose_scope_covers_them(
    admin, director, rep, outsider, client_as
):
    reps_job, outsiders_job = job_of(rep), job_of(outsider)

    def status(who, job):
        return client_as(who).get(reverse("crm:job_progress", args=[job.public_id])).status_code

    assert status(rep, reps_job) == 200
    assert status(outsider, reps_job) == 404
    assert status(rep, outsiders_job) == 404
    assert status(director, reps_job) == 200
    assert status(director, outsiders_job) == 404
    assert status(admin, outsiders_job) == 200
