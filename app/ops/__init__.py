"""Operations: Prometheus metrics, readiness, named log events, and the metering of tus
requests, pages and API from outside the tus package (README "Operations")."""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    """Call after uploads.init_app: the metering goes around the tus adapter and Flask."""
    from app.ops.instrument import Instrumented
    from app.ops.views import bp

    app.register_blueprint(bp)
    app.wsgi_app = Instrumented(app.wsgi_app)  # type: ignore[method-assign]
