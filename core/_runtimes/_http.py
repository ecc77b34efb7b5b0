"""The HTTP runtimes: ``source:http`` fetches a URL, ``sink:http`` sends its input to one.

Each attempt makes one request with a fresh ``httpx.Client`` (closed before
returning, so no connection outlives the attempt); the clients share one SSL
context, built on first use. httpx is imported inside the runtimes: loading
the registry, parsing and planning never pay for it.

Config (templates are already rendered by the executor):

* ``url`` (required): ``http`` or ``https``. ``query``, a mapping, is merged
  into the URL's own query string (a list value repeats the parameter).
* ``method``: ``GET`` for the source, ``POST`` for the sink; any case.
* ``headers``: a mapping; values are sent as text (``true``/``false`` for
  booleans), ``None`` values are left out.
* ``body`` (text, sent as UTF-8 as it is) or ``json`` (any JSON value, sent
  with ``Content-Type: application/json``), not both. The sink sends its
  input as JSON when neither is given; the source then sends no body.
* ``timeout``: a duration (``5s``, ``250ms``, seconds), 30s by default, for
  each of connecting, writing, and each read. In a workflow file it is a
  child element, ``<timeout>5s</timeout>``: the ``timeout`` attribute is the
  node's own, which bounds the whole attempt.
* ``auth``: ``bearer`` (config ``token``), ``basic`` (``username``,
  ``password``) or ``none``. Without ``auth``, a ``token`` implies bearer and a
  ``username`` basic. An ``Authorization`` header together with ``auth`` is
  rejected rather than silently overridden.
* ``format``: ``json`` or ``text``; without it the body is parsed as JSON
  when the response's content type is JSON (``application/json`` or
  ``*/*+json``), else returned as text. An empty body reads as None, except
  with an explicit ``format="text"``, which gives ``""``.

Redirects are followed (httpx drops ``Authorization`` when a redirect leaves
the origin). The source outputs the parsed body; the sink outputs
``{"status": code, "body": parsed body}``.

Failures:

* a status outside 2xx raises :class:`~wavecrest.core.HttpError` naming the
  method, the URL and the status, then the start of the body, on one line.
  429 and 5xx are retryable, other statuses are not. A ``Retry-After`` header
  (seconds, or an HTTP-date measured against the response's ``Date`` header,
  else the local clock) becomes ``retry_after``, so a retry waits at least
  that long;
* connection errors and timeouts propagate as httpx's exceptions, which core
  classifies as retryable;
* a bad config (no usable URL, an unknown format, method or auth, a body that
  is not text, a value JSON cannot encode) and a JSON response that does not
  parse raise :class:`~wavecrest.core.PermanentError`.

Secrets never reach an error message or a log event: URLs are shown without
user info, query or fragment, header values are never shown, and every
secret value the runtime knows of (``ctx.secrets``, ``token``, ``password``,
credential-bearing headers) is replaced by ``***`` in the messages it builds.
Cancellation is checked before the request is sent; a request in flight is
bounded by ``timeout``.
"""

from __future__ import annotations

import functools
import json
import re
from base64 import b64encode
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from .._context import RuntimeContext
from .._duration import parse_duration
from .._errors import HttpError, PermanentError
from .._registry import RuntimeSpec

if TYPE_CHECKING:
    import ssl

    import httpx

__all__ = ["BODY_PREVIEW", "DEFAULT_TIMEOUT", "FORMATS", "HTTP_RUNTIMES", "retry_after"]

FORMATS = ("json", "text")
AUTH_KINDS = ("bearer", "basic", "none")
#: Seconds allowed for connecting, writing and each read when ``timeout`` is not set.
DEFAULT_TIMEOUT = 30.0
#: How many characters of an error response's body its HttpError message shows.
BODY_PREVIEW = 200

_SOURCE = "source:http"
_SINK = "sink:http"
_METHOD = re.compile(r"[A-Za-z]+")
_JSON_TYPE = re.compile(r"application/(?:[\w.+-]+\+)?json", re.IGNORECASE)
#: Headers whose values are credentials, scrubbed from messages like secrets.
_CREDENTIAL_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "cookie", "x-api-key", "api-key"}
)
_REDACTED = "***"
_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_QUERY_TYPES = (str, int, float, type(None))
_RETRY_AFTER_SECONDS = re.compile(r"\s*(\d+(?:\.\d+)?)\s*")


