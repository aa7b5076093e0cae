"""Forms of the pipeline app, one module per area (settings: Settings → Pipelines). Import
from the package: the names below are its interface."""

from .settings import (
    REASON_KINDS,
    PipelineCreateForm,
    PipelineDeleteForm,
    PipelineRenameForm,
    ReasonForm,
    StageDeleteForm,
    StageForm,
)

__all__ = [
    "REASON_KINDS",
    "PipelineCreateForm",
    "PipelineDeleteForm",
    "PipelineRenameForm",
    "ReasonForm",
    "StageDeleteForm",
    "StageForm",
]
