"""The HTTP runtimes, ``source:http`` and ``sink:http``, against a real local server.

Each test gets a :class:`FakeServer`: a ``ThreadingHTTPServer`` on
127.0.0.1 and an ephemeral port, serving replies scripted per path and
recording every request it receives. A reply may hold on a
``threading.Event`` before answering; the test sets it (the fixture sets
every one at teardown), so no test sleeps, and teardown joins every server
thread. Runtimes are called through the registry with a hand-built
RuntimeContext, and two end-to-end tests run a parsed workflow in the
core simulator.
"""

from __future__ import annotations

import base64
import json
import socket
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from wavecrest.core import (
    HttpError,
    NodeCancelledError,
    PermanentError,
    RuntimeContext,
    Simulation,
    WorkflowError,
    error_info,
    get_runtime,
    is_retryable,
    parse_workflow,
)
from wavecrest.core._runtimes._http import BODY_PREVIEW, retry_after

TOKEN = "tok-9f8e7d6c5b4a"
#: Bounds every wait in the fake server, so a broken test fails instead of hanging.
SAFETY_TIMEOUT = 10.0


# --- the fake server ------------------------------------------------------------------


@dataclass(frozen=True)
class Reply:
    """One scripted response. A body that is not bytes or str is sent as JSON."""

    status: int = 200
    body: Any = b""
    headers: Mapping[str, str] = field(default_factory=dict)
    #: When set, the server waits for this event before answering.
    hold: threading.Event | None = None

    def encoded(self) -> tuple[bytes, dict[str, str]]:
        headers = dict(self.headers)
        if isinstance(self.body, bytes):
            return self.body, headers
        if isinstance(self.body, str):
            headers.setdefault("Content-Type", "text/plain; charset=utf-8")
            return self.body.encode("utf-8"), headers
        headers.setdefault("Content-Type", "application/json")
        return json.dumps(self.body).encode("utf-8"), headers


