"""Property: whatever the tus headers hold, the real server answers a clean status (never a
5xx, never a hang), through gunicorn and Flask, and no file appears outside the upload folder.
(tests/tus/test_parsers.py covers the parsers alone.)"""

from __future__ import annotations

import base64

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.adversarial.conftest import Hostile, Operator, new_operator, outside_tree, raw

HEADER_NAMES = [
    "Upload-Length",
    "Upload-Offset",
    "Upload-Defer-Length",
    "Upload-Metadata",
    "Upload-Concat",
    "Upload-Checksum",
    "Content-Type",
    "Tus-Resumable",
    "X-HTTP-Method-Override",
    "Origin",
]
# What gunicorn lets through in a header value: visible latin-1 and tabs, no CR/LF.
_CHARS = st.characters(codec="latin-1", exclude_categories=("Cc",), include_characters="\t")
_TEXT = st.text(_CHARS, max_size=60)
_NUMBERISH = st.one_of(
    st.integers(min_value=-(10**30), max_value=10**30).map(str),
    st.from_regex(r"[ +\-0-9_.,e]{0,25}", fullmatch=True),
)
_VALUE = st.one_of(
    _TEXT,
    _NUMBERISH,
    st.sampled_from(
        ["1.0.0", "1", "partial", "final;", "application/offset+octet-stream", "sha1 AAAA", ""]
    ),
    st.lists(
        st.tuples(st.text(_CHARS, min_size=1, max_size=8), st.binary(max_size=12)), max_size=4
    ).map(lambda kv: ",".join(f"{k} {base64.b64encode(v).decode()}" for k, v in kv)),
)


@pytest.fixture(scope="module")
def prop_op(hostile: Hostile) -> Operator:
    return new_operator(hostile.server)


@pytest.fixture(scope="module")
def prop_upload(prop_op: Operator) -> str:
    return prop_op.create(1000)


@settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    method=st.sampled_from(["POST", "PATCH", "HEAD", "DELETE", "GET", "OPTIONS"]),
    target=st.sampled_from(["collection", "upload", "junk"]),
    headers=st.dictionaries(st.sampled_from(HEADER_NAMES), _VALUE, max_size=6),
    body=st.binary(max_size=64),
    honest_length=st.booleans(),
)
def test_any_tus_header_values_get_a_clean_answer(
    hostile: Hostile,
    prop_op: Operator,
    prop_upload: str,
    method: str,
    target: str,
    headers: dict[str, str],
    body: bytes,
    honest_length: bool,
) -> None:
    before = outside_tree(hostile.root)
    path = {"collection": "/files/", "upload": f"/files/{prop_upload}", "junk": "/files/%2e%2e"}
    items = [(k, v.encode("latin-1")) for k, v in {**prop_op.auth, **headers}.items()]
    if not honest_length and body:
        items.append(("Content-Length", str(len(body) - 1)))  # a body longer than announced
    r = raw(hostile.server.port, method, path[target], items, body, timeout=15)
    assert 100 <= r.status < 500, (r.status, r.body[:300])
    if r.status >= 400 and method != "HEAD" and r.body:
        assert r.header("Content-Type") == "application/json"
    assert outside_tree(hostile.root) == before
