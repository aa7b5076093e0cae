"""Demo contacts are scored by the one scoring engine (contacts.scoring): every seeded
contact's lead score is the one the engine computes from the org's rules, whether it came
with the realistic data or from a top-up (a small load, or a big one that is scored while
the indexes are dropped)."""

import random

import pytest

from contacts import demo
from contacts.demo import loader
from contacts.models import Contact, ScoringRule
from contacts.scoring import compile_rules, rescore_contacts, score_expression


def quiet(_text):
    return None


def seeded_and_engine_scores(org) -> dict[int, tuple[int, int]]:
    """{contact id: (its lead score, the score the engine computes now)} for the org."""
    expression = score_expression(compile_rules(org))
    rows = (
        Contact.objects.for_org(org)
        .annotate(engine_score=expression)
        .values_list("pk", "lead_score", "engine_score")
    )
    return {pk: (seeded, engine) for pk, seeded, engine in rows}


@pytest.mark.parametrize("big_load", [False, True], ids=["small-load", "big-load"])
def test_every_seeded_contact_has_the_score_the_engine_computes(
    org, members, monkeypatch, big_load
):
    if big_load:
        monkeypatch.setattr(loader, "BIG_LOAD", 10)
    # Besides the demo's own rules (on the row itself), rules that read other tables.
    ScoringRule.objects.create(
        org=org,
        name="Tagged VIP",
        condition={"field": "tags", "op": "eq", "value": "vip"},
        points=10,
        position=10,
    )
    ScoringRule.objects.create(
        org=org,
        name="Unowned",
        condition={"field": "owner", "op": "eq", "value": "unclaimed"},
        points=5,
        position=11,
    )
    demo.seed_realistic(org, contacts=40, companies=6, acme=True, rng=random.Random(5), log=quiet)
    log = []

    demo.top_up(org, 400, random.Random(6), log.append)

    assert any("dropped" in line for line in log) is big_load
    scores = seeded_and_engine_scores(org)
    assert len(scores) == 400
    assert {pk: pair for pk, pair in scores.items() if pair[0] != pair[1]} == {}
    # The rules tell the contacts apart, tags included.
    assert len({seeded for seeded, _ in scores.values()}) >= 5
    vip = Contact.objects.for_org(org).filter(tags__name="vip", owner__isnull=False)
    assert vip.filter(lead_score__gte=10).exists()
    assert rescore_contacts(org) == 0


def test_a_top_up_gets_exactly_the_points_of_the_rules_it_meets(org, members):
    ScoringRule.objects.create(
        org=org,
        name="Mine",
        condition={"field": "owner", "op": "eq", "value": "unclaimed"},
        points=40,
    )

    demo.top_up(org, 50, random.Random(7), quiet)

    contacts = Contact.objects.for_org(org)
    assert set(contacts.filter(owner=None).values_list("lead_score", flat=True)) == {40}
    assert set(contacts.exclude(owner=None).values_list("lead_score", flat=True)) == {0}
