"""The file runtimes: ``source:file`` reads a file, ``sink:file`` writes its input to one.

Both take ``path`` (resolved with :meth:`~wavecrest.core.RuntimeContext.resolve_path`,
so a relative path is relative to the workflow file's folder) and ``format``,
one of :data:`FORMATS`. Without ``format`` it is inferred from the extension
(:data:`EXTENSIONS`); an unknown extension reads as ``text`` and writes as
``json``, the one format that keeps any structured value. Files are UTF-8;
written lines end in ``\\n``, except csv rows, which end in ``\\r\\n`` as RFC 4180
has it (Python's csv module only quotes a lone ``\\r`` in a field then).

Reading, by format:

* ``json``: the parsed document. A file of several compact documents, one per
  line (JSON Lines, what ``sink:file`` appends), reads as the list of them.
* ``yaml``: the document, read as the workflow's own YAML is (safe, bounded
  nesting and aliases, dates kept as strings: see :mod:`wavecrest.core._yaml`);
  several ``---`` documents read as the list of them, an empty file as None.
* ``csv``: a list of dicts keyed by the header row, every value a string.
* ``text``: the whole file as one string, unchanged.
* ``lines``: a list of the lines without their endings (``\\n``, ``\\r\\n`` or
  ``\\r``); a final line ending does not add an empty line.

Writing, ``mode="write"`` (the default) replaces the file atomically: the
content goes to a hidden temporary file in the same folder, which is then
``os.replace``-d over the target, so a reader never sees half a file and a
failed write leaves the old file alone. ``mode="append"`` adds to the file,
creating it if needed. Missing parent folders are created in both modes.

* ``json``: indented JSON, or when appending one compact document per line.
* ``yaml``: ``yaml.safe_dump``, or when appending a new ``---`` document.
* ``csv``: a list of dicts (the header is the first row's keys in order, then
  keys first seen in later rows) or a list of lists (written as they are). An
  append writes the header only to a new or empty file, and matches dict rows
  to the existing file's header.
* ``text``: ``str(input)``, appended as it is.
* ``lines``: ``str(item)`` for each item of a list, one per line; any other
  input is one line.

The sink outputs ``{"path", "format", "mode", "count"}``, where ``count`` is
the number of records written: the items of a list input (rows, lines or
elements), else 1; ``text`` always counts 1.
"""

from __future__ import annotations

import contextlib
import csv
import errno
import io
import json
import os
import stat
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from .._context import RuntimeContext
from .._errors import PermanentError
from .._registry import RuntimeSpec
from .._yaml import load_all as load_yaml_documents

__all__ = ["EXTENSIONS", "FILE_RUNTIMES", "FORMATS", "MODES"]

FORMATS = ("json", "yaml", "csv", "text", "lines")
MODES = ("write", "append")

#: The format inferred from a file's extension (compared lower-cased).
EXTENSIONS: Mapping[str, str] = {
    ".json": "json",
    ".yaml": "yaml",
    ".yml": "yaml",
    ".csv": "csv",
    ".txt": "text",
    ".md": "text",
}

_SOURCE = "source:file"
_SINK = "sink:file"


# --- config -------------------------------------------------------------------------


def _path(ctx: RuntimeContext, key: str) -> Path:
    """The resolved ``path``; PermanentError if it is missing or empty."""
    raw = ctx.config.get("path")
    if not isinstance(raw, str | Path) or not str(raw):
        raise PermanentError(f"{key} node {ctx.path!r} needs a path, got {raw!r}")
    return ctx.resolve_path(raw)


def _format(ctx: RuntimeContext, key: str, path: Path, default: str) -> str:
    """``format`` from the config, else from the extension, else ``default``."""
    fmt = ctx.config.get("format") or EXTENSIONS.get(path.suffix.lower(), default)
    if fmt not in FORMATS:
        raise PermanentError(
            f"unknown format {fmt!r} for {key} node {ctx.path!r}; "
            f"valid formats are {', '.join(FORMATS)}"
        )
    return str(fmt)


def _mode(ctx: RuntimeContext) -> str:
    """``mode`` from the config, ``write`` by default."""
    mode = ctx.config.get("mode") or "write"
    if mode not in MODES:
        raise PermanentError(
            f"unknown mode {mode!r} for {_SINK} node {ctx.path!r}; "
            f"valid modes are {', '.join(MODES)}"
        )
    return str(mode)


# --- source:file --------------------------------------------------------------------


