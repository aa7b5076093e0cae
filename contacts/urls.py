"""Contacts URLs (namespace "contacts"): the record, companies, tasks and the inbox,
custom-field settings, and the contact list with its smart views."""

from django.urls import path

app_name = "contacts"

urlpatterns: list = []
