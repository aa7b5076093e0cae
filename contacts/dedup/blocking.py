"""Blocking: the keys under which two contacts are worth comparing at all. Two contacts are a
candidate pair when they share at least one key, so a scan compares each contact with a
handful of others instead of with everyone (n² at a million contacts is out of reach).

Several kinds of key, because every real duplicate lacks something: no email, a new phone, a
married name, a typo in the first letter.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator
from itertools import combinations

from .records import Person

# Local parts a whole company shares: the same "info@" says nothing about one person.
ROLE_LOCAL_PARTS = frozenset(
    [
        "info",
        "sales",
        "contact",
        "admin",
        "office",
        "hello",
        "support",
        "mail",
        "team",
        "help",
        "billing",
        "accounts",
        "hr",
        "jobs",
        "marketing",
        "noreply",
        "no-reply",
        "enquiries",
        "inquiries",
        "service",
        "webmaster",
    ]
)
# A block this large is a common key (a big company's domain, "John Smith" in one town): its
# pairs are left to the other keys rather than compared all with all.
MAX_BLOCK = 1000


def blocking_keys(p: Person) -> set[str]:
    keys: set[str] = set()
    for email in p.emails:
        keys.add("e:" + email)
    for local in p.email_locals:
        if len(local) >= 4 and local not in ROLE_LOCAL_PARTS:
            keys.add("l:" + local)
    for tail in p.phone_tails:
        keys.add("p:" + tail)
    first_initials = {name[0] for name in p.extra.get("formal_first", ()) if name}
    if p.first:
        first_initials.add(p.first[0])
    last_initial = p.last_key[:1]
    for code in p.phonetic_last:
        for initial in first_initials:
            keys.add(f"n:{code}:{initial}")
    # First and last swapped: "Doe Jane" finds "Jane Doe" under Jane's key.
    if last_initial:
        for code in p.phonetic_first:
            keys.add(f"n:{code}:{last_initial}")
    if p.postal:
        for initial in first_initials:
            keys.add(f"a:{p.postal}:{initial}")
        if p.last_key:
            keys.add(f"a:{p.postal}:{p.last_key[:2]}")
    for domain in p.domains:
        for code in p.phonetic_last[:1]:
            keys.add(f"d:{domain}:{code}")
    return keys


def candidate_pairs(
    people: Iterable[Person], *, max_block: int = MAX_BLOCK
) -> Iterator[tuple[Person, Person]]:
    """Each pair of people sharing a key, once (ids compared in order), skipping blocks
    larger than `max_block`. Holds the keys of every person in memory: a full scan at a
    million contacts feeds it by partitions (see contacts.dedup.scan)."""
    blocks: dict[str, list[Person]] = defaultdict(list)
    for person in people:
        for key in blocking_keys(person):
            blocks[key].append(person)
    seen: set[tuple] = set()
    for members in blocks.values():
        if len(members) < 2 or len(members) > max_block:
            continue
        for a, b in combinations(members, 2):
            pair = (a.id, b.id) if str(a.id) < str(b.id) else (b.id, a.id)
            if pair in seen:
                continue
            seen.add(pair)
            yield (a, b) if pair[0] == a.id else (b, a)
