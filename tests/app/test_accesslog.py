"""tuscam_gunicorn.accesslog.AccessLogger writes the very line gunicorn's Logger.access writes
for the default access_log_format, and defers to gunicorn for anything else.

Requests go through gunicorn's own parser, wsgi.create() and Response, so both loggers read the
same real resp/req/environ objects gunicorn's workers hand them.
"""

from __future__ import annotations

import base64
import io
import logging
import runpy
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
from gunicorn.config import Config
from gunicorn.glogging import Logger
from gunicorn.http import wsgi
from gunicorn.http.errors import ParseException
from gunicorn.http.message import Request
from gunicorn.http.unreader import IterUnreader
from hypothesis import given, reject, settings
from hypothesis import strategies as st

from tuscam_gunicorn.accesslog import DEFAULT_FORMAT, AccessLogger

ELAPSED = timedelta(seconds=1, microseconds=2345)
BROWSER = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/124.0 Safari/537.36"
GUNICORN_LOGGERS = ("gunicorn.access", "gunicorn.error")


def config(**settings: object) -> Config:
    cfg = Config()
    cfg.set("accesslog", "-")
    for name, value in settings.items():
        cfg.set(name, value)
    return cfg


@dataclass
class Pair:
    """gunicorn's Logger and ours, sharing gunicorn's one access handler, written to `out`."""

    theirs: Logger
    ours: AccessLogger
    out: io.StringIO
    atoms_calls: list[object] = field(default_factory=list)

    def emit(self, logger: Logger, resp: object, req: object, environ: dict) -> str:
        self.out.seek(0)
        self.out.truncate()
        logger.access(resp, req, environ, ELAPSED)
        return self.out.getvalue()

    def lines(self, resp: object, req: object, environ: dict) -> tuple[str, str]:
        """(gunicorn's line, ours), both written within the same second of the %(t)s atom."""
        for _ in range(5):
            before = self.emit(self.theirs, resp, req, environ)
            ours = self.emit(self.ours, resp, req, environ)
            if self.emit(self.theirs, resp, req, environ) == before:
                return before, ours
        raise AssertionError("the clock kept crossing a second boundary")


@contextmanager
def logger_pair(cfg: Config | None = None) -> Iterator[Pair]:
    """Both loggers on `cfg`; gunicorn's logging.Logger state is put back afterwards.

    pytest attaches its log capture handler to non-propagating loggers such as gunicorn.access
    when a test phase starts. A handler gunicorn did not install rightly sends AccessLogger down
    gunicorn's path, so it is taken off here, inside the test, and put back on exit.
    """
    saved = []
    for name in GUNICORN_LOGGERS:
        log = logging.getLogger(name)
        saved.append((log, log.handlers[:], log.filters[:], log.propagate, log.level))
        log.handlers.clear()
    try:
        cfg = cfg or config()
        theirs, ours = Logger(cfg), AccessLogger(cfg)  # the second setup() replaces the handler
        out = io.StringIO()
        for handler in ours.access_log.handlers:
            handler.setStream(out)
        pair = Pair(theirs, ours, out)

        def spy(*args: object) -> dict:
            pair.atoms_calls.append(args)
            return Logger.atoms(ours, *args)

        ours.atoms = spy  # gunicorn's path builds the atoms; the fast path must not
        yield pair
    finally:
        for log, handlers, filters, propagate, level in saved:
            log.handlers[:] = handlers
            log.filters[:] = filters
            log.propagate = propagate
            log.setLevel(level)


def exchange(
    raw: bytes,
    status: str = "200 OK",
    headers: tuple[tuple[str, str], ...] = (),
    body: bytes = b"",
    client: object = ("127.0.0.1", 51234),
) -> tuple[wsgi.Response, Request, dict]:
    """Parse `raw` and answer it the way a gunicorn worker does, over a socket pair."""
    cfg = Config()
    req = Request(cfg, IterUnreader([raw]), client)
    here, there = socket.socketpair()
    with here, there:
        resp, environ = wsgi.create(req, here, client, ("127.0.0.1", 8000), cfg)
        resp.start_response(status, list(headers))
        if body:
            resp.write(body)
        resp.close()
    return resp, req, environ


