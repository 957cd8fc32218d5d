"""Header parsers: strict, and whatever a client sends, they answer a value or a 4xx TusError,
never another exception (hypothesis)."""

from __future__ import annotations

import base64
import io

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.tus.errors import TusError
from app.tus.handler import TusHandler
from app.tus.messages import TusRequest
from app.tus.protocol import (
    http_date,
    parse_checksum,
    parse_concat,
    parse_defer_length,
    parse_metadata,
    parse_uint,
    upload_id_from_url,
)

header_text = st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0x2FF), max_size=200)
keys = st.text(
    alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters=","),
    min_size=1,
    max_size=20,
)


def only_client_errors(parse, value: str) -> None:  # noqa: ANN001
    try:
        parse(value)
    except TusError as exc:
        assert 400 <= exc.status < 500 and exc.message


@given(header_text)
def test_no_header_value_makes_a_parser_raise_anything_but_a_4xx(value: str) -> None:
    only_client_errors(lambda v: parse_uint("Upload-Offset", v), value)
    only_client_errors(lambda v: parse_metadata(v, 1000), value)
    only_client_errors(parse_checksum, value)
    only_client_errors(parse_concat, value)
    only_client_errors(parse_defer_length, value)


@given(st.dictionaries(keys, st.one_of(st.none(), st.binary(max_size=50)), max_size=8))
def test_metadata_round_trips_and_is_echoed_as_given(values: dict[str, bytes | None]) -> None:
    header = ",".join(
        k if v is None else f"{k} {base64.b64encode(v).decode()}" for k, v in values.items()
    )
    parsed = parse_metadata(header, 100_000)
    if values:
        assert parsed.header == header
    expected = {
        k: None if v is None else v.decode("utf-8", errors="replace") for k, v in values.items()
    }
    assert parsed.values == expected


@given(st.integers(min_value=0, max_value=2**63 - 1))
def test_every_non_negative_integer_parses(n: int) -> None:
    assert parse_uint("Upload-Length", str(n)) == n


@pytest.mark.parametrize(
    "value", ["+5", " -5", "5_000", "\u0665", "5.0", "0x5", "1" * 20, "9" * 19]
)
def test_integers_are_ascii_digits_only(value: str) -> None:
    with pytest.raises(TusError) as err:
        parse_uint("Upload-Length", value)
    assert err.value.status == 400


def test_metadata_values_may_be_empty_or_bare_and_spaces_around_commas_are_tolerated() -> None:
    parsed = parse_metadata("a YQ==, b ,c", 100)
    assert parsed.values == {"a": "a", "b": "", "c": None}


@pytest.mark.parametrize(
    "url", ["http://h/files/" + "a" * 32, "/files/" + "a" * 32 + "/", "a" * 32]
)
def test_a_concat_url_yields_only_its_id(url: str) -> None:
    assert upload_id_from_url(url) == "a" * 32


def test_upload_expires_is_an_imf_fixdate() -> None:
    from datetime import UTC, datetime

    assert http_date(datetime(2014, 6, 25, 16, 0, 0, 123, tzinfo=UTC)) == (
        "Wed, 25 Jun 2014 16:00:00 GMT"
    )


TUS_HEADERS = [
    "Upload-Length",
    "Upload-Defer-Length",
    "Upload-Metadata",
    "Upload-Concat",
    "Upload-Checksum",
    "Upload-Offset",
    "Content-Type",
    "Content-Length",
    "X-HTTP-Method-Override",
    "Tus-Resumable",
]


@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    method=st.sampled_from(["POST", "PATCH", "HEAD", "DELETE", "GET", "OPTIONS"]),
    headers=st.dictionaries(st.sampled_from(TUS_HEADERS), header_text, max_size=6),
    body=st.binary(max_size=64),
)
def test_no_request_makes_the_handler_fail_with_a_5xx(
    handler: TusHandler, method: str, headers: dict[str, str], body: bytes
) -> None:
    headers = {"Tus-Resumable": "1.0.0", **headers}
    for upload_id in (None, "0" * 32):
        request = TusRequest(method, upload_id, headers, io.BytesIO(body), "fuzzer")
        assert handler.handle(request).status < 500
