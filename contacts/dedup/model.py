"""The scoring model: Fellegi–Sunter weights learned from labelled pairs.

For each field and level, m = P(level | same person) and u = P(level | different people),
counted over the candidate pairs of a labelled set (with add-one smoothing); the level's
weight is log2(m / u). A pair's score is the sum of its levels' weights plus the prior log
odds of a candidate pair being a match, turned into a probability. The learned file,
model.json beside this module, is small and meant to be read: every weight is there with
the counts it came from.

Thresholds: "probable" is the lowest probability at which the labelled set keeps a precision
of at least 0.99 (a wrong merge costs more than a missed one); "possible" the lowest at
which it keeps 0.80. An organization may set its own.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from .compare import FEATURES, Comparison

MODEL_PATH = Path(__file__).with_name("model.json")
PRECISION_PROBABLE = 0.995  # on the training set, so that new data keeps 0.99
PRECISION_POSSIBLE = 0.80


@dataclass
class Model:
    weights: dict[str, dict[str, float]]
    prior: float  # log2 odds of a candidate pair being a match
    probable: float
    possible: float
    meta: dict

    def log_odds(self, comparison: Comparison) -> float:
        total = self.prior
        for feature, level in comparison.levels.items():
            total += self.weights.get(feature, {}).get(level, 0.0)
        return total

    def probability(self, comparison: Comparison) -> float:
        odds = self.log_odds(comparison)
        if odds > 60:
            return 1.0
        if odds < -60:
            return 0.0
        return 1.0 / (1.0 + 2.0 ** (-odds))

    def reasons(self, comparison: Comparison) -> list[str]:
        """The words for the levels that speak for a match, strongest first."""
        ranked = sorted(
            comparison.reasons.items(),
            key=lambda item: -self.weights.get(item[0], {}).get(comparison.levels[item[0]], 0),
        )
        return [words for _, words in ranked]

    def to_json(self) -> dict:
        return {
            "kind": "fellegi-sunter",
            "prior_log2_odds": round(self.prior, 4),
            "thresholds": {"probable": self.probable, "possible": self.possible},
            "weights": {
                feature: {level: round(w, 4) for level, w in sorted(levels.items())}
                for feature, levels in self.weights.items()
            },
            "trained_on": self.meta,
        }


def train(pairs: list[tuple[Comparison, bool]], *, meta: dict | None = None) -> Model:
    """Weights and thresholds from labelled candidate pairs (comparison, is_match)."""
    matches = [c for c, same in pairs if same]
    others = [c for c, same in pairs if not same]
    if not matches or not others:
        raise ValueError("Training needs both matching and non-matching pairs.")
    weights: dict[str, dict[str, float]] = {}
    counts: dict[str, dict] = {}
    for feature in FEATURES:
        m = Counter(c.levels[feature] for c in matches)
        u = Counter(c.levels[feature] for c in others)
        levels = sorted(set(m) | set(u))
        weights[feature] = {
            level: math.log2(
                ((m[level] + 1) / (len(matches) + len(levels)))
                / ((u[level] + 1) / (len(others) + len(levels)))
            )
            for level in levels
        }
        counts[feature] = {level: [m[level], u[level]] for level in levels}
    prior = math.log2(len(matches) / len(others))
    model = Model(weights, prior, 0.5, 0.5, {})
    scored = sorted(((model.probability(c), same) for c, same in pairs), reverse=True)
    model.probable = _threshold(scored, PRECISION_PROBABLE)
    model.possible = min(_threshold(scored, PRECISION_POSSIBLE), model.probable)
    model.meta = {
        **(meta or {}),
        "pairs": len(pairs),
        "matches": len(matches),
        "counts_match_nonmatch": counts,
    }
    return model


def _threshold(scored: list[tuple[float, bool]], precision: float) -> float:
    """The lowest probability whose pairs at or above it keep `precision`."""
    best = 1.0
    true_positives = 0
    for seen, (probability, same) in enumerate(scored, start=1):
        true_positives += same
        if true_positives / seen >= precision:
            best = probability
    return round(best, 6)


def load(path: Path = MODEL_PATH) -> Model:
    data = json.loads(path.read_text(encoding="utf-8"))
    return Model(
        weights=data["weights"],
        prior=data["prior_log2_odds"],
        probable=data["thresholds"]["probable"],
        possible=data["thresholds"]["possible"],
        meta=data.get("trained_on", {}),
    )


@lru_cache(maxsize=1)
def default_model() -> Model:
    return load()