@dataclass(frozen=True)
class Seen:
    """One request as the server received it; header names are lower-cased."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class FakeServer(ThreadingHTTPServer):
    """Serves scripted replies per path (the last one repeats) and records requests."""

    # Non-daemon handler threads are joined by server_close(), so none outlives a test.
    daemon_threads = False

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self._lock = threading.Lock()
        self._scripts: dict[str, deque[Reply]] = {}
        self.requests: list[Seen] = []
        self.errors: list[BaseException] = []

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def script(self, path: str, *replies: Reply) -> None:
        with self._lock:
            self._scripts[path] = deque(replies)

    def next_reply(self, seen: Seen) -> Reply:
        with self._lock:
            self.requests.append(seen)
            replies = self._scripts.get(seen.path)
            if not replies:
                return Reply(404, f"no reply scripted for {seen.path}")
            return replies.popleft() if len(replies) > 1 else replies[0]

    def release_all(self) -> None:
        with self._lock:
            for replies in self._scripts.values():
                for reply in replies:
                    if reply.hold is not None:
                        reply.hold.set()

    def handle_error(self, request: Any, client_address: Any) -> None:
        self.errors.append(sys.exc_info()[1] or RuntimeError("unknown server error"))


class _Handler(BaseHTTPRequestHandler):
    server: FakeServer

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        parts = urlsplit(self.path)
        seen = Seen(
            method=self.command,
            path=parts.path,
            query=parse_qs(parts.query, keep_blank_values=True),
            headers={name.lower(): value for name, value in self.headers.items()},
            body=self.rfile.read(length),
        )
        reply = self.server.next_reply(seen)
        if reply.hold is not None and not reply.hold.wait(SAFETY_TIMEOUT):
            self.server.errors.append(TimeoutError("a held reply was never released"))
        body, headers = reply.encoded()
        try:
            self.send_response_only(reply.status)
            if "Date" not in headers:
                self.send_header("Date", self.date_time_string())
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up first (the timeout test): nothing to answer

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(autouse=True)
def _no_proxies(monkeypatch: pytest.MonkeyPatch) -> None:
    """httpx honours proxy variables; the tests talk to 127.0.0.1 directly."""
    for name in (
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "http_proxy",
        "https_proxy",
        "all_proxy",
    ):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def server(no_new_threads: None) -> Iterator[FakeServer]:
    """A running FakeServer; teardown releases held replies, stops it and joins its threads."""
    srv = FakeServer()
    # A short poll interval only makes shutdown() prompt; nothing waits on it otherwise.
    thread = threading.Thread(
        target=srv.serve_forever, kwargs={"poll_interval": 0.01}, name="fake-http", daemon=True
    )
    thread.start()
    try:
        yield srv
    finally:
        srv.release_all()
        srv.shutdown()
        srv.server_close()
        thread.join(SAFETY_TIMEOUT)
    assert not thread.is_alive()
    assert srv.errors == []


def call(
    key: str,
    config: Mapping[str, Any],
    *,
    input: Any = None,
    secrets: Mapping[str, str] | None = None,
    cancel: Any = None,
) -> Any:
    """Run the runtime ``key`` the way an executor would, with a rendered config."""
    ctx = RuntimeContext(config=config, input=input, secrets=secrets, node_id="web", cancel=cancel)
    return get_runtime(key).func(ctx)


def fetch(config: Mapping[str, Any], **kwargs: Any) -> Any:
    return call("source:http", config, **kwargs)


def send(config: Mapping[str, Any], **kwargs: Any) -> Any:
    return call("sink:http", config, **kwargs)


# --- source:http: responses -------------------------------------------------------------


def test_get_returns_the_parsed_json_body(server: FakeServer) -> None:
    """A JSON response is parsed; the request is a GET without a body."""
    server.script("/items", Reply(body=[{"id": 1}, {"id": 2}]))
    assert fetch({"url": server.url("/items")}) == [{"id": 1}, {"id": 2}]
    [seen] = server.requests
    assert (seen.method, seen.path, seen.body) == ("GET", "/items", b"")


def test_a_json_suffix_content_type_is_parsed_as_json(server: FakeServer) -> None:
    """``application/problem+json`` and friends count as JSON."""
    server.script(
        "/p", Reply(body=b'{"a": 1}', headers={"Content-Type": "application/vnd.x+json; v=2"})
    )
    assert fetch({"url": server.url("/p")}) == {"a": 1}


def test_a_text_response_is_returned_as_a_string(server: FakeServer) -> None:
    """Without a JSON content type the body is returned as text, unchanged."""
    server.script("/t", Reply(body="line 1\nline 2\n"))
    assert fetch({"url": server.url("/t")}) == "line 1\nline 2\n"


def test_format_overrides_the_content_type(server: FakeServer) -> None:
    """``format=text`` keeps JSON as text; ``format=json`` parses a text/plain body."""
    server.script("/j", Reply(body={"a": 1}))
    server.script("/t", Reply(body='{"b": [1, 2]}'))
    assert fetch({"url": server.url("/j"), "format": "text"}) == '{"a": 1}'
    assert fetch({"url": server.url("/t"), "format": "json"}) == {"b": [1, 2]}


def test_an_empty_body_reads_as_none_unless_format_is_text(server: FakeServer) -> None:
    """No content means no value; an explicit text format gives the empty string."""
    server.script("/empty", Reply(204))
    assert fetch({"url": server.url("/empty")}) is None
    assert fetch({"url": server.url("/empty"), "format": "json"}) is None
    assert fetch({"url": server.url("/empty"), "format": "text"}) == ""


def test_query_params_are_merged_into_the_url_query(server: FakeServer) -> None:
    """``query`` adds to the URL's own parameters; a list repeats a parameter."""
    server.script("/search", Reply(body=[]))
    fetch(
        {
            "url": server.url("/search?lang=en"),
            "query": {"q": "a b&c", "page": 2, "tag": ["x", "y"], "exact": True},
        }
    )
    [seen] = server.requests
    assert seen.query == {
        "lang": ["en"],
        "q": ["a b&c"],
        "page": ["2"],
        "tag": ["x", "y"],
        "exact": ["true"],
    }


def test_headers_are_sent(server: FakeServer) -> None:
    """Header values from a YAML mapping are sent as text; None leaves a header out."""
    server.script("/h", Reply(body={}))
    fetch(
        {
            "url": server.url("/h"),
            "headers": {"Accept": "application/json", "X-Count": 5, "X-Flag": False, "X-No": None},
        }
    )
    [seen] = server.requests
    assert seen.headers["accept"] == "application/json"
    assert seen.headers["x-count"] == "5"
    assert seen.headers["x-flag"] == "false"
    assert "x-no" not in seen.headers


