"""Files on a deal: size and type limits (by extension AND content, never the browser's
content type), storage under a uuid, downloads as attachments with a safe name and only for
members who may see the deal, deletion, and 404 for another organization."""

import io
import zipfile

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from crm.models import AuditEvent
from crm.permissions import Policy
from crm.services import Actor
from pipeline.models import Attachment
from pipeline.services.attachments import (
    attachment_delete,
    attachment_upload,
    safe_file_name,
)
from tests.factories import DealFactory, OrganizationFactory, member

pytestmark = pytest.mark.django_db

PDF = b"%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32
EXE = b"MZ\x90\x00\x03\x00\x00\x00" + b"\x00" * 64


def _docx() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("word/document.xml", "<w:document/>")
    return buffer.getvalue()


def _zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("notes.txt", "hello")
    return buffer.getvalue()


@pytest.fixture(autouse=True)
def _media(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path)
    settings.PIPELINE_ATTACHMENT_MAX_BYTES = 1024


@pytest.fixture
def admin(org):
    return member(org, "admin")


@pytest.fixture
def deal(org, admin):
    return DealFactory(org=org, owner=admin.user)


def _upload(deal, who, name, content, content_type="application/octet-stream"):
    return attachment_upload(
        deal=deal,
        actor=Actor.for_user(who.user),
        upload=SimpleUploadedFile(name, content, content_type=content_type),
        policy=Policy(who),
    )


@pytest.mark.parametrize(
    ("name", "content", "stored_type"),
    [
        ("proposal.pdf", PDF, "application/pdf"),
        ("screenshot.PNG", PNG, "image/png"),
        (
            "contract.docx",
            _docx(),
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        ),
        ("bundle.zip", _zip(), "application/zip"),
        ("notes.txt", "Prix: 12 €\nMerci".encode(), "text/plain"),
    ],
)
def test_allowed_files_are_stored_under_a_uuid_with_the_allow_lists_type(
    deal, admin, org, name, content, stored_type
):
    attachment = _upload(deal, admin, name, content, content_type="text/html")
    assert attachment.file_name == name
    assert attachment.content_type == stored_type  # never the browser's "text/html"
    assert attachment.size == len(content)
    assert attachment.file.name == f"attachments/{org.id}/{attachment.public_id}"
    with attachment.file.open("rb") as handle:
        assert handle.read() == content
    assert AuditEvent.objects.for_org(org).filter(verb="deal.attachment_added").exists()


def test_a_file_over_the_limit_is_refused_with_the_sizes(deal, admin, org):
    with pytest.raises(ValidationError) as exc:
        _upload(deal, admin, "huge.pdf", PDF + b"0" * 2000)
    message = " ".join(exc.value.messages)
    assert "huge.pdf" in message and "1 KB" in message and "2 KB" in message
    assert not Attachment.objects.for_org(org).exists()


def test_the_default_limit_is_20_megabytes(settings):
    from pipeline.services.attachments import max_bytes

    del settings.PIPELINE_ATTACHMENT_MAX_BYTES
    assert max_bytes() == 20 * 1024 * 1024


@pytest.mark.parametrize(
    ("name", "content", "says"),
    [
        ("invoice.pdf", EXE, "not a real PDF"),  # an executable disguised by its name
        ("photo.png", PDF, "not a real PNG"),
        ("contract.docx", _zip(), "not a real Word"),  # a zip, but no Word document inside
        ("readme.txt", EXE, "not a real text"),
        ("setup.exe", EXE, "cannot be attached"),
        ("page.html", b"<html></html>", "cannot be attached"),
        ("logo.svg", b"<svg/>", "cannot be attached"),
        ("empty.pdf", b"", "is empty"),
    ],
)
def test_wrong_types_are_refused_by_extension_and_content(deal, admin, org, name, content, says):
    with pytest.raises(ValidationError) as exc:
        _upload(deal, admin, name, content, content_type="application/pdf")
    assert says in " ".join(exc.value.messages)
    assert not Attachment.objects.for_org(org).exists()


@pytest.mark.parametrize(
    ("raw", "safe"),
    [
        ("../../etc/passwd.txt", "passwd.txt"),
        ("C:\\Users\\ann\\quote.pdf", "quote.pdf"),
        ("evil\u202egpj.exe.pdf", "evilgpj.exe.pdf"),  # no right-to-left override
        ('a"b\r\nc.pdf', 'a"bc.pdf'),
        ("", "file"),
        ("x" * 300 + ".pdf", "x" * 251 + ".pdf"),
    ],
)
def test_file_names_are_cleaned(raw, safe):
    assert safe_file_name(raw) == safe


