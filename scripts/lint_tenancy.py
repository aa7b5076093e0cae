"""Tenancy lint: a tenant model is queried through `for_org(org)` or `all_orgs()`, nothing else.

A tenant model is a class deriving `crm.tenancy.OrgScopedModel`, directly or through another
tenant model (an abstract base such as `ClaimableJob` counts). The models are found by reading
the source (no Django import), so the lint runs in a second and needs no database.

Flagged: `<TenantModel>.objects` (or `_default_manager` / `_base_manager`) followed by anything
but `.for_org(...)` / `.all_orgs()`, including the manager passed on bare
(`get_object_or_404(Contact.objects, ...)`). The model may be named through an import alias
(`from ..models import Contact as C`) or a module (`models.Contact`). Not checked: related
managers (`contact.notes.all()`: they start from a row that was already scoped) and a model
reached through a variable (`self.model.objects`).

Any violation fails the lint, with its file, line and call.

    python scripts/lint_tenancy.py            # what `make lint` runs
    python scripts/lint_tenancy.py --summary  # counts per file
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("crm", "contacts", "pipeline", "ai", "compliance")
SKIPPED_DIRS = {"migrations", "tests", "__pycache__"}
TENANT_BASE = "OrgScopedModel"
MANAGERS = {"objects", "_default_manager", "_base_manager"}
# `none()` reads no row at all, so it cannot leak one (an empty choice list of a form).
ALLOWED = {"for_org", "all_orgs", "none"}


@dataclass(frozen=True, order=True)
class Violation:
    path: str
    line: int
    column: int
    model: str
    manager: str
    method: str | None  # None: the manager itself is handed on

    @property
    def call(self) -> str:
        """What is called, e.g. `Contact.objects.filter`."""
        return f"{self.model}.{self.manager}" + (f".{self.method}" if self.method else "")

    def __str__(self) -> str:
        return (
            f"{self.path}:{self.line}:{self.column + 1}: {self.call} on a tenant model; "
            f"use {self.model}.objects.for_org(org) or {self.model}.objects.all_orgs()"
        )


def python_files(roots: Iterable[Path]) -> list[Path]:
    files = []
    for root in roots:
        if root.is_file():
            files.append(root)
            continue
        for path in root.rglob("*.py"):
            if not SKIPPED_DIRS.intersection(path.relative_to(root).parts[:-1]):
                files.append(path)
    return sorted(files)


def local_names(tree: ast.Module, packages: Iterable[str] = PACKAGES) -> dict[str, str | None]:
    """Each name a `from ... import` binds -> the class name it stands for, when it comes
    from the project (a relative import or one of `packages`); None when it comes from
    elsewhere, so a library's `Group` never passes for a tenant model of the same name."""
    packages = set(packages)
    names: dict[str, str | None] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            ours = node.level > 0 or (node.module or "").split(".")[0] in packages
            for alias in node.names:
                names[alias.asname or alias.name] = alias.name if ours else None
    return names


def _class_name(expr: ast.expr, names: dict[str, str | None]) -> str | None:
    """The class an expression names: `Contact`, an alias of it, or `models.Contact`."""
    if isinstance(expr, ast.Name):
        return names.get(expr.id, expr.id)
    if isinstance(expr, ast.Attribute):
        return expr.attr
    return None


def tenant_models(trees: dict[str, ast.Module], packages: Iterable[str] = PACKAGES) -> set[str]:
    """Names of the classes that derive OrgScopedModel, directly or through each other."""
    bases_of: dict[str, set[str]] = {}
    for tree in trees.values():
        names = local_names(tree, packages)
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                bases = {_class_name(base, names) for base in node.bases}
                bases_of.setdefault(node.name, set()).update(b for b in bases if b)
    tenants: set[str] = set()
    grew = True
    while grew:
        grew = False
        for name, bases in bases_of.items():
            if name not in tenants and (TENANT_BASE in bases or bases & tenants):
                tenants.add(name)
                grew = True
    return tenants


def violations_in(
    tree: ast.Module, path: str, tenants: set[str], packages: Iterable[str] = PACKAGES
) -> list[Violation]:
    names = local_names(tree, packages)
    parent_of = {
        id(child): parent for parent in ast.walk(tree) for child in ast.iter_child_nodes(parent)
    }
    found = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Attribute) and node.attr in MANAGERS):
            continue
        model = _class_name(node.value, names)
        if model not in tenants:
            continue
        parent = parent_of.get(id(node))
        method = parent.attr if isinstance(parent, ast.Attribute) else None
        if method in ALLOWED:
            continue
        found.append(Violation(path, node.lineno, node.col_offset, model, node.attr, method))
    return found


def lint(roots: Iterable[Path], base: Path = REPO) -> list[Violation]:
    roots = list(roots)
    trees = {}
    for file in python_files(roots):
        try:
            shown = file.resolve().relative_to(base.resolve()).as_posix()
        except ValueError:  # a path outside the repository is shown whole
            shown = file.resolve().as_posix()
        trees[shown] = ast.parse(file.read_text(encoding="utf-8"), filename=shown)
    # The project's own packages: the usual three, and any folder given to lint.
    packages = set(PACKAGES) | {Path(root).name for root in roots if Path(root).is_dir()}
    tenants = tenant_models(trees, packages)
    return sorted(
        v for shown, tree in trees.items() for v in violations_in(tree, shown, tenants, packages)
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="*", type=Path, help="default: " + " ".join(PACKAGES))
    parser.add_argument("--summary", action="store_true", help="violations per file")
    args = parser.parse_args(argv)
    roots = args.paths or [REPO / p for p in PACKAGES]
    try:
        violations = lint(roots)
    except SyntaxError as exc:
        # A file that does not parse cannot be checked: that is a failure, not a pass.
        print(f"{exc.filename}:{exc.lineno}: cannot parse: {exc.msg}", file=sys.stderr)
        return 1

    if args.summary:
        per_file = Counter(v.path for v in violations)
        for file, n in sorted(per_file.items()):
            print(f"{n:5}  {file}")
        print(f"{len(violations):5}  total")
        return 0

    for v in violations:
        print(v)
    if violations:
        return 1
    print("tenancy lint: every tenant query says for_org(org) or all_orgs()")
    return 0


if __name__ == "__main__":
    sys.exit(main())
