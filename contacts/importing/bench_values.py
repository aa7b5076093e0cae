"""The match-values step's benchmark, run by `manage.py bench_import --values`.

Makes a scratch organization with 40 members, writes a CSV of `rows` rows whose owner
column and List custom field column each hold `distinct` different values (a few of them
members' names and real choices), then:
  * times the mapping save, which counts the values (the one pass over the file),
  * times the step's page (GET, server side: the view through the middleware, with the
    Django test client in this process) `repeat` times and prints the median and the worst,
  * times the step's form submission.
The issue's target: the page answers in at most 300 ms for a column of 10,000 values.
Run it on a scratch database: the organization stays behind.
"""

from __future__ import annotations

import csv
import os
import statistics
import tempfile
import time
import uuid

from django.core.files import File
from django.test import Client
from django.urls import reverse

from contacts.models import CustomFieldDefinition
from crm.models import Membership, Organization, User
from crm.permissions import Policy
from crm.services import Actor
from crm.services.orgs import ensure_builtin_roles

from . import services
from .models import ImportJob

HEADERS = ["First Name", "Last Name", "Email", "Contact owner", "Tier"]
TIERS = ["Gold", "Silver", "Bronze"]


def _org(run: str, members: int) -> Membership:
    org = Organization.objects.create(name=f"Bench values {run}", slug=f"bench-values-{run}")
    roles = ensure_builtin_roles(org)
    user, _ = User.objects.get_or_create(
        email="bench-values@bench.test", defaults={"first_name": "Bench", "last_name": "Owner"}
    )
    owner = Membership.objects.for_org(org).create(org=org, user=user, role=roles["owner"])
    for i in range(members):
        colleague, _ = User.objects.get_or_create(
            email=f"bench-rep{i}@bench.test",
            defaults={"first_name": f"Rep{i}", "last_name": "Seller"},
        )
        Membership.objects.for_org(org).create(org=org, user=colleague, role=roles["team"])
    CustomFieldDefinition.objects.for_org(org).create(
        org=org, key="tier", label="Tier", field_type="list", choices=TIERS
    )
    return owner


def _write(path: str, rows: int, distinct: int) -> None:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(HEADERS)
        for i in range(rows):
            k = i % distinct
            owner = f"Rep{k} Seller" if k < 40 else f"old-user-{k}@old-crm.test"
            tier = TIERS[k] if k < 3 else f"Tier {k}"
            writer.writerow(["Ann", f"Person{i}", f"p{i}@bench.test", owner, tier])


def run(stdout, *, rows: int = 50_000, distinct: int = 10_000, repeat: int = 20) -> None:
    owner = _org(uuid.uuid4().hex[:8], members=40)
    actor, policy = Actor.for_user(owner.user), Policy(owner)
    workdir = tempfile.mkdtemp(prefix="bench-values-")
    path = os.path.join(workdir, "values.csv")
    _write(path, rows, distinct)
    with open(path, "rb") as fh:
        upload = File(fh, name="values.csv")
        upload.size = os.path.getsize(path)
        job = services.import_create(org=owner.org, actor=actor, policy=policy, upload=upload)
    os.remove(path)
    mapping = {
        "First Name": "first_name",
        "Last Name": "last_name",
        "Email": "email",
        "Contact owner": "owner",
        "Tier": "custom.tier",
    }
    started = time.perf_counter()
    job = services.import_set_mapping(
        job=job,
        actor=actor,
        policy=policy,
        mapping=mapping,
        defaults={},
        import_policy=ImportJob.Policy.UPSERT,
        blank_policy=ImportJob.BlankPolicy.KEEP,
    )
    mapping_ms = (time.perf_counter() - started) * 1000
    counts = job.value_counts["columns"]

    client = Client()
    client.force_login(owner.user)
    session = client.session
    session["active_org_id"] = owner.org_id
    session.save()
    page = reverse("contacts:import_values", args=[job.public_id])
    client.get(page)  # the first request warms imports and template loading
    timings = []
    for _ in range(repeat):
        started = time.perf_counter()
        response = client.get(page)
        timings.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, response.status_code
    size_kb = len(response.content) / 1024
    form = {f"m_0_{i}": "__default__" for i in range(len(counts["Contact owner"]["top"]))}
    started = time.perf_counter()
    response = client.post(page, form)
    post_ms = (time.perf_counter() - started) * 1000
    assert response.status_code == 302, response.status_code
    stdout.write(
        f"values rows={rows:,} distinct_per_column="
        f"{counts['Contact owner']['distinct']:,}/{counts['Tier']['distinct']:,} members=41 "
        f"mapping_save_ms={mapping_ms:.0f} page_ms_median={statistics.median(timings):.1f} "
        f"page_ms_max={max(timings):.1f} page_kb={size_kb:.0f} submit_ms={post_ms:.0f} "
        f"target_ms=300 {'OK' if max(timings) <= 300 else 'SLOW'}"
    )
