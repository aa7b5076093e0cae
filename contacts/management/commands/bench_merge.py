"""Benchmark merging two contacts and undoing the merge: `manage.py bench_merge [--runs 20]`.

Each run seeds a fresh pair in the organization `--org-slug` (created on first use): two
contacts with `--activities` timeline entries each (1,000 by default), plus notes, tasks,
tags (some on both), a list both are on, deals, deal contacts and orders. Then it times
`merge_contacts` and `undo_merge`, each a whole committed transaction, as an organization
admin would run them (policy checks included), and prints:

    merge p50=41.2ms p95=55.0ms queries=63
    undo  p50=38.9ms p95=47.3ms queries=58

Seeding and clean-up are outside the timings. The pair is deleted after its run, so the
tables do not grow with the number of runs.
"""

from __future__ import annotations

import statistics
import time

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from contacts.models import Activity, Contact, ContactList, ContactTag, Note, Tag, Task
from contacts.services.merge import merge_contacts, undo_merge
from crm.models import Membership, Organization
from crm.permissions import Policy
from crm.services import Actor, organization_create
from pipeline.models import Deal, DealContact, Order, Pipeline, Stage


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(share * (len(ordered) - 1))))
    return ordered[index]


class Command(BaseCommand):
    help = "Time merging two contacts with many related rows, and undoing it."

    def add_arguments(self, parser):
        parser.add_argument("--runs", type=int, default=20)
        parser.add_argument("--activities", type=int, default=1000, help="per contact")
        parser.add_argument("--org-slug", default="bench-merge")

    def _org_and_admin(self, slug: str):
        User = get_user_model()
        email = f"admin@{slug}.test"
        user = User.objects.filter(email__iexact=email).first()
        if user is None:
            user = User.objects.create_user(email=email, password=None, first_name="Admin")
        org = Organization.objects.filter(slug=slug).first()
        if org is None:
            org = organization_create(
                name="Merge bench", slug=slug, owner=user, actor=Actor.system("bench_merge")
            )
        membership = Membership.objects.for_org(org).select_related("role").get(user=user)
        return org, user, membership

    def _pipeline(self, org):
        pipeline = Pipeline.objects.for_org(org).first()
        if pipeline is None:
            pipeline = Pipeline.objects.for_org(org).create(org=org, name="Bench")
        stage = Stage.objects.for_org(org).filter(pipeline=pipeline).first()
        if stage is None:
            stage = Stage.objects.for_org(org).create(
                org=org, pipeline=pipeline, name="Open", position=0, probability=20
            )
        return pipeline, stage

    @transaction.atomic
    def _seed_pair(self, org, user, run: int, activities: int, pipeline, stage):
        now = timezone.now()
        contacts = Contact.objects.for_org(org).bulk_create(
            [
                Contact(
                    org=org,
                    first_name="Jane",
                    last_name=f"Doe {run}-{side}",
                    email=f"jane.{run}.{side}.{time.time_ns()}@bench.test",
                    job_title="" if side == "a" else "CFO",
                    city="Berlin" if side == "a" else "",
                    owner=user,
                )
                for side in ("a", "b")
            ]
        )
        shared = [
            Tag.objects.for_org(org).get_or_create(org=org, name=f"bench-shared-{n}")[0]
            for n in range(2)
        ]
        contact_list = ContactList.objects.for_org(org).get_or_create(org=org, name="Bench list")[0]
        for index, contact in enumerate(contacts):
            Activity.objects.for_org(org).bulk_create(
                Activity(org=org, contact=contact, type="call", subject="Call", occurred_at=now)
                for _ in range(activities)
            )
            Note.objects.for_org(org).bulk_create(
                Note(org=org, contact=contact, body=f"Note {n}") for n in range(20)
            )
            Task.objects.for_org(org).bulk_create(
                Task(org=org, contact=contact, title=f"Task {n}") for n in range(10)
            )
            own = [
                Tag.objects.for_org(org).get_or_create(org=org, name=f"bench-{index}-{n}")[0]
                for n in range(3)
            ]
            ContactTag.objects.bulk_create(
                ContactTag(contact=contact, tag=tag) for tag in [*shared, *own]
            )
            contact_list.contacts.add(contact)
            deals = Deal.objects.for_org(org).bulk_create(
                Deal(
                    org=org,
                    title=f"Deal {run}-{index}-{n}",
                    pipeline=pipeline,
                    stage=stage,
                    contact=contact,
                    value=1000,
                    currency="USD",
                    stage_entered_at=now,
                    position=float(n),
                )
                for n in range(3)
            )
            DealContact.objects.for_org(org).bulk_create(
                DealContact(org=org, deal=deal, contact=contact) for deal in deals
            )
            Order.objects.for_org(org).bulk_create(
                Order(
                    org=org,
                    contact=contact,
                    title=f"Order {n}",
                    value=100,
                    currency="USD",
                    status=Order.Status.PAID,
                    order_date=now.date(),
                )
                for n in range(5)
            )
        return contacts

    def _cleanup(self, org, contacts) -> None:
        with transaction.atomic():
            ids = [c.pk for c in contacts]
            Deal.objects.for_org(org).filter(contact_id__in=ids).delete()
            Contact.objects.for_org(org).filter(pk__in=ids).delete()

    def handle(self, *args, **options):
        org, user, membership = self._org_and_admin(options["org_slug"])
        pipeline, stage = self._pipeline(org)
        actor = Actor.for_user(user)
        runs, activities = options["runs"], options["activities"]
        timings: dict[str, list[float]] = {"merge": [], "undo": []}
        queries: dict[str, int] = {}
        for run in range(runs + 1):  # run 0 warms caches and connections, unmeasured
            primary, secondary = self._seed_pair(org, user, run, activities, pipeline, stage)
            policy = Policy(membership)
            with CaptureQueriesContext(connection) as captured:
                started = time.perf_counter()
                record = merge_contacts(
                    primary=primary, secondary=secondary, actor=actor, policy=policy
                )
                merged = time.perf_counter()
            queries["merge"] = len(captured)
            moved = Activity.objects.for_org(org).filter(contact=primary, type="call").count()
            if moved != 2 * activities:
                raise RuntimeError(f"merge moved {moved} activities, expected {2 * activities}")
            with CaptureQueriesContext(connection) as captured:
                undo_started = time.perf_counter()
                undo_merge(record=record, actor=actor, policy=policy)
                undone = time.perf_counter()
            queries["undo"] = len(captured)
            back = Activity.objects.for_org(org).filter(contact=secondary, type="call").count()
            if back != activities:
                raise RuntimeError(f"undo moved back {back} activities, expected {activities}")
            if run:
                timings["merge"].append((merged - started) * 1000)
                timings["undo"].append((undone - undo_started) * 1000)
            self._cleanup(org, [primary, secondary])
        self.stdout.write(
            f"two contacts with {activities} activities each, {runs} runs "
            f"(+ 20 notes, 10 tasks, 5 tags, 1 list, 3 deals, 3 deal contacts, 5 orders each)"
        )
        for name, values in timings.items():
            self.stdout.write(
                f"{name:5} p50={statistics.median(values):.1f}ms "
                f"p95={_percentile(values, 0.95):.1f}ms max={max(values):.1f}ms "
                f"queries={queries[name]}"
            )