# --- the request, from the config -----------------------------------------------------


class _Request:
    """What one attempt sends, validated; ``shown`` is the URL as messages may show it."""

    __slots__ = ("content", "headers", "method", "secrets", "shown", "timeout", "url")

    def __init__(self, ctx: RuntimeContext, key: str, *, default_method: str) -> None:
        self.secrets = _secret_values(ctx)
        self.method = _method(ctx, key, default_method)
        self.url = _url(ctx, key, self.secrets)
        self.headers = _headers(ctx, key)
        _apply_auth(ctx, key, self.headers)
        self.content = _content(ctx, key, self.headers, sink=key == _SINK)
        self.timeout = _timeout(ctx, key)
        # httpx sends the URL's user info as basic auth, so its password is a secret too;
        # so are credential headers, and the credentials after an auth scheme on their own.
        credentials = [self.url.password]
        for name, value in self.headers.items():
            if name.lower() in _CREDENTIAL_HEADERS:
                credentials += [value, value.partition(" ")[2]]
        self.secrets = _merge_secrets(self.secrets, credentials)
        self.shown = _shown_url(self.url, self.secrets)

    def describe(self) -> str:
        return f"{self.method} {self.shown}"


def _secret_values(ctx: RuntimeContext) -> tuple[str, ...]:
    values = [str(v) for v in ctx.secrets.values()]
    values += [str(ctx.config[k]) for k in ("token", "password") if ctx.config.get(k)]
    return _merge_secrets((), values)


def _merge_secrets(known: tuple[str, ...], more: Any) -> tuple[str, ...]:
    """Known secrets plus ``more``, non-empty, longest first (so no secret is half-replaced)."""
    values = {*known, *(str(v) for v in more if v)}
    return tuple(sorted(values, key=lambda v: (-len(v), v)))


def _scrub(text: str, secrets: tuple[str, ...]) -> str:
    for secret in secrets:
        text = text.replace(secret, _REDACTED)
    return text


def _shown_url(url: httpx.URL, secrets: tuple[str, ...]) -> str:
    """``url`` as messages may show it: no user info, query or fragment, secrets scrubbed."""
    return _scrub(str(url.copy_with(userinfo=b"", query=None, fragment=None)), secrets)


def _method(ctx: RuntimeContext, key: str, default: str) -> str:
    method = ctx.config.get("method") or default
    if not isinstance(method, str) or not _METHOD.fullmatch(method):
        raise PermanentError(
            f"invalid method {method!r} for {key} node {ctx.path!r}; "
            "expected an HTTP method such as GET, POST, PUT, PATCH or DELETE"
        )
    return method.upper()


def _url(ctx: RuntimeContext, key: str, secrets: tuple[str, ...]) -> httpx.URL:
    import httpx

    raw = ctx.config.get("url")
    if not isinstance(raw, str) or not raw.strip():
        raise PermanentError(f"{key} node {ctx.path!r} needs a url, got {raw!r}")
    try:
        url = httpx.URL(raw.strip())
    except httpx.InvalidURL as exc:
        raise PermanentError(
            _scrub(f"invalid url for {key} node {ctx.path!r}: {exc}", secrets)
        ) from None
    if url.scheme not in ("http", "https") or not url.host:
        shown = _shown_url(url, secrets)
        raise PermanentError(
            f"invalid url {shown!r} for {key} node {ctx.path!r}: "
            "expected an absolute http:// or https:// URL"
        )
    query = _mapping(ctx, key, "query")
    for name, value in query.items():
        values = value if isinstance(value, list | tuple) else [value]
        if not isinstance(name, str) or not all(isinstance(v, _QUERY_TYPES) for v in values):
            raise PermanentError(
                f"invalid query parameter {name!r} for {key} node {ctx.path!r}: expected text, "
                "a number, true/false, null or a list of those as its value"
            )
    if query:
        url = url.copy_merge_params(dict(query))
    return url.copy_with(fragment=None)


