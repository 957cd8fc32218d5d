"""tus metadata of a capture upload, and who may upload to which session."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.camera.metadata import (
    CaptureRequest,
    MetadataError,
    check_capture,
    load_upload_check,
    may_upload,
    parse_capture_metadata,
)
from services.models import CaptureSession

from .conftest import World

VALID = {"filename": "IMG_0001.jpg", "session_id": "7"}


def test_minimal_metadata_gets_the_documented_defaults() -> None:
    req = parse_capture_metadata(VALID)
    assert req == CaptureRequest(
        session_id=7,
        assessment_id=None,
        filename="IMG_0001.jpg",
        filetype=None,
        capture_trigger="manual",
        capture_type="photo",
        camera_settings={},
        sha256=None,
    )


def test_full_metadata_is_parsed_and_normalised() -> None:
    digest = "AB" * 32
    req = parse_capture_metadata(
        {
            **VALID,
            "assessment_id": "3",
            "filetype": "Image/JPEG",
            "capture_trigger": "timer",
            "capture_type": "close-up_2",
            "camera_settings": json.dumps({"facingMode": "environment", "zoom": 1.5}),
            "sha256": digest,
            "relativePath": None,  # unknown keys (Uppy sends several) are ignored
        }
    )
    assert req.assessment_id == 3
    assert req.filetype == "image/jpeg"
    assert (req.capture_trigger, req.capture_type) == ("timer", "close-up_2")
    assert req.camera_settings == {"facingMode": "environment", "zoom": 1.5}
    assert req.sha256 == digest.lower()


@pytest.mark.parametrize(
    ("changes", "field", "words"),
    [
        ({"filename": None}, "filename", "filename is required"),
        ({"filename": ""}, "filename", "filename is required"),
        ({"filename": "x" * 256}, "filename", "at most 255"),
        ({"filename": "a\nb.jpg"}, "filename", "control characters"),
        ({"filename": "a\x00.jpg"}, "filename", "control characters"),
        ({"session_id": None}, "session_id", "session_id is required"),
        ({"session_id": "0"}, "session_id", "positive integer"),
        ({"session_id": "-1"}, "session_id", "positive integer"),
        ({"session_id": " 5"}, "session_id", "positive integer"),
        ({"session_id": "+5"}, "session_id", "positive integer"),
        ({"session_id": "5_000"}, "session_id", "positive integer"),
        ({"session_id": "\u0665"}, "session_id", "positive integer"),  # Arabic-Indic five
        ({"session_id": "5\n"}, "session_id", "positive integer"),
        ({"session_id": "99999999999"}, "session_id", "positive integer"),
        ({"assessment_id": "x"}, "assessment_id", "assessment_id must be a positive integer"),
        ({"capture_trigger": "Timer"}, "capture_trigger", "a-z, 0-9"),
        ({"capture_trigger": "t" * 33}, "capture_trigger", "1-32 characters"),
        ({"capture_type": "photo!"}, "capture_type", "a-z, 0-9"),
        ({"camera_settings": "[1, 2]"}, "camera_settings", "not list"),
        ({"camera_settings": '"zoom"'}, "camera_settings", "not str"),
        ({"camera_settings": "{zoom: 1}"}, "camera_settings", "must be a JSON object"),
        ({"camera_settings": '{"z": NaN}'}, "camera_settings", "must be a JSON object"),
        ({"camera_settings": '{"z": 1e999}'}, "camera_settings", "non-finite"),
        ({"camera_settings": '{"z": "\\u0000"}'}, "camera_settings", "NUL"),
        ({"camera_settings": '{"z": "\\ud800"}'}, "camera_settings", "surrogate"),
        ({"camera_settings": "[" * 5000 + "]" * 5000}, "camera_settings", "camera_settings"),
        ({"camera_settings": '{"a": "' + "x" * 8200 + '"}'}, "camera_settings", "at most 8192"),
        ({"filetype": "jpeg"}, "filetype", "MIME type like image/jpeg"),
        ({"filetype": "image/jpeg\r\nX: y"}, "filetype", "MIME type"),
        ({"sha256": "abc"}, "sha256", "64 hexadecimal digits"),
        ({"sha256": "g" * 64}, "sha256", "64 hexadecimal digits"),
    ],
)
def test_bad_metadata_is_refused_naming_the_field_and_the_rule(
    changes: dict[str, str | None], field: str, words: str
) -> None:
    with pytest.raises(MetadataError) as caught:
        parse_capture_metadata({**VALID, **changes})
    assert caught.value.status == 400
    assert caught.value.field == field
    assert words in str(caught.value)
    assert field in str(caught.value)


def test_camera_settings_of_exactly_8_kib_are_accepted() -> None:
    body = '{"a": "' + "x" * (8192 - 9) + '"}'
    assert len(body) == 8192
    assert parse_capture_metadata({**VALID, "camera_settings": body}).camera_settings["a"]


KEYS = [
    "filename",
    "session_id",
    "assessment_id",
    "filetype",
    "capture_trigger",
    "capture_type",
    "camera_settings",
    "sha256",
]
values = st.one_of(
    st.none(),
    st.text(max_size=40),
    st.from_regex(r"[0-9]{1,12}", fullmatch=True),
    st.from_regex(r"[a-z0-9_-]{0,34}", fullmatch=True),
    st.text(alphabet="0123456789abcdefABCDEF", min_size=63, max_size=65),
    st.recursive(
        st.none() | st.booleans() | st.floats() | st.text(max_size=5),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner),
        max_leaves=8,
    ).map(json.dumps),
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=8), values, max_size=10))
def test_any_metadata_either_parses_or_raises_metadata_error(metadata: dict) -> None:
    try:
        req = parse_capture_metadata(metadata)
    except MetadataError as exc:
        assert exc.status == 400 and exc.field in KEYS
        return
    assert req.session_id > 0 and isinstance(req.camera_settings, dict)
    assert req.filename == metadata["filename"]


# -- check_capture and may_upload: who may upload to which session ----------------------------


def _req(session_id: int, assessment_id: int | None = None) -> CaptureRequest:
    return CaptureRequest(session_id, assessment_id, "a.jpg", "image/jpeg")


def authorize_capture(db, user, req: CaptureRequest) -> CaptureSession:  # noqa: ANN001
    session = db.get(CaptureSession, req.session_id)
    check_capture(user, session, req)
    assert session is not None
    return session


@pytest.mark.parametrize(
    ("who", "session", "refusal"),
    [
        ("admin", "open_session", None),
        ("admin", "assigned_session", None),
        ("operator", "open_session", None),
        ("operator", "assigned_session", None),
        ("other_operator", "open_session", None),
        ("other_operator", "assigned_session", 404),  # answered as if it did not exist
        ("reviewer", "open_session", 403),
        ("reviewer", "assigned_session", 403),
    ],
)
def test_who_may_upload_to_which_session(
    db, world: World, who: str, session: str, refusal: int | None
) -> None:
    user, target = getattr(world, who), getattr(world, session)
    assert may_upload(user, target) is (refusal is None)
    if refusal is None:
        assert authorize_capture(db, user, _req(target.id)) is target
    else:
        with pytest.raises(MetadataError) as caught:
            authorize_capture(db, user, _req(target.id))
        assert caught.value.status == refusal


def test_another_operators_session_is_refused_exactly_like_a_missing_one(db, world: World) -> None:
    target = world.assigned_session
    answers = []
    for session in (target, None):
        with pytest.raises(MetadataError) as caught:
            check_capture(world.other_operator, session, _req(target.id))
        answers.append((caught.value.status, caught.value.field, str(caught.value)))
    assert answers[0] == answers[1] == (404, "session_id", f"session {target.id} does not exist")


@pytest.mark.parametrize("who", ["admin", "operator", "other_operator", "reviewer"])
def test_whether_a_user_may_upload_at_all(world: World, who: str) -> None:
    user = getattr(world, who)
    assert may_upload(user) is (who != "reviewer")
    user.active = False
    assert may_upload(user) is False


def test_a_missing_session_is_404(db, world: World) -> None:
    with pytest.raises(MetadataError) as caught:
        authorize_capture(db, world.admin, _req(424242))
    assert (caught.value.status, str(caught.value)) == (404, "session 424242 does not exist")


def test_a_closed_session_is_409(db, world: World) -> None:
    sid = world.closed_session.id
    with pytest.raises(MetadataError) as caught:
        authorize_capture(db, world.operator, _req(sid))
    assert (caught.value.status, str(caught.value)) == (409, f"session {sid} is closed")


def test_an_assessment_that_does_not_match_the_session_is_400(db, world: World) -> None:
    target = world.open_session
    assert authorize_capture(db, world.operator, _req(target.id, world.assessment.id)) is target
    with pytest.raises(MetadataError) as caught:
        authorize_capture(db, world.operator, _req(target.id, world.other_assessment.id))
    assert caught.value.status == 400 and caught.value.field == "assessment_id"
    assert f"belongs to assessment {world.assessment.id}" in str(caught.value)


def test_an_inactive_operator_may_not_upload(db, world: World) -> None:
    world.operator.active = False
    with pytest.raises(MetadataError) as caught:
        authorize_capture(db, world.operator, _req(world.open_session.id))
    assert caught.value.status == 403


# -- the one-query check of the pre-create hook -----------------------------------------------

WHO_AND_WHERE = ["admin", "operator", "other_operator", "reviewer"]
SESSIONS = ["open_session", "assigned_session", "closed_session"]


@pytest.mark.parametrize("who", WHO_AND_WHERE)
@pytest.mark.parametrize("session", SESSIONS)
@pytest.mark.parametrize("assessment", [None, "assessment", "other_assessment"])
def test_the_light_rows_decide_exactly_as_the_orm_objects(
    db, world: World, who: str, session: str, assessment: str | None
) -> None:
    user, target = getattr(world, who), getattr(world, session)
    req = _req(target.id, getattr(world, assessment).id if assessment else None)
    light_user, light_session = load_upload_check(db, user.id, target.id)
    assert light_user is not None and light_session is not None
    assert (light_user.id, light_user.role, light_user.active) == (user.id, user.role, True)
    assert light_session.is_open == target.is_open

    def verdict(u, s) -> tuple[int, str] | None:  # noqa: ANN001
        try:
            check_capture(u, s, req)
        except MetadataError as exc:
            return exc.status, str(exc)
        return None

    assert verdict(light_user, light_session) == verdict(user, target)


def test_the_check_query_tells_a_missing_user_from_a_missing_session(db, world: World) -> None:
    user, session = load_upload_check(db, world.operator.id, 424242)
    assert user is not None and user.id == world.operator.id and session is None
    assert load_upload_check(db, world.operator.id, None)[1] is None
    assert load_upload_check(db, 424242, world.open_session.id) == (None, None)


def test_the_check_query_reads_an_inactive_user_as_inactive(db, world: World) -> None:
    world.operator.active = False
    db.commit()
    user, _ = load_upload_check(db, world.operator.id, world.open_session.id)
    assert user is not None and user.active is False
