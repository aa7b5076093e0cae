# ruff: noqa: S608 -- SQL here is assembled only from this package's own column names.
"""The run of an import: the file read in chunks, each chunk converted in Python (phone
numbers, emails, dates, custom fields) into COPY text per merge lane, in worker processes
for big files, and the lanes merging their parts in parallel, each on its own connection.

Each lane's part of a chunk is one transaction that also lists the part as done on the job,
so a job whose worker died resumes with exactly the missing parts and nothing is written
twice. Importer, the class that runs (or, for the preview, dry-runs) a job, is defined here;
the SQL it runs per part comes from MergeSteps (merge.py) and MatchSteps (match.py).
"""

from __future__ import annotations

import contextlib
import gc
import logging
import multiprocessing
import multiprocessing.util
import queue
import signal
import threading
import time

from django.conf import settings
from django.db import OperationalError, connection, transaction
from psycopg.errors import DeadlockDetected

from compliance.services.consent import ConsentVia, consent_context
from crm import rls
from crm.services.audit import emit_event

from ..convert import ChunkConverter, Converted, copy_parts
from ..models import ImportJob
from ..reader import job_records
from ..values import dumps
from .merge import ChunkResult, MergeSteps
from .plan import (
    CHUNK_ROWS,
    FIRST_CHUNK_ROWS,
    ChunkCells,
    Part,
    build_plan,
    writable_owner_ids,
)

log = logging.getLogger(__name__)

DEADLOCK_ATTEMPTS = 4
WORKER_TIMEOUT = 300  # seconds a converting worker may take for one slice (~2 s is usual)
# Adds a part's {kind: count} (the next parameter, jsonb) to the job's, in one statement.
ADD_WARNING_COUNTS = """warning_counts = (
    SELECT coalesce(jsonb_object_agg(k, n), '{}'::jsonb)
      FROM (SELECT k, sum(n)::bigint AS n
              FROM (SELECT key AS k, value::bigint AS n FROM jsonb_each_text(warning_counts)
                    UNION ALL
                    SELECT key, value::bigint FROM jsonb_each_text(%s::jsonb)) a
             GROUP BY k) b),"""


class ImportCancelled(Exception):
    pass


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


def _put(target: queue.Queue, item, stop: threading.Event) -> bool:
    """Put `item`, unless `stop` is set while waiting for room."""
    while not stop.is_set():
        try:
            target.put(item, timeout=0.5)
            return True
        except queue.Full:
            continue
    return False


class Importer(MergeSteps):
    """Runs (or dry-runs, for the preview) one ImportJob."""

    def __init__(self, job: ImportJob, *, actor_user=None, chunk_rows: int = CHUNK_ROWS):
        self.job = job
        self.org = job.org
        self.actor_user = actor_user or job.created_by
        self.chunk_rows = chunk_rows
        self.plan = build_plan(job)
        self.width = len(job.headers)
        self.writable_owner_ids = writable_owner_ids(job)
        self.lanes = 1
        self.done: set[int] = set()
        self.chunks = ChunkConverter(
            self.plan.converter,
            stage_fields=list(self.plan.stage_types),
            default_tags=self.plan.default_tags,
            lanes=1,
        )
        # Consent values the import sets are ledgered as the import's, with its file.
        self.consent_via = ConsentVia(
            kind="import",
            user=self.actor_user,
            label=getattr(self.actor_user, "email", "") or "",
            source=job.timeline_subject,
            form="Import",
            evidence=job.timeline_data,
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
            ImportJob.objects.for_org(job.org_id).filter(pk=job.pk).update(
                chunk_rows=job.chunk_rows, merge_lanes=job.merge_lanes
            )
        self.chunk_rows, self.lanes = job.chunk_rows, job.merge_lanes
        self.chunks.lanes = self.lanes
        self.done = set(job.chunks_done)
        several = job.total - job.progress > self.chunk_rows
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
        job = self.job
        if ImportJob.objects.for_org(job.org_id).filter(pk=job.pk, cancel_requested=True).exists():
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
                # Each lane has its own connection: it works in the import's organization.
                with (
                    transaction.atomic(),
                    rls.tenant(self.job.org_id),
                    consent_context(self.consent_via),
                ):
                    result = self.merge(part, dry_run=False)
                    with connection.cursor() as cur:
                        # Counts are added in the part's own transaction, in SQL: lanes
                        # commit concurrently, and a resumed job redoes only missing parts.
                        cur.execute(
                            f"""
                            UPDATE contacts_importjob
                               SET progress = progress + %s,
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
            job.progress += part.records
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
