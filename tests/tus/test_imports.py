"""The tus server stays framework-free: nothing in app.tus imports Flask, only the WSGI adapter
(wsgi.py) uses Werkzeug, and nothing in app.tus imports the rest of the application."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import app.tus

PACKAGE = Path(app.tus.__file__).parent
MODULES = sorted(PACKAGE.glob("*.py"))


def imported(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize("path", MODULES, ids=[p.name for p in MODULES])
def test_no_flask_and_werkzeug_only_in_the_adapter(path: Path) -> None:
    roots = {name.split(".")[0] for name in imported(path)}
    assert "flask" not in roots, path.name
    if path.name != "wsgi.py":
        assert "werkzeug" not in roots, path.name
    outside = {
        n
        for n in imported(path)
        if n.startswith(("app.", "services")) and not n.startswith("app.tus")
    }
    assert outside == set(), path.name


def test_the_walk_sees_every_module() -> None:
    names = {"handler.py", "wsgi.py", "filestore.py", "filelocker.py", "gunicorn_body.py"}
    assert names <= {p.name for p in MODULES}
    assert "werkzeug.wsgi" in imported(PACKAGE / "wsgi.py")


@pytest.mark.parametrize("path", MODULES, ids=[p.name for p in MODULES])
def test_gunicorn_is_imported_only_by_its_fenced_reader(path: Path) -> None:
    roots = {name.split(".")[0] for name in imported(path)}
    assert ("gunicorn" in roots) == (path.name == "gunicorn_body.py"), path.name


def test_the_handler_composes_and_never_constructs_its_parts() -> None:
    source = (PACKAGE / "handler.py").read_text()
    for concrete in ("FileStore", "FileLocker", "filestore", "filelocker", "isinstance(self.st"):
        assert concrete not in source, concrete


@pytest.mark.parametrize("path", MODULES, ids=[p.name for p in MODULES])
def test_no_module_is_over_700_lines(path: Path) -> None:
    assert len(path.read_text().splitlines()) <= 700, path.name
