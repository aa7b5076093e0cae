"""factory-boy factories. Every tenant factory needs an org: pass one, or get a fresh one."""

import factory
from django.utils import timezone

from crm.models import Membership, Organization, Role, Team, User
from crm.services.orgs import ensure_builtin_roles

PASSWORD = "demo-pass-2026"


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        skip_postgeneration_save = True

    email = factory.Sequence(lambda n: f"user{n}@example.test")
    first_name = factory.Faker("first_name")
    last_name = factory.Faker("last_name")
    password = factory.PostGenerationMethodCall("set_password", PASSWORD)

    @factory.post_generation
    def verified(self, create, extracted, **kwargs):
        """Users made here have a verified primary email, so allauth lets them log in."""
        if not create:
            return
        from allauth.account.models import EmailAddress

        self.save()
        EmailAddress.objects.get_or_create(
            user=self, email=self.email, defaults={"verified": True, "primary": True}
        )


class OrganizationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Organization

    name = factory.Sequence(lambda n: f"Org {n}")
    slug = factory.Sequence(lambda n: f"org-{n}")

    @factory.post_generation
    def roles(self, create, extracted, **kwargs):
        if create:
            ensure_builtin_roles(self)


class TeamFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Team

    org = factory.SubFactory(OrganizationFactory)
    name = factory.Sequence(lambda n: f"Team {n}")


def role(org, key: str) -> Role:
    return Role.objects.get(org=org, key=key)


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Membership

    org = factory.SubFactory(OrganizationFactory)
    user = factory.SubFactory(UserFactory)
    role = factory.LazyAttribute(lambda o: role(o.org, "team"))


def member(org, role_key: str = "owner", **kwargs) -> Membership:
    """A user who is an active member of `org` with the built-in role `role_key`."""
    return MembershipFactory(org=org, role=role(org, role_key), **kwargs)


def now():
    return timezone.now()
