"""The import's writes, by stage: `wizard` (upload, mapping, values, preview), `run` (start,
the worker's run, cancel) and `undo`; `access` holds the rules all of them ask. The names
views and commands use are re-exported here."""

from .access import (
    ALLOWED_EXTENSIONS,
    MAX_UPLOAD_BYTES,
    max_upload_bytes,
    owner_refusal,
    require_import_in_scope,
    require_import_rights,
)
from .run import import_cancel, import_start, run_import
from .undo import import_undo, run_undo, undo_scope_refusal
from .wizard import (
    CHOICE_REFUSAL,
    DEFAULT_KEYS,
    PREVIEW_ROWS,
    headers_signature,
    import_create,
    import_detection,
    import_preview,
    import_redetect,
    import_refresh_value_counts,
    import_set_mapping,
    import_set_value_map,
    import_targets,
)

__all__ = [
    "ALLOWED_EXTENSIONS",
    "CHOICE_REFUSAL",
    "DEFAULT_KEYS",
    "MAX_UPLOAD_BYTES",
    "PREVIEW_ROWS",
    "headers_signature",
    "import_cancel",
    "import_create",
    "import_detection",
    "import_preview",
    "import_redetect",
    "import_refresh_value_counts",
    "import_set_mapping",
    "import_set_value_map",
    "import_start",
    "import_targets",
    "import_undo",
    "max_upload_bytes",
    "owner_refusal",
    "require_import_in_scope",
    "require_import_rights",
    "run_import",
    "run_undo",
    "undo_scope_refusal",
]
