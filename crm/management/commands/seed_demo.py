"""Demo data: org "Acme" with one member per built-in role and org "Globex" with its owner.

Idempotent: running it again finds what is there and adds only what is missing. Other apps
extend it through `crm.demo.register` hooks (each receives the org and the options).
"""

from allauth.account.models import EmailAddress
from django.core.management.base import BaseCommand
from django.db import transaction
from django.utils.module_loading import autodiscover_modules

from crm import demo
from crm.models import Membership, Organization, User
from crm.permissions import BUILTIN_ROLES
from crm.services import Actor, organization_create
from crm.services.orgs import ensure_builtin_roles

PASSWORD = "demo-pass-2026"  # noqa: S105 - published demo password


def ensure_user(email: str, first: str, last: str) -> User:
    user = User.objects.filter(email__iexact=email).first()
    if user is None:
        user = User.objects.create_user(email=email, password=PASSWORD)
        user.first_name, user.last_name = first, last
        user.save(update_fields=["first_name", "last_name"])
    EmailAddress.objects.get_or_create(
        user=user, email=email, defaults={"verified": True, "primary": True}
    )
    return user


def ensure_org(name: str, slug: str, owner: User, **kwargs) -> Organization:
    org = Organization.objects.filter(slug=slug).first()
    if org is None:
        org = organization_create(
            name=name, slug=slug, owner=owner, actor=Actor.system("seed_demo"), **kwargs
        )
    ensure_builtin_roles(org)
    return org


class Command(BaseCommand):
    help = "Create (or top up) the demo organizations, people and data."

    def add_arguments(self, parser):
        # Each app's `demo.py` registers its hooks and options when imported.
        autodiscover_modules("demo")
        demo.add_arguments(parser)

    @transaction.atomic
    def handle(self, *args, **options):
        acme_owner = ensure_user("owner@acme.test", "Olivia", "Owner")
        acme = ensure_org(
            "Acme", "acme", acme_owner, base_currency="USD", timezone="America/New_York"
        )
        roles = ensure_builtin_roles(acme)
        for key, name, *_ in BUILTIN_ROLES:
            user = ensure_user(f"{key}@acme.test", name, "Demo")
            Membership.objects.for_org(acme).get_or_create(
                org=acme, user=user, defaults={"role": roles[key]}
            )
        globex_owner = ensure_user("owner@globex.test", "Gus", "Globex")
        globex = ensure_org(
            "Globex", "globex", globex_owner, base_currency="EUR", timezone="Europe/Berlin"
        )
        demo.run_hooks(self, [acme, globex], options)
        self.stdout.write(
            self.style.SUCCESS(
                f"Demo data ready: Acme ({Membership.objects.for_org(acme).count()} members), "
                "Globex. "
                f"Password for every demo login: {PASSWORD}"
            )
        )
