"""PostgreSQL row-level security: the second wall between organizations.

The first wall is `Model.objects.for_org(org)`. Behind it, every table with an `org_id`
column has FORCE ROW LEVEL SECURITY and one policy,
`org_id = current_setting('app.org_id')::bigint`, so a query that forgot `for_org` (an ORM
call, raw SQL, an INSERT of another organization's row) still reaches one organization only.

The app connects as a superuser, and superusers always bypass row-level security. So the
wall binds a second role, `crm_app` (CRM_DB_APP_ROLE): NOLOGIN, no BYPASSRLS, with DML on the
schema's tables. `tenant(org_id)` switches the transaction into that role with the
organization set, both with `set_config(..., true)` (SET LOCAL): nothing outlives the
transaction, so a pooled connection can never carry one organization into the next request.

- The request middleware (crm.middleware.TenantContextMiddleware) wraps each request of a
  member in `transaction.atomic()` + `tenant(request.org.id)`.
- The job runner wraps each chunk the same way; a system sweep that spans organizations says
  so with `bypass(reason)`, which leaves the role for the block and logs the reason.
- A Celery task runs in the app role with no organization at all (task_prerun below), so a
  task that touches a tenant table without `tenant()` or `bypass()` fails on its first query
  with an error that says what to do, instead of silently reading nothing.

`ensure_row_level_security()` creates the role and the policies. It runs after every
`migrate` (post_migrate, crm/apps.py) and in crm's migration, so a new tenant model gets the
wall without anyone remembering: any model with an `org_id` column qualifies.

CRM_RLS_ENABLED=0 is for a deployment whose database user may not create roles: no role
switch then, and `migrate` creates no role and no policy (only `for_org` walls organizations
off). Policies left from before bind nobody then: the connecting user never leaves itself,
and a user that could create the role was a superuser, which bypasses them. `bypass()` needs
a connecting user that is a superuser or has BYPASSRLS: a plain owner is bound by FORCE like
everyone else.

A little over 600 lines: the contexts, the Celery guard and the role and policy set-up are
one mechanism and are read together; the set-up (the last section) is the part to move out
if it grows.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import threading
from contextlib import AbstractContextManager, contextmanager

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections, transaction

logger = logging.getLogger("crm.rls")

ORG_SETTING = "app.org_id"
# The one policy each tenant table carries. Changing its expression means a new name here:
# ensure_row_level_security() then drops the old one (any other "crm_tenant_*").
POLICY_NAME = "crm_tenant_isolation"
POLICY_PREFIX = "crm_tenant_"
POLICY_EXPRESSION = "org_id = current_setting('app.org_id')::bigint"

# What app.org_id holds where no organization is set on purpose (a Celery task before it
# enters one). The policy casts it to bigint, so PostgreSQL's error quotes this text:
# 'invalid input syntax for type bigint: "no organization set ..."'.
NO_ORG = (
    "no organization set: wrap the work in transaction.atomic() + crm.rls.tenant(org_id), "
    "or crm.rls.bypass(reason) for a sweep across organizations"
)

# Built-in functions the hot queries apply to columns, marked LEAKPROOF so the planner may
# use their indexes under the policy (see crm/migrations/0011_row_level_security.py for why
# and why these are safe). Only a superuser may mark them; others get a warning.
LEAKPROOF_FUNCTIONS = (
    "ts_match_vq(tsvector,tsquery)",  # search_vector @@ query: contact_search, company_search
    "lower(text)",  # (org, lower(email)) and (org, lower(name)) indexes
    "jsonb_contains(jsonb,jsonb)",  # custom @> {...}: the contact_custom GIN index
)

_ROLE_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")


class TenantContextError(RuntimeError):
    """tenant() or bypass() used where it cannot hold (outside a transaction)."""


def enabled() -> bool:
    return bool(getattr(settings, "CRM_RLS_ENABLED", True))


def app_role() -> str:
    role = getattr(settings, "CRM_DB_APP_ROLE", "crm_app")
    if not _ROLE_NAME.fullmatch(role):
        raise ValueError(f"CRM_DB_APP_ROLE must be a plain lower-case role name, not {role!r}.")
    return role


def _in_transaction(connection, what: str) -> None:
    if not connection.in_atomic_block:
        raise TenantContextError(
            f"crm.rls.{what}() sets the organization for one transaction only: use it inside "
            "transaction.atomic()."
        )


# The organization of a transaction ------------------------------------------------------------


class _Context:
    """Sets app.org_id and the role for the rest of the transaction, keeping what they were
    so exit() can put them back. One query each way: it runs on every request."""

    def __init__(self, connection, org: str, role: str | None, *, local: bool = True):
        self.connection = connection
        self.org, self.role, self.local = org, role, local
        self.previous: tuple[str | None, str | None] = (None, None)

    def enter(self) -> None:
        with self.connection.cursor() as cursor:
            if self.role is None:
                cursor.execute(
                    "SELECT current_setting('app.org_id', true), NULL,"
                    " set_config('app.org_id', %s, %s)",
                    [self.org, self.local],
                )
            else:
                cursor.execute(
                    "SELECT current_setting('app.org_id', true), current_setting('role'),"
                    " set_config('app.org_id', %s, %s), set_config('role', %s, %s)",
                    [self.org, self.local, self.role, self.local],
                )
            self.previous = cursor.fetchone()[:2]

    def exit(self, failing: bool) -> None:
        connection = self.connection
        if connection.needs_rollback:
            # The enclosing atomic block, entered before these settings were made, rolls
            # back and takes them with it; a query now would only raise.
            return
        org, role = self.previous
        try:
            with connection.cursor() as cursor:
                if role is None:
                    cursor.execute(
                        "SELECT set_config('app.org_id', %s, %s)", [org or "", self.local]
                    )
                else:
                    cursor.execute(
                        "SELECT set_config('app.org_id', %s, %s), set_config('role', %s, %s)",
                        [org or "", self.local, role, self.local],
                    )
        except DatabaseError:
            if not failing:
                raise
            # The transaction failed with the error on its way out: keep that error, and
            # make sure nothing in this transaction commits with the settings half-restored.
            transaction.set_rollback(True, using=connection.alias)


@contextmanager
def _entered(context: _Context):
    """The block runs with `context`'s settings; they are put back however it ends."""
    context.enter()
    try:
        yield
    except BaseException:
        context.exit(failing=True)
        raise
    context.exit(failing=False)


