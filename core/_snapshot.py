"""Snapshots: the value codec, result encoding and the checksummed snapshot file.

The file
--------
A snapshot is one msgpack map::

    {"format": "wavecrest.snapshot", "version": 1,
     "checksum": "crc32:<8 hex digits of the CRC-32 of payload>",
     "payload": <bin>}

``payload`` is itself msgpack: a map of the :class:`RunRecord` fields, where
``results`` maps each node path to a map of the :class:`~._events.NodeResult`
fields (errors are maps of the :class:`~._events.ErrorInfo` fields). The
checksum covers the payload only; the envelope is small enough that a damaged
one fails to parse or names the wrong format or version. CRC-32 (as in zip,
gzip and PNG) catches torn writes and damaged bytes, and a large run
rewrites its snapshot often, so it is chosen over a cryptographic hash,
which costs several times more; readers also accept ``blake2b:<hex of the
blake2b-256>``, which earlier files carry. A reader refuses a
newer ``version`` and ignores payload fields it does not know, so fields may be
added within a version.

Values
------
Node outputs are arbitrary Python values. :func:`encode_value` writes the
msgpack-native ones as themselves (``strict_types``, so that a tuple is never
silently a list) and the rest as extension types (:data:`EXT_CODES`):
datetime (with its time zone), date, time, timedelta, Decimal, UUID, complex,
paths and ints beyond 64 bits. A tuple, set or frozenset is an array whose
first element is an empty extension value of its code, so decoding is one
msgpack call with a ``list_hook``, never a nested call per level (each costs
msgpack a large C stack frame: a crafted file could crash the reader).

Subclasses of dict, list, tuple, set, frozenset, str, bytes, int and float are
written as their base type, so a :class:`~._model.FrozenDict` comes back as a
dict, an ``IntEnum`` as an int and a named tuple as a tuple; bytearray and
memoryview come back as bytes, PurePosixPath as Path. Strings with lone
surrogates survive. Sets are written in the order of their elements'
encodings, so equal values give equal bytes. Anything else raises
:class:`~._errors.OutputEncodingError` naming where it is. (A msgpack
``ExtType`` in an output is written as it is: it must not use our codes.)

Caching
-------
Snapshots are rewritten after node completions, so nothing is encoded twice:
an output is encoded once (on the executor's thread, by ``execute_task``'s
``encode``), :func:`encode_result` splices those bytes into the result's map,
and :func:`encode_snapshot` splices each result's bytes into the payload. A
rewrite then costs the header, one copy of the cached bytes and the checksum.
The maps are assembled by hand (:func:`_map_header`), which is why the field
order of the encodings is fixed.

Secrets
-------
A :class:`Redactor` replaces every occurrence of a secret value with ``***``
in strings, bytes and paths at any depth. Encoders first encode and then look
for each secret's bytes in the result; only when one is found is the value
redacted and encoded again, so redaction costs one byte search when nothing
needs it. Identifiers (run id, workflow name, digest, source text, node paths,
secret names, checkpoint paths) are written as they are: rewriting them would
break resume.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import reprlib
import struct
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import MISSING, dataclass, fields
from datetime import date, datetime, time, timedelta, timezone, tzinfo
from decimal import Decimal
from pathlib import Path, PurePath, PureWindowsPath
from typing import Any, Final, TypeVar
from uuid import UUID
from zoneinfo import ZoneInfo

import msgpack

from ._errors import OutputEncodingError, SnapshotError
from ._events import ErrorInfo, NodeResult
from ._result import RunResult

__all__ = [
    "EXT_CODES",
    "FORMAT",
    "MAX_SET_DEPTH",
    "VERSION",
    "Redactor",
    "ResultEntries",
    "RunRecord",
    "decode_result",
    "decode_snapshot",
    "decode_value",
    "encode_record",
    "encode_result",
    "encode_snapshot",
    "encode_value",
    "read_snapshot",
    "snapshot_parts",
    "write_atomic",
]

FORMAT: Final = "wavecrest.snapshot"
VERSION: Final = 1

#: The msgpack extension codes of the non-native types. Never renumber: they
#: are part of the file format.
EXT_CODES: Final[Mapping[str, int]] = {
    "tuple": 1,
    "set": 2,
    "frozenset": 3,
    "datetime": 4,
    "date": 5,
    "time": 6,
    "timedelta": 7,
    "Decimal": 8,
    "UUID": 9,
    "complex": 10,
    "Path": 11,
    "bigint": 12,
    "PureWindowsPath": 13,
}
_TUPLE, _SET, _FROZENSET, _DATETIME, _DATE, _TIME, _TIMEDELTA = range(1, 8)
_DECIMAL, _UUID, _COMPLEX, _PATH, _BIGINT, _WINPATH = range(8, 14)

#: How deeply sets and frozensets may nest inside one another (other containers
#: between them do not count). Each level sorts its elements by their encoding,
#: one nested msgpack call deeper, so this bounds the Python stack. Containers
#: of any kind nest at most 1024 deep (msgpack's own limit).
MAX_SET_DEPTH: Final = 100

_SUPPORTED = (
    "None, bool, int, float, str, bytes, list, dict, tuple, set, frozenset, "
    "datetime, date, time, timedelta, Decimal, UUID, complex, Path"
)
_MASK = "***"
_MASK_BYTES = b"***"
_COMPLEX_STRUCT = struct.Struct("<dd")
_INT64_MIN, _UINT64_MAX = -(2**63), 2**64 - 1
_MICROSECOND = timedelta(microseconds=1)


# --- redaction --------------------------------------------------------------------------


class Redactor:
    """Masks secret values: each occurrence becomes ``***``.

    Empty secrets are ignored; a Redactor without secrets returns every value
    as it is. Occurrences that overlap or touch (of one secret or of several)
    are masked together as one ``***``, so no fragment of a secret survives.
    """

    __slots__ = ("_bytes", "_text")

    def __init__(self, secrets: Iterable[str]) -> None:
        unique: set[str] = set()
        for secret in secrets:
            if not isinstance(secret, str):
                raise TypeError(f"a secret must be a str, not {type(secret).__name__}")
            if secret:
                unique.add(secret)
        # Longest first, so that found_in usually stops at the most specific hit;
        # masking itself covers the union of all occurrences, in any order.
        self._text: tuple[str, ...] = tuple(sorted(unique, key=lambda s: (-len(s), s)))
        self._bytes: tuple[bytes, ...] = tuple(
            s.encode("utf-8", "surrogatepass") for s in self._text
        )

    def __bool__(self) -> bool:
        return bool(self._text)

    def __repr__(self) -> str:
        return f"<Redactor of {len(self._text)} secret(s)>"

    def found_in(self, data: bytes) -> bool:
        """True when some secret's UTF-8 bytes occur in ``data`` (e.g. an encoding)."""
        return any(secret in data for secret in self._bytes)

    def redact(self, value: Any) -> Any:
        """``value`` with the secrets masked in every str, bytes and path, keys included.

        Containers are rebuilt (as their base type) only when something inside
        them changed; otherwise ``value`` itself is returned. Two dict keys or set
        elements that become equal once masked merge into one.
        """
        if not self._text:
            return value
        return self._redact(value)

    def _redact(self, value: Any) -> Any:
        if isinstance(value, str):
            return _mask(value, self._text, _MASK)
        if isinstance(value, bytes | bytearray | memoryview):
            data = bytes(value)
            masked = _mask(data, self._bytes, _MASK_BYTES)
            return value if masked is data else masked
        if isinstance(value, dict):
            changed = False
            items = []
            for key, item in value.items():
                new_key, new_item = self._redact(key), self._redact(item)
                changed = changed or new_key is not key or new_item is not item
                items.append((new_key, new_item))
            return dict(items) if changed else value
        if isinstance(value, list | tuple | set | frozenset):
            new = [self._redact(item) for item in value]
            if all(a is b for a, b in zip(new, value, strict=True)):
                return value
            base = next(t for t in (list, tuple, set, frozenset) if isinstance(value, t))
            return base(new)
        if isinstance(value, PurePath):
            text = str(value)
            new_text = _mask(text, self._text, _MASK)
            return value if new_text is text else type(value)(new_text)
        return value


