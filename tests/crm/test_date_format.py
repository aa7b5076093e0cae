"""One date and time format everywhere, in the organization's time zone (docs/glossary.md).

Templates print moments through the shared `datetime` / `day` filters (crm_tags); the scan
below fails on any template that prints one another way. `|date:'c'` stays allowed: it is
the machine-readable value of a <time datetime="…"> attribute, never shown as text.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from zoneinfo import ZoneInfo

from django.conf import settings
from django.template import Context, Template
from django.urls import reverse
from django.utils import timezone

from crm.dates import format_datetime, format_day
from tests.factories import member

TEMPLATES_DIR = Path(settings.BASE_DIR) / "templates"
UTC = dt.UTC

MACHINE_FORMAT = re.compile(r"""\|date:\s*(['"])c\1""")
ANY_DATE_FILTER = re.compile(r"""\|(date|time)(:\s*(['"]).*?\3)?(?=\s*[|}%\s])""")
VARIABLE = re.compile(r"\{\{\s*(?P<expr>[^}]+?)\s*\}\}")
MOMENT_NAME = re.compile(r"(_at|_on|date|_time|timestamp)$")
SHOWN_WITH = {"datetime", "day", "timesince", "timeuntil", "naturaltime", "naturalday"}


def offending_lines(text: str) -> list[str]:
    found = []
    for number, line in enumerate(text.splitlines(), 1):
        for match in ANY_DATE_FILTER.finditer(line):
            if not MACHINE_FORMAT.match(line, match.start()):
                found.append(f"{number}: {match.group(0)}")
        for variable in VARIABLE.finditer(line):
            parts = [part.strip() for part in variable["expr"].split("|")]
            subject = parts[0].split(".")[-1]
            filters = {part.split(":")[0] for part in parts[1:]}
            if MOMENT_NAME.search(subject) and not filters & (SHOWN_WITH | {"date"}):
                found.append(f"{number}: {variable.group(0)}")
    return found


def test_the_scan_catches_the_ways_a_date_slips_through():
    assert offending_lines('{{ job.created_at|date:"DATETIME_FORMAT" }}')
    assert offending_lines("{{ note.created_at|date:'M j, Y, H:i' }}")
    assert offending_lines("{{ job.finished_at }}")
    assert offending_lines("{{ task.due_at|default:'' }}")
    assert offending_lines("{{ event.when|time:'H:i' }}")
    assert offending_lines("{{ m.created_at|date }}")
    assert not offending_lines("<time datetime=\"{{ job.created_at|date:'c' }}\">")
    assert not offending_lines("{{ job.created_at|datetime }} {{ inv.expires_at|day }}")
    assert not offending_lines("{{ job.created_at|naturaltime }}")
    assert not offending_lines("{{ range.from_value }} {{ update_url }}")


def test_templates_print_dates_through_the_shared_filter():
    offenders = []
    for file in sorted(TEMPLATES_DIR.rglob("*.html")):
        name = str(file.relative_to(TEMPLATES_DIR))
        for line in offending_lines(file.read_text(encoding="utf-8")):
            offenders.append(f"{name}:{line}")
    assert offenders == [], "use {% load crm_tags %} and |datetime or |day:\n" + "\n".join(
        offenders
    )


def test_one_format_for_moments_and_days():
    moment = dt.datetime(2026, 12, 3, 3, 31, tzinfo=UTC)
    with timezone.override(ZoneInfo("UTC")):
        assert format_datetime(moment) == "Dec 3, 2026, 03:31"
        assert format_day(moment) == "Dec 3, 2026"
        assert format_day(dt.date(2026, 12, 3)) == "Dec 3, 2026"
        assert format_datetime(None) == ""


def test_djangos_own_formats_agree_so_nothing_prints_a_m_or_dots():
    moment = dt.datetime(2026, 12, 3, 3, 37, tzinfo=UTC)
    with timezone.override(ZoneInfo("UTC")):
        text = Template(
            '{% load crm_tags %}{{ m }}|{{ m|date:"DATETIME_FORMAT" }}|{{ m|datetime }}'
        ).render(Context({"m": moment}))
    assert text == "Dec 3, 2026, 03:37|Dec 3, 2026, 03:37|Dec 3, 2026, 03:37"
    assert "a.m." not in text and "Dec." not in text


def test_the_filter_shows_the_active_time_zone():
    moment = dt.datetime(2026, 3, 10, 3, 30, tzinfo=UTC)
    with timezone.override(ZoneInfo("America/New_York")):
        rendered = Template("{% load crm_tags %}{{ m|datetime }} · {{ m|day }}").render(
            Context({"m": moment})
        )
    assert rendered == "Mar 9, 2026, 23:30 · Mar 9, 2026"


def test_every_page_runs_in_the_organizations_time_zone(org, client_as):
    """Pages outside the contacts app (members, here) show moments in the org's zone too."""
    org.timezone = "Asia/Tokyo"
    org.save(update_fields=["timezone"])
    owner = member(org, "owner")
    joined = dt.datetime(2026, 3, 9, 20, 0, tzinfo=UTC)  # Mar 10 in Tokyo
    type(owner).objects.filter(pk=owner.pk).update(created_at=joined)

    page = client_as(owner).get(reverse("crm:members")).content.decode()

    assert "Mar 10, 2026" in page