def _org_text(org_id) -> str:
    if isinstance(org_id, bool) or not isinstance(org_id, int) or org_id <= 0:
        raise ValueError(f"tenant() takes an organization's id, not {org_id!r}.")
    return str(org_id)


@contextmanager
def tenant(org_id: int, *, using: str = DEFAULT_DB_ALIAS):
    """Work as organization `org_id` for the block: the app role (bound by the policies) and
    app.org_id, both local to the transaction, which must already be open. On exit the
    previous role and organization come back, so contexts nest."""
    connection = connections[using]
    _in_transaction(connection, "tenant")
    with _entered(_Context(connection, _org_text(org_id), app_role() if enabled() else None)):
        yield


@contextmanager
def bypass(reason: str, *, using: str = DEFAULT_DB_ALIAS):
    """Leave the app role for the block: the named, logged exception for the few system
    sweeps that span organizations (stalled jobs, retention...). `reason` says why, in
    words someone reading the logs understands."""
    if not reason or not reason.strip():
        raise ValueError("bypass() needs a reason, logged each time it is used.")
    connection = connections[using]
    _in_transaction(connection, "bypass")
    logger.info("row-level security bypassed: %s", reason, extra={"rls_bypass": reason})
    # Back to the session user (role "none"); app.org_id says why no organization is set.
    with _entered(_Context(connection, NO_ORG, "none" if enabled() else None)):
        yield


def set_for_transaction(org_id: int, *, using: str = DEFAULT_DB_ALIAS) -> None:
    """tenant() without the way back, for the one caller that owns the whole transaction
    and runs nothing in it afterwards (the request middleware, when its transaction is the
    outermost): the COMMIT or ROLLBACK ends the settings, so restoring them would be a
    query for nothing on every request."""
    connection = connections[using]
    _in_transaction(connection, "set_for_transaction")
    _Context(connection, _org_text(org_id), app_role() if enabled() else None).enter()


