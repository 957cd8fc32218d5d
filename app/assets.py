"""Vite's build manifest -> the hashed URLs of an entry's JavaScript and CSS, for templates.

Templates call `vite_assets("frontend/camera.js")` (the page needs it) or
`vite_script("frontend/review.js")` (an enhancement: None when not built); the manifest is
app/static/dist/.vite/manifest.json, written by `npm run build` (vite.config.js).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flask import Flask, current_app

MANIFEST = Path(__file__).parent / "static" / "dist" / ".vite" / "manifest.json"
BASE_URL = "/static/dist/"  # `base` in vite.config.js


class AssetsNotBuilt(RuntimeError):
    """The frontend bundle is missing or does not contain the asked entry."""


@dataclass(frozen=True)
class ViteAssets:
    js: str  # the entry's module script
    css: list[str] = field(default_factory=list)  # stylesheets of the entry and its imports
    preload: list[str] = field(default_factory=list)  # imported chunks (<link rel=modulepreload>)


def load_manifest(path: Path = MANIFEST) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise AssetsNotBuilt(
            f"The frontend is not built: {path} is missing. Run `npm install && npm run build` "
            "(or `make frontend`) in the repository root."
        ) from None


def entry_assets(manifest: dict[str, Any], entry: str) -> ViteAssets:
    chunk = manifest.get(entry)
    if chunk is None or not chunk.get("isEntry"):
        known = ", ".join(sorted(k for k, v in manifest.items() if v.get("isEntry"))) or "none"
        raise AssetsNotBuilt(
            f"{entry!r} is not an entry of the Vite manifest (entries: {known}); "
            "check vite.config.js and run `npm run build`."
        )
    css: list[str] = []
    preload: list[str] = []
    seen: set[str] = set()

    def walk(key: str) -> None:
        # Imported chunks carry CSS of their own (Vite splits shared code); depth first, once each.
        if key in seen:
            return
        seen.add(key)
        item = manifest[key]
        for name in item.get("css", []):
            if BASE_URL + name not in css:
                css.append(BASE_URL + name)
        for imported in item.get("imports", []):
            preload.append(BASE_URL + manifest[imported]["file"])
            walk(imported)

    walk(entry)
    return ViteAssets(js=BASE_URL + chunk["file"], css=css, preload=preload)


def init_assets(app: Flask) -> None:
    """Register the Jinja global `vite_assets(entry)`.

    The manifest is read once per process, except in debug mode where `vite build --watch` may
    rewrite it. A missing manifest fails the page that needs it with a clear message, not the
    whole app: the API and the tus server work without a built frontend.
    """
    cache: dict[str, Any] = {}

    def vite_assets(entry: str) -> ViteAssets:
        if "manifest" not in cache or current_app.debug:
            cache["manifest"] = load_manifest(Path(app.config.get("VITE_MANIFEST", MANIFEST)))
        return entry_assets(cache["manifest"], entry)

    def vite_script(entry: str) -> str | None:
        # Pages that work without their script (keyboard shortcuts, the logout check) still
        # render when the frontend is not built; the API and the tus server never need it.
        try:
            return vite_assets(entry).js
        except AssetsNotBuilt:
            return None

    app.jinja_env.globals["vite_assets"] = vite_assets
    app.jinja_env.globals["vite_script"] = vite_script
