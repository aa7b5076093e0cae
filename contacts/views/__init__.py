"""Contacts views, one module per page family (list, record, companies, ...)."""
