"""Every write of the pipeline app, one module per area (pipelines: pipelines, stages and the
won/lost reasons). Import from the module: `from pipeline.services.pipelines import ...`.

Each public function runs in one transaction, records an AuditEvent and emits a domain event,
so the change, its history and its outbox row commit or vanish together. `policy` is the
acting member's (crm.permissions.Policy); None means system work, which may do anything.
Bad input raises django's ValidationError (keyed by field where there is one); a forbidden
action raises PermissionDenied.
"""
