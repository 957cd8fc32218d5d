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
    assert {"handler.py", "wsgi.py", "filestore.py", "locking.py"} <= {p.name for p in MODULES}
    assert "werkzeug.utils" in imported(PACKAGE / "wsgi.py")