def basic(credentials: str) -> str:
    return "Basic " + base64.b64encode(credentials.encode()).decode()


CASES = {
    "get-with-query": dict(
        raw=(
            b"GET /review/uploads?page=2&q=caf%C3%A9 HTTP/1.1\r\nHost: 127.0.0.1:8000\r\n"
            b"User-Agent: " + BROWSER.encode() + b"\r\n"
            b"Referer: http://127.0.0.1:8000/review\r\nAccept: text/html\r\n\r\n"
        ),
        headers=(("Content-Type", "text/html; charset=utf-8"), ("Content-Length", "11")),
        body=b"hello world",
    ),
    "post-without-agent-or-referer": dict(
        raw=(
            b"POST /files/ HTTP/1.1\r\nHost: 127.0.0.1:8000\r\nContent-Length: 0\r\n"
            b"Upload-Length: 1048576\r\nTus-Resumable: 1.0.0\r\n\r\n"
        ),
        status="201 Created",
        headers=(("Location", "http://127.0.0.1:8000/files/0a1b"), ("Content-Length", "0")),
    ),
    "head": dict(
        raw=b"HEAD /files/0a1b HTTP/1.1\r\nHost: x\r\nTus-Resumable: 1.0.0\r\n\r\n",
        headers=(("Upload-Offset", "65536"), ("Upload-Length", "1048576")),
    ),
    "204-without-length": dict(
        raw=(
            b"PATCH /files/0a1b HTTP/1.1\r\nHost: x\r\nUser-Agent: tuspy/1.1.0\r\n"
            b"Content-Type: application/offset+octet-stream\r\nContent-Length: 0\r\n"
            b"Upload-Offset: 0\r\nTus-Resumable: 1.0.0\r\n\r\n"
        ),
        status="204 No Content",
        headers=(("Upload-Offset", "0"), ("Tus-Resumable", "1.0.0")),
    ),
    "bearer-authorization": dict(
        raw=b"GET /api/uploads HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer abc.def.ghi\r\n\r\n",
        headers=(("Content-Type", "application/json"),),
        body=b"[]",
    ),
    "basic-authorization": dict(
        raw=b"GET /api/uploads HTTP/1.1\r\nHost: x\r\nAuthorization: "
        + basic("olga:s3cret").encode()
        + b"\r\n\r\n",
        status="401 UNAUTHORIZED",
    ),
    "basic-user-with-quote-and-non-ascii": dict(
        raw=b"GET / HTTP/1.1\r\nHost: x\r\nAuthorization: "
        + basic('o"lga \u00e9\u6f22:pw').encode()
        + b"\r\n\r\n",
    ),
    "basic-not-base64": dict(
        raw=b"GET / HTTP/1.1\r\nHost: x\r\nAuthorization: basic !!not-base64\r\n\r\n",
    ),
    "quotes-and-non-ascii-in-agent-and-referer": dict(
        raw=(
            b'GET / HTTP/1.1\r\nHost: x\r\nUser-Agent: caf\xe9 "quoted" \\ 100%s %(h)s\t\xff\r\n'
            b'Referer: http://x/?q="a"&r=\xe9\r\n\r\n'
        ),
        status="302 FOUND",
        headers=(("Location", "/auth/login"),),
    ),
    "quote-in-path": dict(raw=b'GET /a"b?c="d"&e=%22 HTTP/1.1\r\nHost: x\r\n\r\n'),
    "ipv6-client": dict(
        raw=b"OPTIONS /files/ HTTP/1.1\r\nHost: [::1]:8000\r\n\r\n",
        status="204 No Content",
        client=("::1", 51234, 0, 0),
    ),
    "unix-socket-client": dict(raw=b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", client=""),
    "http-1.0": dict(raw=b"GET / HTTP/1.0\r\n\r\n", body=b"ok"),
    "server-error": dict(
        raw=b"GET /boom HTTP/1.1\r\nHost: x\r\n\r\n", status="500 INTERNAL SERVER ERROR"
    ),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_same_line_as_gunicorn(case: dict) -> None:
    with logger_pair() as pair:
        theirs, ours = pair.lines(*exchange(**case))
        assert ours == theirs
        assert theirs.count("\n") == 1 and len(theirs) > 40
        assert pair.atoms_calls == []  # the line came from the fast path


def test_lines_show_what_gunicorn_shows() -> None:
    """Spot checks of the atoms themselves, so that agreeing on a wrong line cannot pass."""
    with logger_pair() as pair:
        line = pair.lines(*exchange(**CASES["basic-user-with-quote-and-non-ascii"]))[1]
        assert line.startswith('127.0.0.1 - o\\"lga \u00e9\u6f22 [')
        assert line.endswith('] "GET / HTTP/1.1" 200 0 "-" "-"\n')
        line = pair.lines(*exchange(**CASES["bearer-authorization"]))[1]
        assert line.startswith("127.0.0.1 - - [") and ' 200 2 "-" "-"' in line
        line = pair.lines(*exchange(**CASES["quotes-and-non-ascii-in-agent-and-referer"]))[1]
        assert ' 302 0 "http://x/?q=\\"a\\"&r=\u00e9" ' in line
        assert line.endswith(' "caf\u00e9 \\"quoted\\" \\ 100%s %(h)s\t\u00ff"\n')


@pytest.mark.parametrize(
    "resp",
    [
        SimpleNamespace(status=None, sent=0, headers=[]),  # app died before start_response
        SimpleNamespace(status=204, sent=None, headers=[]),  # int status, no length
        SimpleNamespace(status='418 "TEAPOT"', headers=()),  # no sent attribute at all
    ],
)
def test_odd_responses_match_gunicorn(resp: SimpleNamespace) -> None:
    with logger_pair() as pair:
        _, req, environ = exchange(**CASES["get-with-query"])
        theirs, ours = pair.lines(resp, req, environ)
        assert ours == theirs
        assert pair.atoms_calls == []


def test_environ_gunicorn_cannot_format_fails_the_same_way() -> None:
    with logger_pair() as pair:
        resp, req, environ = exchange(**CASES["http-1.0"])
        del environ["RAW_URI"]
        with pytest.raises(KeyError, match="RAW_URI"):
            pair.theirs.access(resp, req, environ, ELAPSED)
        with pytest.raises(KeyError, match="RAW_URI"):
            pair.ours.access(resp, req, environ, ELAPSED)


_LATIN1 = st.characters(codec="latin-1", exclude_categories=("Cc",), include_characters="\t")
_PATH = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=60)


@settings(deadline=None)
@given(
    agent=st.none() | st.text(_LATIN1, max_size=80),
    referer=st.none() | st.text(_LATIN1, max_size=80),
    path=_PATH,
)
def test_any_parsed_header_values_match_gunicorn(
    agent: str | None, referer: str | None, path: str
) -> None:
    head = f"GET /{path} HTTP/1.1\r\nHost: x\r\n"
    if agent is not None:
        head += f"User-Agent: {agent}\r\n"
    if referer is not None:
        head += f"Referer: {referer}\r\n"
    try:
        request = exchange((head + "\r\n").encode("latin-1"))
    except ParseException:
        reject()
    with logger_pair() as pair:
        theirs, ours = pair.lines(*request)
        assert ours == theirs
        assert pair.atoms_calls == []


@settings(deadline=None)
@given(
    agent=st.none() | st.text(),
    referer=st.none() | st.text(),
    uri=st.text(),
    remote=st.none() | st.text(),
    authorization=st.none() | st.text() | st.text().map(lambda user: basic(user + ":pw")),
)
def test_any_environ_text_matches_gunicorn(
    agent: str | None, referer: str | None, uri: str, remote: str | None, authorization: str | None
) -> None:
    """Beyond what the parser lets through: whatever text middleware might leave in environ."""
    resp, req, environ = exchange(**CASES["get-with-query"])
    environ["RAW_URI"] = uri
    for key, value in [
        ("HTTP_USER_AGENT", agent),
        ("HTTP_REFERER", referer),
        ("REMOTE_ADDR", remote),
        ("HTTP_AUTHORIZATION", authorization),
    ]:
        if value is None:
            environ.pop(key, None)
        else:
            environ[key] = value
    with logger_pair() as pair:
        theirs, ours = pair.lines(resp, req, environ)
        assert ours == theirs
        assert pair.atoms_calls == []


def test_default_format_is_gunicorns() -> None:
    assert Config().access_log_format == DEFAULT_FORMAT


CUSTOM = '%(h)s "%(r)s" %(s)s %({user-agent}i)s %({upload-offset}o)s %(D)s %(L)s %(p)s'


def test_custom_format_falls_back_to_gunicorn() -> None:
    request = exchange(**CASES["204-without-length"])
    with logger_pair(config(access_log_format=CUSTOM)) as pair:
        theirs, ours = pair.lines(*request)
        assert ours == theirs
        assert pair.atoms_calls
        assert ours.startswith('127.0.0.1 "PATCH /files/0a1b HTTP/1.1" 204 tuspy/1.1.0 0 1002345 ')


def test_reload_with_a_custom_format_falls_back() -> None:
    """A configuration reload calls setup() with the new cfg, as gunicorn's arbiter does."""
    with logger_pair() as pair:
        pair.ours.setup(config(access_log_format=CUSTOM))
        for handler in pair.ours.access_log.handlers:
            handler.setStream(pair.out)
        ours = pair.emit(pair.ours, *exchange(**CASES["204-without-length"]))
        assert ours.startswith('127.0.0.1 "PATCH /files/0a1b HTTP/1.1" 204 tuspy/1.1.0 0 1002345 ')
        assert pair.atoms_calls


def test_filters_still_see_gunicorns_atoms() -> None:
    """A filter may read record.args (a common way to drop health checks): gunicorn's path."""

    def drop_health_checks(record: logging.LogRecord) -> bool:
        return record.args["U"] != "/healthz"

    with logger_pair() as pair:
        pair.ours.access_log.addFilter(drop_health_checks)
        assert pair.emit(pair.ours, *exchange(**CASES["unix-socket-client"])) == ""
        theirs, ours = pair.lines(*exchange(**CASES["http-1.0"]))
        assert ours == theirs != ""
        assert pair.atoms_calls


def test_records_reaching_other_handlers_take_gunicorns_path() -> None:
    """Another handler, or propagation to the root logger's, may format record.args."""
    request = exchange(**CASES["get-with-query"])
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append
    with logger_pair() as pair:
        pair.ours.access_log.addHandler(handler)
        theirs, ours = pair.lines(*request)
        assert ours == theirs
        assert len(records) == 3 and all(record.args["a"] == BROWSER for record in records)
        pair.ours.access_log.removeHandler(handler)
        pair.atoms_calls.clear()
        pair.ours.access_log.propagate = True
        assert pair.lines(*request)[1] == theirs
        assert pair.atoms_calls


def test_no_access_log_configured_logs_nothing() -> None:
    request = exchange(**CASES["get-with-query"])
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append
    with logger_pair(config(accesslog=None)) as pair:
        pair.ours.access_log.addHandler(handler)
        pair.ours.access(*request, ELAPSED)
        pair.theirs.access(*request, ELAPSED)
    assert records == [] and pair.atoms_calls == []


def test_gunicorn_conf_selects_this_logger() -> None:
    conf = runpy.run_path(str(Path(__file__).parents[2] / "gunicorn.conf.py"))
    assert conf["logger_class"] == "tuscam_gunicorn.accesslog.AccessLogger"
    cfg = Config()
    cfg.set("logger_class", conf["logger_class"])
    assert cfg.logger_class is AccessLogger
