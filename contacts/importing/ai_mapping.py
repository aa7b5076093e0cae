"""Ask the language model about the columns the deterministic matcher is unsure of.

Only headers and a few sample values of those columns are sent, and only when all hold:
a provider is configured on the deployment, the organization turned on "Send samples to
the AI provider" (Settings → Organization), and the member's role includes AI (its view
right, the lowest: the model only suggests, the member still chooses and saves). The model's
answer is checked against the targets the member may use; anything else is ignored, and any
failure leaves the deterministic suggestions as they were, with a line saying why.

The call takes up to settings.AI_MAPPING_BUDGET_SECONDS, so callers make it before opening
a database transaction, never inside one.
"""

from __future__ import annotations

import json
import logging
from typing import NamedTuple

from django.conf import settings

from ai import llm

from .mapper import CUSTOM, SKIP, Suggestion

log = logging.getLogger(__name__)

UNSURE_BELOW = 0.8
MAX_COLUMNS = 60
SAMPLES_PER_COLUMN = 5

# Why the suggestions on the mapping page are the built-in ones; one short line each.
OFF_FOR_ORGANIZATION = "AI suggestions are off for your organization."
NOT_IN_ROLE = "Your role does not include AI."
PROVIDER_TIMED_OUT = "The AI provider did not answer in time; showing built-in suggestions."
PROVIDER_UNAVAILABLE = "The AI provider could not be reached; showing built-in suggestions."
PROVIDER_ANSWER_UNUSABLE = (
    "The AI provider's answer could not be used; showing built-in suggestions."
)
_FAILURE_NOTES = {
    llm.LLMTimeout: PROVIDER_TIMED_OUT,
    llm.LLMUnavailable: PROVIDER_UNAVAILABLE,
    llm.LLMBadAnswer: PROVIDER_ANSWER_UNUSABLE,
}

SYSTEM = (
    "You map the columns of a spreadsheet of people to the fields of a CRM contact. "
    'Answer with a JSON object {"mappings": [{"column": <column name>, "target": '
    '<one of the allowed target keys, or "__custom__" to keep it as a custom field, or '
    '"__skip__">, "confidence": <0..1>}]}, one entry per column you were asked about. '
    "Use only the target keys you are given. Never map two columns to the same target unless "
    "the target accepts several (tags, other_emails, note)."
)


class Refined(NamedTuple):
    suggestions: list[Suggestion]
    note: str  # why the AI was not used, for the mapping page; "" when nothing to say


def may_send_samples(org, policy) -> str:
    """ "" when this member's columns may go to the AI provider, else the reason why not."""
    if not org.ai_send_samples:
        return OFF_FOR_ORGANIZATION
    if not policy.can("ai", "view"):
        return NOT_IN_ROLE
    return ""


def refine_with_llm(
    suggestions: list[Suggestion],
    sample_rows: list[list[str]],
    headers: list[str],
    targets: list[tuple[str, str, str]],
    *,
    org,
    policy,
) -> Refined:
    """Call outside any database transaction: it may take the whole time budget."""
    if not llm.configured():
        return Refined(suggestions, "")
    unsure = [
        (i, s)
        for i, s in enumerate(suggestions)
        if s.target == CUSTOM or s.confidence < UNSURE_BELOW
    ][:MAX_COLUMNS]
    if not unsure:
        return Refined(suggestions, "")
    refused = may_send_samples(org, policy)
    if refused:
        return Refined(suggestions, refused)
    model = llm.client(budget_seconds=settings.AI_MAPPING_BUDGET_SECONDS)
    if model is None:
        return Refined(suggestions, "")
    taken = {s.target for s in suggestions if s.confidence >= UNSURE_BELOW}
    allowed = {key for key, _, _ in targets}
    columns = []
    for i, s in unsure:
        values = [row[i] for row in sample_rows if i < len(row) and row[i].strip()]
        columns.append({"column": s.column, "samples": values[:SAMPLES_PER_COLUMN]})
    prompt = json.dumps(
        {
            "targets": [{"key": k, "label": label, "group": g} for k, label, g in targets],
            "already_mapped": sorted(taken - {CUSTOM, SKIP}),
            "columns": columns,
        },
        ensure_ascii=False,
    )
    try:
        answer = model.complete_json(system=SYSTEM, user=prompt)
    except llm.LLMError as exc:
        log.warning("AI column mapping unavailable for org %s: %s", org.pk, exc)
        return Refined(suggestions, _FAILURE_NOTES.get(type(exc), PROVIDER_UNAVAILABLE))
    by_column = {s.column: i for i, s in unsure}
    multi = {"tags", "other_emails", "note"}
    out = list(suggestions)
    mappings = answer.get("mappings")
    for item in mappings if isinstance(mappings, list) else []:
        if not isinstance(item, dict):
            continue
        column, target = item.get("column"), item.get("target")
        if column not in by_column or not isinstance(target, str):
            continue
        if target not in allowed | {CUSTOM, SKIP}:
            continue
        if target in taken and target not in multi | {CUSTOM, SKIP}:
            continue
        try:
            confidence = float(item.get("confidence", 0.7))
        except (TypeError, ValueError):
            confidence = 0.7
        confidence = max(0.0, min(confidence, 0.95))
        index = by_column[column]
        out[index] = Suggestion(column, target, round(confidence, 2), "suggested by the AI model")
        if target not in multi | {CUSTOM, SKIP}:
            taken.add(target)
    return Refined(out, "")
