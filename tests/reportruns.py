"""Persisted runs of every kind, for the report tests (shared by the plain and browser ones).

:func:`runs` makes them once per test session, in a folder of the session's
temporary directory, and returns the snapshot path of each by name:

* ``completed``: ``examples/etl.flow.md`` with faults: ``save`` always raises a
  transient error, so it is retried three times and its fallback runs;
  ``names`` is delayed on its first attempt;
* ``failed``: keep-going, a permanent fault whose message holds markup, a node
  whose output holds markup and a secret, a node that hangs past its timeout
  twice, a foreach whose second item fails, and what is skipped downstream;
* ``cancelled``: a run timeout while a delay waits;
* ``paused``: ``examples/approval.flow.md`` stopped at its checkpoint;
* ``resumed``: the same, approved by a resume (two segments).

All of them use built-in node types only, so the CLI can plan them too;
:func:`custom_type_run` makes one whose workflow does not plan where its custom
type is not registered.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from wavecrest.actors import resume_workflow, run_workflow
from wavecrest.core import RunResult, register_runtime, unregister_runtime

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

#: A value that must never reach a report (it is a secret).
SECRET = "s3cr3t-t0ken-value"
#: Markup that must reach a report as text only.
SCRIPT = "<script>window.pwned = 1</script><img src=x onerror='window.pwned = 2'>"

FAILING = """---
name: troubled
version: 2.0.0
secrets: [TOKEN]
config:
  markup: {type: string, default: "<script>window.pwned = 3</script>"}
---
<workflow>
  <transform id="seed" type="template" template="{{ [1, 2, 3] }}"/>
  <transform id="markup" type="template" template="{{ secrets.TOKEN }} {{ config.markup }}"/>
  <foreach id="each" input="seed" collection="{{ input }}">
    <transform id="square" type="template" template="{{ 10 // (item - 2) }}"/>
  </foreach>
  <transform id="after-each" type="template" input="each" template="never"/>
  <transform id="boom" type="template" input="markup" template="never"/>
  <transform id="after-boom" type="template" input="boom" template="never"/>
  <transform id="stuck" type="template" template="x" timeout="100ms">
    <on-error><retry max="1" backoff="fixed" base="10ms" when="always"/></on-error>
  </transform>
</workflow>
"""

FAULTS_FAILING = {
    "seed": 11,
    "rules": [
        {"node": "boom", "raise": "permanent", "message": SCRIPT},
        {"node": "stuck", "hang": True},
    ],
}

FAULTS_COMPLETED = {
    "seed": 7,
    "rules": [
        {"node": "save", "raise": "transient", "message": "disk full"},
        {"node": "names", "attempts": [1], "delay": "60ms"},
    ],
}

CANCELLED = """---
name: waiting
---
<workflow>
  <transform id="first" type="template" template="go"/>
  <delay id="wait" input="first" duration="30s"/>
  <transform id="later" type="template" input="wait" template="done"/>
</workflow>
"""

_MADE: dict[str, Path] = {}


def runs(factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The snapshot of each kind of run, by name (made on the first call)."""
    if _MADE:
        return dict(_MADE)
    folder = factory.mktemp("report-runs")
    state = folder / "state"
    out = {"out_dir": str(folder / "out"), "spool_dir": str(folder / "spool")}

    done = run_workflow(
        EXAMPLES / "etl.flow.md", config=out, state_dir=state, faults=FAULTS_COMPLETED
    )
    assert done.status == "completed", done.errors

    troubled = folder / "troubled.flow.md"
    troubled.write_text(FAILING)
    failed = run_workflow(
        troubled,
        state_dir=state,
        secrets={"TOKEN": SECRET},
        keep_going=True,
        faults=FAULTS_FAILING,
    )
    assert failed.status == "failed"

    waiting = folder / "waiting.flow.md"
    waiting.write_text(CANCELLED)
    cancelled = run_workflow(waiting, state_dir=state, timeout=0.3)
    assert cancelled.status == "cancelled"

    drafts = {"out_dir": out["out_dir"]}
    paused = run_workflow(EXAMPLES / "approval.flow.md", config=drafts, state_dir=state)
    assert paused.status == "paused"
    again = run_workflow(EXAMPLES / "approval.flow.md", config=drafts, state_dir=state)
    resumed = resume_workflow(again.run_id, state_dir=state, approve=True)
    assert resumed.status == "completed"

    for name, result in [
        ("completed", done),
        ("failed", failed),
        ("cancelled", cancelled),
        ("paused", paused),
        ("resumed", resumed),
    ]:
        assert result.snapshot_path is not None
        _MADE[name] = Path(result.snapshot_path)
    return dict(_MADE)


#: The custom node type of :func:`custom_type_run`, and a plugin file's text registering it.
CUSTOM_TYPE = "transform:shout"
CUSTOM_PLUGIN = (
    "from wavecrest.core import register_runtime\n"
    f"register_runtime({CUSTOM_TYPE!r}, lambda ctx: str(ctx.input).upper(), replace=True)\n"
)


def custom_type_run(folder: Path) -> RunResult:
    """A completed, persisted run of a workflow with a custom node type (``shout``, reading
    ``hello``), made in ``folder`` with the type registered and unregistered after it, as
    in a process that never imported it."""
    flow = folder / "custom.flow.md"
    flow.write_text(
        "---\nname: custom\n---\n<workflow>\n"
        '  <transform id="shout" type="shout" input="hello"/>\n'
        '  <transform id="hello" type="template" template="hi"/>\n</workflow>\n'
    )
    register_runtime(CUSTOM_TYPE, lambda ctx: str(ctx.input).upper())
    try:
        result = run_workflow(flow, state_dir=folder / "state")
    finally:
        unregister_runtime(CUSTOM_TYPE)
    assert result.status == "completed"
    assert result.snapshot_path is not None
    return result


def big_flow(n: int, layers: int = 100) -> str:
    """A ``.flow.md`` of ``n`` template nodes in ``layers`` layers, each reading one or two
    nodes of the layer before (deterministic)."""
    lines = ["---", f"name: big{n}", "runtime: {max_concurrency: 8}", "---", "<workflow>"]
    size = n // layers
    for i in range(n):
        layer = i // size
        inputs = ""
        if layer:
            before = (layer - 1) * size
            picked = sorted({before + i % size, before + (i * 7) % size})
            inputs = ' input="' + ",".join(f"n{j}" for j in picked) + '"'
        lines.append(f'  <transform id="n{i}" type="template"{inputs} template="{i}"/>')
    lines.append("</workflow>")
    return "\n".join(lines) + "\n"
