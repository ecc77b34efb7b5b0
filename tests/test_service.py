"""examples/service.py end to end: a real process serving HTTP on 127.0.0.1, concurrent
requests each streaming their run's events, bad input refused, a clean stop."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

SERVICE = Path(__file__).resolve().parent.parent / "examples" / "service.py"

pytestmark = pytest.mark.slow


@pytest.fixture
def service() -> Iterator[tuple[subprocess.Popen[str], int]]:
    """The service on a free port; stopped with SIGINT (and killed if it hangs)."""
    process = subprocess.Popen(
        [sys.executable, str(SERVICE), "--port", "0", "--max-concurrency", "4"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        assert first.startswith("listening on http://127.0.0.1:"), first
        yield process, int(first.rsplit(":", 1)[1])
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()


async def request(port: int, method: str, path: str, body: Any = None) -> tuple[int, list[Any]]:
    """One HTTP request; the status and the body's JSON lines as they were streamed."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    data = b"" if body is None else json.dumps(body).encode()
    writer.write(
        f"{method} {path} HTTP/1.1\r\nHost: test\r\nContent-Length: {len(data)}\r\n\r\n".encode()
        + data
    )
    await writer.drain()
    status = int((await reader.readline()).split()[1])
    while (await reader.readline()) not in (b"\r\n", b""):
        pass
    lines = [json.loads(line) async for line in reader]
    writer.close()
    await writer.wait_closed()
    return status, lines


def stop(process: subprocess.Popen[str]) -> tuple[str, str]:
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=30)
    return out, err


def test_concurrent_requests_each_stream_their_own_run(
    service: tuple[subprocess.Popen[str], int],
) -> None:
    process, port = service
    orders = [["tea"], ["tea", "cups"], ["pots", "cups", "tea"], ["kettle"], ["tea"] * 6]

    async def main() -> list[tuple[int, list[Any]]]:
        return await asyncio.gather(
            *(
                request(port, "POST", "/runs", {"config": {"items": items, "busy": ["pots"]}})
                for items in orders
            )
        )

    answers = asyncio.run(main())
    run_ids = set()
    for items, (status, lines) in zip(orders, answers, strict=True):
        assert status == 200
        *events, last = lines
        names = [event["event"] for event in events]
        assert names[0] == "run.started"
        assert names[-1] == "run.finished"
        retried = 1 if "pots" in items else 0
        # One attempt per item (two for the busy one), then missing and report.
        assert names.count("node.started") == len(items) + retried + 2
        assert {event["run_id"] for event in events} == {last["result"]["run_id"]}
        run_ids.add(last["result"]["run_id"])
        result = last["result"]
        assert result["status"] == "completed"
        missing = sum(1 for item in items if item in ("cups", "kettle"))
        assert result["outputs"]["report"] == f"{len(items)} items checked, {missing} out of stock"
        if "pots" in items:
            assert "node.retrying" in names
    assert len(run_ids) == len(orders)
    out, err = stop(process)
    assert (process.returncode, out, err) == (0, "stopped\n", "")


def test_bad_requests_are_refused_with_one_error_line(
    service: tuple[subprocess.Popen[str], int],
) -> None:
    process, port = service

    async def main() -> list[tuple[int, list[Any]]]:
        return [
            await request(port, "POST", "/runs", {"config": {"colour": "red"}}),
            await request(port, "POST", "/runs", [1, 2]),
            await request(port, "GET", "/runs"),
            await request(port, "GET", "/nowhere"),
            await request(port, "GET", "/health"),
        ]

    answers = asyncio.run(main())
    assert [status for status, _ in answers] == [400, 400, 405, 404, 200]
    assert answers[0][1] == [
        {
            "error": "unknown config key 'colour' for workflow 'inventory'; "
            "known keys: busy, items, latency"
        }
    ]
    assert answers[1][1] == [{"error": "expected a JSON object"}]
    _, err = stop(process)
    assert (process.returncode, err) == (0, "")


def test_stopping_cancels_runs_in_progress(service: tuple[subprocess.Popen[str], int]) -> None:
    """A run waiting on its slow lookup is cancelled when the service stops: its client gets
    the run's end and its cancelled result, and the process exits 0 at once."""
    process, port = service

    async def main() -> list[Any]:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        body = json.dumps({"config": {"items": ["tea"], "latency": 60}}).encode()
        writer.write(f"POST /runs HTTP/1.1\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)
        await writer.drain()
        lines = []
        while line := await reader.readline():
            if line.startswith(b"{"):
                lines.append(json.loads(line))
                if lines[-1].get("event") == "node.started":
                    os.kill(process.pid, signal.SIGINT)
        writer.close()
        return lines

    lines = asyncio.run(main())
    assert [line.get("event") for line in lines][:2] == ["run.started", "node.started"]
    assert lines[-2]["event"] == "run.finished"
    assert lines[-1]["result"]["status"] == "cancelled"
    out, err = process.communicate(timeout=30)
    assert (process.returncode, out, err) == (0, "stopped\n", "")


def test_a_client_that_goes_away_cancels_its_run(
    service: tuple[subprocess.Popen[str], int],
) -> None:
    """Four clients start minute-long runs and hang up, each holding a permit of the four the
    service has; a fifth request still gets through, because their runs were cancelled."""
    process, port = service

    async def leave() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        body = json.dumps({"config": {"items": ["tea"], "latency": 60}}).encode()
        writer.write(f"POST /runs HTTP/1.1\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)
        await writer.drain()
        while line := await reader.readline():
            if b'"node.started"' in line:
                break
        writer.close()
        await writer.wait_closed()

    async def main() -> tuple[int, list[Any]]:
        await asyncio.gather(*(leave() for _ in range(4)))
        return await asyncio.wait_for(
            request(port, "POST", "/runs", {"config": {"items": ["pots"]}}), timeout=30
        )

    status, lines = asyncio.run(main())
    assert status == 200
    assert lines[-1]["result"]["status"] == "completed"
    _, err = stop(process)
    assert (process.returncode, err) == (0, "")