def test_viewers_upload_nothing_and_reps_only_on_their_deals(deal, org):
    with pytest.raises(PermissionDenied):
        _upload(deal, member(org, "viewer"), "a.pdf", PDF)
    with pytest.raises(PermissionDenied):
        _upload(deal, member(org, "team"), "a.pdf", PDF)
    assert not Attachment.objects.for_org(org).exists()


def test_delete_is_for_the_uploader_or_who_may_delete_deals(
    deal, admin, org, django_capture_on_commit_callbacks
):
    rep = member(org, "team")
    deal.owner = rep.user
    deal.save(update_fields=["owner"])
    mine = _upload(deal, rep, "mine.pdf", PDF)
    theirs = _upload(deal, admin, "theirs.pdf", PDF)
    with pytest.raises(PermissionDenied):
        attachment_delete(attachment=theirs, actor=Actor.for_user(rep.user), policy=Policy(rep))
    stored = mine.file.name
    storage = mine.file.storage
    with django_capture_on_commit_callbacks(execute=True):
        attachment_delete(attachment=mine, actor=Actor.for_user(rep.user), policy=Policy(rep))
    attachment_delete(attachment=theirs, actor=Actor.for_user(admin.user), policy=Policy(admin))
    assert not Attachment.objects.for_org(org).exists()
    assert not storage.exists(stored)


# Views ----------------------------------------------------------------------------------------


def test_upload_view_shows_the_refusal_on_the_form(deal, admin, org, client_as):
    url = reverse("pipeline:attachment_upload", args=[deal.public_id])
    response = client_as(admin).post(
        url, {"file": SimpleUploadedFile("invoice.pdf", EXE, content_type="application/pdf")}
    )
    assert response.status_code == 200
    assert "not a real PDF" in response.content.decode()
    assert not Attachment.objects.for_org(org).exists()
    ok = client_as(admin).post(url, {"file": SimpleUploadedFile("quote.pdf", PDF)})
    assert ok.status_code == 302
    assert Attachment.objects.for_org(org).get().file_name == "quote.pdf"


def test_download_is_an_attachment_with_a_safe_name(deal, admin, client_as):
    attachment = _upload(deal, admin, 'Q3 "final" offer.pdf', PDF)
    response = client_as(admin).get(
        reverse("pipeline:attachment_download", args=[attachment.public_id])
    )
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == PDF
    disposition = response["Content-Disposition"]
    assert disposition.startswith("attachment;")
    assert "\r" not in disposition and "\n" not in disposition
    assert 'filename="Q3 \\"final\\" offer.pdf"' in disposition
    assert response["Content-Type"] == "application/pdf"
    assert response["X-Content-Type-Options"] == "nosniff"


def test_download_follows_who_may_see_the_deal(deal, admin, org, client_as):
    attachment = _upload(deal, admin, "quote.pdf", PDF)
    url = reverse("pipeline:attachment_download", args=[attachment.public_id])
    assert client_as(member(org, "viewer")).get(url).status_code == 200  # sees every deal
    assert client_as(member(org, "team")).get(url).status_code == 404  # not their deal
    assert client_as(member(org, "support")).get(url).status_code == 403  # no pipeline at all
    assert client_as(member(OrganizationFactory(), "owner")).get(url).status_code == 404


def test_another_org_gets_404_on_every_file_url(deal, admin, client_as):
    attachment = _upload(deal, admin, "quote.pdf", PDF)
    outsider = client_as(member(OrganizationFactory(), "owner"))
    assert (
        outsider.post(
            reverse("pipeline:attachment_delete", args=[attachment.public_id])
        ).status_code
        == 404
    )
    assert (
        outsider.post(
            reverse("pipeline:attachment_upload", args=[deal.public_id]),
            {"file": SimpleUploadedFile("x.pdf", PDF)},
        ).status_code
        == 404
    )
    assert Attachment.objects.filter(pk=attachment.pk).exists()


def test_an_upload_far_over_the_limit_is_refused_before_it_is_read(deal, admin, org, client_as):
    response = client_as(admin, htmx=True).post(
        reverse("pipeline:attachment_upload", args=[deal.public_id]),
        {"file": SimpleUploadedFile("big.pdf", PDF + b"0" * 200_000)},
    )
    assert response.status_code == 200
    assert "files up to 1 KB can be attached" in response.content.decode()
    assert not Attachment.objects.for_org(org).exists()