def outside_request_transaction(view):
    """Marks a view that must not run inside one transaction: it waits on something slow
    outside the database (the import wizard asks the AI provider, for seconds), and no
    transaction may stay open meanwhile. Its request still works as the member's
    organization, set for the connection's session and reset when the response is made."""
    view.rls_outside_transaction = True
    return view


class RequestScope:
    """The organization of one request, for TenantContextMiddleware: opened just before the
    view runs, closed once the response is made.

    - Normally one transaction: set_config(..., true) when it is the outermost (its COMMIT
      or ROLLBACK ends the settings, no query to restore them), tenant() when it is nested
      in a longer one (a test's). A response of 500 or more rolls it back.
    - For a view marked outside_request_transaction, session settings instead, reset when
      the response is made (the connection is closed if that fails, so it can never carry
      the organization into another request)."""

    def __init__(self, org_id: int, *, using: str = DEFAULT_DB_ALIAS):
        self.org_id, self.using = org_id, using
        self._atomic: transaction.Atomic | None = None
        self._tenant: AbstractContextManager | None = None
        self._session: _Context | None = None

    def open(self, *, outside_transaction: bool = False) -> None:
        connection = connections[self.using]
        if outside_transaction and not connection.in_atomic_block:
            role = app_role() if enabled() else None
            self._session = _Context(connection, _org_text(self.org_id), role, local=False)
            self._session.enter()
            return
        atomic = transaction.atomic(using=self.using)
        atomic.__enter__()
        try:
            if len(connection.atomic_blocks) == 1:
                set_for_transaction(self.org_id, using=self.using)
            else:
                block = tenant(self.org_id, using=self.using)
                block.__enter__()
                self._tenant = block
        except BaseException:
            atomic.__exit__(*sys.exc_info())
            raise
        self._atomic = atomic

    def close(self, *, failed: bool = False, exc_info=(None, None, None)) -> None:
        if self._session is not None:
            session, self._session = self._session, None
            try:
                session.exit(failing=False)
            except DatabaseError:
                connections[self.using].close()
            return
        if self._atomic is None:
            return
        atomic, self._atomic = self._atomic, None
        tenant_block, self._tenant = self._tenant, None
        try:
            if failed and exc_info[0] is None:
                transaction.set_rollback(True, using=self.using)
            if tenant_block is not None:
                tenant_block.__exit__(*exc_info)
        finally:
            atomic.__exit__(*exc_info)


def current_org_id(*, using: str = DEFAULT_DB_ALIAS) -> int | None:
    """The organization the connection works in now, or None (for tests and diagnostics)."""
    with connections[using].cursor() as cursor:
        cursor.execute("SELECT current_setting('app.org_id', true)")
        value = cursor.fetchone()[0] or ""
    return int(value) if value.isdigit() else None


def streamed_in_tenant(content, org_id: int, *, using: str = DEFAULT_DB_ALIAS):
    """A streamed response body, produced inside the organization's context: its generator
    runs after the view (and the request's transaction) returned."""
    with transaction.atomic(using=using), tenant(org_id, using=using):
        yield from content


# Celery: a task works in no organization until it enters one ---------------------------------

# Per thread, one entry per running task: (whether its prerun put the guard on, whether it
# counts in _worker_guards).
_tasks = threading.local()
# Whether this process is a prefork pool's child, which runs tasks and nothing else: its
# pool initialised it (worker_process_init) in another process than the one the worker
# started in (worker_init). The solo pool initialises the worker's own process.
_worker_pid: int | None = None
_pool_child = False
# Tasks running with the guard on in such a child. Their threads (an import's merge lanes)
# open connections of their own, and those get the guard too. Elsewhere (a solo or thread
# pool, an in-process test worker, the web process) only the task's own thread is guarded:
# a connection another thread opens meanwhile may serve anything.
_worker_guards = 0
_worker_guards_lock = threading.Lock()


def _task_stack() -> list[tuple[bool, bool]]:
    stack = getattr(_tasks, "stack", None)
    if stack is None:
        stack = _tasks.stack = []
    return stack


