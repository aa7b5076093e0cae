# ruff: noqa: S608 -- SQL here is assembled only from this module's own column names.
"""The import itself: rows are converted in Python (in worker processes for big files),
copied into a temporary staging table with COPY, and merged into contacts with a handful of
set-based statements per chunk, in parallel lanes on their own connections.

Each lane's part of a chunk is one transaction that also lists the part as done on the job,
so a job whose worker died resumes with exactly the missing parts and nothing is written
twice.
"""

from __future__ import annotations

import contextlib
import gc
import json
import logging
import multiprocessing
import multiprocessing.util
import queue
import signal
import threading
import time
from dataclasses import dataclass, field

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import OperationalError, connection, transaction
from psycopg.errors import DeadlockDetected

from crm.models import Membership
from crm.services.audit import Actor, audit, emit_event

from ..models import Contact, CustomFieldDefinition
from .convert import COMPANY_TARGETS, ChunkConverter, Converted, copy_parts, warning_text
from .mapper import COMBINED_TARGETS, CUSTOM
from .models import ImportJob, ImportRowError
from .reader import job_records
from .selectors import owners_for_rows
from .spread import plan_spread
from .values import RowConverter, dumps

log = logging.getLogger(__name__)

CHUNK_ROWS = 20_000
FIRST_CHUNK_ROWS = 2_000

# Staging columns that map 1:1 onto contact columns, with their SQL types.
CONTACT_COLUMNS: dict[str, str] = {
    "first_name": "text",
    "last_name": "text",
    "email": "text",
    "phone": "text",
    "mobile": "text",
    "job_title": "text",
    "department": "text",
    "deal_role": "text",
    "status": "text",
    "lifecycle_stage": "text",
    "lead_score": "smallint",
    "source": "text",
    "owner_id": "bigint",
    "street": "text",
    "city": "text",
    "region": "text",
    "postal_code": "text",
    "country": "text",
    "language": "text",
    "timezone": "text",
    "linkedin_url": "text",
    "twitter_handle": "text",
    "consent_status": "text",
    "consent_type": "text",
    "consent_date": "timestamptz",
    "consent_source": "text",
    "gdpr_basis": "text",
    "consent_email": "boolean",
    "consent_sms": "boolean",
    "consent_phone": "boolean",
    "consent_whatsapp": "boolean",
    "consent_data_processing": "boolean",
    # A number kept as typed (see convert.py) is flagged; the flag follows its number.
    "phone_unverified": "boolean",
    "mobile_unverified": "boolean",
}
NULLABLE = {
    "owner_id",
    "consent_date",
    "consent_email",
    "consent_sms",
    "consent_phone",
    "consent_whatsapp",
    "consent_data_processing",
}
# Staged whatever the mapping: the keys rows are matched on (a phone number kept as typed
# is never one: its flag says so).
MATCH_COLUMNS = ("email", "phone", "mobile", "phone_unverified", "mobile_unverified")
# The phone number a row is matched by: only a verified one.
_ROW_PHONE = (
    "coalesce(CASE WHEN s2.phone_unverified IS NOT TRUE THEN s2.phone END,"
    " CASE WHEN s2.mobile_unverified IS NOT TRUE THEN s2.mobile END)"
)
DEADLOCK_ATTEMPTS = 4
WORKER_TIMEOUT = 300  # seconds a converting worker may take for one slice (~2 s is usual)
# pg_advisory_xact_lock(COMPANY_LOCK, org id) serialises creating companies per org.
COMPANY_LOCK = 0x494D50
# The staged rows a chunk wrote: created (they keep their new id) or updated (marked).
WRITTEN = "(s.new_id IS NOT NULL OR s.updated)"
# Adds a part's {kind: count} (the next parameter, jsonb) to the job's, in one statement.
ADD_WARNING_COUNTS = """warning_counts = (
    SELECT coalesce(jsonb_object_agg(k, n), '{}'::jsonb)
      FROM (SELECT k, sum(n)::bigint AS n
              FROM (SELECT key AS k, value::bigint AS n FROM jsonb_each_text(warning_counts)
                    UNION ALL
                    SELECT key, value::bigint FROM jsonb_each_text(%s::jsonb)) a
             GROUP BY k) b),"""


def field_for_column(column: str) -> str:
    return column[:-3] if column.endswith("_id") else column


@dataclass
class ChunkResult:
    created: int = 0
    updated: int = 0
    skipped: int = 0
    errors: int = 0  # rows refused
    warnings: int = 0  # rows written with warnings
    warning_counts: dict = field(default_factory=dict)  # {kind: values}


@dataclass
class Plan:
    """What this job writes, fixed before the first row."""

    converter: RowConverter
    mapped: set[str]
    defaults: dict
    default_tags: list[str]
    custom_keys: list[str] = field(default_factory=list)
    # The staging table's columns after row_number, with their SQL types: the mapped
    # contact columns, the match keys, and what the mapping feeds besides.
    stage_types: dict[str, str] = field(default_factory=dict)

    def staged(self, column: str) -> bool:
        return column in self.stage_types


def _stage_types(converter: RowConverter, mapped: set[str], default_tags: list) -> dict:
    targets = converter.mapped_fields
    types = {c: t for c, t in CONTACT_COLUMNS.items() if c in mapped or c in MATCH_COLUMNS}
    types["external_id"] = "text"
    if any(t.startswith("custom.") for t in targets):
        types["custom"] = "jsonb"
    if "email" in targets or "other_emails" in targets:
        types["other_emails"] = "jsonb"
    if "tags" in targets or default_tags:
        types["tags"] = "text[]"
    if COMPANY_TARGETS & targets or "company_department" in targets:
        types.update(company_name="text", company_domain="text", company_key="text")
    if "note" in targets:
        types["note"] = "text"
    return types


class ImportCancelled(Exception):
    pass


def _model_default(name: str):
    value = Contact._meta.get_field(field_for_column(name)).get_default()
    return "" if value is None and name not in NULLABLE else value


def build_plan(job: ImportJob) -> Plan:
    org = job.org
    # An owner column may name only the members the import's creator may give contacts to.
    members = dict(owners_for_rows(job).values_list("user__email", "user_id"))
    custom_for_columns = {}
    for header, target in job.mapping.items():
        if target == CUSTOM:
            custom_for_columns[header] = _custom_key_for(job, header)
    converter = RowConverter(
        org=org,
        headers=job.headers,
        mapping=job.mapping,
        members_by_email=members,
        custom_keys_for_columns=custom_for_columns,
        value_map=job.value_map,
        default_owner_id=int(job.defaults["owner"]) if (job.defaults or {}).get("owner") else None,
    )
    mapped = {("owner_id" if t == "owner" else t) for t in converter.mapped_fields}
    if "full_name" in mapped:
        mapped |= {"first_name", "last_name"}
    for target, fields in COMBINED_TARGETS.items():
        if target in mapped:
            mapped |= set(fields)
    if plan_spread(job.headers, converter.plan).phone_types:
        mapped |= {"phone", "mobile"}  # a typed column's row says which of the two
    mapped |= {f"{t}_unverified" for t in ("phone", "mobile") if t in mapped}
    defaults = {}
    d = job.defaults or {}
    if d.get("owner"):
        defaults["owner_id"] = int(d["owner"])
    for key in ("source", "consent_status", "consent_type"):
        if d.get(key):
            defaults[key] = d[key]
    defaults.setdefault("consent_type", Contact.ConsentType.IMPORTED)
    defaults.setdefault("lifecycle_stage", Contact.Stage.STAGE)
    default_tags = [t.strip()[:60] for t in (d.get("tags") or []) if t.strip()]
    return Plan(
        converter=converter,
        mapped=mapped,
        defaults=defaults,
        default_tags=default_tags,
        custom_keys=sorted(
            t[len("custom.") :] for t in converter.mapped_fields if t.startswith("custom.")
        ),
        stage_types=_stage_types(converter, mapped, default_tags),
    )


