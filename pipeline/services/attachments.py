"""Files attached to a deal: upload (size and type limits), delete, and the name a download
goes out under.

Limits, each refused with a message that says which:
- size: settings.PIPELINE_ATTACHMENT_MAX_BYTES (default 20 MB);
- type: documents, images and archives only (ALLOWED_TYPES), judged by the file's extension
  AND by its first bytes, so an executable renamed "quote.pdf" is refused. The content type
  the browser sent is never trusted: the stored type is the allow-list's for the extension.

Files go to Django's default storage under the attachment's uuid (see
pipeline.models.attachment_path); the name the member gave is only shown, cleaned of paths and
control characters, and sent back in a Content-Disposition header by the download view.

Uploading needs the pipeline edit right on the deal (record scope included). Deleting needs
the same, and either to be the uploader or to hold the pipeline delete right, so a rep can take
back a wrong file but not remove what others shared.
"""

from __future__ import annotations

import codecs
import os
import unicodedata
import zipfile
from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction

from crm.field_sizes import char_max_length
from crm.services import Actor, audit, emit_event

from ..models import Attachment, Deal
from .deals import require

DEFAULT_MAX_BYTES = 20 * 1024 * 1024
MAX_ATTACHMENTS = 500
NAME_MAX = char_max_length(Attachment, "file_name")
SNIFF_BYTES = 8192
# An ODF file's "mimetype" entry is a few dozen bytes; anything longer is not one.
ODF_MIMETYPE_MAX = 128


def max_bytes() -> int:
    return int(getattr(settings, "PIPELINE_ATTACHMENT_MAX_BYTES", DEFAULT_MAX_BYTES))


def human_size(size: int) -> str:
    if size < 1024:
        return f"{size} bytes"
    if size < 1024 * 1024:
        return f"{size / 1024:.0f} KB"
    megabytes = size / (1024 * 1024)
    return f"{megabytes:.0f} MB" if megabytes == int(megabytes) else f"{megabytes:.1f} MB"


# Content sniffing ------------------------------------------------------------------------------


def _starts(*signatures: bytes) -> Callable[[bytes, object], bool]:
    return lambda head, _file: any(head.startswith(s) for s in signatures)


def _webp(head: bytes, _file) -> bool:
    return head[:4] == b"RIFF" and head[8:12] == b"WEBP"


def _tar(head: bytes, _file) -> bool:
    return head[257:262] == b"ustar"


def _text(head: bytes, _file) -> bool:
    """Plain text: no NUL byte, and UTF-8 (a character cut at the end of the sample is fine)
    or, failing that, text in a single-byte encoding without control characters."""
    if b"\x00" in head:
        return False
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
        return True
    except UnicodeDecodeError:
        pass
    controls = set(range(32)) - {9, 10, 12, 13}
    return not any(byte in controls for byte in head)


def _zip_names(file) -> list[str] | None:
    try:
        file.seek(0)
        with zipfile.ZipFile(file) as archive:
            return archive.namelist()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError):
        return None
    finally:
        file.seek(0)


def _ooxml(folder: str) -> Callable[[bytes, object], bool]:
    """An Office Open XML file (docx, xlsx, pptx): a zip with [Content_Types].xml and the
    part folder of its kind."""

    def check(head: bytes, file) -> bool:
        if not head.startswith(b"PK\x03\x04"):
            return False
        names = _zip_names(file)
        return bool(
            names
            and "[Content_Types].xml" in names
            and any(name.startswith(folder) for name in names)
        )

    return check


def _odf(mimetype: str) -> Callable[[bytes, object], bool]:
    """An OpenDocument file: a zip whose "mimetype" entry names its kind."""

    def check(head: bytes, file) -> bool:
        if not head.startswith(b"PK\x03\x04"):
            return False
        try:
            file.seek(0)
            with zipfile.ZipFile(file) as archive:
                info = archive.getinfo("mimetype")
                if info.file_size > ODF_MIMETYPE_MAX:
                    return False
                return archive.read(info).decode("ascii", "replace").strip() == mimetype
        except (KeyError, zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError):
            return False
        finally:
            file.seek(0)

    return check


@dataclass(frozen=True)
class FileType:
    label: str
    content_type: str
    group: str  # document, image, archive
    looks_right: Callable[[bytes, object], bool]


