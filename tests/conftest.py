import os

import pytest
from django.db.backends.signals import connection_created
from django.test import Client

from crm.permissions import BUILTIN_ROLE_KEYS

from .factories import OrganizationFactory, member

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


def _allow_flushing_the_audit_log(sender, connection, **kwargs):
    """Transactional tests empty every table with TRUNCATE afterwards; the audit log's trigger
    refuses that unless the connection says so (crm/migrations/0007). Only tests say so."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SET crm.allow_audit_truncate = 'on'")


connection_created.connect(_allow_flushing_the_audit_log)


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    """The default hasher costs ~0.5 s per user here; tests need a hash, not its strength."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def org(db):
    return OrganizationFactory(name="Acme Test", slug="acme-test")


@pytest.fixture
def other_org(db):
    return OrganizationFactory(name="Globex Test", slug="globex-test")


@pytest.fixture
def members(org):
    """One active member per built-in role of `org`, keyed by role key."""
    return {key: member(org, key) for key in BUILTIN_ROLE_KEYS}


@pytest.fixture
def owner(org):
    return member(org, "owner")


@pytest.fixture
def client_as():
    """client_as(user_or_membership) -> a logged-in test client working in that org."""

    def make(who, htmx: bool = False):
        user = getattr(who, "user", who)
        client = Client(HTTP_HX_REQUEST="true") if htmx else Client()
        client.force_login(user)
        if hasattr(who, "org_id"):
            session = client.session
            session["active_org_id"] = who.org_id
            session.save()
        return client

    return make