def _writable_owner_ids(job: ImportJob) -> list[int] | None:
    """The owners whose contacts the job's author may change: None for all (scope "all", or
    no author, as for a system import), else their own id and, for a team scope, their
    teammates'. Mirrors Policy.owns_in_scope, set-based."""
    from crm.permissions import Policy

    if job.created_by_id is None:
        return None
    membership = (
        Membership.objects.for_org(job.org)
        .active()
        .filter(user_id=job.created_by_id)
        .select_related("role")
        .first()
    )
    policy = Policy(membership)
    scope = policy.scope("contacts") if policy.can_access("contacts") else "own"
    if scope == "all" and membership is not None:
        return None
    ids = {job.created_by_id}
    if scope == "team" and membership is not None and membership.team_id:
        ids.update(
            Membership.objects.filter(org_id=job.org_id, team_id=membership.team_id).values_list(
                "user_id", flat=True
            )
        )
    return sorted(ids)


def _custom_key_for(job: ImportJob, header: str) -> str:
    """The custom field a "Store as custom field" column goes to (created at mapping time)."""
    key = (job.defaults or {}).get("custom_keys", {}).get(header)
    if not key:
        raise ValidationError(f"Column “{header}” has no custom field yet; map it again.")
    if (
        not CustomFieldDefinition.objects.for_org(job.org)
        .filter(entity="contact", key=key, is_active=True)
        .exists()
    ):
        raise ValidationError(f"The custom field for “{header}” no longer exists.")
    return key


_worker_importer = None


@contextlib.contextmanager
def _children_allowed():
    """Lets this process fork the conversion workers, wherever it runs.

    Celery's prefork pool runs tasks in daemonic processes, and multiprocessing refuses to
    start children from those (it could not stop them if the daemon were killed). Ours are
    stopped however the import ends, and a worker whose parent died reads end-of-file on its
    task pipe and exits, so the refusal is lifted while the pool starts its workers.

    multiprocessing also runs, in every child it forks, the clean-ups other libraries
    registered for "after fork": kombu's closes each pooled broker connection, and when one
    of them was left waiting for a reply (a timed-out control ping, say) the child blocks
    reading that socket forever. The converting workers use no broker, database or other
    connection, so they are forked with none of those hooks."""
    process = multiprocessing.current_process()
    daemonic = process._config.get("daemon", False)
    process._config["daemon"] = False
    registry = multiprocessing.util._afterfork_registry
    hooks = dict(registry)
    registry.clear()
    try:
        yield
    finally:
        registry.update(hooks)
        process._config["daemon"] = daemonic


def _init_worker(importer) -> None:
    # Forked from a Celery worker, this process would keep its signal handlers (billiard
    # turns SIGTERM into SystemExit wherever the code happens to be); stopping the pool
    # must simply end it, and Ctrl+C in a terminal is the parent's to handle.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    global _worker_importer
    _worker_importer = importer


def _convert_in_worker(rows, lanes):
    return _worker_importer.convert_slice(rows, lanes)


class ChunkCells:
    """The cells of a chunk's records by row number (a chunk's numbers are consecutive):
    what the error report shows of a row the merge refuses."""

    __slots__ = ("first", "records")

    def __init__(self, records: list):
        self.first = records[0][0] if records else 0
        self.records = records

    def __call__(self, number: int) -> list[str]:
        return self.records[number - self.first][1]


@dataclass
class Part:
    """One merge lane's share of one chunk, converted: the COPY text of its good rows; the
    rows refused while converting and the chunk's blank records (lane 0 takes those);
    how many of the chunk's records it accounts for; and the chunk's cells."""

    copy: bytes
    rows: int
    bad: list[tuple[int, str]]
    records: int
    cells: ChunkCells
    tags: set[str] = field(default_factory=set)  # its rows' tags, lower-cased
    number: int = -1  # chunk * lanes + lane, set when it is committed
    # (row number, [(column, kind, cell, message), ...]) of its rows with warnings
    warnings: list[tuple[int, list]] = field(default_factory=list)


def _without_nul(cells: str, message: str, fields: str) -> tuple[str, str, str]:
    """PostgreSQL's text and jsonb hold no NUL character: the report drops them."""

    def clean(value):
        if isinstance(value, str):
            return value.replace("\x00", "")
        if isinstance(value, list):
            return [clean(v) for v in value]
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items()}
        return value

    return (
        dumps(clean(json.loads(cells))),
        message.replace("\x00", ""),
        dumps(clean(json.loads(fields))),
    )


def _warning_fields(found: list) -> list[dict]:
    return [
        {"column": column, "kind": kind, "value": value, "message": message}
        for column, kind, value, message in found
    ]


def _written_warnings(cur, warnings: list, written_sql: str) -> list:
    """The warnings of the staged rows `written_sql` selects (those written, or for the
    preview those that would be): a refused or skipped row brought nothing in."""
    if not warnings:
        return []
    cur.execute(
        f"SELECT s.row_number FROM imp_stage s WHERE ({written_sql}) AND s.row_number = ANY(%s)",
        [[number for number, _ in warnings]],
    )
    written = {number for (number,) in cur.fetchall()}
    return [(number, found) for number, found in warnings if number in written]


def _count_warnings(result: ChunkResult, warnings: list) -> None:
    counts: dict[str, int] = {}
    for _, found in warnings:
        for entry in found:
            counts[entry[1]] = counts.get(entry[1], 0) + 1
    result.warnings = len(warnings)
    result.warning_counts = counts


def _put(target: queue.Queue, item, stop: threading.Event) -> bool:
    """Put `item`, unless `stop` is set while waiting for room."""
    while not stop.is_set():
        try:
            target.put(item, timeout=0.5)
            return True
        except queue.Full:
            continue
    return False