_OLE2 = _starts(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1")
_ZIP = _starts(b"PK\x03\x04", b"PK\x05\x06")
_ODF = "application/vnd.oasis.opendocument."
_OOXML = "application/vnd.openxmlformats-officedocument."

ALLOWED_TYPES: dict[str, FileType] = {
    # Documents
    ".pdf": FileType("PDF", "application/pdf", "document", _starts(b"%PDF-")),
    ".doc": FileType("Word", "application/msword", "document", _OLE2),
    ".xls": FileType("Excel", "application/vnd.ms-excel", "document", _OLE2),
    ".ppt": FileType("PowerPoint", "application/vnd.ms-powerpoint", "document", _OLE2),
    ".docx": FileType("Word", _OOXML + "wordprocessingml.document", "document", _ooxml("word/")),
    ".xlsx": FileType("Excel", _OOXML + "spreadsheetml.sheet", "document", _ooxml("xl/")),
    ".pptx": FileType(
        "PowerPoint", _OOXML + "presentationml.presentation", "document", _ooxml("ppt/")
    ),
    ".odt": FileType("OpenDocument text", _ODF + "text", "document", _odf(_ODF + "text")),
    ".ods": FileType(
        "OpenDocument spreadsheet", _ODF + "spreadsheet", "document", _odf(_ODF + "spreadsheet")
    ),
    ".odp": FileType(
        "OpenDocument presentation",
        _ODF + "presentation",
        "document",
        _odf(_ODF + "presentation"),
    ),
    ".rtf": FileType("RTF", "application/rtf", "document", _starts(b"{\\rtf")),
    ".txt": FileType("text", "text/plain", "document", _text),
    ".csv": FileType("CSV", "text/csv", "document", _text),
    ".md": FileType("Markdown", "text/markdown", "document", _text),
    # Images (SVG is left out: it can carry script)
    ".png": FileType("PNG", "image/png", "image", _starts(b"\x89PNG\r\n\x1a\n")),
    ".jpg": FileType("JPEG", "image/jpeg", "image", _starts(b"\xff\xd8\xff")),
    ".jpeg": FileType("JPEG", "image/jpeg", "image", _starts(b"\xff\xd8\xff")),
    ".gif": FileType("GIF", "image/gif", "image", _starts(b"GIF87a", b"GIF89a")),
    ".webp": FileType("WebP", "image/webp", "image", _webp),
    ".tif": FileType("TIFF", "image/tiff", "image", _starts(b"II*\x00", b"MM\x00*")),
    ".tiff": FileType("TIFF", "image/tiff", "image", _starts(b"II*\x00", b"MM\x00*")),
    # Archives (stored as they are: never unpacked here)
    ".zip": FileType("ZIP", "application/zip", "archive", _ZIP),
    ".gz": FileType("GZIP", "application/gzip", "archive", _starts(b"\x1f\x8b")),
    ".tgz": FileType("GZIP", "application/gzip", "archive", _starts(b"\x1f\x8b")),
    ".tar": FileType("TAR", "application/x-tar", "archive", _tar),
    ".7z": FileType("7z", "application/x-7z-compressed", "archive", _starts(b"7z\xbc\xaf\x27\x1c")),
    ".rar": FileType("RAR", "application/vnd.rar", "archive", _starts(b"Rar!\x1a\x07")),
}

ALLOWED_SUMMARY = (
    "documents (PDF, Word, Excel, PowerPoint, OpenDocument, RTF, text, CSV, Markdown), "
    "images (PNG, JPEG, GIF, WebP, TIFF) and archives (ZIP, GZIP, TAR, 7z, RAR)"
)
ACCEPT_ATTRIBUTE = ",".join(sorted(ALLOWED_TYPES))


# Names -----------------------------------------------------------------------------------------


def safe_file_name(raw) -> str:
    """The name to show and to send back: the last part of what the browser sent, without
    control or direction-changing characters, at most NAME_MAX characters (extension kept)."""
    name = str(raw or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = unicodedata.normalize("NFC", name)
    name = "".join(ch for ch in name if not unicodedata.category(ch).startswith("C"))
    name = " ".join(name.split()).strip(" .")
    if not name:
        return "file"
    if len(name) > NAME_MAX:
        stem, ext = os.path.splitext(name)
        ext = ext[:20]
        name = stem[: NAME_MAX - len(ext)] + ext
    return name


def file_type_of(name: str, file) -> FileType:
    """The allow-list's type of an upload, or a ValidationError that says why not."""
    ext = os.path.splitext(name)[1].lower()
    kind = ALLOWED_TYPES.get(ext)
    if kind is None:
        raise ValidationError(
            f"“{name}” cannot be attached: only {ALLOWED_SUMMARY} can.", code="file_type"
        )
    file.seek(0)
    head = file.read(SNIFF_BYTES)
    file.seek(0)
    if not kind.looks_right(head, file):
        raise ValidationError(
            f"“{name}” is not a real {kind.label} file: its content does not match its name, "
            "so it was not attached.",
            code="file_content",
        )
    return kind


def check_upload(upload) -> tuple[str, FileType]:
    """(the name to keep, its type) for an uploaded file, or a ValidationError."""
    name = safe_file_name(getattr(upload, "name", ""))
    size = getattr(upload, "size", None) or 0
    if size <= 0:
        raise ValidationError(f"“{name}” is empty.", code="file_empty")
    limit = max_bytes()
    if size > limit:
        raise ValidationError(
            f"“{name}” is {human_size(size)}; files up to {human_size(limit)} can be attached.",
            code="file_size",
        )
    return name, file_type_of(name, upload)


# Writes ----------------------------------------------------------------------------------------


def _user_of(actor: Actor):
    user = getattr(actor, "user", None)
    return user if user is not None and getattr(user, "pk", None) else None


def _payload(attachment: Attachment) -> dict:
    return {
        "deal": attachment.deal.public_id,
        "attachment": attachment.public_id,
        "file_name": attachment.file_name,
        "content_type": attachment.content_type,
        "size": attachment.size,
    }


def attachment_upload(*, deal: Deal, actor: Actor, upload, policy=None) -> Attachment:
    """Store `upload` (a Django UploadedFile) and attach it to `deal`."""
    require(policy, "edit", deal)
    if deal.is_archived:
        raise ValidationError("Restore the deal before attaching files.")
    name, kind = check_upload(upload)
    org = deal.org
    attachment = Attachment(
        org=org,
        deal=deal,
        file_name=name,
        content_type=kind.content_type,
        size=upload.size,
        uploaded_by=_user_of(actor),
    )
    upload.seek(0)
    attachment.file.save(name, upload, save=False)  # stored under the attachment's uuid
    try:
        with transaction.atomic():
            locked = Deal.objects.for_org(org).select_for_update().get(pk=deal.pk)
            if Attachment.objects.for_org(org).filter(deal=locked).count() >= MAX_ATTACHMENTS:
                raise ValidationError(
                    f"A deal can hold at most {MAX_ATTACHMENTS} files; delete some first."
                )
            attachment.save()
            audit(
                org=org,
                actor=actor,
                verb="deal.attachment_added",
                obj=deal,
                changes={"attachment": [None, f"{name} ({human_size(attachment.size)})"]},
            )
            emit_event(org=org, event_type="deal.attachment_added", payload=_payload(attachment))
    except BaseException:
        attachment.file.delete(save=False)  # nothing points at it: do not keep it
        raise
    return attachment


def may_delete(policy, attachment: Attachment, user) -> bool:
    if policy is None:
        return True
    deal = attachment.deal
    if not policy.can_touch("pipeline", "edit", deal.owner_id):
        return False
    return attachment.uploaded_by_id == getattr(user, "pk", None) or policy.can(
        "pipeline", "delete"
    )


@transaction.atomic
def attachment_delete(*, attachment: Attachment, actor: Actor, policy=None) -> None:
    org = attachment.org
    require(policy, "edit", attachment.deal)
    if not may_delete(policy, attachment, _user_of(actor)):
        raise PermissionDenied(
            "Only the person who attached a file, or a member who may delete deals, can remove it."
        )
    attachment = (
        Attachment.objects.for_org(org)
        .select_for_update()
        .select_related("deal")
        .get(pk=attachment.pk)
    )
    audit(
        org=org,
        actor=actor,
        verb="deal.attachment_deleted",
        obj=attachment.deal,
        changes={"attachment": [attachment.file_name, None]},
    )
    emit_event(org=org, event_type="deal.attachment_deleted", payload=_payload(attachment))
    storage, path = attachment.file.storage, attachment.file.name
    attachment.delete()
    # The file goes once the row is gone for good; a rollback keeps both.
    transaction.on_commit(lambda: storage.delete(path) if path else None)