def read_file(ctx: RuntimeContext) -> Any:
    """Read and parse the file at ``path`` (see the module docstring for each format).

    A missing file raises FileNotFoundError naming the resolved path; a file
    that is not UTF-8 or does not parse in its format raises PermanentError.
    """
    path = _path(ctx, _SOURCE)
    fmt = _format(ctx, _SOURCE, path, default="text")
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise FileNotFoundError(
            errno.ENOENT, f"no such file for {_SOURCE} node {ctx.path!r}", str(path)
        ) from None
    # utf-8-sig drops the byte order mark spreadsheet programs put in front.
    encoding = "utf-8-sig" if fmt in ("json", "csv") else "utf-8"
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as exc:
        raise PermanentError(f"cannot read {path} as utf-8: {exc}") from exc
    return _PARSERS[fmt](text, path)


def _parse_json(text: str, path: Path) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        if exc.msg == "Extra data" and (documents := _parse_json_lines(text)) is not None:
            return documents
        raise PermanentError(f"cannot parse {path} as json: {exc}") from exc


def _parse_json_lines(text: str) -> list[Any] | None:
    """Each non-blank line parsed as a document; None unless every one parses."""
    try:
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    except json.JSONDecodeError:
        return None


def _parse_yaml(text: str, path: Path) -> Any:
    try:
        documents = load_yaml_documents(text)
    except yaml.YAMLError as exc:
        raise PermanentError(f"cannot parse {path} as yaml: {exc}") from exc
    if not documents:
        return None
    return documents[0] if len(documents) == 1 else documents


def _parse_csv(text: str, path: Path) -> list[dict[str, str]]:
    """Rows as dicts keyed by the header; blank lines are skipped, ragged rows rejected."""
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader, None)
        if header is None:
            return []
        rows = []
        for row in reader:
            if not row:
                continue
            if len(row) != len(header):
                raise PermanentError(
                    f"cannot parse {path} as csv: line {reader.line_num} has {len(row)} "
                    f"fields, the header has {len(header)}"
                )
            rows.append(dict(zip(header, row, strict=True)))
    except csv.Error as exc:
        raise PermanentError(f"cannot parse {path} as csv: {exc}") from exc
    return rows


def _parse_text(text: str, path: Path) -> str:
    return text


def _parse_lines(text: str, path: Path) -> list[str]:
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    return lines


_PARSERS: Mapping[str, Callable[[str, Path], Any]] = {
    "json": _parse_json,
    "yaml": _parse_yaml,
    "csv": _parse_csv,
    "text": _parse_text,
    "lines": _parse_lines,
}


# --- sink:file ----------------------------------------------------------------------


def write_file(ctx: RuntimeContext) -> dict[str, Any]:
    """Write the input to the file at ``path`` (see the module docstring for each format).

    Raises PermanentError for an unknown format or mode, an input the format
    cannot hold (csv rows that are neither dicts nor lists, a value yaml
    cannot represent, text that is not valid Unicode); the input is encoded
    before anything is created, so a rejected input leaves no file or folder.
    """
    path = _path(ctx, _SINK)
    fmt = _format(ctx, _SINK, path, default="json")
    mode = _mode(ctx)
    value = ctx.input
    append = mode == "append"
    data = _encode(path, _dump(fmt, value, path, append=append))
    path.parent.mkdir(parents=True, exist_ok=True)
    if not append:
        _write_atomically(path, data)
    else:
        if data and fmt != "text" and _ends_mid_line(path):
            data = b"\n" + data
        _append(path, data)
    return {"path": str(path), "format": fmt, "mode": mode, "count": _count(fmt, value)}


def _count(fmt: str, value: Any) -> int:
    if fmt != "text" and isinstance(value, list | tuple):
        return len(value)
    return 1


def _dump(fmt: str, value: Any, path: Path, *, append: bool) -> str:
    """The text to write (or append) for ``value`` in ``fmt``."""
    if fmt == "json":
        if append:
            return json.dumps(value, ensure_ascii=False, default=str, separators=(",", ":")) + "\n"
        return json.dumps(value, indent=2, ensure_ascii=False, default=str) + "\n"
    if fmt == "yaml":
        return _dump_yaml(value, path, append=append)
    if fmt == "csv":
        return _dump_csv(value, path, append=append)
    if fmt == "lines":
        items = value if isinstance(value, list | tuple) else [value]
        return "".join(f"{item}\n" for item in items)
    return str(value)