def test_method_and_json_config_send_a_body_from_a_source(server: FakeServer) -> None:
    """A source may POST a JSON query, e.g. to a search endpoint."""
    server.script("/search", Reply(body={"hits": 3}))
    assert fetch({"url": server.url("/search"), "method": "post", "json": {"q": "x"}}) == {
        "hits": 3
    }
    [seen] = server.requests
    assert seen.method == "POST"
    assert seen.headers["content-type"] == "application/json"
    assert seen.json() == {"q": "x"}


def test_redirects_are_followed(server: FakeServer) -> None:
    """A 302 leads to the new location; the output is the final response's body."""
    server.script("/old", Reply(302, headers={"Location": "/new"}))
    server.script("/new", Reply(body={"moved": True}))
    assert fetch({"url": server.url("/old")}) == {"moved": True}
    assert [seen.path for seen in server.requests] == ["/old", "/new"]


# --- authentication -------------------------------------------------------------------------


def test_bearer_auth_sends_the_token(server: FakeServer) -> None:
    """``auth=bearer`` with ``token`` (rendered from a secret) sets ``Authorization: Bearer``."""
    server.script("/me", Reply(body={"user": "ada"}))
    fetch({"url": server.url("/me"), "auth": "bearer", "token": TOKEN}, secrets={"API": TOKEN})
    assert server.requests[0].headers["authorization"] == f"Bearer {TOKEN}"


def test_a_token_alone_implies_bearer_auth(server: FakeServer) -> None:
    server.script("/me", Reply(body={}))
    fetch({"url": server.url("/me"), "token": TOKEN})
    assert server.requests[0].headers["authorization"] == f"Bearer {TOKEN}"


def test_basic_auth_sends_username_and_password(server: FakeServer) -> None:
    """``auth=basic`` encodes ``username:password`` (UTF-8) in base64."""
    server.script("/me", Reply(body={}))
    fetch({"url": server.url("/me"), "auth": "basic", "username": "ada", "password": "pä:ss"})
    expected = base64.b64encode("ada:pä:ss".encode()).decode()
    assert server.requests[0].headers["authorization"] == f"Basic {expected}"


def test_an_authorization_header_can_carry_the_secret_directly(server: FakeServer) -> None:
    server.script("/me", Reply(body={}))
    fetch({"url": server.url("/me"), "headers": {"Authorization": f"Bearer {TOKEN}"}})
    assert server.requests[0].headers["authorization"] == f"Bearer {TOKEN}"


def test_auth_and_an_authorization_header_together_are_rejected(server: FakeServer) -> None:
    """Which one would win is not obvious, so neither does; nothing is sent."""
    with pytest.raises(PermanentError, match=r"sets both auth='bearer' and an Authorization"):
        fetch(
            {
                "url": server.url("/me"),
                "token": TOKEN,
                "headers": {"authorization": "Bearer other"},
            }
        )
    assert server.requests == []


# --- sink:http ------------------------------------------------------------------------------


def test_sink_posts_its_input_as_json(server: FakeServer) -> None:
    """Without body or json, the sink POSTs the node's input as JSON."""
    server.script("/in", Reply(201, {"id": 7}))
    rows = [{"name": "Ada", "score": 1.5}, {"name": "Zoë", "score": None}]
    out = send({"url": server.url("/in")}, input=rows)
    [seen] = server.requests
    assert seen.method == "POST"
    assert seen.headers["content-type"] == "application/json"
    assert seen.json() == rows
    assert out == {"status": 201, "body": {"id": 7}}


def test_sink_output_holds_a_text_body_and_the_status(server: FakeServer) -> None:
    server.script("/in", Reply(202, "queued"))
    assert send({"url": server.url("/in")}, input={"a": 1}) == {"status": 202, "body": "queued"}


def test_sink_output_body_is_none_for_no_content(server: FakeServer) -> None:
    server.script("/in", Reply(204))
    assert send({"url": server.url("/in")}, input=1) == {"status": 204, "body": None}


