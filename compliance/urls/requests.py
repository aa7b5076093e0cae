"""Data subject requests (Settings → Privacy → Requests)."""

from django.urls import path

from ..views import requests

urlpatterns = [
    path("requests/", requests.request_list, name="requests"),
    path("requests/new/", requests.request_create, name="request_create"),
    path("requests/<uuid:public_id>/", requests.request_detail, name="request_detail"),
    path("requests/<uuid:public_id>/assign/", requests.request_assign, name="request_assign"),
    path("requests/<uuid:public_id>/status/", requests.request_status, name="request_status"),
    path("requests/<uuid:public_id>/complete/", requests.request_complete, name="request_complete"),
    path("requests/<uuid:public_id>/export/", requests.request_export, name="request_export"),
    path("requests/<uuid:public_id>/erase/", requests.request_erase, name="request_erase"),
]
