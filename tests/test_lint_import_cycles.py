"""The module_cycles import-linter contract (scripts/lint_import_cycles.py) on small packages
written to a temporary folder: the cycles it must find, including the ones import-linter's
own acyclic_siblings cannot see, and the imports it must leave alone."""

import textwrap

import grimp
import pytest

from scripts.lint_import_cycles import module_cycles


@pytest.fixture
def package(tmp_path, monkeypatch):
    """`package({"app/__init__.py": "...", ...})` writes the files and returns their graph."""
    monkeypatch.syspath_prepend(str(tmp_path))

    def build(files: dict[str, str]) -> grimp.ImportGraph:
        for name, code in files.items():
            path = tmp_path / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(textwrap.dedent(code))
        return grimp.build_graph("app", cache_dir=None)

    return build


def test_a_cycle_through_an_import_inside_a_function_is_found(package):
    graph = package(
        {
            "app/__init__.py": "",
            "app/services.py": "from app import scoring\n",
            "app/scoring.py": "def rescore():\n    from app.services import x\n",
        }
    )

    assert module_cycles(graph, "app") == [["app.scoring", "app.services"]]


def test_a_cycle_through_a_packages_own_init_is_found(package):
    # acyclic_siblings never compares a package with its own child, so it misses this one.
    graph = package(
        {
            "app/__init__.py": "",
            "app/services/__init__.py": "LIMIT = 5\nfrom .contacts import create\n",
            "app/services/contacts.py": "from app.services import LIMIT\n",
        }
    )

    assert module_cycles(graph, "app") == [["app.services", "app.services.contacts"]]


def test_imports_that_only_go_one_way_are_no_cycle(package):
    graph = package(
        {
            "app/__init__.py": "",
            "app/models.py": "from app.importing import models as import_models\n",
            "app/importing/__init__.py": "",
            "app/importing/models.py": "",
            "app/importing/views.py": "from app import models\n",
        }
    )

    assert module_cycles(graph, "app") == []