def test_sink_sends_an_explicit_body_as_it_is(server: FakeServer) -> None:
    """``body`` is sent raw (UTF-8) instead of the input, with the method asked for."""
    server.script("/doc", Reply(200, "ok"))
    body = "name,score\nZoë,1\n"
    send(
        {
            "url": server.url("/doc"),
            "method": "PUT",
            "body": body,
            "headers": {"Content-Type": "text/csv"},
        },
        input=["ignored"],
    )
    [seen] = server.requests
    assert seen.method == "PUT"
    assert seen.body == body.encode("utf-8")
    assert seen.headers["content-type"] == "text/csv"


def test_sink_json_config_replaces_the_input(server: FakeServer) -> None:
    server.script("/in", Reply(200, {}))
    send({"url": server.url("/in"), "json": {"count": 2}}, input=["ignored"])
    assert server.requests[0].json() == {"count": 2}


def test_sink_keeps_a_content_type_set_in_headers(server: FakeServer) -> None:
    server.script("/in", Reply(200, {}))
    send(
        {"url": server.url("/in"), "headers": {"content-type": "application/vnd.x+json"}},
        input=[1],
    )
    assert server.requests[0].headers["content-type"] == "application/vnd.x+json"


# --- error statuses -------------------------------------------------------------------------


def test_404_raises_an_http_error_that_is_not_retryable(server: FakeServer) -> None:
    """The one-line message names method, URL (without its query) and status, then the body."""
    server.script("/missing", Reply(404, "no such\n  item"))
    with pytest.raises(HttpError) as info:
        fetch({"url": server.url("/missing"), "query": {"page": 1}})
    error = info.value
    assert error.status == 404
    assert str(error) == f"GET {server.url('/missing')} returned 404 Not Found: no such item"
    assert not error.retryable
    assert not is_retryable(error)
    assert error_info(error).permanent


def test_an_error_message_shows_only_the_start_of_a_long_body(server: FakeServer) -> None:
    server.script("/in", Reply(400, "x" * 1000))
    with pytest.raises(HttpError) as info:
        send({"url": server.url("/in")}, input=1)
    message = str(info.value)
    assert message == (
        f"POST {server.url('/in')} returned 400 Bad Request: {'x' * BODY_PREVIEW}..."
    )


@pytest.mark.parametrize("status", [500, 502, 503])
def test_5xx_raises_a_retryable_http_error(server: FakeServer, status: int) -> None:
    server.script("/flaky", Reply(status, "try later"))
    with pytest.raises(HttpError) as info:
        fetch({"url": server.url("/flaky")})
    assert info.value.status == status
    assert info.value.retryable
    assert is_retryable(info.value)
    assert info.value.retry_after is None


def test_429_with_retry_after_seconds_sets_retry_after(server: FakeServer) -> None:
    """``Retry-After: 7`` becomes ``retry_after == 7.0``, and the error record keeps it."""
    server.script("/limited", Reply(429, "slow down", {"Retry-After": "7"}))
    with pytest.raises(HttpError) as info:
        fetch({"url": server.url("/limited")})
    assert info.value.status == 429
    assert is_retryable(info.value)
    assert info.value.retry_after == 7.0
    assert error_info(info.value).retry_after == 7.0


def test_429_with_retry_after_http_date_counts_from_the_date_header(server: FakeServer) -> None:
    """An HTTP-date is measured against the response's own Date, not the local clock."""
    headers = {
        "Date": "Wed, 21 Oct 2015 07:28:00 GMT",
        "Retry-After": "Wed, 21 Oct 2015 07:30:00 GMT",
    }
    server.script("/limited", Reply(429, "", headers))
    with pytest.raises(HttpError) as info:
        fetch({"url": server.url("/limited")})
    assert info.value.retry_after == 120.0
    assert str(info.value) == f"GET {server.url('/limited')} returned 429 Too Many Requests"


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({}, None),
        ({"retry-after": "0"}, 0.0),
        ({"retry-after": " 2.5 "}, 2.5),
        ({"retry-after": "soon"}, None),
        ({"retry-after": "-3"}, None),
        ({"retry-after": "Wed, 21 Oct 2015 07:30:00 GMT", "date": "nonsense"}, 0.0),
        ({"retry-after": "Wed, 21 Oct 2015 07:30:00 GMT"}, 0.0),
        (
            {
                "retry-after": "Wed, 21 Oct 2015 07:30:00 GMT",
                "date": "Wed, 21 Oct 2015 07:31:00 GMT",
            },
            0.0,
        ),
    ],
)
def test_retry_after_values(headers: dict[str, str], expected: float | None) -> None:
    """Seconds or an HTTP-date; a date in the past waits 0, anything unreadable is ignored."""
    assert retry_after(headers) == expected