_Text = TypeVar("_Text", str, bytes)


def _mask(text: _Text, secrets: tuple[_Text, ...], mask: _Text) -> _Text:
    """``text`` with the union of all occurrences of ``secrets`` replaced by ``mask``.

    Returns ``text`` itself (the same object) when no secret occurs in it.
    """
    spans: list[tuple[int, int]] = []
    for secret in secrets:
        start = text.find(secret)
        while start != -1:
            spans.append((start, start + len(secret)))
            start = text.find(secret, start + 1)
    if not spans:
        return text
    spans.sort()
    pieces: list[_Text] = []
    done = 0  # text[:done] is already in pieces, masked or not
    first, last = spans[0]  # the merged span being grown
    for start, end in spans[1:]:
        if start <= last:
            last = max(last, end)
            continue
        pieces += (text[done:first], mask)
        done, first, last = last, start, end
    pieces += (text[done:first], mask, text[last:])
    return text[:0].join(pieces)


# --- the value codec: encoding ---------------------------------------------------------


class _TooDeep(Exception):
    """Raised inside the encoder when sets nest beyond MAX_SET_DEPTH."""


class _Encoder:
    """One encoding: the msgpack Packer, with the ``default`` hook, and one per set depth.

    A Packer cannot be re-entered from its own ``default`` hook, so the elements
    of a set met by the packer at depth ``d`` are sorted by their encodings made
    with the packer at depth ``d + 1``. Encoders are made per call: encoding
    runs on many executor threads at once and a Packer is not thread-safe.
    """

    __slots__ = ("_depth", "_packers", "_sorted_sets", "_unicode_errors")

    def __init__(self, unicode_errors: str | None = None) -> None:
        self._unicode_errors = unicode_errors
        self._packers: list[Any] = []
        self._depth = 0  # the depth of the packer now running
        # id(set) -> its sorted array. Every set is met again, by the outer packer,
        # after its encoding served as a sort key; without this, each level of
        # nested sets would double the work. The sets outlive the encoding (the
        # value holds them), so their ids stay theirs.
        self._sorted_sets: dict[int, list[Any]] = {}

    def encode(self, value: Any) -> bytes:
        return bytes(self._packer(0).pack(value))

    def _packer(self, depth: int) -> Any:
        if depth == len(self._packers):
            self._packers.append(
                msgpack.Packer(
                    default=self._default,
                    use_bin_type=True,
                    strict_types=True,
                    unicode_errors=self._unicode_errors,
                    buf_size=1024,
                )
            )
        return self._packers[depth]

    def _sorted(self, mark: Any, items: Iterable[Any]) -> list[Any]:
        """``[mark, *items]`` with the items in the order of their encodings."""
        done = self._sorted_sets.get(id(items))
        if done is not None:
            return done
        depth = self._depth + 1
        if depth > MAX_SET_DEPTH:
            raise _TooDeep
        packer = self._packer(depth)
        self._depth = depth
        try:
            done = self._sorted_sets[id(items)] = [mark, *sorted(items, key=packer.pack)]
        finally:
            self._depth = depth - 1
        return done

    def _default(self, obj: Any) -> Any:
        kind = type(obj)
        encode = _EXT_ENCODERS.get(kind)
        if encode is not None:
            return encode(self, obj)
        # Subclasses are written as their base type.
        if isinstance(obj, dict):
            return dict(obj)
        if isinstance(obj, list):
            return list(obj)
        if isinstance(obj, tuple):
            return [_TUPLE_MARK, *obj]
        if isinstance(obj, frozenset):
            return self._sorted(_FROZENSET_MARK, obj)
        if isinstance(obj, set):
            return self._sorted(_SET_MARK, obj)
        if isinstance(obj, str):
            return str.__str__(obj)
        if isinstance(obj, bytes):
            return bytes(memoryview(obj))
        if isinstance(obj, int):  # bool cannot be subclassed, so this is never one
            number = int.__int__(obj)
            return number if _INT64_MIN <= number <= _UINT64_MAX else _bigint(number)
        if isinstance(obj, float):
            return float.__float__(obj)
        if isinstance(obj, PurePath):
            return _path(obj)
        raise TypeError(f"cannot encode a {kind.__qualname__}")


