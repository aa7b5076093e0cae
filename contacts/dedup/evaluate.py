"""Training and measuring the duplicate model on generated, labelled contacts: the figures
`manage.py dedup_train` prints (and writes into model.json beside the weights)."""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from dataclasses import dataclass

from .blocking import candidate_pairs
from .compare import Comparison, compare
from .model import Model, train
from .records import Person, prepare
from .synth import Generator, Row


def person(row: Row) -> Person:
    return prepare(
        row.id,
        first_name=row.first_name,
        last_name=row.last_name,
        emails=[row.email],
        phones=[row.phone],
        street=row.street,
        postal_code=row.postal_code,
        city=row.city,
        company=row.company,
    )


@dataclass
class LabelledSet:
    rows: list[Row]
    pairs: list[tuple[Comparison, bool]]
    true_pairs: int  # pairs of rows of the same person, found by blocking or not
    kept: int  # true pairs that share a blocking key
    connected: int  # true pairs joined by a chain of candidate pairs (found as a group)
    seconds: float


def labelled_set(seed: int, people: int) -> LabelledSet:
    rows = Generator(seed).rows(people)
    entity = {row.id: row.entity for row in rows}
    started = time.perf_counter()
    pairs = []
    parent: dict = {}

    def root(x):
        while parent.get(x, x) != x:
            parent[x] = parent.get(parent[x], parent[x])
            x = parent[x]
        return x

    for a, b in candidate_pairs(person(row) for row in rows):
        same = entity[a.id] == entity[b.id]
        pairs.append((compare(a, b), same))
        if same:
            parent[root(a.id)] = root(b.id)
    seconds = time.perf_counter() - started
    sizes = Counter(row.entity for row in rows)
    true_pairs = sum(n * (n - 1) // 2 for n in sizes.values())
    groups: dict[tuple, int] = defaultdict(int)
    for row in rows:
        groups[(row.entity, root(row.id))] += 1
    connected = sum(n * (n - 1) // 2 for n in groups.values())
    kept = sum(1 for _, same in pairs if same)
    return LabelledSet(rows, pairs, true_pairs, kept, connected, seconds)


def measure(model: Model, data: LabelledSet, threshold: float) -> dict:
    found = [(model.probability(c) >= threshold, same) for c, same in data.pairs]
    true_positives = sum(1 for hit, same in found if hit and same)
    false_positives = sum(1 for hit, same in found if hit and not same)
    precision = true_positives / max(1, true_positives + false_positives)
    recall = true_positives / max(1, data.true_pairs)
    f1 = 2 * precision * recall / max(1e-9, precision + recall)
    return {
        "threshold": threshold,
        "precision": round(precision, 4),
        "recall": round(recall, 4),
        "f1": round(f1, 4),
        "false_positives": false_positives,
    }


def train_and_measure(*, people: int, train_seed: int = 1, test_seed: int = 2) -> dict:
    training = labelled_set(train_seed, people)
    model = train(training.pairs, meta={"generator_seed": train_seed, "rows": len(training.rows)})
    testing = labelled_set(test_seed, people)
    report = {
        "rows": len(testing.rows),
        "candidate_pairs": len(testing.pairs),
        "candidates_per_record": round(2 * len(testing.pairs) / len(testing.rows), 1),
        "blocking_recall_pairs": round(testing.kept / testing.true_pairs, 4),
        "blocking_recall_groups": round(testing.connected / testing.true_pairs, 4),
        "compare_seconds": round(testing.seconds, 1),
        "probable": measure(model, testing, model.probable),
        "possible": measure(model, testing, model.possible),
    }
    model.meta["test"] = {k: v for k, v in report.items() if k != "compare_seconds"}
    return {"model": model, "report": report}
