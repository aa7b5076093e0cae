"""The files of Export all data: where they live, the two working files each section is
appended to chunk by chunk (cut back to their committed length when a worker resumes), and
the packing of the working files into the one ZIP that is downloaded. Everything here streams
(a chunk, a block at a time), so an export of any size runs in constant memory.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import time
import zipfile
from collections.abc import Iterable
from pathlib import Path

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder

from crm import jobs
from crm.csvutils import safe_cell
from crm.models import BackgroundJob
from crm.selectors import org_timezone

from ._base import _LostFiles, _Stopped
from .objects import Section

COPY_BLOCK = 1 << 20
HEARTBEAT_SECONDS = 10.0
# Deflate level: 1 packs text about three times faster than the default 6 for a few percent
# more bytes, which matters at a million contacts and not at all for a download.
COMPRESS_LEVEL = 1
STORAGE_DIR = "org_exports"


def export_root() -> Path:
    return Path(settings.MEDIA_ROOT) / STORAGE_DIR


def work_dir(job: BackgroundJob) -> Path:
    return export_root() / str(job.org_id) / f"{job.public_id}.parts"


def zip_name(job: BackgroundJob) -> str:
    """The finished file, relative to MEDIA_ROOT."""
    return f"{STORAGE_DIR}/{job.org_id}/{job.public_id}.zip"


def zip_path(job: BackgroundJob) -> Path:
    return Path(settings.MEDIA_ROOT) / zip_name(job)


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _cut_to(path: Path, size: int) -> bool:
    """Cut `path` back to `size` bytes (what the last committed chunk wrote); False when it
    holds less than that, i.e. the file was lost."""
    if size == 0:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"")
        return True
    if not path.exists() or path.stat().st_size < size:
        return False
    os.truncate(path, size)
    return True


class _PartWriter:
    """A section's two working files, appended to chunk by chunk."""

    def __init__(self, directory: Path, name: str):
        self.csv_path = directory / f"{name}.csv"
        self.jsonl_path = directory / f"{name}.jsonl"
        self._csv_raw = open(self.csv_path, "ab")  # noqa: SIM115 (closed in close())
        self._jsonl = open(self.jsonl_path, "ab")  # noqa: SIM115
        self._csv_text = io.TextIOWrapper(self._csv_raw, encoding="utf-8", newline="")
        self._csv = csv.writer(self._csv_text)
        self._encoder = DjangoJSONEncoder(ensure_ascii=False)

    def header(self, header: list[str]) -> None:
        # Custom field labels are typed by admins: a header is a cell like any other.
        self._csv.writerow([safe_cell(text) for text in header])

    def rows(self, rows: Iterable[tuple[list, dict]]) -> int:
        count = 0
        lines = []
        for cells, record in rows:
            self._csv.writerow(cells)
            lines.append(self._encoder.encode(record))
            count += 1
        if lines:
            self._jsonl.write(("\n".join(lines) + "\n").encode("utf-8"))
        return count

    def flush(self) -> tuple[int, int]:
        """Push everything to the files; their byte lengths."""
        self._csv_text.flush()
        self._jsonl.flush()
        return self._csv_raw.tell(), self._jsonl.tell()

    def close(self) -> None:
        self._csv_text.close()
        self._jsonl.close()


def _manifest(job: BackgroundJob, sections: list[Section]) -> dict:
    result = job.result or {}
    return {
        "organization": job.org.name,
        "started_by": job.created_by.email if job.created_by else "",
        "created_at": job.created_at.isoformat(),
        "time_zone": str(org_timezone(job.org)),
        "files": [
            {
                "object": section.name,
                "csv": f"{section.name}.csv",
                "jsonl": f"{section.name}.jsonl",
                "rows": int((result.get("rows") or {}).get(section.name) or 0),
                "columns": section.header,
            }
            for section in sections
        ],
        "hidden_fields": result.get("hidden") or {},
    }


def _pack(job: BackgroundJob, sections: list[Section], directory: Path) -> int:
    """The ZIP from the working files, then renamed into place; its size in bytes."""
    target = zip_path(job)
    partial = target.with_suffix(".zip.partial")
    rows = (job.result or {}).get("rows") or {}
    written = sum(int(n) for n in rows.values())
    progress = written
    beat = time.monotonic()
    with zipfile.ZipFile(
        partial, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=COMPRESS_LEVEL
    ) as archive:
        manifest = json.dumps(_manifest(job, sections), ensure_ascii=False, indent=2)
        archive.writestr("manifest.json", manifest)
        for section in sections:
            for suffix in ("csv", "jsonl"):
                source = directory / f"{section.name}.{suffix}"
                if not source.exists():
                    raise _LostFiles
                info = zipfile.ZipInfo(source.name, date_time=time.localtime()[:6])
                info.compress_type = zipfile.ZIP_DEFLATED
                with open(source, "rb") as src, archive.open(info, "w", force_zip64=True) as dst:
                    while block := src.read(COPY_BLOCK):
                        dst.write(block)
                        if time.monotonic() - beat > HEARTBEAT_SECONDS:
                            beat = time.monotonic()
                            if not jobs.heartbeat(job, progress=min(progress, job.total)):
                                raise _Stopped
            progress += int(rows.get(section.name) or 0)
            if not jobs.heartbeat(job, progress=min(progress, job.total)):
                raise _Stopped
    os.replace(partial, target)
    return target.stat().st_size