def _guard(connection) -> None:
    """Session-level on purpose: the role and the missing organization hold across the
    task's transactions, and tenant()/bypass() put them back when they end."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT set_config('role', %s, false), set_config('app.org_id', %s, false)",
            [app_role(), NO_ORG],
        )
    connection.crm_rls_guarded = True


def _unguard(connection) -> None:
    if not getattr(connection, "crm_rls_guarded", False):
        return
    connection.crm_rls_guarded = False
    if connection.connection is None:
        return
    try:
        with connection.cursor() as cursor:
            cursor.execute("RESET ROLE; RESET app.org_id")
    except DatabaseError:
        # A connection whose role cannot be reset must not serve anything else.
        connection.close()


def on_worker_init(**kwargs) -> None:
    global _worker_pid
    _worker_pid = os.getpid()


def on_worker_process_init(**kwargs) -> None:
    global _pool_child
    _pool_child = _worker_pid is not None and os.getpid() != _worker_pid


def on_task_prerun(task=None, **kwargs) -> None:
    connection = connections[DEFAULT_DB_ALIAS]
    # An eager task run inside a transaction (a request's, a test's) works in that
    # transaction's organization already.
    guarded = enabled() and not connection.in_atomic_block
    eager = bool(getattr(getattr(task, "request", None), "is_eager", False))
    process_wide = guarded and _pool_child and not eager
    _task_stack().append((guarded, process_wide))
    if not guarded:
        return
    if process_wide:
        global _worker_guards
        with _worker_guards_lock:
            _worker_guards += 1
    if connection.connection is not None:
        try:
            _guard(connection)
        except DatabaseError:
            # A stale connection: the next query opens a new one, which gets the guard.
            connection.close()


def on_task_postrun(task=None, **kwargs) -> None:
    stack = _task_stack()
    if not stack:
        return
    guarded, process_wide = stack.pop()
    if process_wide:
        global _worker_guards
        with _worker_guards_lock:
            _worker_guards -= 1
    if guarded and not any(entry[0] for entry in stack):
        _unguard(connections[DEFAULT_DB_ALIAS])


def on_connection_created(sender=None, connection=None, **kwargs) -> None:
    if connection is None or connection.vendor != "postgresql" or not enabled():
        return
    if _worker_guards > 0 or any(entry[0] for entry in _task_stack()):
        _guard(connection)


def connect_signals() -> None:
    from celery.signals import task_postrun, task_prerun, worker_init, worker_process_init
    from django.db.backends.signals import connection_created

    worker_init.connect(on_worker_init, dispatch_uid="crm.rls.worker_init", weak=False)
    worker_process_init.connect(
        on_worker_process_init, dispatch_uid="crm.rls.worker_process_init", weak=False
    )
    task_prerun.connect(on_task_prerun, dispatch_uid="crm.rls.task_prerun", weak=False)
    task_postrun.connect(on_task_postrun, dispatch_uid="crm.rls.task_postrun", weak=False)
    connection_created.connect(on_connection_created, dispatch_uid="crm.rls.connection_created")


# The role and the policies ------------------------------------------------------------------


def tenant_tables(app_registry=None) -> list[str]:
    """The tables of every installed model with an `org_id` column (OrgScopedModel's
    subclasses and any other): the ones the policy walls off."""
    if app_registry is None:
        from django.apps import apps as app_registry
    tables = set()
    for model in app_registry.get_models(include_auto_created=True):
        opts = model._meta
        if opts.proxy or not opts.managed:
            continue
        if any(field.column == "org_id" for field in opts.local_concrete_fields):
            tables.add(opts.db_table)
    return sorted(tables)


def _is_superuser(cursor) -> bool:
    cursor.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
    return bool(cursor.fetchone()[0])


def _ensure_role(connection, role: str) -> None:
    """Create the role (cluster-wide: several test databases may race to create it) and
    let the connecting user switch to it."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT EXISTS (SELECT FROM pg_roles WHERE rolname = %s),"
            " (SELECT rolsuper OR rolcreaterole FROM pg_roles WHERE rolname = current_user)",
            [role],
        )
        exists, may_create = cursor.fetchone()
        if not exists and not may_create:
            raise ImproperlyConfigured(
                f"Row-level security needs the database role {role!r}, and this database "
                f"user may not create roles. Have an administrator run: CREATE ROLE {role} "
                f"NOLOGIN; GRANT {role} TO <this user>; or set CRM_RLS_ENABLED=false."
            )
        if not exists:
            cursor.execute(
                f"""
                DO $$
                BEGIN
                  CREATE ROLE {role} NOLOGIN NOSUPERUSER NOBYPASSRLS;
                EXCEPTION WHEN duplicate_object OR unique_violation THEN
                  NULL;  -- created meanwhile by another session (another test database)
                END
                $$
                """
            )
        if _is_superuser(cursor):
            return
        cursor.execute("SELECT pg_has_role(current_user, %s, 'MEMBER'), current_user", [role])
        member, user = cursor.fetchone()
        if not member:
            cursor.execute(f"GRANT {role} TO {connection.ops.quote_name(user)}")


