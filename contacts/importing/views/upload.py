"""The wizard's upload step: the file arrives under a size limit enforced while it streams in,
and becomes an import job."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.core.files.uploadhandler import FileUploadHandler, StopUpload
from django.shortcuts import redirect, render
from django.views.decorators.csrf import csrf_exempt, csrf_protect

from crm import rls
from crm.form_errors import add_errors
from crm.permissions import policy_for

from .. import services
from ..forms import UploadForm
from .common import actor, import_access, visible_jobs


class UploadLimitHandler(FileUploadHandler):
    """Refuses an upload over the limit as soon as that is known (from the request's length,
    else while it arrives), so an oversized file is never written to disk."""

    # Room for the form's other fields and the multipart boundaries around the file.
    OVERHEAD = 64 * 1024

    def __init__(self, request, limit: int):
        super().__init__(request)
        self.limit = limit
        self.too_large = False

    def handle_raw_input(self, input_data, META, content_length, boundary, encoding=None):
        self.too_large = content_length > self.limit + self.OVERHEAD

    def new_file(self, *args, **kwargs):
        super().new_file(*args, **kwargs)
        if self.too_large:
            self._refuse()

    def receive_data_chunk(self, raw_data, start):
        if start + len(raw_data) > self.limit:
            self._refuse()
        return raw_data

    def file_complete(self, file_size):
        return None

    def _refuse(self):
        self.request.import_upload_refused = True
        raise StopUpload(connection_reset=False)


def _limit_mb() -> int:
    return services.max_upload_bytes() // (1024 * 1024)


# The upload handlers can only change before the body is read, which CSRF checking does; so
# the check is exempted here and made by the inner view instead, after the handler is in place.
# Asks the AI provider for a mapping (seconds): no transaction may stay open meanwhile.
@rls.outside_request_transaction
@csrf_exempt
@import_access
def import_start(request):
    if request.method == "POST":
        request.upload_handlers.insert(0, UploadLimitHandler(request, services.max_upload_bytes()))
    return _upload_page(request)


@csrf_protect
def _upload_page(request):
    form = UploadForm()
    if request.method == "POST":
        form = UploadForm(request.POST, request.FILES)
        if getattr(request, "import_upload_refused", False):
            form.is_valid()
            form.errors["file"] = form.error_class(
                [f"The file is larger than the {_limit_mb()} MB limit."]
            )
        elif form.is_valid():
            try:
                job = services.import_create(
                    org=request.org,
                    actor=actor(request),
                    policy=policy_for(request),
                    upload=form.cleaned_data["file"],
                )
            except ValidationError as exc:
                add_errors(form, exc, default_field="file")
            else:
                return redirect("contacts:import_map", public_id=job.public_id)
    recent = visible_jobs(request).order_by("-created_at", "-id")[:5]
    return render(
        request,
        "contacts/import/upload.html",
        {
            "form": form,
            "limit_mb": _limit_mb(),
            "accepted": ", ".join(services.ALLOWED_EXTENSIONS),
            "recent": recent,
            "step": 1,
        },
        status=400 if form.is_bound and form.errors else 200,
    )