def test_retry_after_an_http_date_in_the_future_without_date_uses_the_local_clock() -> None:
    assert retry_after({"retry-after": "Fri, 01 Jan 9999 00:00:00 GMT"}) > 10**9


# --- transport failures ---------------------------------------------------------------------


def test_connection_refused_is_a_retryable_httpx_error() -> None:
    """A closed port raises httpx.ConnectError, which core classifies as retryable."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(httpx.ConnectError) as info:
        fetch({"url": f"http://127.0.0.1:{port}/x"})
    assert is_retryable(info.value)
    assert error_info(info.value).retryable


def test_a_slow_server_raises_an_httpx_timeout(server: FakeServer) -> None:
    """The server holds its reply until the client has timed out; then the test releases it."""
    held = threading.Event()
    server.script("/slow", Reply(body={}, hold=held))
    try:
        with pytest.raises(httpx.ReadTimeout) as info:
            fetch({"url": server.url("/slow"), "timeout": "50ms"})
    finally:
        held.set()
    assert isinstance(info.value, httpx.TimeoutException)
    assert is_retryable(info.value)
    assert len(server.requests) == 1


# --- bodies that do not parse, bad config, cancellation --------------------------------------


def test_invalid_json_in_a_json_response_is_a_permanent_error(server: FakeServer) -> None:
    server.script("/bad", Reply(body=b"{not json", headers={"Content-Type": "application/json"}))
    with pytest.raises(
        PermanentError,
        match=r"^GET http://127\.0\.0\.1:\d+/bad returned a body "
        r"that is not valid JSON: ",
    ) as info:
        fetch({"url": server.url("/bad")})
    assert not is_retryable(info.value)
    assert isinstance(info.value.__cause__, json.JSONDecodeError)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"url": ""}, r"source:http node 'web' needs a url, got ''"),
        (
            {"url": "ftp://127.0.0.1/x"},
            r"invalid url 'ftp://127\.0\.0\.1/x' .*expected an absolute",
        ),
        ({"url": "/relative"}, r"invalid url '/relative'"),
        (
            {"url": "http://127.0.0.1:port/"},
            r"invalid url for source:http node 'web': Invalid port",
        ),
        ({"method": "GET /x"}, r"invalid method 'GET /x' .*expected an HTTP method"),
        ({"format": "xml"}, r"unknown format 'xml' .*valid formats are json, text"),
        ({"timeout": "soon"}, r"timeout of source:http node 'web': invalid duration 'soon'"),
        ({"timeout": "0s"}, r"must be above 0, got '0s'"),
        ({"auth": "digest"}, r"unknown auth 'digest' .*valid values are bearer, basic, none"),
        ({"auth": "bearer"}, r"auth='bearer' .* needs a non-empty token"),
        ({"auth": "basic", "password": "pw"}, r"auth='basic' .* needs a username"),
        ({"headers": ["X-A: 1"]}, r"headers of source:http node 'web' must be a mapping, got list"),
        ({"headers": {"X A": "1"}}, r"invalid header name 'X A'"),
        ({"headers": {"X-A": "1\r\nX-B: 2"}}, r"invalid value for header 'X-A' .*one line"),
        ({"query": {"q": {"nested": 1}}}, r"invalid query parameter 'q'"),
        ({"body": "a", "json": 1}, r"sets both body and json"),
        ({"body": {"a": 1}}, r"body of source:http node 'web' must be text, got dict; use json"),
        ({"json": {1, 2}}, r"cannot send the json value .* as JSON"),
        ({"json": float("nan")}, r"cannot send the json value .* as JSON"),
    ],
)
def test_bad_config_is_a_permanent_error_before_anything_is_sent(
    server: FakeServer, config: dict[str, Any], message: str
) -> None:
    with pytest.raises(PermanentError, match=message):
        fetch({"url": server.url("/x"), **config})
    assert server.requests == []


def test_sink_input_that_json_cannot_encode_is_a_permanent_error(server: FakeServer) -> None:
    with pytest.raises(PermanentError, match=r"cannot send the input of sink:http node 'web'"):
        send({"url": server.url("/in")}, input={"when": object()})
    assert server.requests == []


class _Cancelled:
    def is_set(self) -> bool:
        return True

    def wait(self, timeout: float | None = None) -> bool:
        return True


def test_a_cancelled_attempt_sends_nothing(server: FakeServer) -> None:
    server.script("/in", Reply(200, {}))
    with pytest.raises(NodeCancelledError):
        send({"url": server.url("/in")}, input=1, cancel=_Cancelled())
    assert server.requests == []


# --- secrets never leak ---------------------------------------------------------------------


def test_error_messages_never_contain_the_token(server: FakeServer) -> None:
    """Even when the server echoes the Authorization header and the URL carries the token."""
    server.script("/secure", Reply(401, f"bad credentials: Bearer {TOKEN}"))
    url = f"http://user:{TOKEN}@127.0.0.1:{server.port}/secure?api_key={TOKEN}"
    with pytest.raises(HttpError) as info:
        fetch({"url": url, "auth": "bearer", "token": TOKEN}, secrets={"API_TOKEN": TOKEN})
    record = error_info(info.value)
    assert TOKEN not in str(info.value)
    assert TOKEN not in record.message
    assert TOKEN not in record.traceback
    assert str(info.value) == (
        f"GET http://127.0.0.1:{server.port}/secure returned 401 Unauthorized: bad credentials: ***"
    )


def test_basic_credentials_are_scrubbed_also_in_base64(server: FakeServer) -> None:
    """A server echoing the Basic header gives away the password as much as the plain text."""
    encoded = base64.b64encode(f"ada:{TOKEN}".encode()).decode()
    server.script("/secure", Reply(401, f"got {encoded} and Basic {encoded}"))
    with pytest.raises(HttpError) as info:
        fetch({"url": server.url("/secure"), "username": "ada", "password": TOKEN})
    assert server.requests[0].headers["authorization"] == f"Basic {encoded}"
    assert str(info.value).endswith("401 Unauthorized: got *** and ***")


def test_a_secret_in_the_url_path_or_a_header_is_scrubbed(server: FakeServer) -> None:
    """Secrets from ctx.secrets and credential headers are replaced by *** in messages."""
    server.script(f"/bot{TOKEN}/send", Reply(403, "cookie=c00kie-value denied"))
    with pytest.raises(HttpError) as info:
        send(
            {"url": server.url(f"/bot{TOKEN}/send"), "headers": {"Cookie": "c00kie-value"}},
            input=1,
            secrets={"BOT": TOKEN},
        )
    assert str(info.value) == (
        f"POST http://127.0.0.1:{server.port}/bot***/send returned 403 Forbidden: cookie=*** denied"
    )


def test_invalid_json_message_never_contains_the_token(server: FakeServer) -> None:
    server.script(
        f"/{TOKEN}",
        Reply(body=f"oops {TOKEN}".encode(), headers={"Content-Type": "application/json"}),
    )
    with pytest.raises(PermanentError) as info:
        fetch({"url": server.url(f"/{TOKEN}"), "token": TOKEN})
    assert TOKEN not in str(info.value)


# --- registration ---------------------------------------------------------------------------


def test_both_runtimes_are_registered_and_require_a_url() -> None:
    for key in ("source:http", "sink:http"):
        assert get_runtime(key).required == frozenset({"url"})


def test_the_parser_reports_a_missing_url() -> None:
    text = '---\nname: w\n---\n<workflow>\n  <source id="s" type="http"/>\n</workflow>\n'
    with pytest.raises(WorkflowError, match=r"source:http needs attribute 'url'"):
        parse_workflow(text)


def test_loading_the_registry_does_not_import_httpx() -> None:
    """httpx is imported by the runtimes when they run, not when they are registered."""
    code = (
        "import sys, wavecrest.core as c; c.runtime_keys(); "
        "assert 'source:http' in c.runtime_keys(); "
        "assert 'httpx' not in sys.modules, 'httpx was imported'"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr


# --- end to end in the simulator ------------------------------------------------------------


def _workflow(body: str, front: str = "") -> str:
    return f"---\nname: web\n{front}---\n<workflow>\n{body}\n</workflow>\n"


def test_a_workflow_fetches_and_transforms(server: FakeServer) -> None:
    """An http source feeds a map; the secret token reaches the server as a bearer token."""
    server.script("/items", Reply(body=[{"name": "ada"}, {"name": "grace"}]))
    text = _workflow(
        f'  <source id="items" type="http" url="http://127.0.0.1:{server.port}/items"\n'
        '          token="{{ secrets.API_TOKEN }}"/>\n'
        '  <transform id="names" type="map" input="items" expression="{{ item.name | upper }}"/>',
        front="secrets: [API_TOKEN]\n",
    )
    result = Simulation(parse_workflow(text), secrets={"API_TOKEN": TOKEN}).run()
    assert result.status == "completed", result.errors
    assert result.outputs["items"] == [{"name": "ada"}, {"name": "grace"}]
    assert result.outputs["names"] == ["ADA", "GRACE"]
    assert server.requests[0].headers["authorization"] == f"Bearer {TOKEN}"


def test_a_workflow_retries_503_until_it_succeeds(server: FakeServer) -> None:
    """Two 503s, then 200: the node completes on its third attempt."""
    server.script("/items", Reply(503, "busy"), Reply(503, "busy"), Reply(body=[1, 2, 3]))
    text = _workflow(
        f'  <source id="items" type="http" url="http://127.0.0.1:{server.port}/items">\n'
        '    <on-error><retry max="2" base="1ms"/></on-error>\n'
        "  </source>\n"
        '  <transform id="total" type="reduce" input="items" expression="{{ acc + item }}"'
        ' initial="{{ 0 }}"/>'
    )
    result = Simulation(parse_workflow(text)).run()
    assert result.status == "completed", result.errors
    assert result.nodes["items"].attempts == 3
    assert result.outputs["total"] == 6
    assert len(server.requests) == 3


def test_a_workflow_fails_once_retries_are_used_up(server: FakeServer) -> None:
    """Three 503s exhaust max=2; the error is the HttpError, with no token in it."""
    server.script("/items", Reply(503, f"busy {TOKEN}"))
    text = _workflow(
        f'  <source id="items" type="http" url="http://127.0.0.1:{server.port}/items"\n'
        '          token="{{ secrets.API_TOKEN }}">\n'
        '    <on-error><retry max="2" base="1ms"/></on-error>\n'
        "  </source>",
        front="secrets: [API_TOKEN]\n",
    )
    result = Simulation(parse_workflow(text), secrets={"API_TOKEN": TOKEN}).run()
    assert result.status == "failed"
    assert result.nodes["items"].attempts == 3
    [error] = [e for e in result.errors if e.node == "items"]
    assert error.type == "HttpError"
    assert error.message.endswith("returned 503 Service Unavailable: busy ***")
    assert TOKEN not in error.message
    assert TOKEN not in error.traceback
    assert len(server.requests) == 3


def test_a_workflow_gives_headers_query_and_timeout_as_child_elements(server: FakeServer) -> None:
    """YAML mapping children become ``headers``/``query``; ``<timeout>`` is the request's."""
    server.script("/items", Reply(body={"ok": True}))
    text = _workflow(
        f'  <source id="items" type="http" url="http://127.0.0.1:{server.port}/items"'
        ' timeout="1m">\n'
        "    <timeout>5s</timeout>\n"
        "    <headers>\n      Accept: application/json\n      X-Count: 5\n    </headers>\n"
        "    <query>\n      page: 2\n      tag: [a, b]\n    </query>\n"
        "  </source>"
    )
    workflow = parse_workflow(text)
    assert workflow.node("items").timeout == 60.0
    result = Simulation(workflow).run()
    assert result.status == "completed", result.errors
    assert result.outputs["items"] == {"ok": True}
    [seen] = server.requests
    assert (seen.headers["accept"], seen.headers["x-count"]) == ("application/json", "5")
    assert seen.query == {"page": ["2"], "tag": ["a", "b"]}
