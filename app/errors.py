"""One error type for the application and the handlers that render it: JSON for API clients
and scripts, HTML for pages. A 500 is logged with its traceback and its transaction rolled back."""

from __future__ import annotations

from typing import Any

from flask import Flask, g, jsonify, render_template, request
from werkzeug.exceptions import HTTPException


class ApiError(Exception):
    def __init__(self, status: int, error: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.error = error
        self.message = message


def wants_json() -> bool:
    """API and script requests (any Authorization header) get JSON; browsers get pages. (tus
    answers its own errors: app/tus/wsgi.py serves /files before Flask.)"""
    return (
        request.path.startswith("/api/")
        or "Authorization" in request.headers
        or request.accept_mimetypes.best == "application/json"
    )


def _render(status: int, error: str, message: str) -> Any:
    if wants_json():
        response = jsonify(error=error, message=message)
        response.status_code = status
        return response
    return render_template("error.html", status=status, message=message), status


def _rollback() -> None:
    db = g.get("db")
    if db is not None:
        db.rollback()


def init_app(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError) -> Any:
        _rollback()
        return _render(exc.status, exc.error, exc.message)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Any:
        _rollback()
        code = exc.code or 500
        name = (exc.name or "error").lower().replace(" ", "-")
        return _render(code, name, exc.description or exc.name or "error")

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Any:
        _rollback()
        app.logger.exception("Unhandled error on %s %s", request.method, request.path)
        return _render(500, "internal-error", "Something went wrong on the server; it was logged.")