def _grant(cursor, role: str) -> None:
    """DML on every table and sequence of the schema, only where it is missing (a GRANT
    rewrites the catalog row even when nothing changes)."""
    cursor.execute(
        """
        SELECT c.oid::regclass::text, c.relkind = 'S'
          FROM pg_class c
         WHERE c.relnamespace = current_schema()::regnamespace
           AND ((c.relkind IN ('r', 'p')
                 AND NOT (has_table_privilege(%(role)s, c.oid, 'SELECT')
                          AND has_table_privilege(%(role)s, c.oid, 'INSERT')
                          AND has_table_privilege(%(role)s, c.oid, 'UPDATE')
                          AND has_table_privilege(%(role)s, c.oid, 'DELETE')))
             OR (c.relkind = 'S'
                 AND NOT (has_sequence_privilege(%(role)s, c.oid, 'USAGE')
                          AND has_sequence_privilege(%(role)s, c.oid, 'UPDATE'))))
        """,
        {"role": role},
    )
    missing = cursor.fetchall()
    tables = [name for name, is_sequence in missing if not is_sequence]
    sequences = [name for name, is_sequence in missing if is_sequence]
    cursor.execute(
        "SELECT has_schema_privilege(%(role)s, current_schema(), 'USAGE'),"
        " has_database_privilege(%(role)s, current_database(), 'TEMPORARY'),"
        " quote_ident(current_schema()), quote_ident(current_database())",
        {"role": role},
    )
    schema_ok, temp_ok, schema, database = cursor.fetchone()
    if not schema_ok:
        cursor.execute(f"GRANT USAGE ON SCHEMA {schema} TO {role}")
    if not temp_ok:
        # The import stages its rows in temporary tables.
        cursor.execute(f"GRANT TEMPORARY ON DATABASE {database} TO {role}")
    if tables:
        cursor.execute(
            f"GRANT SELECT, INSERT, UPDATE, DELETE ON TABLE {', '.join(tables)} TO {role}"
        )
    if sequences:
        cursor.execute(f"GRANT USAGE, SELECT, UPDATE ON SEQUENCE {', '.join(sequences)} TO {role}")
    if tables or sequences:
        # Tables a later migration creates are the role's too, before post_migrate runs.
        cursor.execute(
            f"ALTER DEFAULT PRIVILEGES IN SCHEMA {schema}"
            f" GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {role}"
        )
        cursor.execute(
            f"ALTER DEFAULT PRIVILEGES IN SCHEMA {schema}"
            f" GRANT USAGE, SELECT, UPDATE ON SEQUENCES TO {role}"
        )


def _table_states(cursor, tables: list[str]) -> list[tuple[str, bool, bool, list[str]]]:
    cursor.execute(
        """
        SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity,
               coalesce(array_agg(p.polname::text) FILTER (WHERE p.polname IS NOT NULL), '{}')
          FROM pg_class c
          LEFT JOIN pg_policy p ON p.polrelid = c.oid
         WHERE c.relnamespace = current_schema()::regnamespace AND c.relname = ANY(%s)
         GROUP BY c.relname, c.relrowsecurity, c.relforcerowsecurity
         ORDER BY c.relname
        """,
        [tables],
    )
    return cursor.fetchall()


