"""Crash-resume equivalence: a run stopped dead at any completion resumes to the same outputs.

The crash is injected in process: when the k-th node succeeds, the snapshot
file as it is at that instant (what a crash would leave on disk: writes are
atomic and coalesced) is copied aside. Resuming the copy must give exactly
the outputs of an uninterrupted run, and must never start a node the copy
records as succeeded. A real ``kill -9`` of a subprocess is covered in
test_durability.py.
"""

from __future__ import annotations

import shutil
import threading
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from profiles import examples
from wavecrest.actors import Runtime, resume_workflow
from wavecrest.core import NodeStarted, NodeSucceeded, RunEvent, parse_workflow
from wavecrest.core._snapshot import read_snapshot


@st.composite
def workflows(draw: st.DrawFn) -> str:
    """A random DAG of template nodes, some inside a foreach, computing from their inputs."""
    count = draw(st.integers(2, 12))
    lines = []
    for i in range(count):
        inputs = draw(st.lists(st.integers(0, i - 1), max_size=3, unique=True)) if i else []
        if inputs:
            names = ",".join(f"n{j}" for j in inputs)
            total = " + ".join(f"n{j}.output | int" for j in inputs)
            lines.append(
                f'<transform id="n{i}" type="template" input="{names}" '
                f'template="{{{{ ({total}) * 3 + {i} }}}}"/>'
            )
        else:
            lines.append(f'<transform id="n{i}" type="template" template="{{{{ {i} + 1 }}}}"/>')
    if draw(st.booleans()):
        source = draw(st.integers(0, count - 1))
        lines.append(
            f'<foreach id="each" collection="range(n{source}.output % 5 + 1) | list" '
            f'concurrency="{draw(st.integers(1, 3))}">'
            f'<transform id="sq" type="template" template="{{{{ item * n{source}.output }}}}"/>'
            f'<transform id="inc" type="template" input="sq" template="{{{{ input + 1 }}}}"/>'
            "</foreach>"
        )
    body = "\n".join(lines)
    return f"---\nname: crashy\n---\n<workflow>\n{body}\n</workflow>\n"


def run_and_crash(text: str, folder: Path, crash_at: int) -> tuple[dict[str, Any], Path | None]:
    """Run to the end; copy the snapshot aside at the ``crash_at``-th success."""
    workflow = parse_workflow(text)
    crashed = folder / "crashed"
    copied: list[Path] = []
    seen = 0
    lock = threading.Lock()

    def on_event(event: RunEvent) -> None:
        nonlocal seen
        if isinstance(event, NodeSucceeded):
            with lock:
                seen += 1
                if seen == crash_at and not copied:
                    source = folder / "live" / "crashy" / f"{event.run_id}.msgpack"
                    target = crashed / "crashy" / source.name
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(source, target)
                    copied.append(target)

    with Runtime(max_concurrency=3) as runtime:
        result = runtime.submit(workflow, state_dir=folder / "live", on_event=on_event).result(60)
    assert result.status == "completed"
    return result.outputs, (copied[0] if copied else None)


@settings(
    max_examples=examples(25),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(text=workflows(), crash_at=st.integers(1, 20))
def test_resuming_a_crash_gives_the_uninterrupted_outputs(
    tmp_path_factory: pytest.TempPathFactory, text: str, crash_at: int
) -> None:
    folder = tmp_path_factory.mktemp("crash")
    expected, snapshot = run_and_crash(text, folder, crash_at)
    if snapshot is None:
        return  # fewer completions than crash_at: nothing was interrupted
    before = read_snapshot(snapshot)
    done_before = {p for p, r in before.results.items() if r.status == "succeeded"}
    started: list[str] = []
    resumed = resume_workflow(
        str(snapshot),
        on_event=lambda e: started.append(e.path) if isinstance(e, NodeStarted) else None,
    )
    assert resumed.status == "completed"
    assert resumed.outputs == expected
    assert not done_before & set(started)
