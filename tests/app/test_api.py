"""The JSON API for assessments and capture sessions, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.app.helpers import add_user, bearer, token_for


@pytest.fixture
def api(any_db_app: Flask):  # noqa: ANN201
    """A test client and tokens for an operator, a second operator, a reviewer and an admin."""
    tokens = {}
    for name, role in [
        ("op", "operator"),
        ("op2", "operator"),
        ("rev", "reviewer"),
        ("adm", "admin"),
    ]:
        add_user(any_db_app, name, role)
        tokens[name] = bearer(token_for(any_db_app, name))
    return any_db_app.test_client(), tokens


def _assessment(client: FlaskClient, headers: dict[str, str], title: str = "Bridge survey") -> int:
    response = client.post("/api/assessments", json={"title": title}, headers=headers)
    assert response.status_code == 201, response.json
    return response.json["id"]


def test_create_list_and_get_an_assessment_with_sessions(api) -> None:  # noqa: ANN001
    client, t = api
    aid = _assessment(client, t["op"])
    r = client.post(
        f"/api/assessments/{aid}/sessions", json={"label": "north pier"}, headers=t["op"]
    )
    assert r.status_code == 201
    assert r.json["open"] is True and r.json["assessment_id"] == aid
    listed = client.get("/api/assessments", headers=t["op"]).json["assessments"]
    assert [a["id"] for a in listed] == [aid]
    detail = client.get(f"/api/assessments/{aid}", headers=t["rev"]).json
    assert detail["title"] == "Bridge survey"
    assert [s["label"] for s in detail["sessions"]] == ["north pier"]


@pytest.mark.parametrize(
    "body,message",
    [
        (None, "JSON object"),
        ([], "JSON object"),
        ({}, "'title' is required"),
        ({"title": ""}, "'title' must not be empty"),
        ({"title": 5}, "'title' must be a string"),
        ({"title": "x" * 201}, "longer than 200"),
        ({"title": "ok", "description": ["no"]}, "'description' must be a string"),
    ],
)
def test_assessment_validation_errors_say_what_is_wrong(api, body, message: str) -> None:  # noqa: ANN001
    client, t = api
    if body is None:
        r = client.post("/api/assessments", data="title=x", headers=t["op"])
    else:
        r = client.post("/api/assessments", json=body, headers=t["op"])
    assert r.status_code == 400
    assert r.json["error"] == "bad-request"
    assert message in r.json["message"]


def test_unknown_ids_are_404_json(api) -> None:  # noqa: ANN001
    client, t = api
    for path in [
        "/api/assessments/999",
        "/api/sessions/999",
        "/api/captures/999",
        "/api/sessions/999/captures",
    ]:
        r = client.get(path, headers=t["adm"])
        assert r.status_code == 404, path
        assert r.json["error"] == "not-found"
    r = client.post("/api/assessments/999/sessions", json={"label": "x"}, headers=t["op"])
    assert r.status_code == 404


def test_operators_do_not_see_each_others_sessions(api) -> None:  # noqa: ANN001
    client, t = api
    aid = _assessment(client, t["op"])
    sid = client.post(
        f"/api/assessments/{aid}/sessions", json={"label": "a"}, headers=t["op"]
    ).json["id"]
    assert client.get(f"/api/sessions/{sid}", headers=t["op2"]).status_code == 404
    assert client.get(f"/api/assessments/{aid}", headers=t["op2"]).status_code == 404
    assert client.get("/api/assessments", headers=t["op2"]).json["assessments"] == []
    assert client.get(f"/api/sessions/{sid}", headers=t["rev"]).status_code == 200


def test_a_session_says_whether_the_caller_may_upload_to_it(api) -> None:  # noqa: ANN001
    client, t = api
    aid = _assessment(client, t["op"])
    sid = client.post(
        f"/api/assessments/{aid}/sessions", json={"label": "a"}, headers=t["op"]
    ).json["id"]
    assert client.get(f"/api/sessions/{sid}", headers=t["op"]).json["may_upload"] is True
    assert client.get(f"/api/sessions/{sid}", headers=t["rev"]).json["may_upload"] is False


def test_reviewers_cannot_create_sessions_and_operators_cannot_review(api) -> None:  # noqa: ANN001
    client, t = api
    aid = _assessment(client, t["adm"])
    r = client.post(f"/api/assessments/{aid}/sessions", json={"label": "x"}, headers=t["rev"])
    assert r.status_code == 403
    assert (
        client.patch(
            "/api/captures/1", json={"review_status": "approved"}, headers=t["op"]
        ).status_code
        == 403
    )


def test_closing_a_session(api) -> None:  # noqa: ANN001
    client, t = api
    aid = _assessment(client, t["op"])
    sid = client.post(
        f"/api/assessments/{aid}/sessions", json={"label": "a"}, headers=t["op"]
    ).json["id"]
    r = client.patch(f"/api/sessions/{sid}", json={"ended": True}, headers=t["op"])
    assert r.status_code == 200 and r.json["open"] is False and r.json["ended_at"]
    r = client.patch(f"/api/sessions/{sid}", json={"ended": "yes"}, headers=t["op"])
    assert r.status_code == 400


def test_capture_list_validates_paging(api) -> None:  # noqa: ANN001
    client, t = api
    aid = _assessment(client, t["op"])
    sid = client.post(
        f"/api/assessments/{aid}/sessions", json={"label": "a"}, headers=t["op"]
    ).json["id"]
    r = client.get(f"/api/sessions/{sid}/captures", headers=t["op"])
    assert r.status_code == 200 and r.json["captures"] == [] and r.json["total"] == 0
    for bad in ["page=0", "per_page=1000", "page=-1", "page=%D9%A5"]:
        assert (
            client.get(f"/api/sessions/{sid}/captures?{bad}", headers=t["op"]).status_code == 400
        ), bad


# --- who may change a capture session ---------------------------------------------------------


def _session(client: FlaskClient, t, operator: str | None = "op") -> int:  # noqa: ANN001
    aid = _assessment(client, t["adm"])
    body = {"label": "north pier", "operator_id": None}
    if operator is not None:
        body["operator_id"] = client.get("/api/assessments", headers=t[operator]) and _uid(
            client, t, operator
        )
    r = client.post(f"/api/assessments/{aid}/sessions", json=body, headers=t["adm"])
    assert r.status_code == 201, r.json
    return r.json["id"]


def _uid(client: FlaskClient, t, name: str) -> int:  # noqa: ANN001
    aid = _assessment(client, t[name], title=f"whoami {name}")
    r = client.post(f"/api/assessments/{aid}/sessions", json={"label": "me"}, headers=t[name])
    return r.json["operator_id"]


def _state(client: FlaskClient, t, sid: int) -> dict:  # noqa: ANN001
    r = client.get(f"/api/sessions/{sid}", headers=t["adm"]).json
    return {k: r[k] for k in ("label", "open", "operator_id", "ended_at")}


@pytest.mark.parametrize(
    "change",
    [
        {"ended": False},
        {"label": "renamed"},
        {"operator_id": None},
        {"ended": True, "label": "renamed"},
        {"ended": True, "operator_id": None},
    ],
    ids=["reopen", "rename", "reassign", "close-and-rename", "close-and-reassign"],
)
def test_an_operator_may_not_reopen_rename_or_reassign_and_nothing_changes(
    api,  # noqa: ANN001
    change: dict,
) -> None:
    client, t = api
    sid = _session(client, t, "op")
    if change == {"ended": False}:
        assert (
            client.patch(f"/api/sessions/{sid}", json={"ended": True}, headers=t["adm"]).status_code
            == 200
        )
    before = _state(client, t, sid)
    r = client.patch(f"/api/sessions/{sid}", json=change, headers=t["op"])
    assert r.status_code == 403 and r.json["error"] == "forbidden", r.json
    assert "admin" in r.json["message"]
    assert _state(client, t, sid) == before


def test_an_operator_closes_their_own_session_but_not_an_unassigned_one(api) -> None:  # noqa: ANN001
    client, t = api
    own, unassigned = _session(client, t, "op"), _session(client, t, None)
    r = client.patch(f"/api/sessions/{unassigned}", json={"ended": True}, headers=t["op"])
    assert r.status_code == 403 and "not assigned to you" in r.json["message"]
    assert _state(client, t, unassigned)["open"] is True
    r = client.patch(f"/api/sessions/{own}", json={"ended": True}, headers=t["op"])
    assert r.status_code == 200 and r.json["open"] is False
    ended_at = r.json["ended_at"]
    again = client.patch(f"/api/sessions/{own}", json={"ended": True}, headers=t["op"])
    assert again.status_code == 200 and again.json["ended_at"] == ended_at  # closed once


def test_an_admin_reopens_renames_and_reassigns(api) -> None:  # noqa: ANN001
    client, t = api
    sid = _session(client, t, "op")
    op2 = _uid(client, t, "op2")
    assert (
        client.patch(f"/api/sessions/{sid}", json={"ended": True}, headers=t["op"]).status_code
        == 200
    )
    r = client.patch(
        f"/api/sessions/{sid}",
        json={"ended": False, "label": "south pier", "operator_id": op2},
        headers=t["adm"],
    )
    assert r.status_code == 200, r.json
    assert (r.json["open"], r.json["label"], r.json["operator_id"]) == (True, "south pier", op2)
    assert client.get(f"/api/sessions/{sid}", headers=t["op"]).status_code == 404  # not theirs
    r = client.patch(f"/api/sessions/{sid}", json={"operator_id": 424242}, headers=t["adm"])
    assert r.status_code == 400 and "operator_id" in r.json["message"]
    r = client.patch(f"/api/sessions/{sid}", json={"colour": "red"}, headers=t["adm"])
    assert r.status_code == 400 and "colour" in r.json["message"]


def test_another_operators_session_and_a_missing_one_answer_alike(api) -> None:  # noqa: ANN001
    client, t = api
    sid = _session(client, t, "op")
    missing = sid + 1000
    for method, suffix, body in [
        ("GET", "", None),
        ("PATCH", "", {"ended": True}),
        ("GET", "/captures", None),
    ]:
        theirs = client.open(
            f"/api/sessions/{sid}{suffix}", method=method, json=body, headers=t["op2"]
        )
        absent = client.open(
            f"/api/sessions/{missing}{suffix}", method=method, json=body, headers=t["op2"]
        )
        assert theirs.status_code == absent.status_code == 404
        assert theirs.json["message"].replace(str(sid), "N") == absent.json["message"].replace(
            str(missing), "N"
        )
