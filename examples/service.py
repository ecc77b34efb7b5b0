"""An asyncio HTTP service that runs a workflow per request and streams its events back.

Standard library only (plus wavecrest). Start it, then post a run::

    python examples/service.py --port 8080
    curl -N -d '{"config": {"items": ["tea", "cups"]}}' http://127.0.0.1:8080/runs

``POST /runs`` takes a JSON object with ``config`` (and optionally ``seed``)
and answers ``200`` with ``application/x-ndjson``: one JSON line per event of
the run as it happens — ``run.started``, ``node.started``, ``node.retrying``,
``node.succeeded``... — then one ``{"result": ...}`` line, the run's
``run --json`` object. Bad input is ``400`` with one ``{"error": ...}``
line; ``GET /health`` is ``200``. A client that goes away cancels its run.

Every request's run shares one ``Runtime``, so at most ``--max-concurrency``
task nodes run at once across all requests; the ``lookup`` node is an
``async def`` runtime, so waiting for its (pretend) stock service costs no
thread. ``SIGINT`` or ``SIGTERM`` stops the service cleanly: it takes no new
connections, cancels the runs in progress (their clients get the cancelled
result), waits for their answers to go out and closes the Runtime.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import signal
import sys
from typing import Any

from wavecrest.actors import RunHandle, Runtime
from wavecrest.core import (
    Retry,
    RunEvent,
    RuntimeContext,
    TransientError,
    WavecrestError,
    Workflow,
    register_runtime,
)

MAX_BODY = 1 << 20

STOCK = {"tea": 12, "cups": 0, "pots": 3}


@register_runtime("transform:lookup")
async def lookup(ctx: RuntimeContext) -> dict[str, Any]:
    """Ask the (pretend) stock service about one item; it is busy for each first attempt at
    an item whose name is in ``busy``."""
    await ctx.asleep(float(ctx.config["latency"]))
    item = str(ctx.input)
    if item in ctx.config["busy"] and ctx.attempt == 1:
        raise TransientError(f"the stock service is busy with {item!r}")
    return {"item": item, "stock": STOCK.get(item, 0)}


def inventory() -> Workflow:
    """Look up every requested item (at most four at a time), then say what is missing."""
    wb = Workflow.build(
        "inventory",
        version="1.0.0",
        config={
            "items": {"type": "list", "default": ["tea"]},
            "busy": {"type": "list", "default": []},
            "latency": {"type": "number", "default": 0.05},
        },
    )
    with wb.foreach("each", "{{ config['items'] }}", concurrency=4) as each:
        each.transform(
            "stock",
            "lookup",
            latency="{{ config.latency }}",
            busy="{{ config.busy }}",
            retry=Retry(max=2, base="20ms"),
        )
    wb.transform(
        "missing",
        "filter",
        input="each",
        condition="item.stock == 0",
    )
    wb.transform(
        "report",
        "template",
        input="missing",
        template="{{ nodes['each'].output | length }} items checked, "
        "{{ input | length }} out of stock",
    )
    return wb.workflow()


def event_line(event: RunEvent) -> bytes:
    """One event as a JSON line: its name and its fields."""
    fields = dataclasses.asdict(event)
    return _line({"event": event.name, **fields})


def _line(value: Any) -> bytes:
    return json.dumps(value, default=str, ensure_ascii=False).encode() + b"\n"


class Service:
    """The HTTP endpoint: one run of :func:`inventory` per ``POST /runs``."""

    def __init__(self, runtime: Runtime, workflow: Workflow) -> None:
        self.runtime = runtime
        self.workflow = workflow
        self.connections: set[asyncio.Task[None]] = set()
        self.runs: set[RunHandle] = set()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.connections.add(task)
        try:
            await self._respond(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client went away
        except asyncio.CancelledError:
            pass  # the service is stopping and this answer took too long
        finally:
            self.connections.discard(task)
            writer.close()

    async def stop(self, grace: float = 10.0) -> None:
        """Cancel every run in progress and wait (up to ``grace`` seconds) for the answers."""
        for handle in list(self.runs):
            handle.cancel()
        if self.connections:
            _, late = await asyncio.wait(list(self.connections), timeout=grace)
            for connection in late:
                connection.cancel()
            await asyncio.gather(*late, return_exceptions=True)

    async def _respond(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = (await reader.readline()).decode("latin-1").split()
        headers: dict[str, str] = {}
        while (line := await reader.readline()) not in (b"\r\n", b"\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        if len(request) != 3:
            return await self._send(writer, 400, {"error": "not an HTTP request"})
        method, path, _version = request
        if path == "/health":
            return await self._send(writer, 200, {"status": "ok"})
        if path != "/runs":
            return await self._send(writer, 404, {"error": f"no such resource {path!r}"})
        if method != "POST":
            return await self._send(writer, 405, {"error": "use POST /runs"})
        length = int(headers.get("content-length", "0") or 0)
        if not 0 <= length <= MAX_BODY:
            return await self._send(writer, 400, {"error": "the body is too large"})
        try:
            body = json.loads(await reader.readexactly(length) or b"{}")
            if not isinstance(body, dict):
                raise ValueError("expected a JSON object")
            handle = await self.runtime.submit_async(
                self.workflow, config=body.get("config"), seed=body.get("seed"), stream=True
            )
        except (ValueError, WavecrestError) as exc:
            return await self._send(writer, 400, {"error": str(exc)})
        self.runs.add(handle)
        # The client sends nothing more: the end of its input means it went away.
        gone = asyncio.ensure_future(reader.read())
        gone.add_done_callback(lambda _: handle.cancel())
        try:
            writer.write(_head(200, "application/x-ndjson"))
            async for event in handle.events():
                writer.write(event_line(event))
                await writer.drain()
            result = await handle
            writer.write(_line({"result": result.to_json()}))
            await writer.drain()
        except BaseException:
            handle.cancel()  # the client went away
            raise
        finally:
            gone.cancel()
            self.runs.discard(handle)

    async def _send(self, writer: asyncio.StreamWriter, status: int, body: Any) -> None:
        writer.write(_head(status, "application/json") + _line(body))
        await writer.drain()


_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed"}


def _head(status: int, content_type: str) -> bytes:
    return (
        f"HTTP/1.1 {status} {_REASONS[status]}\r\nContent-Type: {content_type}\r\n"
        "Connection: close\r\n\r\n"
    ).encode()


async def serve(host: str, port: int, max_concurrency: int) -> None:
    """Serve until SIGINT or SIGTERM; print the address once listening."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    async with Runtime(max_concurrency=max_concurrency) as runtime:
        service = Service(runtime, inventory())
        server = await asyncio.start_server(service.handle, host, port)
        address = server.sockets[0].getsockname()
        print(f"listening on http://{address[0]}:{address[1]}", flush=True)
        async with server:
            await stop.wait()
            server.close()
            await service.stop()
            await server.wait_closed()
    print("stopped", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080, help="0 picks a free port")
    parser.add_argument("--max-concurrency", type=int, default=8)
    args = parser.parse_args(argv)
    asyncio.run(serve(args.host, args.port, args.max_concurrency))
    return 0


if __name__ == "__main__":
    sys.exit(main())
