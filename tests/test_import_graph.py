"""The app packages' import graph, read from the source with `ast`: no module-level cycle, the
packages in one direction (config <- mail <- subscribers <- digest, web beside digest, the URL
configuration on top), digest's stages in pipeline order, and a comment on every import that
waits inside a function.

Module-level imports are the top-level statements (inside a top-level `try` or `if` too, but not
under `if TYPE_CHECKING:`, which only type checkers run). Function-level imports run when the
function does, so they cannot make an import cycle; each must say why it waits.
"""

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support import ROOT

APP_PACKAGES = ("config", "mail", "web", "subscribers", "digest")

# What each package may import at module level, itself included. `web` (the site's shared pages
# and middleware) sits beside `digest`, on `subscribers`; nothing imports it but the URLs.
MAY_IMPORT = {
    "config": {"config"},
    "mail": {"config", "mail"},
    "subscribers": {"config", "mail", "subscribers"},
    "digest": {"config", "mail", "subscribers", "digest"},
    "web": {"config", "mail", "subscribers", "web"},
}
# The top: routing (and the WSGI entry point) imports whatever it routes, and nothing imports it.
TOP = {"config.urls", "config.wsgi"}

# digest's stages, upstream first: a stage imports only the stages before it and the app's base
# (models, plain_sql, chunks). The app's entry points (admin, views, urls, tasks, commands,
# template tags) come after every stage.
DIGEST_BASE = {"digest", "digest.models", "digest.plain_sql", "digest.chunks"}
DIGEST_STAGES = ("digest.papers", "digest.matching", "digest.delivery", "digest.ops")

PRAGMAS = ("# noqa", "# type:", "# nosec", "# pragma")


@dataclass(frozen=True)
class Import:
    importer: str
    target: str  # a project module
    line: int
    in_function: bool


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def app_modules() -> dict[str, Path]:
    found = {}
    for package in APP_PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if "migrations" not in path.parts:
                found[module_name(path)] = path
    return found


MODULES = app_modules()
PROJECT = set(MODULES) | set(APP_PACKAGES)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _import_nodes(body: list[ast.stmt], in_function: bool) -> Iterator[tuple[ast.stmt, bool]]:
    for node in body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node, in_function
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield from _import_nodes(node.body, True)
        elif isinstance(node, ast.If) and _is_type_checking(node):
            yield from _import_nodes(node.orelse, in_function)
        else:
            for field in ("body", "orelse", "finalbody", "handlers"):
                children = getattr(node, field, None)
                if isinstance(children, list):
                    yield from _import_nodes([c for c in children if isinstance(c, ast.AST)], in_function)


def _targets(node: ast.stmt, importer: str, is_package: bool) -> list[str]:
    """The project modules an import statement loads."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = node.module or ""
    if node.level:
        anchor = importer.split(".") if is_package else importer.split(".")[:-1]
        anchor = anchor[: len(anchor) - (node.level - 1)]
        base = ".".join(anchor + ([base] if base else []))
    submodules = [f"{base}.{alias.name}" for alias in node.names if f"{base}.{alias.name}" in PROJECT]
    return submodules if len(submodules) == len(node.names) else [base, *submodules]


def imports() -> list[Import]:
    found = []
    for name, path in MODULES.items():
        tree = ast.parse(path.read_text(), str(path))
        for node, in_function in _import_nodes(tree.body, False):
            for target in _targets(node, name, path.name == "__init__.py"):
                if target in PROJECT and target != name:
                    found.append(Import(name, target, node.lineno, in_function))
    return found


IMPORTS = imports()
MODULE_LEVEL = [i for i in IMPORTS if not i.in_function]


def package(module: str) -> str:
    return module.split(".")[0]


def digest_place(module: str) -> int | None:
    """0 for the app's base, 1.. for its stages in order, len+1 for its entry points."""
    if module in DIGEST_BASE:
        return 0
    for number, stage in enumerate(DIGEST_STAGES, 1):
        if module == stage or module.startswith(stage + "."):
            return number
    return len(DIGEST_STAGES) + 1 if package(module) == "digest" else None


def cycles(edges: list[tuple[str, str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    graph: dict[str, set[str]] = {}
    for a, b in edges:
        graph.setdefault(a, set()).add(b)
        graph.setdefault(b, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in sorted(graph[node]):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def where(found: Import) -> str:
    return f"{MODULES[found.importer].relative_to(ROOT)}:{found.line} imports {found.target}"


def test_the_graph_reads_every_app_module_and_finds_their_imports():
    assert {"config.settings", "mail.streams", "subscribers.services", "digest.delivery.sending"} <= set(MODULES)
    pairs = {(i.importer, i.target, i.in_function) for i in IMPORTS}
    assert ("digest.delivery.sending", "mail.streams", False) in pairs
    assert ("digest.apps", "digest.tasks", True) in pairs


def test_no_module_level_import_cycle_among_the_app_modules():
    assert cycles([(i.importer, i.target) for i in MODULE_LEVEL]) == []


def test_the_cycle_finder_finds_a_cycle_through_three_modules():
    assert cycles([("a", "b"), ("b", "c"), ("c", "a"), ("c", "d")]) == [["a", "b", "c"]]


def test_mail_imports_neither_digest_nor_subscribers_not_even_inside_a_function():
    apps = {"digest", "subscribers"}
    wrong = [where(i) for i in IMPORTS if package(i.importer) == "mail" and package(i.target) in apps]
    assert wrong == []


def test_packages_import_only_downwards():
    wrong = [
        where(i)
        for i in MODULE_LEVEL
        if i.importer not in TOP and (i.target in TOP or package(i.target) not in MAY_IMPORT[package(i.importer)])
    ]
    assert wrong == []


def test_digest_stages_import_only_upstream_stages():
    wrong = []
    for found in MODULE_LEVEL:
        here, there = digest_place(found.importer), digest_place(found.target)
        if here is not None and there is not None and there > here and here <= len(DIGEST_STAGES):
            wrong.append(where(found))
    assert wrong == []


def _says_why(line: str) -> bool:
    comment = line.partition("#")[2].strip()
    return bool(comment) and not any(f"# {comment}".startswith(pragma) for pragma in PRAGMAS)


def test_every_function_level_import_of_project_code_says_why_it_waits():
    silent = []
    for found in IMPORTS:
        if not found.in_function:
            continue
        lines = MODULES[found.importer].read_text().splitlines()
        number = found.line - 1
        if _says_why(lines[number]):
            continue
        # A run of imports shares the comment above its first line.
        while number > 0 and lines[number - 1].strip().startswith(("from ", "import ")):
            number -= 1
        if not (number > 0 and lines[number - 1].strip().startswith("#") and _says_why(lines[number - 1])):
            silent.append(where(found))
    assert silent == []


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("import digest.models\n", [("digest.models", False)]),
        (
            "from digest.papers import archive, ingestion\n",
            [("digest.papers.archive", False), ("digest.papers.ingestion", False)],
        ),
        ("from digest.models import Paper\n", [("digest.models", False)]),
        ("def f():\n    from mail import mime\n", [("mail.mime", True)]),
        ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from digest.models import Paper\n", []),
        ("try:\n    from mail.mime import fold\nexcept ImportError:\n    pass\n", [("mail.mime", False)]),
    ],
)
def test_the_reader_resolves_each_form_of_import(source, expected):
    tree = ast.parse(source)
    found = [
        (target, in_function)
        for node, in_function in _import_nodes(tree.body, False)
        for target in _targets(node, "digest.example", False)
        if target in PROJECT
    ]
    assert found == expected
