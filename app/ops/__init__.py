"""Operations: Prometheus metrics, readiness, named log events, and the metering of tus
requests, pages and API from outside the tus package (README "Operations")."""

from __future__ import annotations

from typing import Any

from flask import Flask, request, request_started


def init_app(app: Flask) -> None:
    """Call after uploads.init_app: the metering goes around the tus adapter and Flask."""
    from app.ops.instrument import ROUTE_KEY, Instrumented
    from app.ops.views import bp

    def remember_route(sender: Flask, **_: Any) -> None:
        # Flask clears the request from the environ when it ends; the meter reads this instead.
        if request.url_rule is not None:
            request.environ[ROUTE_KEY] = request.url_rule.rule

    request_started.connect(remember_route, app, weak=False)
    app.register_blueprint(bp)
    app.wsgi_app = Instrumented(app.wsgi_app)  # type: ignore[method-assign]
