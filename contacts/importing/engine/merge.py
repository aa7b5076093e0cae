# ruff: noqa: S608 -- SQL here is assembled only from this package's own column names.
"""Merging one staged part into contacts, with a handful of set-based statements: the new
rows inserted, the matched ones updated (each change recorded for the diff view and Undo),
tags created and linked, notes, timeline entries, one audit event, the part's record of
the contacts it created, and the report rows (refused rows and rows kept with warnings)
written with COPY. The dry run of the preview takes the same steps up to the writes.

MergeSteps is the part of Importer (pipeline.py) that does this; staging and matching,
which come first, are in match.py.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from django.db import connection

from crm.services.audit import Actor, audit

from ..convert import warning_text
from ..models import ImportJob, ImportRowError
from ..values import dumps
from .match import MatchSteps
from .plan import CONTACT_COLUMNS, NULLABLE, Part, field_for_column, model_default

# The staged rows a chunk wrote: created (they keep their new id) or updated (marked).
WRITTEN = "(s.new_id IS NOT NULL OR s.updated)"


@dataclass
class ChunkResult:
    created: int = 0
    updated: int = 0
    skipped: int = 0
    errors: int = 0  # rows refused
    warnings: int = 0  # rows written with warnings
    warning_counts: dict = field(default_factory=dict)  # {kind: values}


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


class MergeSteps(MatchSteps):
    """The merge for Importer, which also sets actor_user and _local (per merging thread:
    tags known to be committed, and those its open part saw)."""

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

    @staticmethod
    def _written_rows_sql(policy: str) -> str:
        """The staged rows the policy writes (creates and/or updates)."""
        if policy == ImportJob.Policy.CREATE:
            return "s.error IS NULL AND s.contact_id IS NULL"
        if policy == ImportJob.Policy.UPDATE:
            return "s.error IS NULL AND s.contact_id IS NOT NULL"
        return "s.error IS NULL"

    def _value_expr(self, col: str, *, for_insert: bool, params: dict) -> str:
        """The SQL for a contact column's new value from the staged row `s` (and `c`);
        defaults travel as query parameters."""
        sql_type = CONTACT_COLUMNS[col]
        if for_insert:
            params[f"d_{col}"] = self.plan.defaults.get(col, model_default(col))
            default_sql = f"%(d_{col})s::{sql_type}"
            return f"coalesce(s.{col}, {default_sql})" if col in self.plan.mapped else default_sql
        if self.job.blank_policy == ImportJob.BlankPolicy.OVERWRITE:
            params[f"b_{col}"] = None if col in NULLABLE else model_default(col)
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
