"""The check before any file is read or sent: the server answers as tuscam, the token is valid,
the capture session exists, is open and this user may upload to it. It only reads (GET).
"""

from __future__ import annotations

from typing import Any

import requests
from tusclient.exceptions import TusCommunicationError

from uploader import errors
from uploader.client import RETRY_STATUSES, TransferError
from uploader.errors import RunStopped, server_message
from uploader.transfer import Transfer


def check_session(transfer: Transfer) -> dict[str, Any]:
    """The session as `GET /api/sessions/<id>` describes it, or RunStopped saying what is wrong.

    An unreachable server is waited for like during the run (GaveUpWaiting after --max-wait).
    The API answers 404 (or 403) alike for a session that does not exist and for one this user
    may not see; an operator may upload to every session they see, and an account that may see
    but not upload (a reviewer) is refused at the first creation, which creates nothing.
    """
    opts = transfer.options
    path = f"/api/sessions/{opts.session_id}"
    url = opts.server.rstrip("/") + path

    def ask() -> requests.Response:
        try:
            resp = transfer.session().get(url, headers=transfer.client.headers)
        except requests.exceptions.RequestException as error:
            raise TusCommunicationError(error) from error
        if resp.status_code >= 500 or resp.status_code in RETRY_STATUSES:
            raise TusCommunicationError("", resp.status_code, resp.content)
        return resp

    try:
        resp = transfer.call("checking the capture session", ask)
    except TransferError as exc:
        raise RunStopped(errors.SERVER_FAILING, f"the server is failing: {exc.message}") from exc
    status = resp.status_code
    data = _json(resp)
    if status == 401:
        raise errors.bad_token(server_message(status, resp.content))
    if status in (403, 404) and data is not None and "error" in data:
        detail = f"{status}: {server_message(status, resp.content)}"
        raise errors.session_problem(errors.NO_SUCH_SESSION, opts.session_id, detail)
    if status != 200 or data is None or not isinstance(data.get("open"), bool):
        kind = resp.headers.get("Content-Type", "no content type").split(";")[0]
        raise RunStopped(
            errors.NOT_TUSCAM,
            f"{opts.server} does not answer like a tuscam server (GET {path}: {status}, {kind}): "
            "check --server",
        )
    if not data["open"]:
        ended = data.get("ended_at")
        detail = f"ended {ended}" if isinstance(ended, str) else "ended"
        raise errors.session_problem(errors.SESSION_CLOSED, opts.session_id, detail)
    if data.get("may_upload") is False:  # an API that says so spares the refused creation
        raise errors.session_problem(
            errors.NOT_ALLOWED,
            opts.session_id,
            "only its operator or an admin may; ask an admin to assign it to you",
        )
    return data


def _json(resp: requests.Response) -> dict[str, Any] | None:
    try:
        data = resp.json()
    except ValueError:
        return None
    return data if isinstance(data, dict) else None
