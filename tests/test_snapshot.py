"""The snapshot codec (``wavecrest.core._snapshot``).

Pins exact round trips of every supported output type, deterministic bytes,
the error for unsupported outputs (with its location), redaction down to the
last byte, the splicing of cached encodings, the file layout, a clear
SnapshotError (never another exception) for every kind of damaged file, and
atomic writes that never lose the previous snapshot.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import os
import re
import zlib
from collections import OrderedDict
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta, timezone, tzinfo
from decimal import Decimal
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any, NamedTuple
from uuid import UUID
from zoneinfo import ZoneInfo

import msgpack
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from profiles import examples
from wavecrest.core import ErrorInfo, NodeResult, OutputEncodingError, SnapshotError
from wavecrest.core._model import FrozenDict
from wavecrest.core._snapshot import (
    FORMAT,
    MAX_SET_DEPTH,
    VERSION,
    Redactor,
    RunRecord,
    decode_result,
    decode_snapshot,
    decode_value,
    encode_record,
    encode_result,
    encode_snapshot,
    encode_value,
    read_snapshot,
    snapshot_parts,
    write_atomic,
)

SUPPORTED = (
    "supported: None, bool, int, float, str, bytes, list, dict, tuple, set, frozenset, "
    "datetime, date, time, timedelta, Decimal, UUID, complex, Path"
)


def round_trip(value: Any) -> Any:
    return decode_value(encode_value(value))


def assert_same(a: Any, b: Any) -> None:
    """``a`` and ``b`` are equal with the same types all the way down (NaN equals NaN)."""
    assert type(a) is type(b), (a, b)
    if isinstance(a, list | tuple):
        assert len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            assert_same(x, y)
    elif isinstance(a, dict):
        assert len(a) == len(b)
        for (ka, va), (kb, vb) in zip(a.items(), b.items(), strict=True):
            assert_same(ka, kb)
            assert_same(va, vb)
    elif isinstance(a, set | frozenset):
        assert a == b
        for x in a:
            (match,) = (y for y in b if y == x)
            assert_same(x, match)
    else:
        # repr is exact for the leaves: float and Decimal NaN, -0.0, the Decimal
        # exponent, a datetime's fold and time zone, a path's flavour.
        assert repr(a) == repr(b)


# --- strategies ------------------------------------------------------------------------

offsets = st.timedeltas(min_value=timedelta(hours=-23), max_value=timedelta(hours=23))
zones = st.one_of(
    st.none(),
    st.just(UTC),
    st.builds(timezone, offsets),
    st.builds(timezone, offsets, st.text(min_size=1, max_size=5)),
    st.timezones(),
)
hashable_leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(2**200), max_value=2**200),
    st.floats(allow_nan=False),
    st.text(),
    st.binary(),
    st.datetimes(timezones=zones),
    st.dates(),
    st.times(timezones=zones),
    st.timedeltas(),
    st.decimals(allow_nan=False),
    st.uuids(),
    st.complex_numbers(allow_nan=False),
    st.builds(Path, st.text(alphabet="ab/.", max_size=6)),
    # pathlib does not re-parse every Windows path from its own string (e.g. one
    # built from "//://"), so only paths it can round-trip are expected to.
    st.builds(PureWindowsPath, st.text(alphabet="ab\\:", max_size=6)).filter(
        lambda p: PureWindowsPath(str(p)) == p and str(PureWindowsPath(str(p))) == str(p)
    ),
)
hashables = st.recursive(
    hashable_leaves,
    lambda inner: st.tuples(inner, inner) | st.frozensets(inner, max_size=3),
    max_leaves=6,
)
leaves = hashable_leaves | st.floats() | st.decimals() | st.complex_numbers()
values = st.recursive(
    leaves,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.lists(inner, max_size=4).map(tuple),
        st.dictionaries(hashables, inner, max_size=4),
        st.sets(hashables, max_size=4),
        st.frozensets(hashables, max_size=4),
    ),
    max_leaves=20,
)


# --- the value codec -------------------------------------------------------------------


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(values)
@example({(1, "a"): {frozenset({frozenset({1, 2}), (3,)})}, 2**64: -(2**64)})
@example([float("nan"), float("-inf"), -0.0, Decimal("NaN"), Decimal("-0E+3")])
def test_every_supported_value_round_trips_with_its_types(value: Any) -> None:
    assert_same(round_trip(value), value)


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(values)
def test_encoding_is_a_function_of_the_value(value: Any) -> None:
    """Re-encoding the decoded value gives the same bytes (sets included)."""
    data = encode_value(value)
    assert encode_value(decode_value(data)) == data


@given(st.lists(hashables, max_size=12))
def test_a_set_encodes_the_same_whatever_its_insertion_order(items: list[Any]) -> None:
    unique = list(dict.fromkeys(items))  # 1 and True are equal: keep one of them
    forward, backward = set(), set()
    for a, b in zip(unique, reversed(unique), strict=True):
        forward.add(a)
        backward.add(b)
    assert encode_value(forward) == encode_value(backward)
    assert encode_value(frozenset(forward)) == encode_value(frozenset(backward))
    assert encode_value({"k": forward}) == encode_value({"k": backward})


def test_strings_that_hash_alike_still_give_equal_bytes() -> None:
    words = [f"w{i}" for i in range(200)]
    grown = set(words)
    shrunk = set(words + [f"x{i}" for i in range(500)]) - {f"x{i}" for i in range(500)}
    assert grown == shrunk
    assert encode_value(grown) == encode_value(shrunk)


@pytest.mark.parametrize(
    "value",
    [
        2**63 - 1,
        -(2**63),
        2**64 - 1,
        2**64,
        -(2**63) - 1,
        10**400,
        -(10**400),
        datetime(2024, 3, 31, 2, 30),
        datetime(2024, 10, 27, 2, 30, fold=1, tzinfo=ZoneInfo("Europe/Paris")),
        datetime(2024, 1, 1, tzinfo=timezone(timedelta(hours=5, microseconds=7), "X")),
        datetime(1, 1, 1, tzinfo=UTC),
        time(23, 59, 59, 999999, tzinfo=ZoneInfo("America/New_York")),
        time(1, 2, tzinfo=timezone(timedelta(minutes=-90))),
        timedelta(days=-999999999),
        timedelta.max,
        Decimal("sNaN"),
        Decimal("-Infinity"),
        Decimal("1.2300E-999"),
        UUID(int=0),
        complex(float("nan"), -0.0),
        "lone \ud800 surrogate",
        {"\udfff": b"\xff"},
        Path("/tmp/\udcff-not-utf8"),
        PureWindowsPath(r"C:\Users\x"),
        {None: 1, 2: 3, (4, 5): 6, frozenset({7}): 8, True: 9, 1.5: 10, b"k": 11},
        [(), set(), frozenset(), {}, [], "", b""],
    ],
)
def test_edge_values_round_trip_exactly(value: Any) -> None:
    assert_same(round_trip(value), value)


class Colour(enum.IntEnum):
    RED = 1


class Name(str):
    pass


class Ratio(float):
    pass


class Stack(list[int]):
    pass


class Point(NamedTuple):
    x: int
    y: int


class Tags(frozenset[str]):
    pass


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (FrozenDict(a=1, b=(2,)), {"a": 1, "b": (2,)}),
        (OrderedDict([("z", 1), ("a", 2)]), {"z": 1, "a": 2}),
        (Colour.RED, 1),
        (Name("n"), "n"),
        ({Name("k"): Ratio(0.5)}, {"k": 0.5}),
        (Stack([1, 2]), [1, 2]),
        (Point(1, 2), (1, 2)),
        (Tags({"a"}), frozenset({"a"})),
        (bytearray(b"ab"), b"ab"),
        (memoryview(b"cd"), b"cd"),
        (PurePosixPath("a/b"), Path("a/b")),
    ],
)
def test_subclasses_and_buffers_come_back_as_their_base_type(value: Any, expected: Any) -> None:
    assert_same(round_trip(value), expected)


def test_a_big_int_subclass_is_kept_whole() -> None:
    class Huge(int):
        pass

    assert_same(round_trip([Huge(2**70), Huge(-(2**70))]), [2**70, -(2**70)])


class Foo:
    pass


class OtherZone(tzinfo):
    """A tzinfo that is neither ``timezone`` nor ``ZoneInfo``: saved as its offset."""

    def utcoffset(self, dt: datetime | None) -> timedelta:
        return timedelta(hours=2)

    def tzname(self, dt: datetime | None) -> str:
        return "OZ"

    def dst(self, dt: datetime | None) -> timedelta:
        return timedelta(0)


def test_other_time_zones_are_kept_as_their_fixed_offset() -> None:
    value = datetime(2024, 5, 1, 12, tzinfo=OtherZone())
    back = round_trip(value)
    assert back == value
    assert back.utcoffset() == timedelta(hours=2)
    assert back.tzname() == "OZ"


def test_datetimes_keep_their_zone_and_naive_ones_stay_naive() -> None:
    paris = datetime(2024, 7, 1, 9, tzinfo=ZoneInfo("Europe/Paris"))
    assert round_trip(paris).tzinfo is ZoneInfo("Europe/Paris")
    assert round_trip(datetime(2024, 7, 1, 9)).tzinfo is None
    assert round_trip(datetime(2024, 7, 1, tzinfo=UTC)).tzinfo is UTC


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"rows": [1, 2, 3, Foo()]}, "output['rows'][3] is a Foo"),
        (Foo(), "output is a Foo"),
        (object(), "output is an object"),
        ([{"a": (1, {"b": Foo()})}], "output[0]['a'][1]['b'] is a Foo"),
        ({Foo(): 1}, "a key of output is a Foo"),
        ({"k": {(1, Foo()): 2}}, "a key of output['k'] is a Foo"),
        ({"s": {1, Foo()}}, "an element of output['s'] is a Foo"),
        ({"f": Foo, "x": Foo()}, "output['f'] is a type"),
        ([datetime.now().astimezone().date(), range(3)], "output[1] is a range"),
    ],
)
def test_an_unsupported_value_is_named_with_its_location(value: Any, message: str) -> None:
    expected = f"cannot be saved in a snapshot: {message}; {SUPPORTED}"
    with pytest.raises(OutputEncodingError, match=f"^{re.escape(expected)}$"):
        encode_value(value)


def test_a_reference_cycle_is_refused() -> None:
    value: dict[str, Any] = {"x": []}
    value["x"].append(value)
    with pytest.raises(
        OutputEncodingError,
        match=re.escape("output['x'][0] refers back to output (a reference cycle)"),
    ):
        encode_value(value)


def nest(depth: int, wrap: Any) -> Any:
    value: Any = 0
    for _ in range(depth):
        value = wrap(value)
    return value


@pytest.mark.parametrize(
    "value",
    [
        nest(100_000, lambda v: [v]),
        nest(100_000, lambda v: (v,)),
        nest(100_000, lambda v: {"k": v}),
        nest(MAX_SET_DEPTH + 1, lambda v: frozenset([v])),
        nest(50_000, lambda v: [(v,)]),
    ],
    ids=["lists", "tuples", "dicts", "sets", "mixed"],
)
def test_very_deep_nesting_is_an_output_error_not_a_recursion_error(value: Any) -> None:
    message = "cannot be saved in a snapshot: output is nested too deeply"
    with pytest.raises(OutputEncodingError, match=f"^{message}$"):
        encode_value(value)


def test_moderate_nesting_is_fine() -> None:
    value = nest(MAX_SET_DEPTH, lambda v: frozenset([v]))
    assert round_trip(value) == value
    deep = nest(300, lambda v: [v, (v,)] if isinstance(v, int) else [(v,)])
    assert round_trip(deep) == deep


@pytest.mark.parametrize("data", [b"", b"\xc1", b"\x92\x01", b"\xc7\x01\x63x", b"\xd4\x04\x00"])
def test_bytes_that_are_not_a_value_give_a_snapshot_error(data: bytes) -> None:
    with pytest.raises(SnapshotError, match="cannot decode a snapshot value"):
        decode_value(data)


# --- redaction -------------------------------------------------------------------------


def test_a_redactor_masks_secrets_in_keys_values_bytes_and_paths_at_any_depth() -> None:
    r = Redactor(["s3cret", "tok"])
    value = {
        "plain": 1,
        "key-s3cret": ["a s3cret b", (b"x-s3cret", {"tok", "tok2"})],
        "path": Path("/home/s3cret/x"),
    }
    assert r.redact(value) == {
        "plain": 1,
        "key-***": ["a *** b", (b"x-***", {"***", "***2"})],
        "path": Path("/home/***/x"),
    }


@pytest.mark.parametrize(
    ("secrets", "text", "expected"),
    [
        (["pass", "password"], "my password!", "my ***!"),
        (["abc", "bcd"], "xabcdy", "x***y"),
        (["aa"], "aaaa-aaa", "***-***"),
        (["ab", "cd"], "abcd", "***"),
        (["", "k"], "okay", "o***ay"),
        (["é"], "café é", "caf*** ***"),
    ],
)
def test_overlapping_secrets_are_masked_entirely(
    secrets: list[str], text: str, expected: str
) -> None:
    r = Redactor(secrets)
    assert r.redact(text) == expected
    assert r.redact(text.encode()) == expected.encode()


def test_untouched_structures_are_returned_as_they_are() -> None:
    value = {"a": [1, "x", (b"y",)], "b": {"c"}}
    assert Redactor(["zzz"]).redact(value) is value
    assert Redactor([]).redact(value) is value
    assert Redactor([""]).redact(value) is value
    changed = Redactor(["x"]).redact(value)
    assert changed["b"] is value["b"]
    assert changed["a"][2] is value["a"][2]


def test_a_redactor_never_shows_its_secrets() -> None:
    r = Redactor(["hunter2"])
    assert "hunter2" not in repr(r)
    assert r
    assert not Redactor([""])
    with pytest.raises(TypeError, match="a secret must be a str, not int"):
        Redactor([5])  # type: ignore[list-item]


def test_encoded_values_hold_no_secret() -> None:
    secret = "S3CR3T-value"
    r = Redactor([secret])
    value = {secret: [f"pre {secret} post", secret.encode(), {(secret,)}, Path(secret)]}
    data = encode_value(value, redactor=r)
    assert secret.encode() not in data
    assert decode_value(data) == {"***": ["pre *** post", b"***", {("***",)}, Path("***")]}


def test_an_output_without_secrets_is_encoded_as_without_a_redactor() -> None:
    value = {"a": ["b", 1]}
    assert encode_value(value, redactor=Redactor(["zz"])) == encode_value(value)


def test_the_encoding_error_does_not_reveal_a_secret_key() -> None:
    with pytest.raises(OutputEncodingError, match=re.escape("output['***'] is a Foo")):
        encode_value({"key-S3CR3T": Foo()}, redactor=Redactor(["key-S3CR3T"]))


# --- node results ----------------------------------------------------------------------

ERROR = ErrorInfo(
    "ValueError",
    "bad row",
    "Traceback (most recent call last):\n  ...\nValueError: bad row\n",
    retryable=True,
    permanent=False,
    retry_after=1.5,
    node="load",
    attempt=2,
)
RESULTS = [
    NodeResult("a", "succeeded", output={"rows": (1, 2), "at": date(2024, 1, 2)}, attempts=1),
    NodeResult(
        "b",
        "failed",
        error=ERROR,
        primary_error=dataclasses.replace(ERROR, message="first", node=None, attempt=None),
        attempts=3,
        started_at=10.0,
        finished_at=12.5,
        duration=2.5,
        fallback="b-fallback",
        abandoned=True,
        reason="gave up",
    ),
    NodeResult("c", "skipped", reason="upstream failed"),
]


@pytest.mark.parametrize("result", RESULTS, ids=lambda r: r.status)
def test_results_round_trip(result: NodeResult) -> None:
    data = encode_result(result)
    assert decode_result(decode_value(data)) == result
    assert type(decode_result(decode_value(data)).output) is type(result.output)


times = st.none() | st.floats(allow_nan=False)
plain_results = st.builds(
    NodeResult,
    node=st.text(min_size=1, max_size=20),
    status=st.sampled_from(["succeeded", "failed", "cancelled", "skipped", "waiting"]),
    output=st.none() | st.integers(-(2**63), 2**63 - 1) | st.text() | st.lists(st.booleans()),
    error=st.none() | st.just(ERROR),
    attempts=st.integers(min_value=0, max_value=2**40),
    started_at=times,
    finished_at=times,
    duration=times,
    fallback=st.none() | st.text(max_size=5),
    primary_error=st.none() | st.just(ERROR),
    abandoned=st.booleans(),
    reason=st.none() | st.text(max_size=5),
)


@given(plain_results)
def test_a_result_is_the_map_of_its_fields_with_the_output_last(result: NodeResult) -> None:
    # Common results take a shortcut through prepacked keys; every result must
    # still give exactly the bytes of its fields' map.
    fields_ = {f.name: getattr(result, f.name) for f in dataclasses.fields(NodeResult)}
    output = fields_.pop("output")
    for name in ("error", "primary_error"):
        if fields_[name] is not None:
            fields_[name] = dataclasses.asdict(fields_[name])
    expected = msgpack.packb({**fields_, "output": output}, use_bin_type=True)
    assert encode_result(result) == expected
    assert decode_result(decode_value(expected)) == result


@pytest.mark.parametrize("result", RESULTS, ids=lambda r: r.status)
def test_a_cached_output_encoding_is_spliced_in_unchanged(result: NodeResult) -> None:
    cached = encode_value(result.output)
    data = encode_result(result, encoded_output=cached)
    assert data == encode_result(result)
    assert data.endswith(cached)
    # The given bytes are trusted, not re-derived from result.output.
    other = encode_result(result, encoded_output=encode_value(["cached"]))
    assert decode_result(decode_value(other)).output == ["cached"]


def test_result_errors_and_reasons_are_redacted() -> None:
    secret = "pw-123456"
    result = NodeResult(
        "n",
        "failed",
        output={secret: secret},
        error=ErrorInfo("E", f"login {secret} refused", f"tb {secret}"),
        primary_error=ErrorInfo("E", secret),
        reason=f"because {secret}",
    )
    data = encode_result(result, redactor=Redactor([secret]))
    assert secret.encode() not in data
    back = decode_result(decode_value(data))
    assert back.output == {"***": "***"}
    assert back.error == ErrorInfo("E", "login *** refused", "tb ***")
    assert back.primary_error == ErrorInfo("E", "***")
    assert back.reason == "because ***"


def test_result_maps_ignore_unknown_fields_and_fill_defaults() -> None:
    assert decode_result({"node": "n", "status": "succeeded", "future": 1}) == NodeResult(
        "n", "succeeded"
    )


@pytest.mark.parametrize(
    ("obj", "message"),
    [
        ([], "result is [], expected a map"),
        ({"status": "failed"}, "missing field result.node"),
        ({"node": "n", "status": 3}, "result.status is 3, expected a str"),
        ({"node": "n", "status": "s", "attempts": 1.0}, "result.attempts is 1.0, expected an int"),
        (
            {"node": "n", "status": "s", "error": {"type": "E"}},
            "missing field result.error.message",
        ),
        (
            {"node": "n", "status": "s", "error": {"type": "E", "message": "m", "retryable": 1}},
            "result.error.retryable is 1, expected a bool",
        ),
    ],
)
def test_malformed_result_maps_are_snapshot_errors(obj: Any, message: str) -> None:
    with pytest.raises(SnapshotError, match=f"^corrupt node result: {re.escape(message)}$"):
        decode_result(obj)


# --- the snapshot file -----------------------------------------------------------------


def make_record(**changes: Any) -> RunRecord:
    record = RunRecord(
        run_id="r-1",
        workflow="etl",
        version="1.2",
        digest="sha256:abc",
        source="# etl\n",
        workflow_path="/flows/etl.flow.md",
        status="failed",
        reason="node 'b' failed",
        seed=42,
        created_at=1.0,
        updated_at=2.0,
        started_at=1.5,
        finished_at=None,
        config={"threshold": 5, "pair": (1, 2)},
        secret_names=("token",),
        options={"mode": "eager", "max_concurrency": 4, "faults": {"rules": []}},
        decisions={"gate": True},
        results={r.node: r for r in RESULTS},
        errors=(ERROR,),
        resumes=1,
        abandoned=2,
    )
    return dataclasses.replace(record, **changes)


def test_a_record_round_trips() -> None:
    record = make_record()
    assert decode_snapshot(encode_record(record), source="f") == record


def test_missing_counters_default_to_zero() -> None:
    payload = msgpack.unpackb(encode_record(make_record()))["payload"]
    fields = decode_value(payload)
    del fields["resumes"], fields["abandoned"]
    back = decode_snapshot(file_of(fields), source="f")
    assert (back.resumes, back.abandoned) == (0, 0)


def test_assembling_from_cached_results_gives_the_same_bytes() -> None:
    record = make_record()
    r = Redactor(["node"])
    cached = {path: encode_result(result, redactor=r) for path, result in record.results.items()}
    header = dataclasses.replace(record, results={})
    assert encode_snapshot(header, cached, redactor=r) == encode_record(record, r)
    assert encode_snapshot(record, cached, redactor=r) == encode_record(record, r)


def test_the_file_layout() -> None:
    data = encode_record(make_record())
    envelope = msgpack.unpackb(data)
    assert list(envelope) == ["format", "version", "checksum", "payload"]
    assert (FORMAT, VERSION) == ("wavecrest.snapshot", 1)
    assert (envelope["format"], envelope["version"]) == (FORMAT, VERSION)
    payload = envelope["payload"]
    assert envelope["checksum"] == f"crc32:{zlib.crc32(payload):08x}"
    fields = decode_value(payload)
    assert fields["run_id"] == "r-1"
    assert fields["results"]["b"]["error"]["traceback"] == ERROR.traceback


def test_secrets_vanish_from_every_byte_of_a_record() -> None:
    secret, other = "tok-9f8e7d", "9f8e7d6c5b"  # overlapping secrets
    record = make_record(
        reason=f"failed with {secret}",
        config={"url": f"https://{secret}@host", secret: 1},
        options={"faults": {"rules": [{"message": other}]}},
        errors=(ErrorInfo("E", f"denied {secret}", f"tb: {other}"),),
        results={
            "x": NodeResult(
                "x",
                "failed",
                output=[{f"k-{other}": (secret.encode(),)}],
                error=ErrorInfo("E", secret, f"line 1 {secret}"),
            )
        },
    )
    data = encode_record(record, Redactor([secret, other]))
    for leaked in (secret, other, "9f8e7d", "tok-9f"):
        assert leaked.encode() not in data
    back = decode_snapshot(data, source="f")
    assert back.reason == "failed with ***"
    assert back.config == {"url": "https://***@host", "***": 1}
    assert back.errors == (ErrorInfo("E", "denied ***", "tb: ***"),)
    assert back.results["x"].output == [{"k-***": (b"***",)}]


def file_of(body: Any, /, **envelope: Any) -> bytes:
    """A snapshot file around the payload ``body`` (encoded unless bytes), rightly checksummed."""
    data = body if isinstance(body, bytes) else encode_value(body)
    fields = {
        "format": FORMAT,
        "version": VERSION,
        "checksum": "blake2b:" + hashlib.blake2b(data, digest_size=32).hexdigest(),
        "payload": data,
    }
    fields.update(envelope)
    return bytes(msgpack.packb(fields))


def valid_fields() -> dict[str, Any]:
    return dict(decode_value(msgpack.unpackb(encode_record(make_record()))["payload"]))


def test_files_with_either_checksum_are_read() -> None:
    # Snapshots carry a CRC-32; earlier ones a blake2b-256 (file_of's).
    payload = encode_value(valid_fields())
    crc = file_of(payload, checksum=f"crc32:{zlib.crc32(payload):08x}")
    assert decode_snapshot(crc, source="f") == decode_snapshot(file_of(payload), source="f")
    assert decode_snapshot(crc, source="f") == make_record()


def test_unknown_fields_are_ignored() -> None:
    fields = valid_fields()
    fields["added_in_a_later_release"] = {"x": 1}
    fields["results"]["a"]["also_new"] = True
    data = file_of(fields, extra="envelope field")
    assert decode_snapshot(data, source="f") == make_record()


GOOD = encode_record(make_record())
TRUNCATED = "corrupt or truncated snapshot"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "f.msgpack: empty file, not a snapshot"),
        (GOOD[: len(GOOD) // 2], f"f.msgpack: {TRUNCATED} (data ends early)"),
        (GOOD[:1], f"f.msgpack: {TRUNCATED} (data ends early)"),
        (b"\xc1", f"f.msgpack: {TRUNCATED} (not msgpack)"),
        (b"\x81\xa6format\xc4\xff", f"f.msgpack: {TRUNCATED} (data ends early)"),
        (GOOD + b"\x00", f"f.msgpack: {TRUNCATED} (unexpected data after its end)"),
        (b"\x81\xa3foo\xa3bar", "f.msgpack: not a wavecrest snapshot"),
        (b'{"format": "wavecrest.snapshot"}', "f.msgpack: not a wavecrest snapshot"),
        (msgpack.packb([FORMAT, 1]), "f.msgpack: not a wavecrest snapshot"),
        (msgpack.packb({"format": "other"}), "f.msgpack: not a wavecrest snapshot"),
        (
            file_of({}, version=2),
            "f.msgpack: snapshot format version 2 is newer than this wavecrest reads (1); "
            "upgrade wavecrest",
        ),
        (file_of({}, version="1"), "f.msgpack: corrupt snapshot: bad format version '1'"),
        (file_of({}, version=0), "f.msgpack: corrupt snapshot: bad format version 0"),
        (file_of({}, payload="x"), "f.msgpack: corrupt snapshot: no payload"),
        (file_of({}, checksum="md5:00"), "f.msgpack: corrupt snapshot: bad checksum 'md5:00'"),
        (file_of({}, checksum="blake2b:00"), "f.msgpack: corrupt snapshot: checksum mismatch"),
        (
            file_of({}, checksum=f"crc32:{zlib.crc32(encode_value({})) ^ 1:08x}"),
            "f.msgpack: corrupt snapshot: checksum mismatch",
        ),
        (
            GOOD[:-30] + bytes([GOOD[-30] ^ 0x01]) + GOOD[-29:],
            "f.msgpack: corrupt snapshot: checksum mismatch",
        ),
        (file_of(b"\xc1"), "f.msgpack: corrupt snapshot: bad payload (not msgpack)"),
        (file_of([1]), "f.msgpack: corrupt snapshot: the payload is [1], expected a map"),
        (file_of({}), "f.msgpack: corrupt snapshot: missing field run_id"),
        (
            file_of({**valid_fields(), "seed": "x"}),
            "f.msgpack: corrupt snapshot: seed is 'x', expected an int",
        ),
        (
            file_of({**valid_fields(), "created_at": None}),
            "f.msgpack: corrupt snapshot: created_at is None, expected a number",
        ),
        (
            file_of({**valid_fields(), "decisions": {"gate": "yes"}}),
            "f.msgpack: corrupt snapshot: decisions['gate'] is 'yes', expected a bool",
        ),
        (
            file_of({**valid_fields(), "secret_names": "token"}),
            "f.msgpack: corrupt snapshot: secret_names is 'token', expected an array",
        ),
        (
            file_of({**valid_fields(), "results": {"a": {"node": "a", "status": 5}}}),
            "f.msgpack: corrupt snapshot: results['a'].status is 5, expected a str",
        ),
        (
            file_of({**valid_fields(), "errors": [{"type": "E"}]}),
            "f.msgpack: corrupt snapshot: missing field errors[0].message",
        ),
    ],
)
def test_every_kind_of_bad_file_gets_a_clear_snapshot_error(data: bytes, message: str) -> None:
    with pytest.raises(SnapshotError) as caught:
        decode_snapshot(data, source="f.msgpack")
    text = str(caught.value)
    assert text.startswith(message)
    assert "\n" not in text


def read_or_refuse(read: Callable[[], RunRecord]) -> RunRecord | SnapshotError:
    """The record read, or the SnapshotError raised (any other exception propagates)."""
    try:
        return read()
    except SnapshotError as exc:
        return exc


@settings(max_examples=examples(300))
@given(st.binary(max_size=300))
def test_random_bytes_give_a_snapshot_error(data: bytes) -> None:
    with pytest.raises(SnapshotError, match=r"^f: "):
        decode_snapshot(data, source="f")


@settings(max_examples=examples(300))
@given(st.data())
def test_a_damaged_snapshot_is_refused_or_read_as_written(data: st.DataObject) -> None:
    damaged = bytearray(GOOD)
    cut = data.draw(st.integers(0, len(GOOD)), label="cut")
    flips = data.draw(
        st.lists(st.tuples(st.integers(0, len(GOOD) - 1), st.integers(0, 7)), max_size=3),
        label="flips",
    )
    for index, bit in flips:
        damaged[index] ^= 1 << bit
    damaged = damaged[:cut]
    outcome = read_or_refuse(lambda: decode_snapshot(bytes(damaged), source="f"))
    if isinstance(outcome, SnapshotError):
        assert str(outcome).startswith("f: ")
    else:
        assert outcome == make_record()


def test_reading_a_missing_or_unreadable_snapshot_is_a_snapshot_error(tmp_path: Path) -> None:
    missing = tmp_path / "gone.msgpack"
    with pytest.raises(SnapshotError, match=f"^{re.escape(str(missing))}: no such snapshot$"):
        read_snapshot(missing)
    with pytest.raises(SnapshotError, match=f"^{re.escape(str(tmp_path))}: cannot read snapshot"):
        read_snapshot(tmp_path)


@pytest.mark.parametrize("data", [GOOD, GOOD[:-1], b""], ids=["valid", "truncated", "empty"])
def test_reading_never_changes_the_file(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "run.msgpack"
    path.write_bytes(data)
    os.utime(path, ns=(1_000_000_000, 1_000_000_000))
    outcome = read_or_refuse(lambda: read_snapshot(path))
    if isinstance(outcome, SnapshotError):
        assert str(outcome).startswith(f"{path}: ")
    else:
        assert outcome == make_record()
    assert path.read_bytes() == data
    assert path.stat().st_mtime_ns == 1_000_000_000
    assert os.listdir(tmp_path) == ["run.msgpack"]


# --- atomic writes ---------------------------------------------------------------------


def test_write_atomic_creates_folders_and_replaces_the_file(tmp_path: Path) -> None:
    path = tmp_path / "state" / "etl" / "r-1.msgpack"
    write_atomic(path, b"first")
    write_atomic(path, GOOD)
    assert path.read_bytes() == GOOD
    assert os.listdir(path.parent) == ["r-1.msgpack"]
    assert read_snapshot(path) == make_record()
    parts = snapshot_parts(make_record(), {})
    write_atomic(path, parts)
    assert path.read_bytes() == b"".join(parts) == encode_snapshot(make_record(), {})


def test_write_atomic_accepts_a_bare_file_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    write_atomic("here.msgpack", b"x")
    assert (tmp_path / "here.msgpack").read_bytes() == b"x"


@pytest.mark.parametrize("failing", ["replace", "fsync", "write"])
def test_a_failed_write_keeps_the_old_file_and_no_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failing: str
) -> None:
    path = tmp_path / "run.msgpack"
    write_atomic(path, b"old")
    calls: list[str] = []

    def fail(*args: Any, **kwargs: Any) -> Any:
        calls.append(failing)
        raise OSError(28, "No space left on device")

    if failing == "write":
        with pytest.raises(TypeError):
            write_atomic(path, "not bytes")  # type: ignore[arg-type]
    else:
        monkeypatch.setattr(os, failing, fail)
        with pytest.raises(OSError, match="No space left"):
            write_atomic(path, b"new")
        assert calls
    monkeypatch.undo()
    assert path.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["run.msgpack"]


def test_temp_files_are_private_and_unique(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[str] = []
    real_replace = os.replace

    def spy(src: str, dst: str) -> None:
        seen.append(src)
        assert os.stat(src).st_mode & 0o777 == 0o600
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", spy)
    for _ in range(3):
        write_atomic(tmp_path / "run.msgpack", b"x")
    assert len(set(seen)) == 3
    assert all(
        re.fullmatch(r"\.run\.msgpack\.[0-9a-f]{12}\.tmp", os.path.basename(s)) for s in seen
    )
    assert all(os.path.dirname(s) == str(tmp_path) for s in seen)
