"""The tuscam Flask application: config, database, auth, the tus server and the pages."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from flask import Flask, redirect, url_for
from werkzeug.middleware.proxy_fix import ProxyFix

from app import config as config_module


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    app = Flask(__name__, instance_relative_config=True)
    instance = Path(app.instance_path)
    if test_config is None:
        app.config.from_mapping(config_module.load(instance))
    else:
        app.config.from_mapping(test_config)
        app.config.setdefault("DATABASE_URL", f"sqlite:///{instance / 'tuscam.sqlite3'}")
        app.config.setdefault("DATA_DIR", str(instance / "data"))
        for key, default in config_module.defaults().items():
            app.config.setdefault(key, default)
    app.config.update(
        SESSION_COOKIE_HTTPONLY=True,
        # Lax keeps the session cookie off cross-site POST/PATCH requests (CSRF on tus and API).
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=bool(app.config.get("SECURE_COOKIES")),
        PERMANENT_SESSION_LIFETIME=timedelta(hours=float(app.config["SESSION_HOURS"])),
        WTF_CSRF_CHECK_DEFAULT=False,
        WTF_CSRF_TIME_LIMIT=None,
        MAX_FORM_MEMORY_SIZE=1024 * 1024,
    )
    config_module.private_dir(Path(app.config["DATA_DIR"]))

    from app import (
        api,
        assets,
        auth,
        camera,
        capture_files,
        cli,
        db,
        errors,
        ops,
        pages,
        review,
        security,
        uploads,
    )

    db.init_app(app)
    errors.init_app(app)
    security.init_app(app)
    auth.csrf.init_app(app)
    app.before_request(auth.csrf_protect_unless_token)
    app.register_blueprint(auth.bp)
    app.register_blueprint(api.bp)
    uploads.init_app(app)
    ops.init_app(app)  # metrics, readiness; meters the tus adapter (so after uploads)
    app.register_blueprint(capture_files.files_bp)
    app.register_blueprint(pages.bp)
    app.register_blueprint(camera.bp)
    review.init_app(app)
    cli.init_app(app)
    assets.init_assets(app)

    @app.context_processor
    def _endpoints() -> dict[str, Any]:
        # Lets the layout link only to pages that are registered.
        return {"url_rules": app.view_functions.keys()}

    @app.route("/healthz")
    def healthz() -> Any:
        return {"status": "ok"}

    @app.route("/favicon.ico")
    def favicon() -> Any:
        return redirect(url_for("static", filename="favicon.svg"))

    # Around the tus server too (uploads.init_app mounted it): its answers get nosniff as well.
    app.wsgi_app = security.SecurityHeaders(app.wsgi_app)  # type: ignore[method-assign]
    if app.config.get("PROXY_FIX"):
        # Outermost, so the tus server (mounted around Flask by uploads.init_app) sees it too.
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1, x_proto=1, x_host=1, x_port=1)  # type: ignore[method-assign]

    return app
