"""What the AI column mapping sends, to whom, when it may send at all, and what it does with
the answer. The conditions: a provider is configured, the organization turned on "Send
samples to the AI provider", the member's role includes AI, and some column is unsure.
When any is missing nothing leaves the server; the fake's request log proves it."""

import json

import pytest

from contacts.importing import ai_mapping
from contacts.importing.ai_mapping import refine_with_llm
from contacts.importing.mapper import CUSTOM, suggest_mapping
from crm.permissions import Policy
from tests.factories import member

from .fake_openai import refused_base_url

pytestmark = pytest.mark.django_db

TARGETS = [
    ("first_name", "First name", "Core"),
    ("email", "Email", "Core"),
    ("job_title", "Job title", "Core"),
    ("source", "Source", "Core"),
    ("tags", "Tags", "Core"),
]
HEADERS = ["Email", "Rolle im Unternehmen", "Herkunftskanal"]
ROWS = [["ann@example.com", "Einkaufsleiterin", "Messe"], ["bo@example.com", "CTO", "Web"]]
GOOD_ANSWER = {
    "mappings": [
        {"column": "Rolle im Unternehmen", "target": "job_title", "confidence": 0.9},
        {"column": "Herkunftskanal", "target": "source", "confidence": 0.8},
    ]
}


@pytest.fixture
def opted_in(org):
    org.ai_send_samples = True
    org.save(update_fields=["ai_send_samples"])
    return org


def suggestions():
    return suggest_mapping(HEADERS, ROWS, allowed_targets={k for k, _, _ in TARGETS})


def refine(org, role="owner", before=None):
    return refine_with_llm(
        before or suggestions(), ROWS, HEADERS, TARGETS, org=org, policy=Policy(member(org, role))
    )


def test_without_a_key_the_model_is_not_asked_and_nothing_is_said(opted_in, settings):
    settings.OPENAI_API_KEY = ""
    before = suggestions()
    assert refine(opted_in, before=before) == (before, "")


def test_with_the_organization_setting_off_nothing_is_sent(org, fake_openai):
    assert org.ai_send_samples is False  # the default: no organization sends by accident
    before = suggestions()
    assert refine(org, before=before) == (before, ai_mapping.OFF_FOR_ORGANIZATION)
    assert fake_openai.requests == []


@pytest.mark.parametrize("role", ["partner", "viewer"])
def test_a_member_whose_role_has_no_ai_sends_nothing(opted_in, fake_openai, role):
    before = suggestions()
    assert refine(opted_in, role, before=before) == (before, ai_mapping.NOT_IN_ROLE)
    assert fake_openai.requests == []


@pytest.mark.parametrize("role", ["team", "support"])
def test_the_ai_view_right_is_enough_to_be_asked(opted_in, fake_openai, role):
    fake_openai.replies.append((200, GOOD_ANSWER))
    out, note = refine(opted_in, role)
    assert note == ""
    assert {s.column: s.target for s in out}["Rolle im Unternehmen"] == "job_title"
    assert len(fake_openai.requests) == 1


def test_when_every_column_is_sure_nothing_is_sent_and_nothing_is_said(opted_in, fake_openai):
    headers, rows = ["Email", "First name"], [["ann@example.com", "Ann"]]
    before = suggest_mapping(headers, rows, allowed_targets={k for k, _, _ in TARGETS})
    policy = Policy(member(opted_in, "owner"))
    out = refine_with_llm(before, rows, headers, TARGETS, org=opted_in, policy=policy)
    assert out == (before, "")
    assert fake_openai.requests == []


def test_only_unsure_columns_are_sent_and_valid_answers_are_used(opted_in, fake_openai):
    fake_openai.replies.append((200, GOOD_ANSWER))
    refined, note = refine(opted_in)
    out = {s.column: s for s in refined}
    assert note == ""
    assert out["Rolle im Unternehmen"].target == "job_title"
    assert out["Herkunftskanal"].target == "source"
    assert out["Email"].target == "email"  # the sure column is kept as it was
    sent = json.loads(fake_openai.requests[0]["messages"][1]["content"])
    assert [c["column"] for c in sent["columns"]] == ["Rolle im Unternehmen", "Herkunftskanal"]
    assert sent["columns"][0]["samples"] == ["Einkaufsleiterin", "CTO"]
    assert "ann@example.com" not in json.dumps(fake_openai.requests[0])
    assert fake_openai.requests[0]["response_format"] == {"type": "json_object"}


def test_answers_outside_the_allowed_targets_or_taking_a_used_field_are_ignored(
    opted_in, fake_openai
):
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
    refined, _ = refine(opted_in)
    out = {s.column: s.target for s in refined}
    assert out == {"Email": "email", "Rolle im Unternehmen": CUSTOM, "Herkunftskanal": CUSTOM}


@pytest.mark.parametrize(
    ("reply", "note"),
    [
        ((500, "overloaded"), ai_mapping.PROVIDER_UNAVAILABLE),
        ((200, "this is not json"), ai_mapping.PROVIDER_ANSWER_UNUSABLE),
    ],
)
def test_a_failing_model_leaves_the_deterministic_suggestions(opted_in, fake_openai, reply, note):
    fake_openai.replies.extend([reply, reply])
    before = suggestions()
    assert refine(opted_in, before=before) == (before, note)
    assert len(fake_openai.requests) == 1  # no retry: the budget is for one try


def test_a_provider_that_refuses_connections_leaves_the_built_in_suggestions(opted_in, settings):
    settings.OPENAI_API_KEY = "sk-test"
    settings.OPENAI_BASE_URL = refused_base_url()
    before = suggestions()
    assert refine(opted_in, before=before) == (before, ai_mapping.PROVIDER_UNAVAILABLE)


@pytest.mark.parametrize("mappings", [5, "job_title", {"column": "x"}, None])
def test_an_answer_whose_mappings_are_not_a_list_changes_nothing(opted_in, fake_openai, mappings):
    fake_openai.replies.append((200, {"mappings": mappings}))
    before = suggestions()
    assert refine(opted_in, before=before).suggestions == before
