"""Input no view should ever have to handle.

A NUL character is never valid in anything a person types, and PostgreSQL refuses it in text
(a query or a JSON value with one fails with a database error, a 500). Rather than hope every
view that reads a parameter strips it, a request that carries one in its query string or its
form fields is refused here with a plain 400.

Form fields are read in process_view, as CsrfViewMiddleware reads them for the same views. A
view exempt from that check reads its own body (an upload view installs its upload handlers
first, which an earlier read would make impossible), so its fields are left to its forms, whose
fields refuse NUL themselves.
"""

from __future__ import annotations

from django.http import HttpResponseBadRequest

NUL = "\x00"
REFUSAL = "The request contains a NUL character, which is never valid input. Nothing was changed."


def _has_nul(query_dict) -> bool:
    return any(NUL in key or NUL in "".join(values) for key, values in query_dict.lists())


def _refusal():
    # text/plain: an error never repeats the input as HTML.
    return HttpResponseBadRequest(REFUSAL, content_type="text/plain; charset=utf-8")


class RejectNulCharactersMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if _has_nul(request.GET):
            return _refusal()
        return self.get_response(request)

    def process_view(self, request, view_func, view_args, view_kwargs):
        if request.method != "POST" or getattr(view_func, "csrf_exempt", False):
            return None
        return _refusal() if _has_nul(request.POST) else None
