"""An import-linter contract type: no import cycle between the modules of one app.

import-linter's own `acyclic_siblings` looks at one package level at a time, with each sibling
package squashed into one node. That misses a cycle that runs through a package's own
`__init__` (`contacts.services` -> `contacts.services.contacts` -> `contacts.services`): the
package and its child are never siblings. This contract works on the module graph itself, so
every cycle between two modules of an app is found, whatever packages they sit in. Imports
inside functions count (grimp reads every import statement), so a cycle "broken" by moving an
import into a function body still fails.

Registered in pyproject.toml under [tool.importlinter] `contract_types`; `make lint` runs it
through `lint-imports`.
"""

from __future__ import annotations

from collections.abc import Iterable

import grimp
from importlinter import Contract, ContractCheck, fields, output
from importlinter.application import contract_utils
from importlinter.application.contract_utils import AlertLevel


def module_cycles(graph: grimp.ImportGraph, package: str) -> list[list[str]]:
    """The strongly connected components (two modules or more) of `package`'s import graph."""
    nodes = sorted({package} | graph.find_descendants(package))
    inside = set(nodes)
    edges = {node: sorted(inside & graph.find_modules_directly_imported_by(node)) for node in nodes}
    return [sorted(c) for c in _strongly_connected(nodes, edges) if len(c) > 1]


def _strongly_connected(nodes: Iterable[str], edges: dict[str, list[str]]) -> list[list[str]]:
    # Tarjan's algorithm, iterative: a long import chain must not hit the recursion limit.
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    counter = 0
    for root in nodes:
        if root in index:
            continue
        work = [(root, 0)]
        while work:
            node, child_i = work.pop()
            if child_i == 0:
                index[node] = low[node] = counter
                counter += 1
                stack.append(node)
                on_stack.add(node)
            children = edges[node]
            if child_i < len(children):
                work.append((node, child_i + 1))
                child = children[child_i]
                if child not in index:
                    work.append((child, 0))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            # All children done: fold their low links in, then close the component.
            for child in children:
                if child in on_stack:
                    low[node] = min(low[node], low[child])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                components.append(component)
    return components


class ModuleCyclesContract(Contract):
    """No import cycle between any two modules of each listed package."""

    type_name = "module_cycles"

    packages = fields.SetField(subfield=fields.ModuleField())
    # As in the built-in contracts: an entry that matches no import is an error, so a list of
    # known violations can only shrink.
    ignore_imports = fields.SetField(subfield=fields.ImportExpressionField(), required=False)
    unmatched_ignore_imports_alerting = fields.EnumField(AlertLevel, default=AlertLevel.ERROR)

    def check(self, graph: grimp.ImportGraph, verbose: bool) -> ContractCheck:
        removal = contract_utils.remove_ignored_imports_and_report(
            graph=graph,
            ignore_imports=self.ignore_imports,
            unmatched_alerting=self.unmatched_ignore_imports_alerting,
        )
        cycles = []
        for package in sorted(self.packages, key=lambda m: m.name):
            for component in module_cycles(graph, package.name):
                members = set(component)
                imports = []
                for importer in component:
                    for imported in sorted(
                        members & graph.find_modules_directly_imported_by(importer)
                    ):
                        lines = sorted(
                            detail["line_number"]
                            for detail in graph.get_import_details(
                                importer=importer, imported=imported
                            )
                        )
                        imports.append((importer, imported, lines))
                cycles.append({"package": package.name, "imports": imports})
        return ContractCheck(
            kept=not cycles,
            warnings=list(removal.warnings),
            ignored_import_count=removal.ignored_import_count,
            metadata={"cycles": cycles},
        )

    def render_broken_contract(self, check: ContractCheck) -> None:
        for cycle in check.metadata["cycles"]:
            output.print_error(f"Import cycle in {cycle['package']} through:")
            for importer, imported, lines in cycle["imports"]:
                where = ", ".join(f"l.{n}" for n in lines)
                output.print_error(f"- {importer} -> {imported} ({where})")
            output.new_line()
