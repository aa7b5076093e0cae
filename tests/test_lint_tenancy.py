"""The tenancy lint (scripts/lint_tenancy.py): what it flags, what it lets through, and its
baseline, which may only shrink. Each test writes a small app to a temporary folder and lints
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


# The baseline --------------------------------------------------------------------------------
@pytest.fixture
def two_violations(app):
    return app(
        "bulk.py",
        """
        from .models import Contact, Group

        def run():
            Contact.objects.filter(name="a")
            Contact.objects.filter(name="b")
            Group.objects.get(pk=1)
        """,
    )


def run(app, *args):
    return lint_tenancy.main([str(app.package), *args])


def test_without_a_baseline_every_violation_fails_with_its_line(app, two_violations, capsys):
    assert run(app, "--no-baseline") == 1

    out = capsys.readouterr().out
    assert f"{two_violations.as_posix()}:5:5: Contact.objects.filter" in out
    assert f"{two_violations.as_posix()}:7:5: Group.objects.get" in out


def test_a_baseline_accepts_todays_violations(app, two_violations, tmp_path, capsys):
    baseline = tmp_path / "baseline.txt"
    assert run(app, "--baseline", str(baseline), "--update-baseline") == 0

    assert run(app, "--baseline", str(baseline)) == 0
    assert "3 in the baseline" in capsys.readouterr().out


def test_a_new_violation_fails_even_with_a_baseline(app, two_violations, tmp_path, capsys):
    baseline = tmp_path / "baseline.txt"
    run(app, "--baseline", str(baseline), "--update-baseline")
    two_violations.write_text(two_violations.read_text() + "\nContact.objects.filter(pk=2)\n")

    assert run(app, "--baseline", str(baseline)) == 1
    assert "3 x Contact.objects.filter, the baseline allows 2" in capsys.readouterr().err


def test_a_fixed_violation_leaves_a_stale_entry_that_fails(app, two_violations, tmp_path, capsys):
    baseline = tmp_path / "baseline.txt"
    run(app, "--baseline", str(baseline), "--update-baseline")
    two_violations.write_text(
        two_violations.read_text().replace("Group.objects.get", "Group.objects.for_org(1).get")
    )

    assert run(app, "--baseline", str(baseline)) == 1
    assert "Group.objects.get is in the baseline 1 time(s) but found 0" in (capsys.readouterr().err)
    assert run(app, "--baseline", str(baseline), "--update-baseline") == 0
    assert "Group.objects.get" not in baseline.read_text()
    assert run(app, "--baseline", str(baseline)) == 0


def test_updating_the_baseline_refuses_to_raise_a_count(app, two_violations, tmp_path):
    baseline = tmp_path / "baseline.txt"
    run(app, "--baseline", str(baseline), "--update-baseline")
    before = baseline.read_text()
    two_violations.write_text(two_violations.read_text() + "\nGroup.objects.all()\n")

    assert run(app, "--baseline", str(baseline), "--update-baseline") == 1
    assert baseline.read_text() == before


def test_a_file_that_does_not_parse_fails_the_lint(app, capsys):
    app("broken.py", "def f(:\n")

    assert run(app, "--no-baseline") == 1
    assert "broken.py:1: cannot parse" in capsys.readouterr().err
