"""examples/host.py: a user's program over the whole public API passes ``mypy --strict`` and
runs, printing only its own lines."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
HOST = ROOT / "examples" / "host.py"
SERVICE = ROOT / "examples" / "service.py"

#: Misuses of the API that mypy must catch: they prove it sees wavecrest's types and
#: does not take them for Any.
MISUSE = textwrap.dedent(
    """
    from wavecrest.actors import Runtime, run_workflow
    from wavecrest.core import RuntimeContext, Workflow, register_runtime

    result = run_workflow(Workflow.build("x").workflow())
    count: int = result.status

    @register_runtime("transform:typed")
    async def typed(ctx: RuntimeContext) -> int:
        return ctx.attempt

    async def main() -> None:
        async with Runtime() as runtime:
            handle = runtime.submit("a.flow.md", stream=True)
            done = await handle
            done.nothing_like_this
            async for event in handle.events():
                event.path
            Workflow.build("y").transform("a", "template", template=[1])
    """
)


def _mypy(tmp_path: Path, *files: Path) -> subprocess.CompletedProcess[str]:
    """``mypy --strict`` on ``files``, seeing wavecrest as the package of this checkout.

    ``wavecrest.core`` and ``wavecrest.actors`` are mapped to core/ and actors/ by
    setup.cfg's package_dir, which mypy cannot follow in an editable install: a folder of
    two symlinks on MYPYPATH gives it the same package. Errors inside wavecrest and
    third-party packages are not this test's business (follow_imports = silent); calling
    an unannotated function of theirs still is (strict's disallow_untyped_calls).
    """
    package = tmp_path / "path" / "wavecrest"
    package.mkdir(parents=True)
    (package / "core").symlink_to(ROOT / "core")
    (package / "actors").symlink_to(ROOT / "actors")
    config = tmp_path / "mypy.ini"
    config.write_text(
        f"[mypy]\nstrict = True\nfollow_imports = silent\ncache_dir = {tmp_path / 'cache'}\n"
    )
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", str(config), *map(str, files)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
        env={"MYPYPATH": str(tmp_path / "path"), "PATH": "/usr/bin:/bin"},
        check=False,
    )


@pytest.mark.slow
def test_the_examples_pass_mypy_strict_and_misuse_does_not(tmp_path: Path) -> None:
    """examples/host.py and examples/service.py type-check; four misuses of the API do not."""
    misuse = tmp_path / "misuse.py"
    misuse.write_text(MISUSE)
    done = _mypy(tmp_path, HOST, SERVICE, misuse)
    errors = [line for line in done.stdout.splitlines() if re.match(r".+:\d+: error:", line)]
    assert all(line.startswith("misuse.py:") for line in errors), done.stdout
    found = {(int(line.split(":")[1]), line.split("error: ")[1]) for line in errors}
    lines = MISUSE.splitlines()

    def at(text: str) -> int:
        return next(i for i, line in enumerate(lines, 1) if text in line)

    assert {line for line, _ in found} == {
        at("count: int"),
        at("done.nothing_like_this"),
        at("event.path"),
        at("template=[1]"),
    }, done.stdout
    messages = " ".join(message for _, message in found)
    assert "RunResult" in messages
    assert "RunEvent" in messages
    assert done.returncode == 1


@pytest.mark.slow
def test_the_example_host_runs_and_prints_only_its_own_lines(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(HOST)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        check=False,
    )
    assert done.stderr == ""
    assert done.returncode == 0
    lines = done.stdout.splitlines()
    assert lines[:5] == [
        "run: completed, cheapest TEA-01, 2 attempts",
        "persisted: failed at quoted (ExpressionError)",
        "resumed: completed, cheapest TEA-01",
        "stream: quoted retried after TransientError",
        "streamed: completed, 2 attempts, 0 events dropped",
    ]
    assert "awaited: ['completed', 'completed', 'completed'], totals [57.06, 63.4, 76.08]" in lines
    assert "subscriber saw: {'completed': 4}" in lines
    assert "simulated: completed after 2 attempts, the same again: True" in lines
    assert any(line.endswith("dependency cycle: a -> b -> a") for line in lines)
    assert lines[-1] == "loaded: etl 1.0.0, 5 waves"
