"""Plugins: Python modules the CLI imports before it reads a workflow, to register runtimes.

``wavecrest run flow.flow.md -p myruntimes`` imports ``myruntimes`` (looked
up from the current folder first, then ``sys.path``), or ``-p
path/to/runtimes.py`` loads that file; whatever it registers with
``register_runtime`` is then known to the parser and the run. ``-p`` may be
repeated; plugins load in the order given, once each per process.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import sys
from collections.abc import Iterable
from pathlib import Path
from types import ModuleType

from wavecrest.core import WavecrestError

__all__ = ["PluginError", "add_plugin_option", "load_plugins"]


class PluginError(WavecrestError):
    """Raised when a plugin given with ``--plugin`` cannot be found or fails to import."""


def add_plugin_option(parser: argparse.ArgumentParser) -> None:
    """Give ``parser`` the repeatable ``-p/--plugin MODULE`` option (stored in ``plugins``)."""
    parser.add_argument(
        "-p",
        "--plugin",
        action="append",
        default=[],
        dest="plugins",
        metavar="MODULE",
        help="import MODULE (or a .py file) first, to register runtimes; repeatable",
    )


def _load_file(path: Path) -> ModuleType:
    name = f"wavecrest_plugin_{path.stem.replace('-', '_')}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise PluginError(f"plugin {str(path)!r} is not a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def load_plugins(plugins: Iterable[str]) -> list[ModuleType]:
    """Import every plugin (a module name or a ``.py`` path); PluginError names the bad one."""
    loaded = []
    for plugin in plugins:
        try:
            if plugin.endswith(".py") or os.sep in plugin:
                path = Path(plugin)
                if not path.is_file():
                    raise PluginError(f"plugin {plugin!r}: no such file")
                loaded.append(_load_file(path.resolve()))
            else:
                if "" not in sys.path and os.getcwd() not in sys.path:
                    sys.path.insert(0, os.getcwd())
                loaded.append(importlib.import_module(plugin))
        except PluginError:
            raise
        except ModuleNotFoundError as exc:
            raise PluginError(
                f"cannot import plugin {plugin!r}: {exc}; give a module importable from the "
                "current folder or the path of a .py file"
            ) from None
        except Exception as exc:  # noqa: BLE001 - any failure of the plugin's own code
            first = str(exc).splitlines()[0] if str(exc) else ""
            raise PluginError(
                f"plugin {plugin!r} failed to import: {type(exc).__name__}: {first}"
            ) from None
    return loaded
