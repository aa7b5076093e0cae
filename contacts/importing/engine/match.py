# ruff: noqa: S608 -- SQL here is assembled only from this package's own column names.
"""The first SQL steps of merging a part: its COPY text staged in the temporary table
imp_stage, each staged row matched to the contact it updates (by email, else a verified
phone number, else an external id), rows refused as duplicates inside the file or as
contacts the author's role may not change, and each row's company found or created.

MatchSteps is the part of Importer (pipeline.py) that does this; the writes that follow
are in merge.py.
"""

from __future__ import annotations

from compliance.services.erasure import ERASED_IMPORT_MESSAGE, email_hashes, phone_hashes

from ..models import ImportJob

# The phone number a row is matched by: only a verified one. A CASE, not coalesce(): under
# row-level security (crm/rls.py) PostgreSQL treats coalesce() as possibly leaky, so
# "c.phone = coalesce(...)" could no longer probe contact_org_phone and read the whole org.
_ROW_PHONE = (
    "CASE WHEN s2.phone_unverified IS NOT TRUE AND s2.phone IS NOT NULL THEN s2.phone"
    " WHEN s2.mobile_unverified IS NOT TRUE THEN s2.mobile END"
)
# pg_advisory_xact_lock(COMPANY_LOCK, org id) serialises creating companies per org.
COMPANY_LOCK = 0x494D50


class MatchSteps:
    """Staging and matching for Importer, which sets job, org, plan, writable_owner_ids and
    _sequence (the contacts' id sequence, looked up once)."""

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
        self._skip_erased(cur)
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

    def _skip_erased(self, cur) -> None:
        """Rows whose email or phone number belongs to a person erased on request are
        skipped and say so (compliance.services.erasure keeps keyed hashes of erased
        people's addresses)."""
        cur.execute(
            "SELECT bool_or(email_hash <> ''), bool_or(phone_hash <> '')"
            " FROM compliance_erasuretombstone WHERE org_id = %s",
            [self.org.id],
        )
        any_email, any_phone = cur.fetchone()
        checks = [("email", "email_hash", email_hashes)] if any_email else []
        if any_phone:
            checks += [
                (column, "phone_hash", phone_hashes)
                for column in ("phone", "mobile")
                if self.plan.staged(column)
            ]
        # Column names come from the constants above, never from the file.
        for column, hash_column, hashes_of in checks:
            cur.execute(f"SELECT DISTINCT {column} FROM imp_stage WHERE {column} <> ''")
            by_hash = {digest: value for (value,) in cur.fetchall() for digest in hashes_of(value)}
            if not by_hash:
                continue
            cur.execute(
                f"SELECT {hash_column} FROM compliance_erasuretombstone"
                f" WHERE org_id = %s AND {hash_column} = ANY(%s)",
                [self.org.id, list(by_hash)],
            )
            erased = sorted({by_hash[digest] for (digest,) in cur.fetchall()})
            if erased:
                cur.execute(
                    f"UPDATE imp_stage SET error = %s WHERE {column} = ANY(%s)",
                    [ERASED_IMPORT_MESSAGE, erased],
                )

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
