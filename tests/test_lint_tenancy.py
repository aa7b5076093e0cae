"""The tenancy lint (scripts/lint_tenancy.py): what it flags, what it lets through, and that
any violation fails it. Each test writes a small app to a temporary folder and lints
that, so none depends on the state of the real code."""

import ast
import textwrap

import pytest

from scripts import lint_tenancy

MODELS = """
from django.db import models

from crm.tenancy import OrgScopedModel


class JobBase(OrgScopedModel):
    class Meta:
        abstract = True


class Contact(OrgScopedModel):
    name = models.TextField()


class Group(OrgScopedModel):
    pass


class Export(JobBase):
    pass


class Country(models.Model):
    code = models.TextField()
"""


@pytest.fixture
def app(tmp_path):
    """A package `app` with tenant models; `write(name, code)` adds a module to it."""
    package = tmp_path / "app"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "models.py").write_text(MODELS)

    def write(name, code):
        path = package / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(code))
        return path

    write.root = tmp_path
    write.package = package
    return write


def found(app):
    return [
        (v.path.rsplit("/", 1)[-1], v.line, v.call)
        for v in lint_tenancy.lint([app.package], base=app.root)
    ]


def test_tenant_models_are_found_directly_and_through_an_abstract_base():
    trees = {"models.py": ast.parse(MODELS)}

    assert lint_tenancy.tenant_models(trees) == {"JobBase", "Contact", "Group", "Export"}


def test_unscoped_queries_on_tenant_models_are_flagged(app):
    app(
        "views.py",
        """
        from .models import Contact, Export

        def page(request):
            one = Contact.objects.get(pk=1)
            many = Contact.objects.filter(name="x").order_by("name")
            Export.objects.create(org=request.org)
            return one, many
        """,
    )

    assert found(app) == [
        ("views.py", 5, "Contact.objects.get"),
        ("views.py", 6, "Contact.objects.filter"),
        ("views.py", 7, "Export.objects.create"),
    ]


def test_for_org_and_all_orgs_are_allowed_and_plain_models_are_not_checked(app):
    app(
        "selectors.py",
        """
        from .models import Contact, Country

        def contacts(org):
            return Contact.objects.for_org(org).filter(name="x").select_related("org")

        def sweep():
            return Contact.objects.all_orgs().count(), Country.objects.filter(code="FR")
        """,
    )

    assert found(app) == []


def test_aliases_and_module_attributes_are_resolved(app):
    app(
        "services.py",
        """
        from app import models
        from .models import Contact as C

        def work():
            C.objects.all()
            models.Contact.objects.exclude(name="")
            C.objects.for_org(None)
        """,
    )

    assert found(app) == [
        ("services.py", 6, "Contact.objects.all"),
        ("services.py", 7, "Contact.objects.exclude"),
    ]


def test_a_bare_manager_and_the_other_manager_names_are_flagged(app):
    app(
        "views.py",
        """
        from django.shortcuts import get_object_or_404

        from .models import Contact

        def page(request, pk):
            get_object_or_404(Contact.objects, pk=pk)
            return Contact._default_manager.filter(pk=pk)
        """,
    )

    assert found(app) == [
        ("views.py", 7, "Contact.objects"),
        ("views.py", 8, "Contact._default_manager.filter"),
    ]


def test_a_library_class_with_a_tenant_models_name_is_not_flagged(app):
    app(
        "admin.py",
        """
        from django.contrib.auth.models import Group

        def staff():
            return Group.objects.filter(name="staff")
        """,
    )

    assert found(app) == []


def test_migrations_and_tests_folders_are_skipped(app):
    unscoped = "from app.models import Contact\nContact.objects.all()\n"
    app("migrations/0001_initial.py", unscoped)
    app("tests/test_x.py", unscoped)
    app("tasks.py", unscoped)

    assert found(app) == [("tasks.py", 2, "Contact.objects.all")]


# The command ---------------------------------------------------------------------------------
@pytest.fixture
def two_violations(app):
    return app(
        "bulk.py",
        """
        from .models import Contact, Group

        def run():
            Contact.objects.filter(name="a")
            Group.objects.get(pk=1)
        """,
    )


def run(app, *args):
    return lint_tenancy.main([str(app.package), *args])


def test_every_violation_fails_the_lint_with_its_line(app, two_violations, capsys):
    assert run(app) == 1

    out = capsys.readouterr().out
    assert f"{two_violations.as_posix()}:5:5: Contact.objects.filter" in out
    assert f"{two_violations.as_posix()}:6:5: Group.objects.get" in out


def test_scoped_queries_pass(app, two_violations, capsys):
    two_violations.write_text(
        two_violations.read_text()
        .replace("Contact.objects.filter", "Contact.objects.for_org(1).filter")
        .replace("Group.objects.get", "Group.objects.all_orgs().get")
    )

    assert run(app) == 0
    assert "every tenant query" in capsys.readouterr().out
