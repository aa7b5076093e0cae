"""The import wizard's pages: who may use them, tenancy, the mapping form's errors in place,
suggestions and saved mappings, the preview, the job's progress, diff, undo and history."""

import datetime as dt
import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django.utils import timezone

from contacts import services as contact_services
from contacts.importing import services
from contacts.importing.mapper import CUSTOM, SKIP
from contacts.importing.models import ImportJob, SavedMapping
from contacts.importing.views import detail as import_job_views
from contacts.importing.views import history as import_history_views
from contacts.models import Contact, CustomFieldDefinition
from crm.permissions import Policy
from crm.services import Actor

pytestmark = pytest.mark.django_db

PEOPLE = (
    "First Name,Last Name,Email,Phone,Favourite colour\n"
    "Ada,Lovelace,ada@example.com,+44 20 7946 0000,green\n"
    "Alan,Turing,alan@example.com,,blue\n"
)


@pytest.fixture(autouse=True)
def _uploads_in_tmp(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")


def url(name, job=None, **query):
    path = reverse(f"contacts:{name}", args=[job.public_id] if job else [])
    if query:
        path += "?" + "&".join(f"{k}={v}" for k, v in query.items())
    return path


def uploaded(membership, content=PEOPLE, name="people.csv") -> ImportJob:
    return services.import_create(
        org=membership.org,
        actor=Actor.for_user(membership.user),
        policy=Policy(membership),
        upload=SimpleUploadedFile(name, content.encode()),
    )


def mapped(membership, content=PEOPLE, **kwargs) -> ImportJob:
    job = uploaded(membership, content)
    mapping = {h: (SKIP if t == CUSTOM else t) for h, t in job.mapping.items()}
    return services.import_set_mapping(
        job=job,
        actor=Actor.for_user(membership.user),
        policy=Policy(membership),
        mapping=kwargs.pop("mapping", mapping),
        defaults=kwargs.pop("defaults", {}),
        import_policy=kwargs.pop("policy", "upsert"),
        blank_policy="keep",
    )


def finished(membership, content=PEOPLE, *, chunk_rows=None, **kwargs) -> ImportJob:
    job = mapped(membership, content, **kwargs)
    services.import_start(job=job, actor=Actor.for_user(membership.user), policy=Policy(membership))
    services.run_import(org_id=job.org_id, job_id=job.pk, chunk_rows=chunk_rows)
    job.refresh_from_db()
    assert job.status == ImportJob.Status.DONE, job.error
    return job


def mapping_post(job, **overrides) -> dict:
    """The mapping form as the page would submit it: job's current mapping, upsert, keep."""
    data = {f"col_{i}": job.mapping.get(h, SKIP) for i, h in enumerate(job.headers)}
    data.update(
        {
            "policy": "upsert",
            "blank_policy": "keep",
            "default_consent_type": "imported",
            "default_owner": "",
            "default_consent_status": "",
        }
    )
    data.update(overrides)
    return data


def text_of(response) -> str:
    return re.sub(r"\s+", " ", response.content.decode())


# Who may import ---------------------------------------------------------------------------


def test_viewer_gets_403_on_every_import_page_and_action(members, client_as):
    owner_job = finished(members["owner"])
    client = client_as(members["viewer"])

    assert client.get(url("import_start")).status_code == 403
    upload = SimpleUploadedFile("p.csv", PEOPLE.encode())
    assert client.post(url("import_start"), {"file": upload}).status_code == 403
    assert client.get(url("import_history")).status_code == 403
    assert client.get(url("import_detail", owner_job)).status_code == 403
    assert client.post(url("import_undo", owner_job)).status_code == 403
    owner_job.refresh_from_db()
    assert owner_job.status == ImportJob.Status.DONE
    pending = mapped(members["owner"])
    assert client.post(url("import_preview", pending)).status_code == 403
    pending.refresh_from_db()
    assert pending.status == ImportJob.Status.MAPPED
    assert ImportJob.objects.filter(org=members["owner"].org).count() == 2


def test_a_team_member_uploads_maps_previews_and_starts_an_import(
    members, client_as, django_capture_on_commit_callbacks
):
    rep = members["team"]
    client = client_as(rep)

    response = client.post(
        url("import_start"), {"file": SimpleUploadedFile("p.csv", PEOPLE.encode())}
    )
    job = ImportJob.objects.get(org=rep.org)
    assert response.status_code == 302
    assert response["Location"] == url("import_map", job)

    response = client.post(url("import_map", job), mapping_post(job, col_4=SKIP))
    assert response.status_code == 302, text_of(response)
    assert response["Location"] == url("import_preview", job)

    response = client.get(url("import_preview", job))
    assert response.status_code == 200
    assert "will be created" in text_of(response)

    with django_capture_on_commit_callbacks() as callbacks:
        response = client.post(url("import_preview", job))
    assert response["Location"] == url("import_detail", job)
    job.refresh_from_db()
    assert job.status == ImportJob.Status.QUEUED
    assert len(callbacks) == 1  # the Celery task is sent once the start commits


def test_undo_is_refused_to_a_member_without_contacts_delete(members, client_as):
    job = finished(members["team"])  # their own import: another's would be a 404
    client = client_as(members["team"])

    assert client.get(url("import_undo", job)).status_code == 403
    assert client.post(url("import_undo", job)).status_code == 403
    detail = client.get(url("import_detail", job))
    assert "Undo import" not in text_of(detail)
    assert Contact.objects.filter(org=job.org).count() == 2
    job.refresh_from_db()
    assert job.status == ImportJob.Status.DONE


# Tenancy ------------------------------------------------------------------------------------


def test_another_organizations_import_is_a_404_everywhere(owner, other_org, client_as):
    from tests.factories import member

    job = finished(owner)
    pending = mapped(owner)
    stranger = client_as(member(other_org, "owner"))

    for name in ("import_detail", "import_progress", "import_undo", "import_errors"):
        assert stranger.get(url(name, job)).status_code == 404, name
    for name in ("import_map", "import_preview"):
        assert stranger.get(url(name, pending)).status_code == 404, name
    assert stranger.post(url("import_cancel", pending)).status_code == 404
    assert stranger.post(url("import_undo", job)).status_code == 404
    assert stranger.post(url("import_preview", pending)).status_code == 404
    pending.refresh_from_db()
    assert pending.status == ImportJob.Status.MAPPED
    job.refresh_from_db()
    assert job.status == ImportJob.Status.DONE
    assert job.file_name not in text_of(stranger.get(url("import_history")))


# Upload ---------------------------------------------------------------------------------------


def test_upload_page_states_the_limit_and_accepted_types(owner, client_as, settings):
    settings.IMPORT_MAX_UPLOAD_MB = 150

    page = text_of(client_as(owner).get(url("import_start")))

    assert "up to 150 MB" in page
    assert 'accept=".csv,.tsv,.txt,.xlsx"' in page
    assert 'type="file"' in page and 'enctype="multipart/form-data"' in page


def test_an_upload_over_the_limit_is_refused_in_place(owner, client_as, settings):
    settings.IMPORT_MAX_UPLOAD_MB = 1
    big = ("Email\n" + "someone@example.com\n" * 70_000).encode()
    assert len(big) > 1024 * 1024

    response = client_as(owner).post(
        url("import_start"), {"file": SimpleUploadedFile("big.csv", big)}
    )

    assert response.status_code == 400
    assert "larger than the 1 MB limit" in text_of(response)
    # Refused by the upload handler while the body arrived, not after storing the file.
    assert response.wsgi_request.import_upload_refused is True
    assert not ImportJob.objects.filter(org=owner.org).exists()


def test_a_file_of_the_wrong_type_is_refused_in_place(owner, client_as):
    response = client_as(owner).post(
        url("import_start"), {"file": SimpleUploadedFile("photo.png", b"\x89PNG....")}
    )

    assert response.status_code == 400
    assert "Upload a .csv, .tsv, .txt or .xlsx file." in text_of(response)


# Map ------------------------------------------------------------------------------------------


def test_map_page_says_what_was_detected_and_shows_samples_and_confidence(owner, client_as):
    job = uploaded(owner, "Report: all contacts\n" + PEOPLE.replace(",", ";"))

    page = text_of(client_as(owner).get(url("import_map", job)))

    assert "with values separated by <strong>semicolons</strong>" in page
    assert "Column names are on <strong>row 2</strong>" in page
    assert "Skipped 1 line(s) above the header." in page
    assert "<li>ada@example.com</li><li>alan@example.com</li>" in page.replace(" <li>", "<li>")
    assert 'class="badge confidence confidence-high" title="Header matches a known export name' in (
        page
    )
    assert '<optgroup label="Compliance">' in page
    assert "Store as custom field" in page


def test_store_as_custom_field_is_offered_only_to_members_who_edit_settings(members, client_as):
    job = uploaded(members["team"])

    page = text_of(client_as(members["team"]).get(url("import_map", job)))

    assert "Store as custom field" not in page
    assert "Skip this column" in page
    assert "only members who may change settings can keep them as new custom fields" in page
    admin_page = text_of(
        client_as(members["admin"]).get(url("import_map", uploaded(members["admin"])))
    )
    assert "only members who may change settings" not in admin_page


def test_correcting_the_delimiter_reads_the_columns_again(owner, client_as):
    job = uploaded(owner, "Email|Name\na@example.com|Ann\n")
    client = client_as(owner)

    response = client.post(
        url("import_map", job),
        {"step": "detect", "encoding": "utf-8", "delimiter": ",", "header_row": 1},
    )

    assert response.status_code == 302
    job.refresh_from_db()
    assert job.delimiter == ","
    assert job.headers == ["Email|Name"]


def test_the_same_field_mapped_twice_is_shown_next_to_the_second_column(owner, client_as):
    job = uploaded(owner)

    response = client_as(owner).post(
        url("import_map", job), mapping_post(job, col_3="email", col_4=SKIP)
    )

    assert response.status_code == 400
    page = text_of(response)
    assert "“Email” is already mapped to this field." in page
    assert 'id="id_col_3-errors"' in page and 'aria-invalid="true"' in page
    job.refresh_from_db()
    assert job.status == ImportJob.Status.UPLOADED


def test_a_mapping_without_an_identifying_column_is_refused_in_place(owner, client_as):
    job = uploaded(owner)
    data = mapping_post(job, col_0=SKIP, col_1=SKIP, col_2=SKIP, col_3=SKIP, col_4="city")

    response = client_as(owner).post(url("import_map", job), data)

    assert response.status_code == 400
    assert "Map an email, a name or a phone column" in text_of(response)
    assert 'class="errorlist nonfield"' in text_of(response)


def test_reset_to_suggestions_restores_the_suggested_targets(owner, client_as):
    job = uploaded(owner)
    services.import_set_mapping(
        job=job,
        actor=Actor.for_user(owner.user),
        policy=Policy(owner),
        mapping={**job.mapping, "Phone": "mobile", "Favourite colour": SKIP},
        defaults={},
        import_policy="upsert",
        blank_policy="keep",
    )
    client = client_as(owner)

    before = client.get(url("import_map", job)).context["form"]
    after = client.get(url("import_map", job, reset="suggestions")).context["form"]

    assert before["col_3"].value() == "mobile"
    assert after["col_3"].value() == "phone"
    assert after["col_4"].value() == CUSTOM
    assert 'data-suggested="phone"' in text_of(client.get(url("import_map", job)))


def test_a_saved_mapping_is_applied_to_the_next_file_with_the_same_headers(owner, client_as):
    first = uploaded(owner)
    client = client_as(owner)
    client.post(
        url("import_map", first),
        mapping_post(first, col_3="mobile", col_4=SKIP, save_as="Webinar list"),
    )
    assert SavedMapping.objects.filter(org=owner.org, name="Webinar list").exists()

    second = uploaded(owner, PEOPLE.replace("Ada", "Grace"))
    page = client.get(url("import_map", second))

    assert second.mapping["Phone"] == "mobile"
    assert page.context["form"]["col_3"].value() == "mobile"
    assert "Your saved mapping “Webinar list” was applied" in text_of(page)


def test_choosing_opted_in_shows_the_consent_warning(owner, client_as):
    job = uploaded(owner)
    client = client_as(owner)

    hidden = text_of(client.get(url("import_map", job)))
    response = client.post(
        url("import_map", job), mapping_post(job, col_4=SKIP, default_consent_status="opted_in")
    )
    preview = text_of(client.get(response["Location"]))

    assert re.search(r"data-consent-warning role=\"note\" hidden", hidden)
    assert "GDPR" in preview and "CASL" in preview
    assert "Every new contact will be marked as opted in." in preview


# Preview ----------------------------------------------------------------------------------


def test_preview_shows_totals_and_highlights_the_rows_with_problems(owner, client_as):
    # Nothing identifies the person of the last row once its email is left out.
    content = PEOPLE + ",,not-an-email,,red\n"
    job = mapped(owner, content)

    page = text_of(client_as(owner).get(url("import_preview", job)))

    assert re.search(r'figure-value">2</span><span class="figure-label">will be created', page)
    assert re.search(r'figure-value">1</span><span class="figure-label">row with errors', page)
    assert "Counted over all 3 rows of the file." in page
    assert 'class="import-row-error"' in page
    assert "“not-an-email” is not a valid email address." in page


def test_preview_redirects_to_the_mapping_until_columns_are_mapped(owner, client_as):
    job = uploaded(owner)

    response = client_as(owner).get(url("import_preview", job))

    assert response["Location"] == url("import_map", job)


# The job -----------------------------------------------------------------------------------


def test_progress_shows_rows_done_rate_and_time_left_and_keeps_polling(owner, client_as):
    job = mapped(owner)
    ImportJob.objects.filter(pk=job.pk).update(
        status=ImportJob.Status.RUNNING,
        total=10_000,
        progress=2_500,
        started_at=timezone.now() - dt.timedelta(seconds=10),
        heartbeat_at=timezone.now(),
    )
    client = client_as(owner, htmx=True)

    response = client.get(url("import_progress", job))

    page = text_of(response)
    assert response.status_code == 200
    assert 'hx-trigger="every 1s"' in page
    assert 'value="25"' in page
    assert re.search(r"<strong>2,500</strong> of 10,000 rows \(25%\) · 2\d\d rows/s · about", page)
    assert "Cancel import" in page
    assert "<html" not in page  # the partial only


def test_progress_stops_polling_and_shows_the_result_when_the_job_is_done(owner, client_as):
    job = finished(owner)

    page = text_of(client_as(owner, htmx=True).get(url("import_progress", job)))

    assert "hx-trigger" not in page
    assert 'value="100"' in page
    assert 'data-count="created">2</dd>' in page
    assert "What this import changed" in page


def test_a_plain_visit_to_the_progress_url_goes_to_the_import_page(owner, client_as):
    job = finished(owner)

    response = client_as(owner).get(url("import_progress", job))

    assert response["Location"] == url("import_detail", job)


def test_cancelling_a_running_import_asks_the_worker_to_stop(owner, client_as):
    job = mapped(owner)
    ImportJob.objects.filter(pk=job.pk).update(status=ImportJob.Status.RUNNING)

    response = client_as(owner).post(url("import_cancel", job))

    assert response["Location"] == url("import_detail", job)
    job.refresh_from_db()
    assert job.cancel_requested is True


def test_detail_diff_lists_field_before_and_after_with_owner_names(owner, members, client_as):
    rep = members["team"]
    contact_services.contact_create(
        org=owner.org,
        actor=Actor.system("test"),
        data={"email": "ada@example.com", "job_title": "Countess"},
    )
    content = (
        f"Email,Job Title,Owner\nada@example.com,Analyst,{rep.user.email}\nnew@example.com,,\n"
    )
    job = finished(owner, content)
    client = client_as(owner)

    created = text_of(client.get(url("import_detail", job)))
    updated = text_of(client.get(url("import_detail", job, show="updated")))

    assert "new@example.com" in created
    assert re.search(r"Job title</th> <td class=\"import-before\"><del>Countess</del>", updated)
    assert "<ins>Analyst</ins>" in updated
    assert f"<ins>{rep.user.display_name}</ins>" in updated


def test_diff_pages_through_rows_by_keyset(owner, client_as, monkeypatch):
    monkeypatch.setattr(import_job_views, "DIFF_PAGE_SIZE", 2)
    content = "Email\n" + "".join(f"p{i}@example.com\n" for i in range(5))
    job = finished(owner, content)
    client = client_as(owner)

    first = client.get(url("import_detail", job))
    cursor = first.context["diff_page"].next_cursor
    second = client.get(url("import_detail", job), {"show": "created", "cursor": cursor})
    swapped = client.get(
        url("import_detail", job), {"show": "created", "cursor": cursor}, HTTP_HX_REQUEST="true"
    )

    assert [r["record"].row_number for r in first.context["diff_rows"]] == [2, 3]
    assert [r["record"].row_number for r in second.context["diff_rows"]] == [4, 5]
    fragment = swapped.content.decode()
    assert fragment.lstrip().startswith('<section id="import-diff"')
    assert "p2@example.com" in fragment and "p3@example.com" in fragment
    assert "p1@example.com" not in fragment and "p4@example.com" not in fragment


def test_created_rows_page_forward_and_back_across_the_parts_of_a_big_import(
    owner, client_as, monkeypatch
):
    monkeypatch.setattr(import_job_views, "DIFF_PAGE_SIZE", 3)
    contact_services.contact_create(
        org=owner.org, actor=Actor.system("test"), data={"email": "p4@example.com"}
    )
    # Rows 2-16: row 6 updates a contact, row 9 is refused; chunks of 4 rows make 4 parts.
    emails = [f"p{i}@example.com" if i != 7 else "broken" for i in range(15)]
    job = finished(owner, "Email\n" + "".join(f"{e}\n" for e in emails), chunk_rows=4)
    created_rows = [2, 3, 4, 5, 7, 8, 10, 11, 12, 13, 14, 15, 16]
    client = client_as(owner)

    def rows_of(response):
        return [item["record"].row_number for item in response.context["diff_rows"]]

    seen, pages, response = [], [], client.get(url("import_detail", job), {"show": "created"})
    while True:
        pages.append(response)
        seen += rows_of(response)
        cursor = response.context["diff_page"].next_cursor
        if not cursor:
            break
        response = client.get(url("import_detail", job), {"show": "created", "cursor": cursor})

    assert job.parts.count() == 4
    assert seen == created_rows
    assert [len(rows_of(p)) for p in pages] == [3, 3, 3, 3, 1]
    back = client.get(
        url("import_detail", job),
        {"show": "created", "cursor": pages[3].context["diff_page"].prev_cursor},
    )
    assert rows_of(back) == [10, 11, 12]
    assert "p8@example.com" in text_of(back) and "p7@example.com" not in text_of(back)
    start = client.get(
        url("import_detail", job),
        {"show": "created", "cursor": pages[1].context["diff_page"].prev_cursor},
    )
    assert rows_of(start) == [2, 3, 4]
    assert start.context["diff_page"].prev_cursor is None


def test_undo_asks_first_with_counts_then_runs_in_the_background_and_lists_the_kept(
    owner, client_as
):
    job = finished(owner)
    ada = Contact.objects.get(org=owner.org, email="ada@example.com")
    contact_services.contact_update(
        contact=ada, actor=Actor.for_user(owner.user), data={"city": "London"}, policy=Policy(owner)
    )
    client = client_as(owner)

    confirm = text_of(client.get(url("import_undo", job)))
    assert "Delete 1 contact</strong>" in confirm
    assert "Keep 1 contact</strong>" in confirm
    assert "The undo runs in the background" in confirm
    assert Contact.objects.filter(org=owner.org).count() == 2

    response = client.post(url("import_undo", job))

    assert response["Location"] == url("import_detail", job)
    started = text_of(client.get(response["Location"]))
    assert "Undoing people.csv. You can leave this page." in started
    assert "Waiting for a worker to pick the undo up…" in started
    assert "Undo import…" not in started
    assert Contact.objects.filter(org=owner.org).count() == 2

    services.run_undo(org_id=job.org_id, job_id=job.pk)
    page = text_of(client.get(url("import_detail", job)))

    assert not Contact.objects.filter(org=owner.org, email="alan@example.com").exists()
    assert "1 contact deleted" in page
    assert (
        f'href="{reverse("contacts:contact_detail", args=[ada.public_id])}">Ada Lovelace</a>'
        in page
    )
    assert "Undo import…" not in page


def undoing(job, *, done, total) -> ImportJob:
    """The job as a worker leaves it between two batches of its undo."""
    ImportJob.objects.filter(pk=job.pk).update(
        status=ImportJob.Status.UNDOING,
        status_before_undo=ImportJob.Status.DONE,
        undo_phase=ImportJob.UndoPhase.DELETE,
        undo_done=done,
        undo_total=total,
        undo_result={"deleted": 1200, "restored": 1000, "kept_edited": 300},
        heartbeat_at=timezone.now(),
    )
    job.refresh_from_db()
    return job


def test_the_page_shows_the_undo_progress_and_keeps_polling_while_undoing(owner, client_as):
    job = undoing(finished(owner), done=2_500, total=10_000)

    poll = client_as(owner, htmx=True).get(url("import_progress", job))
    reload = client_as(owner).get(url("import_detail", job))

    fragment = text_of(poll)
    assert poll.status_code == 200
    assert "<html" not in fragment
    assert 'hx-trigger="every 1s"' in fragment
    for page in (fragment, text_of(reload)):  # without JavaScript, a reload shows the same
        assert "Undoing this import" in page
        assert 'aria-label="Contacts undone: 25%"' in page
        assert "<strong>2,500</strong> of 10,000 contacts handled (25%)" in page
        assert 'data-count="undo-deleted">1,200</dd>' in page
        assert 'data-count="undo-kept">300</dd>' in page
        assert ">Undoing</span>" in page
        assert "Undo import…" not in page
        assert "Cancel import" not in page


def test_the_undo_progress_stops_polling_when_the_undo_is_done(owner, client_as):
    job = finished(owner)
    services.import_undo(job=job, actor=Actor.for_user(owner.user), policy=Policy(owner))
    client = client_as(owner, htmx=True)
    assert 'hx-trigger="every 1s"' in text_of(client.get(url("import_progress", job)))

    services.run_undo(org_id=job.org_id, job_id=job.pk)
    page = text_of(client.get(url("import_progress", job)))

    assert "hx-trigger" not in page
    assert "Undoing this import" not in page
    assert ">Undone</span>" in page
    assert "2 contacts deleted" in page


def test_an_undo_already_running_is_not_started_again(owner, client_as):
    job = undoing(finished(owner), done=0, total=2)
    client = client_as(owner)

    confirm = client.get(url("import_undo", job))
    again = client.post(url("import_undo", job), follow=True)

    assert confirm["Location"] == url("import_detail", job)
    assert "This import is already being undone." in text_of(again)
    job.refresh_from_db()
    assert (job.status, job.undo_done) == (ImportJob.Status.UNDOING, 0)


def test_a_failed_undo_is_explained_and_can_be_started_again(owner, client_as):
    job = finished(owner)
    message = "The undo stopped: the disk is full. Contacts it already deleted stay deleted."
    ImportJob.objects.filter(pk=job.pk).update(undo_result={"deleted": 1, "failure": message})

    client = client_as(owner)
    page = text_of(client.get(url("import_detail", job)))
    confirm = text_of(client.get(url("import_undo", job)))

    assert f'role="alert">{message}</p>' in page
    assert "Finish the undo…" in page
    assert "Undo import…" not in page
    assert "So far 1 contact was deleted and 0 restored; they stay that way." in confirm
    assert "Yes, finish undoing it" in confirm


def test_history_and_dashboard_show_an_import_being_undone(owner, client_as):
    job = undoing(finished(owner), done=1, total=2)
    client = client_as(owner)

    history = text_of(client.get(url("import_history")))
    dashboard = text_of(client.get(reverse("crm:dashboard")))

    assert 'import-status-undoing">Undoing</span>' in history
    assert f'href="{url("import_detail", job)}"' in dashboard
    assert "Undoing" in dashboard


# History and the dashboard --------------------------------------------------------------------


def test_history_lists_every_import_newest_first_and_pages_by_keyset(owner, client_as, monkeypatch):
    monkeypatch.setattr(import_history_views, "HISTORY_PAGE_SIZE", 2)
    names = ["first.csv", "second.csv", "third.csv"]
    for name in names:
        uploaded(owner, name=name)
    client = client_as(owner)

    first = client.get(url("import_history"))
    second = client.get(url("import_history"), {"cursor": first.context["page"].next_cursor})

    assert [j.file_name for j in first.context["page"].rows] == ["third.csv", "second.csv"]
    assert [j.file_name for j in second.context["page"].rows] == ["first.csv"]
    assert owner.user.display_name in text_of(first)


def test_dashboard_lists_the_latest_imports_of_the_organization_only(
    owner, members, other_org, client_as
):
    from tests.factories import member

    first = finished(owner)
    second = finished(owner, PEOPLE + ",,bad,,\n")
    ImportJob.objects.filter(pk=first.pk).update(file_name="one.csv")
    ImportJob.objects.filter(pk=second.pk).update(file_name="two.csv")
    elsewhere = finished(member(other_org, "owner"))

    page = text_of(client_as(owner).get(reverse("crm:dashboard")))
    viewer_page = text_of(client_as(members["viewer"]).get(reverse("crm:dashboard")))

    assert "Recent imports" in page
    assert page.index("two.csv") < page.index("one.csv")  # newest first
    assert "2 created, 0 updated" in page
    assert f"{second.created_count} created, {second.updated_count} updated, 1 error" in page
    assert f'href="{url("import_history")}">All imports</a>' in page
    assert url("import_detail", elsewhere) not in page
    assert "Recent imports" not in viewer_page


def test_dashboard_invites_a_first_import_when_there_is_none(owner, client_as):
    page = text_of(client_as(owner).get(reverse("crm:dashboard")))

    assert "No imports yet." in page
    assert f'href="{url("import_start")}">Import contacts</a>' in page


def test_error_report_download_is_a_csv_named_after_the_file(owner, client_as):
    job = finished(owner, PEOPLE + "x,y,bad,,\n")

    response = client_as(owner).get(url("import_errors", job))

    assert response["Content-Disposition"] == 'attachment; filename="people-errors.csv"'
    body = b"".join(response.streaming_content).decode("utf-8-sig")
    assert body.splitlines()[0] == (
        "First Name,Last Name,Email,Phone,Favourite colour,Error,Warnings"
    )


def test_contact_list_offers_import_only_to_members_who_may_import(members, client_as):
    team_page = text_of(client_as(members["team"]).get(reverse("contacts:contact_list")))
    viewer_page = text_of(client_as(members["viewer"]).get(reverse("contacts:contact_list")))

    assert f'href="{url("import_start")}">Import</a>' in team_page
    assert f'href="{url("import_history")}"><small>Imports</small>' in team_page
    assert url("import_start") not in viewer_page


def test_the_diff_leaves_out_fields_hidden_from_the_reader(owner, client_as):
    from crm.permissions import _matrix
    from tests.factories import MembershipFactory, custom_role

    contact_services.contact_create(
        org=owner.org,
        actor=Actor.system("test"),
        data={"email": "ada@example.com", "job_title": "Countess", "city": "London"},
    )
    job = finished(owner, "Email,Job Title,City\nada@example.com,Analyst,Paris\n")
    role = custom_role(owner.org, permissions=_matrix("vced"), field_rules={"job_title": "hidden"})
    reader = MembershipFactory(org=owner.org, role=role)

    page = text_of(client_as(reader).get(url("import_detail", job, show="updated")))

    assert "<ins>Paris</ins>" in page
    assert "Analyst" not in page and "Countess" not in page


def test_preview_marks_a_summary_line_as_skipped_without_counting_it(owner, client_as):
    job = mapped(owner, PEOPLE + "Total: 2 contacts\n")

    page = text_of(client_as(owner).get(url("import_preview", job)))

    assert "Not a contact: a summary or footer line, skipped." in page
    assert re.search(r'figure-value">2</span><span class="figure-label">will be created', page)
    assert re.search(r'figure-value">0</span><span class="figure-label">rows? with errors', page)


def test_a_member_who_sees_only_own_contacts_owns_the_import_by_default(members, client_as):
    rep, admin = members["team"], members["admin"]

    rep_form = client_as(rep).get(url("import_map", uploaded(rep))).context["form"]
    admin_form = client_as(admin).get(url("import_map", uploaded(admin))).context["form"]

    assert rep_form["default_owner"].value() == str(rep.user.public_id)
    assert admin_form["default_owner"].value() == ""


# Columns stored as custom fields of a kind ---------------------------------------------------

MEMBERS_FILE = (
    "Email,Joined,Seats,Newsletter,Postcode\n"
    "ada@example.com,2024-03-01,12,yes,02134\n"
    "alan@example.com,2023-11-15,3,no,10001\n"
)


def test_a_new_custom_field_gets_the_kind_its_values_suggest_and_the_member_can_change_it(
    owner, client_as
):
    job = uploaded(owner, MEMBERS_FILE)
    client = client_as(owner)

    page = client.get(url("import_map", job))

    kinds = {
        header: page.context["form"][f"type_{i}"].value() for i, header in enumerate(job.headers)
    }
    assert kinds == {
        "Email": "text",
        "Joined": "date",
        "Seats": "number",
        "Newsletter": "checkbox",
        "Postcode": "text",
    }
    assert 'data-suggested-kind="date"' in text_of(page)

    response = client.post(
        url("import_map", job),
        mapping_post(
            job,
            col_0="email",
            col_1=CUSTOM,
            col_2=CUSTOM,
            col_3=CUSTOM,
            col_4=CUSTOM,
            type_1="date",
            type_2="text",  # the member prefers text here
            type_3="checkbox",
            type_4="number",  # a leading zero is lost then: why text was suggested
        ),
    )

    assert response.status_code == 302, text_of(response)
    fields = dict(
        CustomFieldDefinition.objects.for_org(owner.org).values_list("label", "field_type")
    )
    assert fields == {
        "Joined": "date",
        "Seats": "text",
        "Newsletter": "checkbox",
        "Postcode": "number",
    }
    job.refresh_from_db()
    services.import_start(job=job, actor=Actor.for_user(owner.user), policy=Policy(owner))
    services.run_import(org_id=job.org_id, job_id=job.pk)
    ada = Contact.objects.get(org=owner.org, email="ada@example.com")
    assert ada.custom["joined"] == "2024-03-01"
    assert ada.custom["newsletter"] is True
    assert ada.custom["seats"] == "12"
    assert ada.custom["postcode"] == 2134


def test_an_unknown_kind_of_custom_field_is_refused_next_to_its_column(owner, client_as):
    job = uploaded(owner, MEMBERS_FILE)

    response = client_as(owner).post(
        url("import_map", job), mapping_post(job, col_0="email", col_1=CUSTOM, type_1="colour")
    )

    assert response.status_code == 400
    assert not CustomFieldDefinition.objects.for_org(owner.org).exists()
    assert "Select a valid choice" in text_of(response)


def test_the_preview_and_the_diff_show_phone_numbers_the_way_people_read_them():
    from contacts.importing.display import display_value

    shown = [
        display_value(key, value, users={}, custom_labels={})
        for key, value in [("phone", "+442079460958"), ("mobile", "+33612345678")]
    ]

    assert shown == ["+44 20 7946 0958", "+33 6 12 34 56 78"]
