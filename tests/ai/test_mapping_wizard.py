"""The AI column mapping as the import wizard uses it: asked only with the organization's
permission and the member's AI right, never while a database transaction is open, and
within a total time budget, after which the wizard goes on with its built-in suggestions
and says why in one line on the mapping page."""

import time

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import transaction
from django.urls import reverse

from ai import llm
from contacts.importing import ai_mapping
from contacts.importing.mapper import CUSTOM, SKIP
from contacts.importing.models import ImportJob
from tests.factories import member

from .fake_openai import refused_base_url

CSV = "Email,Rolle im Unternehmen,Herkunftskanal\nann@example.com,Einkaufsleiterin,Messe\n"
ANSWER = {
    "mappings": [
        {"column": "Rolle im Unternehmen", "target": "job_title", "confidence": 0.9},
        {"column": "Herkunftskanal", "target": "source", "confidence": 0.8},
    ]
}


@pytest.fixture(autouse=True)
def _uploads_in_tmp(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")


def opt_in(org, on=True):
    org.ai_send_samples = on
    org.save(update_fields=["ai_send_samples"])


def upload(client, org):
    """Upload the file; return (the upload's response, its job, the mapping page's HTML)."""
    file = SimpleUploadedFile("people.csv", CSV.encode())
    response = client.post(reverse("contacts:import_start"), {"file": file})
    assert response.status_code == 302, response.content[:500]
    job = ImportJob.objects.for_org(org).latest("id")
    page = client.get(response["Location"])
    assert page.status_code == 200
    return response, job, page.content.decode()


def targets(job):
    return {s["column"]: s["target"] for s in job.suggestions}


BUILT_IN = {"Email": "email", "Rolle im Unternehmen": CUSTOM, "Herkunftskanal": CUSTOM}


@pytest.mark.django_db
def test_with_the_setting_off_the_provider_gets_nothing_and_the_page_says_so(
    org, owner, client_as, fake_openai
):
    _, job, page = upload(client_as(owner), org)
    assert fake_openai.requests == []
    assert targets(job) == BUILT_IN
    assert "AI suggestions are off for your organization" in page


@pytest.mark.django_db
def test_a_member_without_ai_rights_sends_nothing_and_is_told_why(org, client_as, fake_openai):
    opt_in(org)
    partner = member(org, "partner")  # may import contacts, has no AI
    _, job, page = upload(client_as(partner), org)
    assert fake_openai.requests == []
    assert set(targets(job).values()) <= {"email", SKIP}
    assert "Your role does not include AI" in page


@pytest.mark.django_db
def test_without_a_provider_nothing_is_sent_and_no_ai_line_is_shown(
    org, owner, client_as, settings
):
    opt_in(org)
    settings.OPENAI_API_KEY = ""
    _, job, page = upload(client_as(owner), org)
    assert targets(job) == BUILT_IN
    for note in (ai_mapping.OFF_FOR_ORGANIZATION, ai_mapping.NOT_IN_ROLE, "AI provider"):
        assert note not in page


@pytest.mark.django_db(transaction=True)
def test_with_permission_the_ai_is_asked_outside_any_transaction_and_its_answer_used(
    org, owner, client_as, fake_openai, monkeypatch
):
    opt_in(org)
    fake_openai.replies.append((200, ANSWER))
    in_transaction = []
    ask = llm.LLMClient.complete_json

    def watching(self, **kwargs):
        in_transaction.append(transaction.get_connection().in_atomic_block)
        return ask(self, **kwargs)

    monkeypatch.setattr(llm.LLMClient, "complete_json", watching)
    _, job, page = upload(client_as(owner), org)
    assert in_transaction == [False]
    assert len(fake_openai.requests) == 1
    assert targets(job)["Rolle im Unternehmen"] == "job_title"
    assert targets(job)["Herkunftskanal"] == "source"
    assert "suggested by the AI model" in page
    assert "built-in suggestions" not in page


@pytest.mark.django_db(transaction=True)
def test_reading_the_file_again_asks_the_ai_outside_any_transaction(
    org, owner, client_as, fake_openai, monkeypatch
):
    opt_in(org)
    fake_openai.replies.extend([(200, ANSWER), (200, ANSWER)])
    client = client_as(owner)
    _, job, _ = upload(client, org)
    in_transaction = []
    ask = llm.LLMClient.complete_json

    def watching(self, **kwargs):
        in_transaction.append(transaction.get_connection().in_atomic_block)
        return ask(self, **kwargs)

    monkeypatch.setattr(llm.LLMClient, "complete_json", watching)
    response = client.post(
        reverse("contacts:import_map", args=[job.public_id]),
        {"step": "detect", "encoding": "utf-8", "delimiter": ",", "header_row": 1},
    )
    assert response.status_code == 302, response.content[:500]
    assert in_transaction == [False]
    job.refresh_from_db()
    assert targets(job)["Rolle im Unternehmen"] == "job_title"


@pytest.mark.django_db
def test_a_provider_that_hangs_costs_the_upload_about_five_seconds_then_built_ins(
    org, owner, client_as, fake_openai
):
    """The default budget, 5 s in total, against a provider that answers only after 10 s."""
    opt_in(org)
    fake_openai.delay = 10
    fake_openai.replies.append((200, ANSWER))
    started = time.monotonic()
    _, job, page = upload(client_as(owner), org)
    elapsed = time.monotonic() - started
    assert 4.5 <= elapsed < 7.5
    assert len(fake_openai.requests) == 1
    assert targets(job) == BUILT_IN
    assert "The AI provider did not answer in time; showing built-in suggestions" in page


@pytest.mark.django_db
def test_a_reply_that_trickles_in_is_cut_off_at_the_total_budget(
    org, owner, client_as, fake_openai, settings
):
    """Each byte comes well within a read timeout; only a total deadline stops it."""
    settings.AI_MAPPING_BUDGET_SECONDS = 1.0
    opt_in(org)
    fake_openai.trickle = 0.2
    fake_openai.replies.append((200, ANSWER))
    started = time.monotonic()
    _, job, page = upload(client_as(owner), org)
    assert time.monotonic() - started < 2.5
    assert targets(job) == BUILT_IN
    assert "did not answer in time" in page


@pytest.mark.django_db
def test_a_provider_that_is_down_gives_built_in_suggestions_and_a_line_saying_so(
    org, owner, client_as, settings
):
    opt_in(org)
    settings.OPENAI_API_KEY = "sk-test"
    settings.OPENAI_BASE_URL = refused_base_url()
    started = time.monotonic()
    _, job, page = upload(client_as(owner), org)
    assert time.monotonic() - started < 3
    assert targets(job) == BUILT_IN
    assert ai_mapping.PROVIDER_UNAVAILABLE in page