def _secure(cursor, quote, table: str, enabled_: bool, forced: bool, policies: list[str]) -> bool:
    name = quote(table)
    changed = False
    for stale in policies:
        if stale.startswith(POLICY_PREFIX) and stale != POLICY_NAME:
            cursor.execute(f"DROP POLICY {quote(stale)} ON {name}")
            changed = True
    if not (enabled_ and forced):
        cursor.execute(f"ALTER TABLE {name} ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY")
        changed = True
    if POLICY_NAME not in policies:
        cursor.execute(
            f"CREATE POLICY {POLICY_NAME} ON {name} AS PERMISSIVE FOR ALL TO PUBLIC"
            f" USING ({POLICY_EXPRESSION}) WITH CHECK ({POLICY_EXPRESSION})"
        )
        changed = True
    return changed


def _unsecure(cursor, quote, table: str, enabled_: bool, forced: bool, policies: list[str]) -> None:
    name = quote(table)
    for policy in policies:
        if policy.startswith(POLICY_PREFIX):
            cursor.execute(f"DROP POLICY {quote(policy)} ON {name}")
    if enabled_ or forced:
        cursor.execute(
            f"ALTER TABLE {name} NO FORCE ROW LEVEL SECURITY, DISABLE ROW LEVEL SECURITY"
        )


def mark_leakproof(cursor) -> list[str]:
    """Mark LEAKPROOF_FUNCTIONS that are not yet; only a superuser may."""
    cursor.execute(
        "SELECT p.oid::regprocedure::text FROM pg_proc p"
        " WHERE NOT p.proleakproof AND p.oid::regprocedure::text = ANY(%s)",
        [list(LEAKPROOF_FUNCTIONS)],
    )
    missing = [row[0] for row in cursor.fetchall()]
    if not missing:
        return []
    if not _is_superuser(cursor):
        logger.warning(
            "Cannot mark %s LEAKPROOF (only a superuser may): under row-level security "
            "their indexes go unused, so searches and look-ups by email scan the whole "
            "organization. Ask a superuser to run ALTER FUNCTION ... LEAKPROOF for each.",
            ", ".join(missing),
        )
        return []
    for function in missing:
        cursor.execute(f"ALTER FUNCTION {function} LEAKPROOF")
    return missing


def ensure_row_level_security(*, using: str = DEFAULT_DB_ALIAS, app_registry=None) -> list[str]:
    """Give every tenant table the wall: the role with its grants, ENABLE and
    FORCE ROW LEVEL SECURITY and the policy. Idempotent and cheap when nothing is missing
    (catalog reads only; a table is altered only when it lacks something). Returns the
    tables it changed; with CRM_RLS_ENABLED off it does nothing."""
    connection = connections[using]
    if connection.vendor != "postgresql" or not enabled():
        return []
    existing = set(connection.introspection.table_names())
    wanted = [t for t in tenant_tables(app_registry) if t in existing]
    role = app_role()
    changed = []
    with transaction.atomic(using=using):
        _ensure_role(connection, role)
        with connection.cursor() as cursor:
            _grant(cursor, role)
            mark_leakproof(cursor)
            for table, enabled_, forced, policies in _table_states(cursor, wanted):
                if _secure(cursor, connection.ops.quote_name, table, enabled_, forced, policies):
                    changed.append(table)
    if changed:
        logger.info("row-level security put on %s", ", ".join(changed))
    return changed


def remove_row_level_security(*, using: str = DEFAULT_DB_ALIAS, app_registry=None) -> None:
    """Take the policies off every tenant table (the migration's way back)."""
    connection = connections[using]
    existing = set(connection.introspection.table_names())
    wanted = [t for t in tenant_tables(app_registry) if t in existing]
    with transaction.atomic(using=using), connection.cursor() as cursor:
        for table, enabled_, forced, policies in _table_states(cursor, wanted):
            _unsecure(cursor, connection.ops.quote_name, table, enabled_, forced, policies)
