"""The package's shape: public names, and the one dependency rule of DESIGN section 1."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import wavecrest.actors
import wavecrest.core

ROOT = Path(__file__).resolve().parent.parent


def _imports(path: Path) -> list[tuple[str, int]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            found += [
                (f"{module}.{alias.name}" if module else alias.name, node.lineno)
                for alias in node.names
            ]
            found.append((module, node.lineno))
    return found


def _core_files() -> list[Path]:
    return sorted((ROOT / "core").rglob("*.py"))


def test_core_never_imports_actors_pykka_or_threading() -> None:
    """core imports neither wavecrest.actors, pykka nor threading, at any depth of its package."""
    banned = ("wavecrest.actors", "pykka", "threading", "actors")
    offenders = [
        f"{path.relative_to(ROOT)}:{line}: {name}"
        for path in _core_files()
        for name, line in _imports(path)
        if any(name == b or name.startswith(b + ".") for b in banned)
    ]
    assert offenders == []


def test_core_never_sleeps_or_uses_the_global_random() -> None:
    """core never calls time.sleep nor a module-level function of random (only random.Random)."""
    offenders = []
    for path in _core_files():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module in ("time", "random"):
                for alias in node.names:
                    if (node.module, alias.name) == ("time", "sleep") or (
                        node.module == "random" and alias.name != "Random"
                    ):
                        offenders.append(
                            f"{path.name}:{node.lineno}: from {node.module} import {alias.name}"
                        )
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and (
                    (node.value.id == "time" and node.attr == "sleep")
                    or (node.value.id == "random" and node.attr != "Random")
                )
            ):
                offenders.append(f"{path.name}:{node.lineno}: {node.value.id}.{node.attr}")
    assert offenders == []


def test_the_rule_checker_catches_a_violation(tmp_path: Path) -> None:
    """The checks above would notice a banned import (so they cannot pass vacuously)."""
    bad = tmp_path / "bad.py"
    bad.write_text("import threading\nfrom pykka import ActorRef\nimport random\nrandom.random()\n")
    names = [name for name, _ in _imports(bad)]
    assert "threading" in names
    assert "pykka" in names


def test_no_top_level_core_or_actors_package_is_installed(tmp_path: Path) -> None:
    """Only wavecrest.core and wavecrest.actors are installed; 'core' and 'actors' never shadow
    a host application's packages (checked in a fresh interpreter outside the checkout)."""
    probe = (
        "import importlib.util as u;"
        "print(u.find_spec('wavecrest.core') is not None,"
        " u.find_spec('wavecrest.actors') is not None,"
        " u.find_spec('core'), u.find_spec('actors'))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True, check=True
    ).stdout.split()
    assert out == ["True", "True", "None", "None"]


def test_public_surface_of_core() -> None:
    """The names DESIGN section 7 fixes are exported, and __all__ lists only real objects."""
    for name in ("load_workflow", "parse_workflow", "register_runtime"):
        assert name in wavecrest.core.__all__
    for name in wavecrest.core.__all__:
        assert hasattr(wavecrest.core, name), name


def test_public_surface_of_actors() -> None:
    """run_workflow, resume_workflow, Runtime and write_report are exported by wavecrest.actors."""
    for name in ("run_workflow", "resume_workflow", "Runtime", "RunHandle", "write_report"):
        assert name in wavecrest.actors.__all__
    for name in wavecrest.actors.__all__:
        assert hasattr(wavecrest.actors, name), name


def test_public_surface_for_asyncio_hosts_and_workflows_in_code() -> None:
    """The names the README's asyncio and builder sections use are public."""
    for name in (
        "WorkflowBuilder",
        "Body",
        "IfBlock",
        "BranchBlock",
        "ParallelBlock",
        "Retry",
        "TaskCall",
        "prepare_task",
        "EventsUnavailableError",
    ):
        assert name in wavecrest.core.__all__, name
    assert callable(wavecrest.core.Workflow.build)
    runtime, handle = wavecrest.actors.Runtime, wavecrest.actors.RunHandle
    for method in ("submit_async", "resume_async", "run", "aclose", "__aenter__", "__aexit__"):
        assert callable(getattr(runtime, method)), method
    for method in ("events", "__await__"):
        assert callable(getattr(handle, method)), method
    assert isinstance(handle.dropped_events, property)
    assert callable(wavecrest.core.RuntimeContext.asleep)


def test_the_testing_toolkit_is_pure_core_and_checked_as_such() -> None:
    """core/testing is part of core: the rules above read its files too."""
    checked = {path.relative_to(ROOT).as_posix() for path in _core_files()}
    assert {"core/testing/__init__.py", "core/testing/_explore.py"} <= checked


def test_wavecrest_core_imports_neither_hypothesis_nor_pytest(tmp_path: Path) -> None:
    """Only wavecrest.core.testing pulls in hypothesis: an embedding application that imports
    wavecrest.core or the actors, and every CLI command but ``test``, pays for neither
    (checked in a fresh interpreter)."""
    probe = (
        "import sys, wavecrest.core, wavecrest.actors, wavecrest.actors._cli;"
        "print('hypothesis' in sys.modules, 'pytest' in sys.modules,"
        " 'wavecrest.core.testing' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True, check=True
    ).stdout.split()
    assert out == ["False", "False", "False"]


def test_public_surface_of_the_testing_toolkit() -> None:
    """The names the toolkit's docs promise are exported, and __all__ lists only real objects."""
    from wavecrest.core import testing

    for name in (
        "simulate",
        "Simulation",
        "workflows",
        "fault_plans",
        "seeds",
        "check_trace",
        "InvariantViolation",
        "replay",
        "ReplayReport",
    ):
        assert name in testing.__all__
    for name in testing.__all__:
        assert hasattr(testing, name), name
    assert testing.Simulation is wavecrest.core.Simulation


def test_every_package_is_listed_in_setup_cfg() -> None:
    """A plain ``pip install .`` ships every package folder of core and actors."""
    import configparser

    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    listed = set(config["options"]["packages"].split())
    found = {
        "wavecrest." + ".".join(init.parent.relative_to(ROOT).parts)
        for top in ("core", "actors")
        for init in (ROOT / top).rglob("__init__.py")
    }
    assert found == listed
    requires = config["options"]["install_requires"]
    assert "hypothesis" in requires
    assert "pytest" in requires
