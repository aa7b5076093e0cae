"""The import wizard in a real browser, with a real Celery worker running the job: upload,
correct a mapping in its dropdown, preview, start, watch the progress bar climb to 100%,
read the counts and open the diff of what changed."""

import csv
import re
import time

import pytest
from celery.contrib.testing.worker import start_worker
from playwright.sync_api import expect

from contacts import services as contact_services
from contacts.importing.engine import Importer
from contacts.importing.models import ImportJob
from contacts.importing.services import run as import_run
from contacts.models import Contact
from crm.celery import app as celery_app
from crm.services import Actor

pytestmark = pytest.mark.e2e

ROWS = 300
CHUNK_ROWS = 50


class PacedImporter(Importer):
    """The real importer in small chunks with a pause after each, so a few hundred rows take
    long enough for the page's once-a-second poll to see the job in progress."""

    def __init__(self, job, **kwargs):
        kwargs["chunk_rows"] = CHUNK_ROWS
        super().__init__(job, **kwargs)

    def _commit_part(self, *args, **kwargs):
        super()._commit_part(*args, **kwargs)
        time.sleep(0.5)


def write_people(path):
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["First Name", "Last Name", "Email", "Title", "Shoe size"])
        writer.writerow(["Ada", "Lovelace", "ada@example.com", "Analyst", "38"])
        for i in range(1, ROWS):
            writer.writerow([f"Person{i}", "Tester", f"person{i}@example.com", "Engineer", "42"])


def test_owner_imports_a_file_and_watches_it_finish(
    page, live_server, login_as, owner, settings, tmp_path, monkeypatch
):
    settings.MEDIA_ROOT = str(tmp_path / "media")
    monkeypatch.setattr(import_run, "Importer", PacedImporter)
    contact_services.contact_create(
        org=owner.org,
        actor=Actor.system("test"),
        data={"first_name": "Ada", "last_name": "Lovelace", "email": "ada@example.com"},
    )
    people = tmp_path / "people.csv"
    write_people(people)
    login_as(owner.user)

    page.goto("/contacts/import/")
    expect(page.locator("main")).to_contain_text("up to 200 MB")
    page.locator('input[type="file"]').set_input_files(str(people))
    expect(page.locator("[data-dropzone-file]")).to_contain_text("people.csv")
    page.get_by_role("button", name="Upload and map columns").click()

    page.wait_for_url(re.compile(r"/contacts/import/[0-9a-f-]+/map/$"))
    expect(page.locator(".import-detected-summary")).to_contain_text("commas")
    title = page.get_by_label("Import “Title” into")
    expect(title).to_have_value("job_title")
    title.select_option("department")
    expect(page.get_by_label("Import “Shoe size” into")).to_have_value("__custom__")
    page.get_by_label("Import “Shoe size” into").select_option("__skip__")
    page.get_by_role("button", name="Continue to preview").click()

    page.wait_for_url(re.compile(r"/preview/$"))
    totals = page.locator(".import-totals")
    expect(totals.locator(".import-total-create .figure-value")).to_have_text(str(ROWS - 1))
    expect(totals.locator(".import-total-update .figure-value")).to_have_text("1")
    expect(page.locator(".import-preview-table thead")).to_contain_text("Department")

    celery_app.control.purge()  # tasks other runs left on this broker must not interfere
    with start_worker(celery_app, perform_ping_check=False, shutdown_timeout=30):
        page.get_by_role("button", name="Start import").click()
        page.wait_for_url(re.compile(r"/contacts/import/[0-9a-f-]+/$"))
        bar = page.locator("progress.progress-bar")
        seen = set()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if bar.count():
                seen.add(int(bar.get_attribute("value") or 0))
            if 100 in seen:
                break
            page.wait_for_timeout(200)

    assert 100 in seen, f"the progress bar never reached 100%: {sorted(seen)}"
    assert any(0 < value < 100 for value in seen), f"no progress was shown: {sorted(seen)}"
    expect(page.locator("#import-status")).not_to_have_attribute("hx-trigger", "every 1s")
    expect(page.locator('[data-count="created"]')).to_have_text(str(ROWS - 1))
    expect(page.locator('[data-count="updated"]')).to_have_text("1")
    expect(page.locator('[data-count="errors"]')).to_have_text("0")

    page.get_by_role("link", name=re.compile(r"^Updated")).click()
    diff = page.locator("#import-diff table")
    expect(diff).to_contain_text("Ada Lovelace")
    expect(diff.locator("tbody tr").filter(has_text="Department")).to_contain_text("Analyst")
    expect(page).to_have_url(re.compile(r"\?show=updated$"))

    job = ImportJob.objects.get(org=owner.org)
    assert job.status == ImportJob.Status.DONE
    assert (job.created_count, job.updated_count, job.progress) == (ROWS - 1, 1, ROWS)
    assert Contact.objects.filter(org=owner.org).count() == ROWS
    assert Contact.objects.get(email="ada@example.com").department == "Analyst"
