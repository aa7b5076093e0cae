"""Ask the language model about the columns the deterministic matcher is unsure of.

Only headers and a few sample values of those columns are sent. The model's answer is
checked against the targets the member may use; anything else is ignored, and any failure
leaves the deterministic suggestions as they were.
"""

from __future__ import annotations

import json
import logging

from ai.llm import LLMError, client

from .mapper import CUSTOM, SKIP, Suggestion

log = logging.getLogger(__name__)

UNSURE_BELOW = 0.8
MAX_COLUMNS = 60
SAMPLES_PER_COLUMN = 5

SYSTEM = (
    "You map the columns of a spreadsheet of people to the fields of a CRM contact. "
    'Answer with a JSON object {"mappings": [{"column": <column name>, "target": '
    '<one of the allowed target keys, or "__custom__" to keep it as a custom field, or '
    '"__skip__">, "confidence": <0..1>}]}, one entry per column you were asked about. '
    "Use only the target keys you are given. Never map two columns to the same target unless "
    "the target accepts several (tags, other_emails, note)."
)


def refine_with_llm(
    suggestions: list[Suggestion],
    sample_rows: list[list[str]],
    headers: list[str],
    targets: list[tuple[str, str, str]],
) -> list[Suggestion]:
    llm = client()
    if llm is None:
        return suggestions
    unsure = [
        (i, s)
        for i, s in enumerate(suggestions)
        if s.target == CUSTOM or s.confidence < UNSURE_BELOW
    ][:MAX_COLUMNS]
    if not unsure:
        return suggestions
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
        answer = llm.complete_json(system=SYSTEM, user=prompt)
    except LLMError as exc:
        log.warning("AI column mapping unavailable: %s", exc)
        return suggestions
    by_column = {s.column: i for i, s in unsure}
    multi = {"tags", "other_emails", "note"}
    out = list(suggestions)
    for item in answer.get("mappings") or []:
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
    return out