class Importer:
    """Runs (or dry-runs, for the preview) one ImportJob."""

    def __init__(self, job: ImportJob, *, actor_user=None, chunk_rows: int = CHUNK_ROWS):
        self.job = job
        self.org = job.org
        self.actor_user = actor_user or job.created_by
        self.chunk_rows = chunk_rows
        self.plan = build_plan(job)
        self.width = len(job.headers)
        self.writable_owner_ids = _writable_owner_ids(job)
        self.lanes = 1
        self.done: set[int] = set()
        self.chunks = ChunkConverter(
            self.plan.converter,
            stage_fields=list(self.plan.stage_types),
            default_tags=self.plan.default_tags,
            lanes=1,
        )
        self._sequence = None
        self._counting = threading.Lock()
        # Per merging thread: tags known to be committed, and those its open part saw.
        self._local = threading.local()

    # Reading -----------------------------------------------------------------------------
    def records(self, fileobj):
        """(row_number, cells) for every record; row numbers are the spreadsheet's (the
        header is row header_row + 1)."""
        rows = job_records(self.job, fileobj)
        try:
            yield from enumerate(rows, start=self.job.header_row + 2)
        finally:
            rows.close()  # the reader lets go of the file before the caller closes it

    # Converting --------------------------------------------------------------------------
    def convert_slice(self, raw, lanes: list[int]) -> tuple[dict, list, int, set, dict]:
        """Convert records and write them out as COPY text per merge lane: ({lane: (text,
        rows)} for the lanes asked for, the refused rows, the number of good rows, their
        tags, and {lane: warnings} of good rows). A row's lane follows from its match key
        (email, else phone, else external id), so two rows that could be one contact
        always share a lane."""
        converted = self.chunks.convert(raw)
        copies = copy_parts(converted, self.plan.stage_types, lanes)
        warnings = converted.warnings_by_lane(lanes)
        return copies, converted.bad, len(converted.numbers), converted.tag_names, warnings

    def _parts(self, raw, slices: list[tuple], lanes: list[int]) -> dict[int, Part]:
        """The parts of one chunk from its converted slices (consecutive, in row order)."""
        cells = ChunkCells(raw)
        bad = [row for _, refused, _, _, _ in slices for row in refused]
        good = sum(count for _, _, count, _, _ in slices)
        tags = set().union(*(names for _, _, _, names, _ in slices))
        parts = {}
        for lane in lanes:
            rows = sum(copies[lane][1] for copies, *_ in slices)
            text = b"".join(copies[lane][0] for copies, *_ in slices)
            warnings = [row for *_, by_lane in slices for row in by_lane[lane]]
            if lane == 0:
                # Refused rows, blank lines and footers are accounted for by lane 0.
                parts[lane] = Part(text, rows, bad, rows + len(raw) - good, cells, tags)
            else:
                parts[lane] = Part(text, rows, [], rows, cells, tags)
            parts[lane].warnings = warnings
        return parts

    def convert_parts(self, raw, lanes: list[int]) -> dict[int, Part]:
        return self._parts(raw, [self.convert_slice(raw, lanes)], lanes)

    def dry_run(self, raw) -> tuple[Converted, ChunkResult]:
        """The preview: `raw` records converted and merged as for real, inside the caller's
        transaction, which must be rolled back."""
        converted = self.chunks.convert(raw)
        text, rows = copy_parts(converted, self.plan.stage_types, [0])[0]
        part = Part(text, rows, converted.bad, len(raw), ChunkCells(raw), converted.tag_names)
        part.warnings = converted.warnings
        return converted, self.merge(part, dry_run=True)

    # Running -----------------------------------------------------------------------------
    def run(self, fileobj) -> None:
        """Import every part of the file that is not committed yet.

        Chunks are numbered from the top of the file and each is split into merge lanes
        (see convert_slice); each part is merged in one transaction that also lists it as
        done on the job, so a job whose worker died resumes with exactly the missing parts.

        Converting rows (phone numbers, emails, dates, custom fields) and writing their
        COPY text is pure Python and runs beside the database work: in worker processes
        when the job has more than one chunk, else in a thread. The lanes merge in parallel,
        each on its own connection (PostgreSQL runs one statement on one core); inside an
        outer transaction, where a second connection could not see this one's rows, they
        take turns. At most a few chunks are in flight, which bounds memory whatever the
        file size."""
        job = self.job
        if not job.chunk_rows:
            lanes = 1 if connection.in_atomic_block else settings.IMPORT_MERGE_LANES
            job.chunk_rows, job.merge_lanes = self.chunk_rows, max(1, lanes)
            ImportJob.objects.filter(pk=job.pk).update(
                chunk_rows=job.chunk_rows, merge_lanes=job.merge_lanes
            )
        self.chunk_rows, self.lanes = job.chunk_rows, job.merge_lanes
        self.chunks.lanes = self.lanes
        self.done = set(job.chunks_done)
        several = job.total_rows - job.rows_done > self.chunk_rows
        processes = settings.IMPORT_CONVERT_PROCESSES
        with contextlib.ExitStack() as stack:
            if processes > 0 and several:
                pool = stack.enter_context(self._conversion_pool(processes))
                converted = self._converted_in_processes(pool, fileobj, processes)
            else:
                converted = self._converted_in_thread(fileobj)
            stack.callback(converted.close)
            if self.lanes > 1 and several and not connection.in_atomic_block:
                self._merge_in_lanes(converted)
            else:
                for number, parts in converted:
                    for lane, part in parts.items():
                        self._commit_part(number, lane, part)
                    self._check_cancel()

    def _chunks(self, fileobj):
        """(number, records, lanes still to do) for every chunk with work left. The first
        chunk is small so the database has work while the first full one converts."""
        number, size, chunk = 0, min(FIRST_CHUNK_ROWS, self.chunk_rows), []
        for record in self.records(fileobj):
            chunk.append(record)
            if len(chunk) >= size:
                yield from self._with_lanes_to_do(number, chunk)
                number, size, chunk = number + 1, self.chunk_rows, []
        if chunk:
            yield from self._with_lanes_to_do(number, chunk)

    def _with_lanes_to_do(self, number: int, chunk: list):
        lanes = [lane for lane in range(self.lanes) if number * self.lanes + lane not in self.done]
        if lanes:
            yield number, chunk, lanes

    def _check_cancel(self) -> None:
        if ImportJob.objects.filter(pk=self.job.pk, cancel_requested=True).exists():
            raise ImportCancelled

    @contextlib.contextmanager
    def _conversion_pool(self, processes: int):
        """Forked workers that inherit this importer (mapping, custom fields, members) as it
        is and never touch the database connection they inherit with it. Started before any
        thread of the import, since forking beside running threads can copy a held lock."""
        context = multiprocessing.get_context("fork")
        # Objects the collector never visits stay shared with the workers instead of being
        # copied into each of them on its first collection.
        gc.freeze()
        try:
            with _children_allowed():
                pool = context.Pool(processes, initializer=_init_worker, initargs=(self,))
        finally:
            gc.unfreeze()
        try:
            yield pool
        except BaseException:
            pool.terminate()
            pool.join()
            raise
        pool.close()
        pool.join()

    def _converted_in_processes(self, pool, fileobj, processes: int):
        """(number, parts) per chunk, converted by the pool. Each chunk is cut into one slice
        per worker, so a chunk converts in a fraction of the time the lanes take to merge
        one, and only one chunk is in the pool at a time."""

        def submit(item):
            number, raw, lanes = item
            step = -(-len(raw) // processes)
            slices = [raw[i : i + step] for i in range(0, len(raw), step)]
            results = [pool.apply_async(_convert_in_worker, (s, lanes)) for s in slices]
            return number, raw, lanes, results

        chunks = self._chunks(fileobj)
        try:
            pending = submit(item) if (item := next(chunks, None)) is not None else None
            while pending is not None:
                number, raw, lanes, results = pending
                try:
                    slices = [result.get(timeout=WORKER_TIMEOUT) for result in results]
                except multiprocessing.TimeoutError:
                    # A worker that died (killed for memory, say) never answers.
                    raise RuntimeError(
                        f"A converting worker stopped answering within {WORKER_TIMEOUT} s."
                    ) from None
                # The next chunk goes to the pool once the lanes have taken this one (the
                # consumer resumes us then): three chunks in flight, not four.
                yield number, self._parts(raw, slices, lanes)
                pending = submit(item) if (item := next(chunks, None)) is not None else None
        finally:
            chunks.close()  # its reader lets go of the file before the file is closed

    def _converted_in_thread(self, fileobj):
        """(number, parts) per chunk, converted by a thread one chunk ahead."""
        chunks: queue.Queue = queue.Queue(maxsize=1)
        stop = threading.Event()

        def produce():
            records = self._chunks(fileobj)
            try:
                for number, raw, lanes in records:
                    if not _put(chunks, (number, self.convert_parts(raw, lanes)), stop):
                        return
                _put(chunks, None, stop)
            except BaseException as exc:  # handed to the consumer, which re-raises it
                _put(chunks, exc, stop)
            finally:
                records.close()

        reader = threading.Thread(target=produce, name=f"import-{self.job.pk}-reader", daemon=True)
        reader.start()
        try:
            while (item := chunks.get()) is not None:
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            stop.set()
            reader.join(timeout=30)

    def _merge_in_lanes(self, converted) -> None:
        """Hand each chunk's parts to one thread per lane; each thread merges its parts in
        order on its own connection. The first failure stops the others after their
        current part."""
        queues = [queue.Queue(maxsize=1) for _ in range(self.lanes)]
        stop = threading.Event()
        failures: list[BaseException] = []

        def merge_lane(lane: int) -> None:
            try:
                while not stop.is_set():
                    try:
                        item = queues[lane].get(timeout=0.5)
                    except queue.Empty:
                        continue
                    if item is None:
                        return
                    number, part = item
                    self._commit_part(number, lane, part)
            except BaseException as exc:  # re-raised by the dispatching thread
                failures.append(exc)
                stop.set()
            finally:
                connection.close()  # this thread's own connection

        threads = [
            threading.Thread(target=merge_lane, args=(lane,), name=f"import-lane-{lane}")
            for lane in range(self.lanes)
        ]
        for thread in threads:
            thread.start()
        try:
            for number, parts in converted:
                for lane, part in parts.items():
                    _put(queues[lane], (number, part), stop)
                if stop.is_set():
                    break
                self._check_cancel()
        except BaseException:
            stop.set()
            raise
        finally:
            for lane_queue in queues:
                _put(lane_queue, None, stop)
            for thread in threads:
                thread.join()
        if failures:
            raise failures[0]

    def _commit_part(self, number: int, lane: int, part: Part) -> None:
        """Merge one part in one transaction that also marks it done. Lanes never share a
        match key, but two of them can still meet on a contact matched by different keys
        or on a new company; PostgreSQL then ends one transaction as a deadlock, which is
        retried from the start."""
        index = part.number = number * self.lanes + lane
        for attempt in range(1, DEADLOCK_ATTEMPTS + 1):
            try:
                with transaction.atomic():
                    result = self.merge(part, dry_run=False)
                    with connection.cursor() as cur:
                        # Counts are added in the part's own transaction, in SQL: lanes
                        # commit concurrently, and a resumed job redoes only missing parts.
                        cur.execute(
                            f"""
                            UPDATE contacts_importjob
                               SET rows_done = rows_done + %s,
                                   created_count = created_count + %s,
                                   updated_count = updated_count + %s,
                                   skipped_count = skipped_count + %s,
                                   error_count = error_count + %s,
                                   warning_count = warning_count + %s,
                                   {ADD_WARNING_COUNTS if result.warning_counts else ""}
                                   chunks_done = array_append(chunks_done, %s),
                                   heartbeat_at = now(),
                                   takeovers = 0
                             WHERE id = %s
                            """,
                            [
                                part.records,
                                result.created,
                                result.updated,
                                result.skipped,
                                result.errors,
                                result.warnings,
                                *([dumps(result.warning_counts)] if result.warning_counts else []),
                                index,
                                self.job.pk,
                            ],
                        )
                break
            except OperationalError as exc:
                retry = isinstance(exc.__cause__, DeadlockDetected)
                if not retry or attempt == DEADLOCK_ATTEMPTS or connection.in_atomic_block:
                    raise
                log.warning("import %s part %s: deadlock, attempt %s", self.job.pk, index, attempt)
                time.sleep(0.2 * attempt)
        self._known_tags().update(self._local.tags_seen)
        with self._counting:
            job = self.job
            job.rows_done += part.records
            job.created_count += result.created
            job.updated_count += result.updated
            job.skipped_count += result.skipped
            job.error_count += result.errors
            job.warning_count += result.warnings
            counts = dict(job.warning_counts or {})
            for kind, number in result.warning_counts.items():
                counts[kind] = counts.get(kind, 0) + number
            job.warning_counts = counts
            job.chunks_done.append(index)

    def merge(self, part: Part, *, dry_run: bool) -> ChunkResult:
        """Stage, match and (unless dry_run) write one part. Must run inside a transaction."""
        result = ChunkResult()
        self._local.tags_seen = set()
        errors = list(part.bad)
        with connection.cursor() as cur:
            self._stage(cur, part.copy)
            self._match(cur, lock=not dry_run)
            cur.execute("SELECT row_number, error FROM imp_stage WHERE error IS NOT NULL")
            errors += cur.fetchall()
            policy = self.job.policy
            cur.execute(
                """
                SELECT count(*) FILTER (WHERE contact_id IS NULL),
                       count(*) FILTER (WHERE contact_id IS NOT NULL)
                FROM imp_stage WHERE error IS NULL
                """
            )
            new_rows, matched_rows = cur.fetchone()
            if policy == ImportJob.Policy.CREATE:
                result.skipped += matched_rows
                matched_rows = 0
            elif policy == ImportJob.Policy.UPDATE:
                result.skipped += new_rows
                new_rows = 0
            result.errors = len(errors)
            # new_id marks the rows this chunk creates from here on.
            cur.execute(
                "UPDATE imp_stage SET new_id = NULL"
                + (
                    ""
                    if policy == ImportJob.Policy.UPDATE
                    else " WHERE contact_id IS NOT NULL OR error IS NOT NULL"
                )
            )
            if dry_run:
                result.created = new_rows
                cur.execute(
                    "SELECT row_number FROM imp_stage WHERE error IS NULL AND contact_id IS NULL"
                )
                self.preview_unmatched = {number for (number,) in cur.fetchall()}
                self.preview_matched = self._changing_rows(cur) if matched_rows else set()
                result.updated = len(self.preview_matched)
                result.skipped += matched_rows - result.updated
                would_write = "s.updated OR (s.error IS NULL AND s.contact_id IS NULL)"
                if policy == ImportJob.Policy.UPDATE:
                    would_write = "s.updated"
                if self.preview_matched:
                    cur.execute(
                        "UPDATE imp_stage SET updated = true WHERE row_number = ANY(%s)",
                        [sorted(self.preview_matched)],
                    )
                warnings = _written_warnings(cur, part.warnings, would_write)
                cur.execute("DROP TABLE IF EXISTS imp_co")
                cur.execute("DROP TABLE imp_stage")
                # Rows kept with warnings: the preview shows them per field, next to what
                # lands.
                self.preview_warnings = {n: _warning_fields(found) for n, found in warnings}
                self.preview_kept = set(self.preview_warnings)
                self.preview_errors = errors
                result.errors = len(errors)
                _count_warnings(result, warnings)
                return result
            self._companies(cur, self._written_rows_sql(policy))
            if policy != ImportJob.Policy.UPDATE:
                result.created, raced = self._insert_new(cur, expected=new_rows)
                errors += raced
                result.errors = len(errors)
            if policy != ImportJob.Policy.CREATE:
                changed = self._update_matched(cur)
                result.updated = changed
                result.skipped += matched_rows - changed
            self._tags(cur, part.tags)
            self._timeline_and_audit(cur)
            self._record_part(cur, part.number)
            warnings = _written_warnings(cur, part.warnings, WRITTEN)
            cur.execute("DROP TABLE IF EXISTS imp_co")
            cur.execute("DROP TABLE imp_stage")
        result.errors = len(errors)
        _count_warnings(result, warnings)
        # Refused rows and rows written with warnings go to the report: the file's cells,
        # why, and per field what was left out, cut or kept as typed. Uploading the fixed
        # report fills the values in.
        reported = [(number, part.cells(number), msg, False, "[]") for number, msg in errors]
        reported += [
            (number, part.cells(number), warning_text(found), True, _warning_fields(found))
            for number, found in warnings
        ]
        if reported:
            self._report(reported)
        return result

    def _report(self, reported: list) -> None:
        """The report's rows, with COPY: a tenth of a million-row file may carry warnings,
        and building a model instance for each would cost more than the rows themselves."""
        reported.sort(key=lambda row: row[0])
        table = ImportRowError._meta.db_table
        job_id = self.job.pk
        with (
            connection.cursor() as cur,
            cur.copy(
                f'COPY {table} (job_id, row_number, "values", message, is_warning, fields)'
                " FROM STDIN"
            ) as copy,
        ):
            for number, cells, message, is_warning, fields in reported:
                cells, fields = dumps(cells), fields if type(fields) is str else dumps(fields)
                if "\\u0000" in cells or "\\u0000" in fields or "\x00" in message:
                    cells, message, fields = _without_nul(cells, message, fields)
                copy.write_row((job_id, number, cells, message, is_warning, fields))

    # The SQL steps -----------------------------------------------------------------------
    def _stage(self, cur, text: bytes) -> None:
        types = self.plan.stage_types
        if self._sequence is None:
            cur.execute("SELECT pg_get_serial_sequence('contacts_contact', 'id')")
            (self._sequence,) = cur.fetchone()
        # Every row gets a contact id as it is copied in; rows that turn out to match an
        # existing contact or fail simply leave a gap in the sequence.
        cur.execute(
            f"""
            CREATE TEMP TABLE imp_stage (
                row_number integer PRIMARY KEY,
                {", ".join(f"{c} {t}" for c, t in types.items())},
                contact_id bigint, new_id bigint DEFAULT nextval(%s::regclass), error text,
                created_here boolean NOT NULL DEFAULT false,
                updated boolean NOT NULL DEFAULT false, added_tags jsonb
            ) ON COMMIT DROP
            """,
            [self._sequence],
        )
        with cur.copy(f"COPY imp_stage (row_number, {', '.join(types)}) FROM STDIN") as copy:
            copy.write(text)
        # Row counts and the match keys are what the planner needs; the other columns'
        # statistics would cost more than the merge itself.
        keys = [c for c in ("email", "phone", "mobile", "external_id", "company_key") if c in types]
        cur.execute(f"ANALYZE imp_stage (row_number, {', '.join(keys)})")

    def _match(self, cur, *, lock: bool) -> None:
        org_id, job_id = self.org.id, self.job.id
        # The same email twice in the chunk: the first row wins, the others are errors.
        cur.execute(
            """
            UPDATE imp_stage s
               SET error = 'Duplicate inside the file: same email as row ' || d.first_row
              FROM (SELECT row_number,
                           min(row_number) OVER (PARTITION BY email) AS first_row
                      FROM imp_stage WHERE email IS NOT NULL) d
             WHERE d.row_number = s.row_number AND d.first_row <> s.row_number
            """
        )
        # Each row looks its contact up with its own index probe (a LATERAL ... LIMIT 1 is
        # planned per row): the planner's estimates for the staging table and for a table
        # an import is growing fast are too rough to trust it with joining them, and the
        # probes cost the same whatever the org's size.
        # "ORDER BY c.id + 0" (the oldest contact wins) keeps the primary key out of the
        # plan: ordered by the key itself, the planner may walk the whole org's contacts in
        # id order looking for a phone that no contact has, once per row. "c.phone <> ''"
        # says what is true anyway, and keeps statistics taken while every phone was still
        # empty from making the planner expect the whole org to match.
        lookups = [
            # By email.
            (
                "s2.email IS NOT NULL",
                "NOT c.is_archived AND c.email <> '' AND lower(c.email) = s2.email",
            ),
            # Without an email, a phone number (then an external id) identifies the contact;
            # one kept as typed never does, on either side (it is not E.164 and may be junk
            # that many contacts share).
            (
                f"s2.email IS NULL AND {_ROW_PHONE} IS NOT NULL",
                f"NOT c.is_archived AND c.phone <> '' AND c.phone = {_ROW_PHONE}"
                " AND NOT c.phone_unverified ORDER BY c.id + 0",
            ),
            (
                "s2.contact_id IS NULL AND s2.email IS NULL AND s2.external_id IS NOT NULL",
                "NOT c.is_archived"
                " AND c.custom @> jsonb_build_object('external_id', s2.external_id)"
                " ORDER BY c.id + 0",
            ),
        ]
        for rows, found in lookups:
            # created_here: a contact this import created in an earlier part.
            cur.execute(
                f"""
                UPDATE imp_stage s SET contact_id = m.id, created_here = m.created_here
                  FROM imp_stage s2
                 CROSS JOIN LATERAL (
                       SELECT c.id, c.import_job_id IS NOT DISTINCT FROM %(job)s AS created_here
                         FROM contacts_contact c
                        WHERE c.org_id = %(org)s AND {found}
                        LIMIT 1) m
                 WHERE s2.row_number = s.row_number AND s2.error IS NULL AND {rows}
                """,
                {"org": org_id, "job": job_id},
            )
        # Which rows matched is new since the staging table was analysed; without it the
        # planner joins the matched rows to contacts by walking the org's whole primary key.
        cur.execute("ANALYZE imp_stage (contact_id, error)")
        if lock and self.job.policy != ImportJob.Policy.CREATE:
            # The contacts this part will update, locked in id order. Another lane that
            # reached one of them first (by another key) commits before this goes on, so
            # the check below sees its record.
            cur.execute(
                """
                SELECT c.id FROM contacts_contact c
                 WHERE c.id IN (SELECT contact_id FROM imp_stage
                                 WHERE contact_id IS NOT NULL AND error IS NULL)
                 ORDER BY c.id
                   FOR UPDATE OF c
                """
            )
        # A contact this import already wrote in an earlier chunk: a duplicate in the file.
        # Contacts it updated have a record; those it created carry the import, and the
        # row that created them is on the part whose id range holds them.
        cur.execute(
            """
            UPDATE imp_stage s
               SET error = 'Duplicate inside the file: same contact as row ' || r.row_number
              FROM imp_stage s2
             CROSS JOIN LATERAL (SELECT r.row_number FROM contacts_importrecord r
                                  WHERE r.contact_id = s2.contact_id AND r.job_id = %s
                                  LIMIT 1) r
             WHERE s2.row_number = s.row_number AND s2.contact_id IS NOT NULL
               AND s2.error IS NULL
            """,
            [job_id],
        )
        cur.execute(
            """
            UPDATE imp_stage s
               SET error = 'Duplicate inside the file: same contact as row '
                           || coalesce((SELECT u.row_number::text
                                          FROM contacts_importpart p
                                         CROSS JOIN LATERAL unnest(p.created_ids, p.created_rows)
                                               AS u(id, row_number)
                                         WHERE p.job_id = %s
                                           AND s.contact_id BETWEEN p.min_id AND p.max_id
                                           AND u.id = s.contact_id
                                         LIMIT 1), 'above')
             WHERE s.created_here AND s.error IS NULL
            """,
            [job_id],
        )
        # Two rows of one chunk matching the same contact (e.g. by phone).
        cur.execute(
            """
            UPDATE imp_stage s
               SET error = 'Duplicate inside the file: same contact as row ' || d.first_row
              FROM (SELECT row_number,
                           min(row_number) OVER (PARTITION BY contact_id) AS first_row
                      FROM imp_stage WHERE contact_id IS NOT NULL AND error IS NULL) d
             WHERE d.row_number = s.row_number AND d.first_row <> s.row_number
            """
        )
        # A member whose role reaches only their own (or their team's) contacts may not
        # change anyone else's through a file either.
        if self.writable_owner_ids is not None and self.job.policy != ImportJob.Policy.CREATE:
            cur.execute(
                """
                UPDATE imp_stage s
                   SET error = 'This contact exists but belongs to someone your role may '
                               || 'not change contacts of.'
                  FROM contacts_contact c
                 WHERE c.id = s.contact_id AND s.contact_id IS NOT NULL AND s.error IS NULL
                   AND (c.owner_id IS NULL OR NOT (c.owner_id = ANY(%s)))
                """,
                [self.writable_owner_ids],
            )

    @staticmethod
    def _written_rows_sql(policy: str) -> str:
        """The staged rows the policy writes (creates and/or updates)."""
        if policy == ImportJob.Policy.CREATE:
            return "s.error IS NULL AND s.contact_id IS NULL"
        if policy == ImportJob.Policy.UPDATE:
            return "s.error IS NULL AND s.contact_id IS NOT NULL"
        return "s.error IS NULL"

    def _companies(self, cur, where: str) -> None:
        """Find or create the company of each staged row (`where`): by domain, else by name.

        Works on the chunk's distinct companies (a few thousand at most), so every lookup
        is an index probe or a hash join, never a scan per row. The result is the temporary
        table imp_co (ckey -> company_id), joined on s.company_key by the writes; files
        without company columns have none."""
        if not self.plan.staged("company_key"):
            return
        org_id = self.org.id
        cur.execute(
            f"""
            CREATE TEMP TABLE imp_co ON COMMIT DROP AS
            SELECT DISTINCT ON (s.company_key)
                   s.company_key AS ckey, s.company_domain AS domain, s.company_name AS name,
                   lower(s.company_name) AS lname, NULL::bigint AS company_id
              FROM imp_stage s
             WHERE {where} AND s.company_key IS NOT NULL
             ORDER BY s.company_key, s.row_number
            """
        )
        cur.execute("ANALYZE imp_co")
        self._find_companies(cur)
        cur.execute("SELECT EXISTS (SELECT 1 FROM imp_co WHERE company_id IS NULL)")
        if not cur.fetchone()[0]:
            cur.execute("ANALYZE imp_co")
            return
        # Creating is serialised per org (another lane may be creating the same company,
        # and names are not unique), so look again once the lock is ours.
        cur.execute("SELECT pg_advisory_xact_lock(%s, %s)", [COMPANY_LOCK, org_id % 2**31])
        self._find_companies(cur)
        cur.execute(
            """
            WITH created AS (
                INSERT INTO contacts_company
                    (org_id, public_id, created_at, updated_at, name, domain, website,
                     industry, size, description, custom, is_archived)
                SELECT %s, gen_random_uuid(), now(), now(), coalesce(k.name, k.domain),
                       coalesce(k.domain, ''),
                       CASE WHEN k.domain IS NULL THEN '' ELSE 'https://' || k.domain END,
                       '', '', '', '{}'::jsonb, false
                  FROM imp_co k WHERE k.company_id IS NULL
                ON CONFLICT DO NOTHING
                RETURNING id, coalesce(nullif(domain, ''), lower(name)) AS key
            )
            UPDATE imp_co k SET company_id = created.id
              FROM created
             WHERE k.company_id IS NULL AND k.ckey = created.key
            """,
            [org_id],
        )
        cur.execute("ANALYZE imp_co")

    def _find_companies(self, cur) -> None:
        """Fill imp_co.company_id from existing companies: by domain, else by name, one
        index probe per company (an org may have hundreds of thousands of them)."""
        org_id = self.org.id
        cur.execute(
            """
            UPDATE imp_co k SET company_id = m.id
              FROM imp_co k2
             CROSS JOIN LATERAL (SELECT c.id FROM contacts_company c
                                  WHERE c.org_id = %s AND c.domain = k2.domain
                                    AND c.domain <> ''
                                  LIMIT 1) m
             WHERE k2.ckey = k.ckey AND k2.domain IS NOT NULL AND k2.company_id IS NULL
            """,
            [org_id],
        )
        cur.execute(
            """
            UPDATE imp_co k SET company_id = m.id
              FROM imp_co k2
             CROSS JOIN LATERAL (SELECT c.id FROM contacts_company c
                                  WHERE c.org_id = %s AND lower(c.name) = k2.lname
                                  ORDER BY c.is_archived, c.id
                                  LIMIT 1) m
             WHERE k2.ckey = k.ckey AND k2.domain IS NULL AND k2.company_id IS NULL
               AND k2.lname IS NOT NULL
            """,
            [org_id],
        )

    def _value_expr(self, col: str, *, for_insert: bool, params: dict) -> str:
        """The SQL for a contact column's new value from the staged row `s` (and `c`);
        defaults travel as query parameters."""
        sql_type = CONTACT_COLUMNS[col]
        if for_insert:
            params[f"d_{col}"] = self.plan.defaults.get(col, _model_default(col))
            default_sql = f"%(d_{col})s::{sql_type}"
            return f"coalesce(s.{col}, {default_sql})" if col in self.plan.mapped else default_sql
        if self.job.blank_policy == ImportJob.BlankPolicy.OVERWRITE:
            params[f"b_{col}"] = None if col in NULLABLE else _model_default(col)
            return f"coalesce(s.{col}, %(b_{col})s::{sql_type})"
        return f"coalesce(s.{col}, c.{col})"

    def _insert_new(self, cur, *, expected: int) -> tuple[int, list]:
        """Insert the new rows; returns how many, and (row, message) for rows that lost a
        race with a contact created meanwhile."""
        plan = self.plan
        cols = list(CONTACT_COLUMNS)
        params = {"org": self.org.id, "job": self.job.id}
        values = [self._value_expr(c, for_insert=True, params=params) for c in cols]
        custom = "'{}'::jsonb"
        if plan.staged("custom"):
            custom = "coalesce(jsonb_strip_nulls(s.custom), '{}'::jsonb)"
        cur.execute(
            f"""
            INSERT INTO contacts_contact
                (id, org_id, public_id, created_at, updated_at, import_job_id, company_id,
                 other_emails, custom, is_archived, {", ".join(cols)})
            SELECT s.new_id, %(org)s, gen_random_uuid(), now(), now(), %(job)s,
                   {"k.company_id" if plan.staged("company_key") else "NULL"},
                   {"coalesce(s.other_emails, '[]')" if plan.staged("other_emails") else "'[]'"},
                   {custom}
                   || CASE WHEN s.external_id IS NULL THEN '{{}}'::jsonb
                           ELSE jsonb_build_object('external_id', s.external_id) END,
                   false, {", ".join(values)}
              FROM imp_stage s {self._company_join()}
             WHERE s.new_id IS NOT NULL
            ON CONFLICT (org_id, lower(email)) WHERE NOT is_archived AND NOT email = ''
            DO NOTHING
            """,
            params,
        )
        inserted = cur.rowcount
        # Rows that lost a race with a contact created meanwhile are reported, not lost.
        raced = []
        if inserted < expected:
            cur.execute(
                """
                UPDATE imp_stage s SET error = 'Another contact with this email was created '
                       || 'while the import ran; import this row again.', new_id = NULL
                 WHERE s.new_id IS NOT NULL
                   AND NOT EXISTS (SELECT 1 FROM contacts_contact c WHERE c.id = s.new_id)
                RETURNING s.row_number, s.error
                """
            )
            raced = cur.fetchall()
        return inserted, raced

    def _company_join(self) -> str:
        if not self.plan.staged("company_key"):
            return ""
        return "LEFT JOIN imp_co k ON k.ckey = s.company_key"

    def _update_exprs(self, params: dict) -> tuple[list[str], list[str]]:
        """The SET clauses of an update and the jsonb_build_object arguments that describe
        what each would change ({field: [before, after]}, NULL where nothing changes)."""
        cols = [c for c in CONTACT_COLUMNS if c in self.plan.mapped]
        sets, diffs = [], []
        for col in cols:
            expr = self._value_expr(col, for_insert=False, params=params)
            sets.append(f"{col} = {expr}")
            diffs.append(
                f"'{field_for_column(col)}', CASE WHEN c.{col} IS DISTINCT FROM {expr} "
                f"THEN jsonb_build_array(to_jsonb(c.{col}), to_jsonb({expr})) END"
            )
        if self.plan.staged("company_key"):
            expr = "coalesce(k.company_id, c.company_id)"
            if self.job.blank_policy == ImportJob.BlankPolicy.OVERWRITE:
                expr = "k.company_id"
            sets.append(f"company_id = {expr}")
            diffs.append(
                f"'company', CASE WHEN c.company_id IS DISTINCT FROM {expr} "
                f"THEN jsonb_build_array(c.company_id, {expr}) END"
            )
        custom_expr = "c.custom"
        if self.plan.custom_keys:
            if self.job.blank_policy == ImportJob.BlankPolicy.OVERWRITE:
                custom_expr = (
                    "(c.custom - %(custom_keys)s::text[]) "
                    "|| coalesce(jsonb_strip_nulls(s.custom), '{}'::jsonb)"
                )
            else:
                custom_expr = "c.custom || coalesce(jsonb_strip_nulls(s.custom), '{}'::jsonb)"
            sets.append(f"custom = {custom_expr}")
            diffs.append(
                f"'custom', CASE WHEN c.custom IS DISTINCT FROM {custom_expr} "
                f"THEN jsonb_build_array(c.custom, {custom_expr}) END"
            )
        if self.plan.staged("other_emails"):
            # Merged only when the row brings addresses or its email was one of them: the
            # merge is an aggregate per row, the most expensive expression of the update.
            other = (
                "CASE WHEN s.other_emails IS NULL"
                " AND NOT c.other_emails ? coalesce(s.email, c.email) THEN c.other_emails"
                " ELSE coalesce((SELECT jsonb_agg(DISTINCT e) FROM jsonb_array_elements_text("
                "c.other_emails || coalesce(s.other_emails, '[]'::jsonb)) e "
                "WHERE e <> coalesce(s.email, c.email)), '[]'::jsonb) END"
            )
            sets.append(f"other_emails = {other}")
            diffs.append(
                f"'other_emails', CASE WHEN c.other_emails IS DISTINCT FROM {other} "
                f"THEN jsonb_build_array(c.other_emails, {other}) END"
            )
        if self.plan.staged("tags"):
            # Tags are only ever added; the record keeps which, so undo can take them off.
            diffs.append(
                "'tags', CASE WHEN s.added_tags IS NOT NULL"
                " THEN jsonb_build_array(NULL::jsonb, s.added_tags) END"
            )
        return sets, diffs

    def _added_tags(self, cur) -> None:
        """For each matched row, the tags it would add to its contact, in one statement (a
        lookup per tag inside the diff expression cost ~200 µs a row). A name no tag has yet
        is added for sure. The link is probed per tag (a scalar subquery the planner keeps
        as one): as an anti-join it hashed every tag link of the database."""
        if not self.plan.staged("tags"):
            return
        cur.execute(
            """
            UPDATE imp_stage s SET added_tags = a.names
              FROM (SELECT s2.row_number, jsonb_agg(t.name ORDER BY t.position) AS names
                      FROM imp_stage s2
                     CROSS JOIN LATERAL unnest(s2.tags) WITH ORDINALITY AS t(name, position)
                      LEFT JOIN contacts_tag tg
                        ON tg.org_id = %s AND lower(tg.name) = lower(t.name)
                     WHERE s2.contact_id IS NOT NULL AND s2.error IS NULL
                       AND s2.tags IS NOT NULL
                       AND (SELECT 1 FROM contacts_contact_tags ct
                             WHERE ct.contact_id = s2.contact_id AND ct.tag_id = tg.id
                             LIMIT 1) IS NULL
                     GROUP BY s2.row_number) a
             WHERE a.row_number = s.row_number
            """,
            [self.org.id],
        )

    def _changes_sql(self, columns: str, diffs: list[str]) -> str:
        """Matched rows that change something, with `columns` selected from s, c and d."""
        return f"""
            SELECT {columns}
              FROM imp_stage s
              JOIN contacts_contact c ON c.id = s.contact_id
              {self._company_join()}
              CROSS JOIN LATERAL (SELECT jsonb_strip_nulls(jsonb_build_object(
                  {", ".join(diffs)})) AS changes OFFSET 0) d
             WHERE s.contact_id IS NOT NULL AND s.error IS NULL AND d.changes <> '{{}}'::jsonb
        """

    def _changing_rows(self, cur) -> set[int]:
        """For the dry run: the matched rows whose update would change the contact (the
        others are skipped as unchanged). Companies are found or created as for real; the
        preview's transaction is rolled back afterwards."""
        self._companies(cur, "s.contact_id IS NOT NULL AND s.error IS NULL")
        self._added_tags(cur)
        params = {"job": self.job.id, "custom_keys": self.plan.custom_keys}
        _sets, diffs = self._update_exprs(params)
        if not diffs:
            return set()
        cur.execute(self._changes_sql("s.row_number", diffs), params)
        return {number for (number,) in cur.fetchall()}

    def _update_matched(self, cur) -> int:
        job_id = self.job.id
        params = {"job": job_id, "custom_keys": self.plan.custom_keys}
        sets, diffs = self._update_exprs(params)
        if not diffs:
            return 0
        self._added_tags(cur)
        # Record what changes (before the update) and mark those rows staged as `updated`,
        # then update only them. The later steps read the mark, not the job's records, which
        # a million-row import would scan once per chunk.
        cur.execute(
            """
            WITH recorded AS (
                INSERT INTO contacts_importrecord (job_id, contact_id, row_number, action,
                                                   changes, written_at)
            """
            + self._changes_sql("%(job)s, c.id, s.row_number, 'updated', d.changes, now()", diffs)
            + """
                RETURNING row_number
            )
            UPDATE imp_stage s SET updated = true
              FROM recorded WHERE s.row_number = recorded.row_number
            """,
            params,
        )
        changed = cur.rowcount
        cur.execute("ANALYZE imp_stage (updated)")
        cur.execute(
            f"""
            UPDATE contacts_contact c SET {", ".join([*sets, "updated_at = now()"])}
              FROM imp_stage s
              {self._company_join()}
             WHERE s.updated AND c.id = s.contact_id
            """,
            params,
        )
        return changed

    def _known_tags(self) -> set[str]:
        if not hasattr(self._local, "known_tags"):
            self._local.known_tags = set()
        return self._local.known_tags

    def _tags(self, cur, names: set[str]) -> None:
        """Tags of the written rows: missing ones created, then linked. Rows carry their tags
        (the file's and the job's defaults) trimmed and de-duplicated already; `names` are
        the chunk's, lower-cased. Files repeat a few tags, so after the first chunk the
        creating statement is usually known to have nothing to do and is skipped."""
        if not names or not self.plan.staged("tags"):
            return
        written = f"s.tags IS NOT NULL AND {WRITTEN}"
        params = {"org": self.org.id, "names": sorted(names)}
        if not names <= self._known_tags():
            cur.execute(
                f"""
                INSERT INTO contacts_tag (org_id, public_id, created_at, name, color)
                SELECT DISTINCT ON (lower(t.name)) %(org)s, gen_random_uuid(), now(), t.name,
                       '#6d8cff'
                  FROM imp_stage s CROSS JOIN LATERAL unnest(s.tags) AS t(name)
                 WHERE {written}
                 ORDER BY lower(t.name)
                ON CONFLICT DO NOTHING
                """,
                params,
            )
            cur.execute(
                "SELECT lower(name) FROM contacts_tag"
                " WHERE org_id = %(org)s AND lower(name) = ANY(%(names)s)",
                params,
            )
            # Committed with this part; until then only this transaction may rely on them.
            self._local.tags_seen.update(name for (name,) in cur.fetchall())
        cur.execute(
            f"""
            INSERT INTO contacts_contact_tags (contact_id, tag_id)
            SELECT coalesce(s.new_id, s.contact_id), tg.id
              FROM imp_stage s CROSS JOIN LATERAL unnest(s.tags) AS t(name)
              JOIN contacts_tag tg ON tg.org_id = %(org)s AND lower(tg.name) = lower(t.name)
             WHERE {written}
            ON CONFLICT DO NOTHING
            """,
            params,
        )

    def _timeline_and_audit(self, cur) -> None:
        """Timeline entries of the contacts this part updated (the contacts it created tell
        their timeline where they came from themselves: contact.import_job), the notes of
        every row it wrote, and one audit event for the part."""
        org_id, job = self.org.id, self.job
        user_id = self.actor_user.id if self.actor_user else None
        cur.execute(
            """
            INSERT INTO contacts_activity (org_id, public_id, created_at, type, contact_id,
                                           actor_id, subject, body, data, occurred_at)
            SELECT %s, gen_random_uuid(), now(), 'imported', s.contact_id, %s, %s, '',
                   %s::jsonb, now()
              FROM imp_stage s WHERE s.updated
            """,
            [org_id, user_id, job.timeline_subject, dumps(job.timeline_data)],
        )
        if self.plan.staged("note"):
            cur.execute(
                f"""
                INSERT INTO contacts_note (org_id, public_id, created_at, updated_at, contact_id,
                                           author_id, body)
                SELECT %s, gen_random_uuid(), now(), now(), coalesce(s.new_id, s.contact_id),
                       %s, s.note
                  FROM imp_stage s WHERE s.note IS NOT NULL AND {WRITTEN}
                """,
                [org_id, user_id],
            )
        cur.execute(
            f"""
            SELECT min(s.row_number), max(s.row_number),
                   count(*) FILTER (WHERE s.new_id IS NOT NULL), count(*) FILTER (WHERE s.updated)
              FROM imp_stage s WHERE {WRITTEN}
            """
        )
        first, last, created, updated = cur.fetchone()
        if not (created or updated):
            return
        # One audit event per chunk: the record-level trail (which contact, each field's
        # before and after) is the import's own records, shown on its changes page; a
        # million audit rows for one import would bury every other event in the log.
        actor = (
            Actor.for_user(self.actor_user)
            if self.actor_user
            else Actor.system(f"import {job.file_name}"[:200])
        )
        audit(
            org=self.org,
            actor=actor,
            verb="import.rows_written",
            obj=job,
            object_repr=f"{job.file_name}, rows {first}–{last}",
            changes={"created": created, "updated": updated, "rows": f"{first}–{last}"},
        )

    def _record_part(self, cur, number: int) -> None:
        """The part, with the contacts it created in row order (Undo, the diff view and
        the duplicate check read them)."""
        cur.execute(
            """
            INSERT INTO contacts_importpart (job_id, number, created_ids, created_rows,
                                             first_row, last_row, min_id, max_id, written_at)
            SELECT %s, %s,
                   coalesce(array_agg(s.new_id ORDER BY s.row_number), '{}'),
                   coalesce(array_agg(s.row_number ORDER BY s.row_number), '{}'),
                   min(s.row_number), max(s.row_number), min(s.new_id), max(s.new_id), now()
              FROM imp_stage s WHERE s.new_id IS NOT NULL
            """,
            [self.job.id, number],
        )

    def finish(self) -> None:
        emit_event(
            org=self.org,
            event_type="contacts.imported",
            payload={
                "import": str(self.job.public_id),
                "file": self.job.file_name,
                "created": self.job.created_count,
                "updated": self.job.updated_count,
                "skipped": self.job.skipped_count,
                "errors": self.job.error_count,
                "warnings": self.job.warning_count,
            },
        )