# A tuple, set or frozenset is written as an array whose first element is an
# empty extension value of its code: decoding needs no nested unpacking (which
# costs msgpack a large C stack frame per level) and no second pass.
_TUPLE_MARK = msgpack.ExtType(_TUPLE, b"")
_SET_MARK = msgpack.ExtType(_SET, b"")
_FROZENSET_MARK = msgpack.ExtType(_FROZENSET, b"")


def _bigint(number: int) -> Any:
    size = number.bit_length() // 8 + 1  # room for the sign bit
    return msgpack.ExtType(_BIGINT, number.to_bytes(size, "big", signed=True))


def _path(path: PurePath) -> Any:
    code = _WINPATH if isinstance(path, PureWindowsPath) else _PATH
    return msgpack.ExtType(code, str(path).encode("utf-8", "surrogatepass"))


def _offset(delta: timedelta) -> bytes:
    return struct.pack("<q", delta // _MICROSECOND)


def _zone(tz: tzinfo | None, offset: timedelta | None, name: str | None) -> bytes:
    """The time zone suffix of a datetime or time (see :func:`_unzone`).

    ``offset`` and ``name`` are the value's ``utcoffset()`` and ``tzname()``,
    used for tzinfo classes other than ``timezone`` and ``ZoneInfo``: those are
    written as the fixed offset they have at that instant.
    """
    if tz is None:
        return b""
    if isinstance(tz, ZoneInfo) and tz.key is not None:
        return b"z" + tz.key.encode("utf-8", "surrogatepass")
    if isinstance(tz, timezone):
        offset = tz.utcoffset(None)
        name = tz.tzname(None)
        if name == timezone(offset).tzname(None):
            return b"o" + _offset(offset)
    if offset is None:
        return b""
    if name is None:
        return b"o" + _offset(offset)
    return b"n" + _offset(offset) + name.encode("utf-8", "surrogatepass")


_DATETIME_STRUCT = struct.Struct("<HBBBBBIB")
_TIME_STRUCT = struct.Struct("<BBBIB")
_TIMEDELTA_STRUCT = struct.Struct("<iII")
_DATE_STRUCT = struct.Struct("<I")


def _encode_datetime(_: _Encoder, dt: datetime) -> Any:
    head = _DATETIME_STRUCT.pack(
        dt.year, dt.month, dt.day, dt.hour, dt.minute, dt.second, dt.microsecond, dt.fold
    )
    return msgpack.ExtType(_DATETIME, head + _zone(dt.tzinfo, dt.utcoffset(), dt.tzname()))


def _encode_time(_: _Encoder, t: time) -> Any:
    head = _TIME_STRUCT.pack(t.hour, t.minute, t.second, t.microsecond, t.fold)
    return msgpack.ExtType(_TIME, head + _zone(t.tzinfo, t.utcoffset(), t.tzname()))


_EXT_ENCODERS: dict[type, Callable[[_Encoder, Any], Any]] = {
    tuple: lambda _, v: [_TUPLE_MARK, *v],
    set: lambda e, v: e._sorted(_SET_MARK, v),
    frozenset: lambda e, v: e._sorted(_FROZENSET_MARK, v),
    datetime: _encode_datetime,
    date: lambda _, v: msgpack.ExtType(_DATE, _DATE_STRUCT.pack(v.toordinal())),
    time: _encode_time,
    timedelta: lambda _, v: msgpack.ExtType(
        _TIMEDELTA, _TIMEDELTA_STRUCT.pack(v.days, v.seconds, v.microseconds)
    ),
    Decimal: lambda _, v: msgpack.ExtType(_DECIMAL, str(v).encode("ascii")),
    UUID: lambda _, v: msgpack.ExtType(_UUID, v.bytes),
    complex: lambda _, v: msgpack.ExtType(_COMPLEX, _COMPLEX_STRUCT.pack(v.real, v.imag)),
    int: lambda _, v: _bigint(v),  # only called for ints msgpack cannot hold
}


def _encode(value: Any, root: str) -> bytes:
    """``value`` encoded, or OutputEncodingError naming the culprit under ``root``."""
    try:
        # Plain values (None, numbers, str, bytes, lists, dicts) need no hook: C
        # packs them in one call. Anything else (tuples, sets, datetimes, str
        # subclasses...) is refused under strict_types and goes the long way,
        # which gives the same bytes for the plain parts.
        return msgpack.packb(value, use_bin_type=True, strict_types=True)  # type: ignore[no-any-return]
    except (TypeError, ValueError, OverflowError):
        pass
    try:
        try:
            return _Encoder().encode(value)
        except UnicodeEncodeError:
            # A str with lone surrogates: rare, so only then pay for the slower
            # error handler (the decoder always accepts them).
            return _Encoder("surrogatepass").encode(value)
    except (TypeError, ValueError, OverflowError, RecursionError, _TooDeep) as exc:
        problem = _diagnose(value, root)
        if problem is not None:
            raise OutputEncodingError(f"cannot be saved in a snapshot: {problem}") from None
        if isinstance(exc, RecursionError) or "recursion limit" in str(exc):
            raise OutputEncodingError(
                f"cannot be saved in a snapshot: {root} is nested too deeply"
            ) from None
        raise OutputEncodingError(f"cannot be saved in a snapshot: {root}: {exc}") from exc


_NATIVE_DEPTH = 1024  # msgpack's own limit on nested containers
_LEAVES: frozenset[type] = frozenset(
    {type(None), bool, int, float, str, bytes, bytearray, memoryview}
    | {datetime, date, time, timedelta, Decimal, UUID, complex}
    | {msgpack.ExtType, msgpack.Timestamp}  # msgpack packs these itself
)


def _diagnose(value: Any, root: str) -> str | None:
    """Why ``value`` cannot be encoded, found by walking it as the encoder does.

    Reports the first unsupported value, reference cycle or excess nesting in
    encoding order (None if there is none). The walk keeps its own stack, so
    it never overflows Python's.
    """
    # Entries are (value, where, pinned, depth, set depth); an int
    # is the id of a container whose contents are all walked. ``pinned`` means
    # ``where`` is a key or set element: deeper steps are not spelt out.
    stack: list[tuple[Any, str, bool, int, int] | int] = [(value, root, False, 0, 0)]
    open_ids: dict[int, str] = {}  # the containers on the path to the current entry
    while stack:
        entry = stack.pop()
        if isinstance(entry, int):
            del open_ids[entry]
            continue
        obj, where, pinned, depth, sets = entry
        kind = type(obj)
        if depth > _NATIVE_DEPTH:
            return f"{root} is nested too deeply"
        if kind in _LEAVES or (
            not isinstance(obj, dict | list | tuple | set | frozenset)
            and isinstance(obj, str | bytes | int | float | PurePath)
        ):
            continue
        if not isinstance(obj, dict | list | tuple | set | frozenset):
            return f"{where} is {_a(kind.__qualname__)}; supported: {_SUPPORTED}"
        if id(obj) in open_ids:
            return f"{where} refers back to {open_ids[id(obj)]} (a reference cycle)"
        children: list[tuple[Any, str, bool, int, int]] = []
        if isinstance(obj, dict):
            for key, item in obj.items():
                key_where = where if pinned else f"a key of {where}"
                item_where = where if pinned else f"{where}[{reprlib.repr(key)}]"
                children.append((key, key_where, True, depth + 1, sets))
                children.append((item, item_where, pinned, depth + 1, sets))
        elif isinstance(obj, list | tuple):
            children = [
                (item, where if pinned else f"{where}[{i}]", pinned, depth + 1, sets)
                for i, item in enumerate(obj)
            ]
        elif sets + 1 > MAX_SET_DEPTH:
            return f"{root} is nested too deeply"
        else:
            children = [(item, f"an element of {where}", True, depth + 1, sets + 1) for item in obj]
        open_ids[id(obj)] = where
        stack.append(id(obj))
        stack.extend(reversed(children))
    return None


def _a(noun: str) -> str:
    return f"an {noun}" if noun[:1].lower() in "aeiou" else f"a {noun}"


_NIL: Final = b"\xc0"


def encode_value(value: Any, *, redactor: Redactor | None = None) -> bytes:
    """The snapshot encoding of ``value`` (a node's output), secrets masked by ``redactor``.

    Raises OutputEncodingError naming the first part of ``value`` that cannot be
    encoded (its location under the root ``output``), a reference cycle, or
    nesting beyond msgpack's 1024 levels (or :data:`MAX_SET_DEPTH` for sets).
    Equal values built the same way give equal bytes.
    """
    if value is None:
        return _NIL
    try:
        data = _encode(value, "output")
    except OutputEncodingError as exc:
        if redactor:
            raise OutputEncodingError(redactor.redact(str(exc))) from None
        raise
    if redactor and redactor.found_in(data):
        try:
            data = _encode(redactor.redact(value), "output")
        except RecursionError:
            raise OutputEncodingError(
                "cannot be saved in a snapshot: output is nested too deeply"
            ) from None
    return data


def _array_header(n: int) -> bytes:
    if n < 16:
        return bytes((0x90 | n,))
    if n < 0x10000:
        return b"\xdc" + n.to_bytes(2, "big")
    return b"\xdd" + n.to_bytes(4, "big")


def _map_header(n: int) -> bytes:
    if n < 16:
        return bytes((0x80 | n,))
    if n < 0x10000:
        return b"\xde" + n.to_bytes(2, "big")
    return b"\xdf" + n.to_bytes(4, "big")


def _bin_header(n: int) -> bytes:
    if n < 0x100:
        return b"\xc4" + n.to_bytes(1, "big")
    if n < 0x10000:
        return b"\xc5" + n.to_bytes(2, "big")
    return b"\xc6" + n.to_bytes(4, "big")


def _map_pairs(encoded_map: bytes) -> memoryview:
    """The key/value pairs of an encoded map, without its header."""
    first = encoded_map[0]
    skip = 1 if 0x80 <= first <= 0x8F else 3 if first == 0xDE else 5
    return memoryview(encoded_map)[skip:]


def _key(name: str) -> bytes:
    return bytes(msgpack.packb(name))


# --- the value codec: decoding ---------------------------------------------------------


def _unpack(data: bytes) -> Any:
    return msgpack.unpackb(
        data,
        ext_hook=_ext_hook,
        list_hook=_list_hook,
        raw=False,
        strict_map_key=False,
        unicode_errors="surrogatepass",
    )


class _Mark:
    """What an array's leading tuple/set/frozenset mark decodes to, until ``_list_hook``."""

    __slots__ = ("build",)

    def __init__(self, build: Callable[[list[Any]], Any]) -> None:
        self.build = build

    def __repr__(self) -> str:
        return f"<snapshot mark of {self.build.__name__}>"


_MARKS = {_TUPLE: _Mark(tuple), _SET: _Mark(set), _FROZENSET: _Mark(frozenset)}


def _list_hook(items: list[Any]) -> Any:
    if items and type(items[0]) is _Mark:
        return items[0].build(items[1:])
    return items


def _unzone(suffix: bytes) -> tzinfo | None:
    """The time zone written by :func:`_zone`."""
    if not suffix:
        return None
    tag, rest = suffix[:1], suffix[1:]
    if tag == b"z":
        return ZoneInfo(rest.decode("utf-8", "surrogatepass"))
    (micros,) = struct.unpack_from("<q", rest)
    offset = timedelta(microseconds=micros)
    if tag == b"o" and len(rest) == 8:
        return timezone(offset)
    if tag == b"n":
        return timezone(offset, rest[8:].decode("utf-8", "surrogatepass"))
    raise ValueError(f"bad time zone {suffix!r}")


def _decode_datetime(data: bytes) -> datetime:
    year, month, day, hour, minute, second, micro, fold = _DATETIME_STRUCT.unpack_from(data)
    tz = _unzone(data[_DATETIME_STRUCT.size :])
    return datetime(year, month, day, hour, minute, second, micro, tzinfo=tz, fold=fold)


def _decode_time(data: bytes) -> time:
    hour, minute, second, micro, fold = _TIME_STRUCT.unpack_from(data)
    return time(hour, minute, second, micro, tzinfo=_unzone(data[_TIME_STRUCT.size :]), fold=fold)


def _decode_date(data: bytes) -> date:
    (ordinal,) = _DATE_STRUCT.unpack(data)
    return date.fromordinal(ordinal)


def _decode_timedelta(data: bytes) -> timedelta:
    days, seconds, micros = _TIMEDELTA_STRUCT.unpack(data)
    return timedelta(days, seconds, micros)


def _decode_complex(data: bytes) -> complex:
    real, imag = _COMPLEX_STRUCT.unpack(data)
    return complex(real, imag)


_EXT_DECODERS: dict[int, Callable[[bytes], Any]] = {
    _DATETIME: _decode_datetime,
    _DATE: _decode_date,
    _TIME: _decode_time,
    _TIMEDELTA: _decode_timedelta,
    _DECIMAL: lambda data: Decimal(data.decode("ascii")),
    _UUID: lambda data: UUID(bytes=data),
    _COMPLEX: _decode_complex,
    _PATH: lambda data: Path(data.decode("utf-8", "surrogatepass")),
    _BIGINT: lambda data: int.from_bytes(data, "big", signed=True),
    _WINPATH: lambda data: PureWindowsPath(data.decode("utf-8", "surrogatepass")),
}


def _ext_hook(code: int, data: bytes) -> Any:
    if code in _MARKS and not data:
        return _MARKS[code]
    try:
        decode = _EXT_DECODERS[code]
    except KeyError:
        raise ValueError(f"unknown extension type {code}") from None
    return decode(data)


def decode_value(data: bytes) -> Any:
    """The value :func:`encode_value` encoded as ``data``, with its types restored.

    Raises SnapshotError (chained to the cause) when ``data`` is not such an encoding.
    """
    try:
        return _unpack(data)
    except Exception as exc:  # any failure on foreign bytes means "not a value"
        raise SnapshotError(f"cannot decode a snapshot value ({_why(exc)})") from exc


def _why(exc: BaseException) -> str:
    """Why msgpack could not decode some bytes, in words."""
    if isinstance(exc, msgpack.FormatError):
        return "not msgpack"
    if isinstance(exc, msgpack.StackError):
        return "nested too deeply"
    if isinstance(exc, UnicodeDecodeError):
        return "a string is not UTF-8"
    text = str(exc)
    if "incomplete input" in text or "exceeds max_" in text:
        return "data ends early"
    return _describe(exc)


def _describe(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


# --- node results ----------------------------------------------------------------------


def _error_map(error: ErrorInfo | None, redactor: Redactor | None) -> dict[str, Any] | None:
    if error is None:
        return None
    fields_ = {f.name: getattr(error, f.name) for f in fields(ErrorInfo)}
    if redactor:
        for name in ("type", "message", "traceback"):
            fields_[name] = redactor.redact(fields_[name])
    return fields_


def encode_result(
    result: NodeResult,
    *,
    encoded_output: bytes | None = None,
    redactor: Redactor | None = None,
    pack: Callable[[Any], bytes] | None = None,
) -> bytes:
    """``result`` as a msgpack map of its fields (errors as maps of theirs), output last.

    ``encoded_output``, when given, is taken to be the :func:`encode_value`
    bytes of ``result.output``, already redacted, and is spliced in as it is;
    otherwise the output is encoded here. ``redactor`` masks secrets in the
    output, the reason and the errors' type, message and traceback. ``pack``
    is a strict-types msgpack ``Packer.pack`` to reuse (one thread's own).
    """
    error, primary, reason = result.error, result.primary_error, result.reason
    if encoded_output is None:
        encoded_output = encode_value(result.output, redactor=redactor)
    plain = encode_plain_result(result, encoded_output, pack or _pack_strict)
    if plain is not None:
        return plain
    head: dict[str, Any] = {
        "node": result.node,
        "status": result.status,
        "error": None if error is None else _error_map(error, redactor),
        "attempts": result.attempts,
        "started_at": result.started_at,
        "finished_at": result.finished_at,
        "duration": result.duration,
        "fallback": result.fallback,
        "primary_error": None if primary is None else _error_map(primary, redactor),
        "abandoned": result.abandoned,
        "reason": redactor.redact(reason) if redactor and reason is not None else reason,
        # Packed as nil, the last byte of the map, which the real output replaces.
        "output": None,
    }
    try:
        packed = (pack or _pack_strict)(head)
    except (TypeError, ValueError, OverflowError):
        # A str subclass in an error message, say: the long way gives the same bytes.
        packed = _encode(head, "result")
    return packed[:-1] + encoded_output


# The fields of encode_result's map, in order, cut where a plain result's values go.
_PLAIN_NODE: Final = _map_header(12) + _key("node")
_PLAIN_STATUS: Final = _key("status")
_PLAIN_ATTEMPTS: Final = _key("error") + b"\xc0" + _key("attempts")
_PLAIN_STARTED: Final = _key("started_at")
_PLAIN_FINISHED: Final = _key("finished_at")
_PLAIN_DURATION: Final = _key("duration")
_PLAIN_TAIL: Final = b"".join(
    (
        _key("fallback"),
        b"\xc0",
        _key("primary_error"),
        b"\xc0",
        _key("abandoned"),
        b"\xc2",
        _key("reason"),
        b"\xc0",
        _key("output"),
    )
)


def encode_plain_result(
    result: NodeResult, encoded_output: bytes, pack: Callable[[Any], bytes]
) -> bytes | None:
    """:func:`encode_result` of a result with no error, fallback, reason or abandoned
    attempt (nearly every one), from prepacked keys; None for any other result."""
    if (
        result.error is not None
        or result.primary_error is not None
        or result.reason is not None
        or result.fallback is not None
        or result.abandoned
    ):
        return None
    try:
        return b"".join(
            (
                _PLAIN_NODE,
                pack(result.node),
                _PLAIN_STATUS,
                pack(result.status),
                _PLAIN_ATTEMPTS,
                pack(result.attempts),
                _PLAIN_STARTED,
                pack(result.started_at),
                _PLAIN_FINISHED,
                pack(result.finished_at),
                _PLAIN_DURATION,
                pack(result.duration),
                _PLAIN_TAIL,
                encoded_output,
            )
        )
    except (TypeError, ValueError, OverflowError):
        return None  # a str subclass for a status, say: encode_result's long way


def _pack_strict(value: Any) -> bytes:
    return msgpack.packb(value, use_bin_type=True, strict_types=True)  # type: ignore[no-any-return]


def strict_packer() -> Callable[[Any], bytes]:
    """A ``pack`` for :func:`encode_result` and :meth:`ResultEntries.put_result`.

    It keeps one msgpack Packer, which is cheaper than a new one per call but
    not thread-safe: each thread needs its own.
    """
    return msgpack.Packer(use_bin_type=True, strict_types=True).pack  # type: ignore[no-any-return]


def decode_result(obj: Any) -> NodeResult:
    """The NodeResult of a decoded :func:`encode_result` map.

    Fields it does not know are ignored; missing optional fields take their
    defaults. Raises SnapshotError when a field is missing or ill-typed.
    """
    try:
        return _result(obj, "result")
    except _Malformed as exc:
        raise SnapshotError(f"corrupt node result: {exc}") from None


# --- the snapshot file -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RunRecord:
    """Everything a snapshot holds about a run: enough to inspect or resume it.

    ``results`` maps node paths to their results; ``decisions`` maps checkpoint
    paths to approve (True) or reject; ``options`` are the run's settings
    (mode, max_concurrency, keep_going, timeout, grace, faults...), free-form
    but encodable. ``resumes`` counts the resumptions so far and ``abandoned``
    the attempts left running when the run ended.
    """

    run_id: str
    workflow: str
    version: str | None
    digest: str
    source: str
    workflow_path: str | None
    status: str
    reason: str | None
    seed: int
    created_at: float
    updated_at: float
    started_at: float | None
    finished_at: float | None
    config: dict[str, Any]
    secret_names: tuple[str, ...]
    options: dict[str, Any]
    decisions: dict[str, bool]
    results: dict[str, NodeResult]
    errors: tuple[ErrorInfo, ...]
    resumes: int = 0
    abandoned: int = 0

    def to_result(self, snapshot_path: str | None = None) -> RunResult:
        """The run's result as recorded (final once the run has ended)."""
        return RunResult.from_nodes(
            self.results,
            run_id=self.run_id,
            workflow=self.workflow,
            status=self.status,
            errors=tuple(self.errors),
            seed=self.seed,
            reason=self.reason,
            started_at=self.started_at,
            finished_at=self.finished_at,
            snapshot_path=snapshot_path,
            abandoned=self.abandoned,
            version=self.version,
        )


_RESULTS_KEY = _key("results")
_PAYLOAD_KEY = _key("payload")
_REDACTED_FIELDS = frozenset({"reason", "config", "options"})


class ResultEntries(dict[str, bytes]):
    """Encoded results by path, each stored with its encoded key, ready to splice.

    A snapshot writer keeps one of these and rewrites the file often; with the
    keys already encoded, a write is one join of the values, with no Python
    work per result.
    """

    __slots__ = ()

    def put(self, path: str, encoded: bytes, pack: Callable[[Any], bytes] | None = None) -> None:
        """Store :func:`encode_result` bytes for ``path`` (``pack``: see :func:`strict_packer`)."""
        self[path] = (pack or _pack_strict)(path) + encoded

    def put_result(
        self,
        path: str,
        result: NodeResult,
        *,
        encoded_output: bytes | None = None,
        redactor: Redactor | None = None,
        pack: Callable[[Any], bytes] | None = None,
    ) -> None:
        """Encode ``result`` (see :func:`encode_result`) and store it for ``path``."""
        pack = pack or _pack_strict
        self[path] = pack(path) + encode_result(
            result, encoded_output=encoded_output, redactor=redactor, pack=pack
        )


def encode_snapshot(
    header: RunRecord,
    results: Mapping[str, bytes] | ResultEntries,
    *,
    redactor: Redactor | None = None,
) -> bytes:
    """The snapshot file of ``header`` with ``results``: :func:`encode_result` bytes by path
    (or a :class:`ResultEntries`).

    ``header.results`` is ignored: the results are spliced in from ``results``
    without being decoded or encoded again. ``redactor`` masks secrets in the
    reason, config, options and errors (the results carry their own masking).
    """
    return b"".join(snapshot_parts(header, results, redactor=redactor))


def snapshot_parts(
    header: RunRecord,
    results: Mapping[str, bytes] | ResultEntries,
    *,
    redactor: Redactor | None = None,
) -> list[bytes]:
    """:func:`encode_snapshot` in two parts, the envelope and the payload, to be written
    one after the other (:func:`write_atomic` takes them as they are), which saves
    copying the payload once more."""
    head: dict[str, Any] = {}
    for f in fields(RunRecord):
        value = getattr(header, f.name)
        if f.name == "results":
            continue
        if f.name == "errors":
            value = [_error_map(e, redactor) for e in value]
        elif f.name == "secret_names":
            value = list(value)
        elif redactor and f.name in _REDACTED_FIELDS:
            value = redactor.redact(value)
        head[f.name] = value
    pieces: list[bytes | memoryview] = [
        _map_header(len(head) + 1),
        _map_pairs(_encode(head, "record")),
        _RESULTS_KEY,
        _map_header(len(results)),
    ]
    if isinstance(results, ResultEntries):
        pieces.extend(results.values())
    else:
        for path, encoded in results.items():
            if not isinstance(path, str):
                raise TypeError(f"result paths must be str, not {type(path).__name__}")
            pieces += (_key(path), encoded)
    payload = b"".join(pieces)
    envelope = {"format": FORMAT, "version": VERSION, "checksum": _checksum(payload)}
    front = b"".join(
        (
            _map_header(len(envelope) + 1),
            _map_pairs(msgpack.packb(envelope)),
            _PAYLOAD_KEY,
            _bin_header(len(payload)),
        )
    )
    return [front, payload]


def _checksum(payload: bytes) -> str:
    return f"crc32:{zlib.crc32(payload):08x}"


def _checksum_matches(checksum: str, payload: bytes) -> bool:
    if checksum.startswith("blake2b:"):
        return checksum == "blake2b:" + hashlib.blake2b(payload, digest_size=32).hexdigest()
    return checksum == _checksum(payload)


def encode_record(record: RunRecord, redactor: Redactor | None = None) -> bytes:
    """The snapshot file of ``record``, encoding every result (see :func:`encode_snapshot`)."""
    results = {
        path: encode_result(result, redactor=redactor) for path, result in record.results.items()
    }
    return encode_snapshot(record, results, redactor=redactor)


def decode_snapshot(data: bytes, *, source: str) -> RunRecord:
    """The RunRecord in snapshot file bytes ``data`` read from ``source`` (named in errors).

    Raises SnapshotError, never anything else, for an empty file, bytes that
    are not msgpack or are cut short, a file that is not a wavecrest snapshot,
    a newer format version, a checksum mismatch, or a payload with missing or
    ill-typed fields. Unknown payload fields are ignored.
    """
    if not data:
        raise SnapshotError(f"{source}: empty file, not a snapshot")
    try:
        envelope = msgpack.unpackb(data, raw=False, strict_map_key=False)
    except msgpack.ExtraData as exc:
        if _is_envelope(exc.unpacked):
            raise SnapshotError(
                f"{source}: corrupt or truncated snapshot (unexpected data after its end)"
            ) from None
        raise SnapshotError(f"{source}: not a wavecrest snapshot") from None
    except Exception as exc:  # whatever msgpack raises, the bytes are bad
        raise SnapshotError(f"{source}: corrupt or truncated snapshot ({_why(exc)})") from exc
    if not _is_envelope(envelope):
        raise SnapshotError(f"{source}: not a wavecrest snapshot")
    version = envelope.get("version")
    if type(version) is not int or version < 1:
        raise SnapshotError(f"{source}: corrupt snapshot: bad format version {version!r}")
    if version > VERSION:
        raise SnapshotError(
            f"{source}: snapshot format version {version} is newer than this wavecrest "
            f"reads ({VERSION}); upgrade wavecrest"
        )
    checksum, payload = envelope.get("checksum"), envelope.get("payload")
    if not isinstance(payload, bytes):
        raise SnapshotError(f"{source}: corrupt snapshot: no payload")
    if not isinstance(checksum, str) or not checksum.startswith(("crc32:", "blake2b:")):
        raise SnapshotError(f"{source}: corrupt snapshot: bad checksum {reprlib.repr(checksum)}")
    if not _checksum_matches(checksum, payload):
        raise SnapshotError(f"{source}: corrupt snapshot: checksum mismatch")
    try:
        return _record(_unpack(payload))
    except _Malformed as exc:
        raise SnapshotError(f"{source}: corrupt snapshot: {exc}") from None
    except Exception as exc:  # a payload that checksums but does not decode: a writer's bug
        raise SnapshotError(f"{source}: corrupt snapshot: bad payload ({_why(exc)})") from exc


def _is_envelope(obj: Any) -> bool:
    return isinstance(obj, dict) and obj.get("format") == FORMAT


def read_snapshot(path: str | os.PathLike[str]) -> RunRecord:
    """The RunRecord in the snapshot file at ``path``, which is only read, never changed.

    Raises SnapshotError when the file is missing, unreadable, or not a valid
    snapshot (see :func:`decode_snapshot`).
    """
    source = os.fspath(path)
    try:
        with open(source, "rb") as file:
            data = file.read()
    except FileNotFoundError:
        raise SnapshotError(f"{source}: no such snapshot") from None
    except OSError as exc:
        raise SnapshotError(f"{source}: cannot read snapshot ({exc.strerror or exc})") from exc
    return decode_snapshot(data, source=source)


def write_atomic(path: str | os.PathLike[str], data: bytes | Sequence[bytes]) -> None:
    """Replace the file at ``path`` with ``data`` (bytes, or parts written one after the
    other) so that it is either all old or all new.

    Writes a temp file (``.<name>.<random>.tmp``, mode 0600, created
    exclusively) in the same folder, fsyncs it, renames it over ``path`` and
    fsyncs the folder. Parent folders are created. On failure the temp file is
    removed, the old file is left as it was, and the error is raised.
    """
    target = os.fspath(path)
    folder = os.path.dirname(target) or os.curdir
    os.makedirs(folder, exist_ok=True)
    fd, temp = _create_temp(folder, os.path.basename(target))
    try:
        with open(fd, "wb") as file:
            if isinstance(data, bytes | bytearray | memoryview):
                file.write(data)
            else:
                file.writelines(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
    _fsync_folder(folder)


def _create_temp(folder: str, name: str) -> tuple[int, str]:
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
    for _ in range(100):
        temp = os.path.join(folder, f".{name}.{os.urandom(6).hex()}.tmp")
        try:
            return os.open(temp, flags, 0o600), temp
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no free temporary file name", folder)


def _fsync_folder(folder: str) -> None:
    """Make the rename durable; skipped where folders cannot be opened or synced."""
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF):
            raise
    finally:
        os.close(fd)


# --- payload validation ----------------------------------------------------------------


class _Malformed(Exception):
    """Raised while reading a payload: the message says which field is wrong and how."""


def _bad(value: Any, where: str, expected: str) -> _Malformed:
    return _Malformed(f"{where} is {reprlib.repr(value)}, expected {expected}")


def _str(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise _bad(value, where, "a str")
    return value


def _opt_str(value: Any, where: str) -> str | None:
    return None if value is None else _str(value, where)


def _int(value: Any, where: str) -> int:
    if type(value) is not int:
        raise _bad(value, where, "an int")
    return value


def _opt_int(value: Any, where: str) -> int | None:
    return None if value is None else _int(value, where)


def _bool(value: Any, where: str) -> bool:
    if type(value) is not bool:
        raise _bad(value, where, "a bool")
    return value


def _float(value: Any, where: str) -> float:
    if type(value) is float:
        return value
    if type(value) is int:
        try:
            return float(value)
        except OverflowError:
            pass
    raise _bad(value, where, "a number")


def _opt_float(value: Any, where: str) -> float | None:
    return None if value is None else _float(value, where)


def _dict(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _bad(value, where, "a map")
    return value


def _decisions(value: Any, where: str) -> dict[str, bool]:
    return {
        _str(path, f"a key of {where}"): _bool(approve, f"{where}[{path!r}]")
        for path, approve in _dict(value, where).items()
    }


def _sequence(value: Any, where: str) -> list[Any] | tuple[Any, ...]:
    if not isinstance(value, list | tuple):
        raise _bad(value, where, "an array")
    return value


def _strs(value: Any, where: str) -> tuple[str, ...]:
    return tuple(_str(item, f"{where}[{i}]") for i, item in enumerate(_sequence(value, where)))


def _error(value: Any, where: str) -> ErrorInfo:
    return _build(ErrorInfo, _ERROR_FIELDS, value, where)


def _opt_error(value: Any, where: str) -> ErrorInfo | None:
    return None if value is None else _error(value, where)


def _errors(value: Any, where: str) -> tuple[ErrorInfo, ...]:
    return tuple(_error(item, f"{where}[{i}]") for i, item in enumerate(_sequence(value, where)))


def _result(value: Any, where: str) -> NodeResult:
    return _build(NodeResult, _RESULT_FIELDS, value, where)


def _results(value: Any, where: str) -> dict[str, NodeResult]:
    return {
        _str(path, f"a key of {where}"): _result(result, f"{where}[{path!r}]")
        for path, result in _dict(value, where).items()
    }


def _any(value: Any, where: str) -> Any:
    return value


_Read = Callable[[Any, str], Any]
_ERROR_FIELDS: dict[str, _Read] = {
    "type": _str,
    "message": _str,
    "traceback": _str,
    "retryable": _bool,
    "permanent": _bool,
    "retry_after": _opt_float,
    "node": _opt_str,
    "attempt": _opt_int,
}
_RESULT_FIELDS: dict[str, _Read] = {
    "node": _str,
    "status": _str,
    "output": _any,
    "error": _opt_error,
    "attempts": _int,
    "started_at": _opt_float,
    "finished_at": _opt_float,
    "duration": _opt_float,
    "fallback": _opt_str,
    "primary_error": _opt_error,
    "abandoned": _bool,
    "reason": _opt_str,
}
_RECORD_FIELDS: dict[str, _Read] = {
    "run_id": _str,
    "workflow": _str,
    "version": _opt_str,
    "digest": _str,
    "source": _str,
    "workflow_path": _opt_str,
    "status": _str,
    "reason": _opt_str,
    "seed": _int,
    "created_at": _float,
    "updated_at": _float,
    "started_at": _opt_float,
    "finished_at": _opt_float,
    "config": _dict,
    "secret_names": _strs,
    "options": _dict,
    "decisions": _decisions,
    "results": _results,
    "errors": _errors,
    "resumes": _int,
    "abandoned": _int,
}


_T = TypeVar("_T")


def _build(cls: type[_T], readers: Mapping[str, _Read], value: Any, where: str) -> _T:
    """An instance of the dataclass ``cls`` from the map ``value``, each field read and checked.

    Unknown keys are ignored; a missing field takes its default, or is an error
    when it has none.
    """
    if not isinstance(value, dict):
        raise _bad(value, where or "the payload", "a map")
    kwargs: dict[str, Any] = {}
    for f in fields(cls):  # type: ignore[arg-type]
        name = f"{where}.{f.name}" if where else f.name
        if f.name in value:
            kwargs[f.name] = readers[f.name](value[f.name], name)
        elif f.default is MISSING and f.default_factory is MISSING:
            raise _Malformed(f"missing field {name}")
    return cls(**kwargs)


def _record(value: Any) -> RunRecord:
    return _build(RunRecord, _RECORD_FIELDS, value, "")