class _YamlDumper(yaml.SafeDumper):
    """``yaml.SafeDumper``, except that strings holding U+0085 are double-quoted.

    PyYAML writes NEL raw in plain and single-quoted scalars, where YAML reads
    it back as a line break folded to a space; double quotes escape it as
    ``\\N``.
    """


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = '"' if "\x85" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_YamlDumper.add_representer(str, _represent_str)


def _dump_yaml(value: Any, path: Path, *, append: bool) -> str:
    try:
        return yaml.dump(
            value,
            Dumper=_YamlDumper,
            allow_unicode=True,
            sort_keys=False,
            default_flow_style=False,
            explicit_start=append,
        )
    except yaml.YAMLError as exc:
        raise PermanentError(f"cannot write {path} as yaml: {exc}") from exc


def _dump_csv(value: Any, path: Path, *, append: bool) -> str:
    """CSV text for a list of dict rows, a list of list rows, or a single dict row."""
    rows: Sequence[Any] = [value] if isinstance(value, dict) else value
    if not isinstance(rows, list | tuple):
        raise PermanentError(
            f"cannot write {path} as csv: the input must be a list of dicts or a list of "
            f"lists, got {type(value).__name__}"
        )
    out = io.StringIO(newline="")
    if all(isinstance(row, dict) for row in rows):
        _write_dict_rows(out, rows, path, append=append)
    elif all(isinstance(row, list | tuple) for row in rows):
        csv.writer(out).writerows(rows)
    else:
        kinds = sorted({type(row).__name__ for row in rows})
        raise PermanentError(
            f"cannot write {path} as csv: rows must be all dicts or all lists, "
            f"got {', '.join(kinds)}"
        )
    return out.getvalue()


def _write_dict_rows(
    out: io.StringIO, rows: Sequence[dict[Any, Any]], path: Path, *, append: bool
) -> None:
    """Write dict rows under a header; appending to a non-empty file reuses its header."""
    existing = _csv_header(path) if append else None
    if existing is None:
        header = list(dict.fromkeys(key for row in rows for key in row))
    else:
        header = existing
        extra = [key for key in dict.fromkeys(k for row in rows for k in row) if key not in header]
        if extra:
            raise PermanentError(
                f"cannot append to {path} as csv: rows have columns {extra!r} "
                f"that its header {header!r} lacks"
            )
    if not rows:
        return
    writer = csv.DictWriter(out, header, restval="")
    if existing is None:
        writer.writeheader()
    writer.writerows(rows)


def _csv_header(path: Path) -> list[str] | None:
    """The header row of an existing csv file; None if it is missing or empty."""
    try:
        with path.open(encoding="utf-8-sig", newline="") as f:
            return next(csv.reader(f), None)
    except FileNotFoundError:
        return None
    except (UnicodeDecodeError, csv.Error) as exc:
        raise PermanentError(f"cannot append to {path} as csv: {exc}") from exc


def _encode(path: Path, text: str) -> bytes:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise PermanentError(f"cannot write {path} as utf-8: {exc}") from exc


def _ends_mid_line(path: Path) -> bool:
    """True if the file exists, is not empty, and its last byte is not a newline."""
    try:
        with path.open("rb") as f:
            if f.seek(0, os.SEEK_END) == 0:
                return False
            f.seek(-1, os.SEEK_END)
            return f.read(1) != b"\n"
    except FileNotFoundError:
        return False


def _append(path: Path, data: bytes) -> None:
    with path.open("ab") as f:
        f.write(data)


def _write_atomically(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` through a temporary file in the same folder.

    The temporary file is removed if anything fails. A file being replaced
    keeps its permission bits; a new one gets the usual ``0o666 & ~umask``.
    """
    fd, temp = _create_temp(path)
    try:
        with os.fdopen(fd, "wb") as f:
            with contextlib.suppress(FileNotFoundError):
                os.fchmod(f.fileno(), stat.S_IMODE(path.stat().st_mode))
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def _create_temp(path: Path) -> tuple[int, Path]:
    """Create a new hidden file next to ``path``; O_EXCL makes the name ours alone."""
    while True:
        temp = path.with_name(f".{path.name}.{os.urandom(6).hex()}.tmp")
        try:
            return os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), temp
        except FileExistsError:
            continue


#: The file runtimes, registered by the package ``__init__``.
FILE_RUNTIMES: tuple[RuntimeSpec, ...] = (
    RuntimeSpec(_SOURCE, read_file, required=frozenset({"path"})),
    RuntimeSpec(_SINK, write_file, required=frozenset({"path"})),
)
