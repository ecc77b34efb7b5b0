"""The README's "Testing your workflows" test file runs as written, in a fresh pytest.

The file is taken from README.rst exactly as a user copies it and run by its
own ``python -m pytest`` in a folder holding only it and a copy of
``examples/``: nothing of this test suite (conftest, profiles) is in play.
That pytest gets ``--hypothesis-seed=0``, as README tells CI to: unseeded,
hypothesis draws new plans on every run and misses the planted two-fault bug
in about 2 runs in 30, which would make a fresh clone red by chance.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
INTRO = "A test file that checks a workflow under generated fault plans::"
SEEDED = ("--hypothesis-seed=0",)


def readme_test_file() -> str:
    text = (ROOT / "README.rst").read_text(encoding="utf-8")
    after = text.split(INTRO, 1)[1].split("\n")
    block: list[str] = []
    for line in after[1:]:
        if line and not line.startswith("    "):
            break
        block.append(line)
    return textwrap.dedent("\n".join(block)).strip() + "\n"


def test_the_readme_test_file_is_short_and_uses_the_public_toolkit() -> None:
    source = readme_test_file()
    assert len(source.splitlines()) <= 12
    assert "@given(faults=fault_plans(etl), seed=seeds())" in source
    assert "from wavecrest.core.testing import" in source
    assert "._" not in source  # no private module


@pytest.mark.slow
def test_the_readme_test_file_passes_in_a_fresh_pytest(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    (tmp_path / "test_etl.py").write_text(readme_test_file(), encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *SEEDED, "test_etl.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 passed" in done.stdout


@pytest.mark.slow
def test_the_readme_test_file_fails_for_a_workflow_that_breaks(tmp_path: Path) -> None:
    """The same file catches a broken workflow: pointed at the planted bug, it fails."""
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    source = readme_test_file().replace("examples/etl.flow.md", "examples/testing/index.flow.md")
    source = "import examples_testing_plugin  # noqa: F401\n" + source
    shutil.copy(
        ROOT / "examples" / "testing" / "index_runtimes.py", tmp_path / "examples_testing_plugin.py"
    )
    (tmp_path / "test_index.py").write_text(source, encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *SEEDED, "test_index.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "half-written index file" in done.stdout
    # hypothesis shrank the plan to the two faults that matter.
    assert "{'node': 'load', 'attempts': [1], 'raise': 'transient'}" in done.stdout
    assert "{'node': 'build', 'attempts': [1], 'raise': 'transient'}" in done.stdout