def _mapping(ctx: RuntimeContext, key: str, name: str) -> Mapping[Any, Any]:
    value = ctx.config.get(name)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise PermanentError(
            f"{name} of {key} node {ctx.path!r} must be a mapping, got {type(value).__name__}"
        )
    return value


def _headers(ctx: RuntimeContext, key: str) -> httpx.Headers:
    """``headers`` as httpx Headers; a name or value HTTP cannot carry is a PermanentError.

    Messages name the offending header but never show a value.
    """
    import httpx

    headers = httpx.Headers()
    for name, value in _mapping(ctx, key, "headers").items():
        if value is None:
            continue
        text = ("true" if value else "false") if isinstance(value, bool) else str(value)
        if not isinstance(name, str) or not _HEADER_NAME.fullmatch(name):
            raise PermanentError(
                f"invalid header name {name!r} for {key} node {ctx.path!r}; "
                "expected letters, digits and !#$%&'*+-.^_`|~"
            )
        if not text.isascii() or any(c in text for c in "\r\n\0"):
            raise PermanentError(
                f"invalid value for header {name!r} of {key} node {ctx.path!r}: "
                "expected ASCII text on one line"
            )
        headers[name] = text
    return headers


def _apply_auth(ctx: RuntimeContext, key: str, headers: httpx.Headers) -> None:
    """Set ``Authorization`` from ``auth``/``token``/``username``/``password``."""
    config = ctx.config
    kind = config.get("auth")
    if kind is None:
        kind = "bearer" if config.get("token") else "basic" if config.get("username") else "none"
    if kind not in AUTH_KINDS:
        raise PermanentError(
            f"unknown auth {kind!r} for {key} node {ctx.path!r}; "
            f"valid values are {', '.join(AUTH_KINDS)}"
        )
    if kind == "none":
        return
    if "authorization" in headers:
        raise PermanentError(
            f"{key} node {ctx.path!r} sets both auth={kind!r} and an Authorization header; "
            "keep one of them"
        )
    if kind == "bearer":
        token = config.get("token")
        if not isinstance(token, str) or not token:
            raise PermanentError(
                f"auth='bearer' for {key} node {ctx.path!r} needs a non-empty token, "
                f'e.g. token="{{{{ secrets.API_TOKEN }}}}"'
            )
        headers["Authorization"] = f"Bearer {token}"
        return
    username = config.get("username")
    password = config.get("password", "")
    if not isinstance(username, str) or not username or not isinstance(password, str):
        raise PermanentError(
            f"auth='basic' for {key} node {ctx.path!r} needs a username and a password as text"
        )
    credentials = b64encode(f"{username}:{password}".encode()).decode("ascii")
    headers["Authorization"] = f"Basic {credentials}"


def _content(ctx: RuntimeContext, key: str, headers: httpx.Headers, *, sink: bool) -> bytes | None:
    """The request body as bytes (None for no body), setting a JSON content type if needed."""
    config = ctx.config
    if "body" in config and "json" in config:
        raise PermanentError(f"{key} node {ctx.path!r} sets both body and json; keep one of them")
    if "body" in config:
        body = config["body"]
        if isinstance(body, bytes):
            return body
        if not isinstance(body, str):
            raise PermanentError(
                f"body of {key} node {ctx.path!r} must be text, got {type(body).__name__}; "
                "use json to send a value as JSON"
            )
        return body.encode("utf-8")
    if "json" in config:
        value = config["json"]
    elif sink:
        value = ctx.input
    else:
        return None
    try:
        encoded = json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise PermanentError(
            f"cannot send the {'json value' if 'json' in config else 'input'} of {key} node "
            f"{ctx.path!r} as JSON: {exc}"
        ) from exc
    headers.setdefault("Content-Type", "application/json")
    return encoded.encode("utf-8")


def _timeout(ctx: RuntimeContext, key: str) -> float:
    raw = ctx.config.get("timeout")
    if raw is None:
        return DEFAULT_TIMEOUT
    try:
        seconds: float = parse_duration(raw)
    except ValueError as exc:
        raise PermanentError(f"timeout of {key} node {ctx.path!r}: {exc}") from None
    if seconds <= 0:
        raise PermanentError(f"timeout of {key} node {ctx.path!r} must be above 0, got {raw!r}")
    return seconds


