import json

import pytest

from contacts.importing.ai_mapping import refine_with_llm
from contacts.importing.mapper import CUSTOM, suggest_mapping

from .fake_openai import FakeOpenAI

TARGETS = [
    ("first_name", "First name", "Core"),
    ("email", "Email", "Core"),
    ("job_title", "Job title", "Core"),
    ("source", "Source", "Core"),
    ("tags", "Tags", "Core"),
]
HEADERS = ["Email", "Rolle im Unternehmen", "Herkunftskanal"]
ROWS = [["ann@example.com", "Einkaufsleiterin", "Messe"], ["bo@example.com", "CTO", "Web"]]


@pytest.fixture
def fake_openai(settings):
    with FakeOpenAI() as fake:
        settings.OPENAI_API_KEY = "sk-test"
        settings.OPENAI_BASE_URL = fake.base_url
        settings.OPENAI_MODEL = "test-model"
        yield fake


def suggestions():
    return suggest_mapping(HEADERS, ROWS, allowed_targets={k for k, _, _ in TARGETS})


def test_without_a_key_the_model_is_not_asked(settings):
    settings.OPENAI_API_KEY = ""
    before = suggestions()
    assert refine_with_llm(before, ROWS, HEADERS, TARGETS) == before


def test_only_unsure_columns_are_sent_and_valid_answers_are_used(fake_openai):
    fake_openai.replies.append(
        (
            200,
            {
                "mappings": [
                    {"column": "Rolle im Unternehmen", "target": "job_title", "confidence": 0.9},
                    {"column": "Herkunftskanal", "target": "source", "confidence": 0.8},
                ]
            },
        )
    )
    out = {s.column: s for s in refine_with_llm(suggestions(), ROWS, HEADERS, TARGETS)}
    assert out["Rolle im Unternehmen"].target == "job_title"
    assert out["Herkunftskanal"].target == "source"
    assert out["Email"].target == "email"  # the sure column is kept as it was
    sent = json.loads(fake_openai.requests[0]["messages"][1]["content"])
    assert [c["column"] for c in sent["columns"]] == ["Rolle im Unternehmen", "Herkunftskanal"]
    assert sent["columns"][0]["samples"] == ["Einkaufsleiterin", "CTO"]
    assert fake_openai.requests[0]["response_format"] == {"type": "json_object"}


def test_answers_outside_the_allowed_targets_or_taking_a_used_field_are_ignored(fake_openai):
    fake_openai.replies.append(
        (
            200,
            {
                "mappings": [
                    {"column": "Rolle im Unternehmen", "target": "lead_score"},
                    {"column": "Herkunftskanal", "target": "email"},
                    {"column": "Not a column", "target": "source"},
                ]
            },
        )
    )
    out = {s.column: s.target for s in refine_with_llm(suggestions(), ROWS, HEADERS, TARGETS)}
    assert out == {"Email": "email", "Rolle im Unternehmen": CUSTOM, "Herkunftskanal": CUSTOM}


@pytest.mark.parametrize("reply", [(500, "overloaded"), (200, "this is not json")])
def test_a_failing_model_leaves_the_deterministic_suggestions(fake_openai, reply):
    fake_openai.replies.extend([reply, reply])  # the client retries once
    before = suggestions()
    assert refine_with_llm(before, ROWS, HEADERS, TARGETS) == before