def _format(ctx: RuntimeContext, key: str) -> str | None:
    fmt = ctx.config.get("format")
    if fmt is not None and fmt not in FORMATS:
        raise PermanentError(
            f"unknown format {fmt!r} for {key} node {ctx.path!r}; "
            f"valid formats are {', '.join(FORMATS)}"
        )
    return None if fmt is None else str(fmt)


# --- sending and reading ----------------------------------------------------------------


def _send(ctx: RuntimeContext, key: str, *, default_method: str) -> tuple[int, Any]:
    """Make the request; return its status and parsed body, or raise (module docstring)."""
    import httpx

    request = _Request(ctx, key, default_method=default_method)
    fmt = _format(ctx, key)
    ctx.check_cancelled()
    ctx.log.debug("http.request", method=request.method, url=request.shown)
    with httpx.Client(
        timeout=request.timeout, follow_redirects=True, verify=_ssl_context()
    ) as client:
        response = client.request(
            request.method, request.url, headers=request.headers, content=request.content
        )
    ctx.log.debug(
        "http.response", method=request.method, url=request.shown, status=response.status_code
    )
    if not response.is_success:
        raise _status_error(request, response)
    return response.status_code, _parse(request, response, fmt)


@functools.cache
def _ssl_context() -> ssl.SSLContext:
    """One verifying SSL context for every client: building one costs ~20 ms."""
    import httpx

    return httpx.create_ssl_context()


def _status_error(request: _Request, response: httpx.Response) -> HttpError:
    status = response.status_code
    reason = f" {response.reason_phrase}" if response.reason_phrase else ""
    message = f"{request.describe()} returned {status}{reason}"
    preview = " ".join(response.text.split())
    if preview:
        if len(preview) > BODY_PREVIEW:
            preview = preview[:BODY_PREVIEW] + "..."
        message += f": {preview}"
    return HttpError(
        status, _scrub(message, request.secrets), retry_after=retry_after(response.headers)
    )


def retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds to wait from a ``Retry-After`` header; None if absent or unreadable.

    An HTTP-date counts from the response's ``Date`` header when it has one
    (the server's own clock, so the two clocks' skew does not matter), else
    from the local clock; a date already passed gives 0.
    """
    value = headers.get("retry-after")
    if value is None:
        return None
    if match := _RETRY_AFTER_SECONDS.fullmatch(value):
        return float(match.group(1))
    until = _http_date(value)
    if until is None:
        return None
    now = _http_date(headers.get("date")) or datetime.now(UTC)
    return max(0.0, (until - now).total_seconds())


def _http_date(value: str | None) -> datetime | None:
    from email.utils import parsedate_to_datetime

    if not value:
        return None
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _parse(request: _Request, response: httpx.Response, fmt: str | None) -> Any:
    if fmt is None:
        content_type = response.headers.get("content-type", "")
        fmt = "json" if _JSON_TYPE.match(content_type.strip()) else "text"
        if not response.content:
            return None
    if fmt == "text":
        return response.text
    if not response.content.strip():
        return None
    try:
        return json.loads(response.content)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise PermanentError(
            _scrub(
                f"{request.describe()} returned a body that is not valid JSON: {exc}",
                request.secrets,
            )
        ) from exc


# --- the runtimes -----------------------------------------------------------------------


def fetch(ctx: RuntimeContext) -> Any:
    """``source:http``: request ``url`` (GET by default) and output the parsed body."""
    return _send(ctx, _SOURCE, default_method="GET")[1]


def send(ctx: RuntimeContext) -> dict[str, Any]:
    """``sink:http``: send the input as JSON (POST by default); output ``{"status", "body"}``."""
    status, body = _send(ctx, _SINK, default_method="POST")
    return {"status": status, "body": body}


#: The HTTP runtimes, registered by the package ``__init__``.
HTTP_RUNTIMES: tuple[RuntimeSpec, ...] = (
    RuntimeSpec(_SOURCE, fetch, required=frozenset({"url"})),
    RuntimeSpec(_SINK, send, required=frozenset({"url"})),
)
