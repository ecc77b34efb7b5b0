"""What the toolkit accepts as a workflow: a path, ``.flow.md`` text, a Workflow or a Plan.

A string is workflow *text* when it holds a line break or starts with the
front matter's ``---``, and a *path* otherwise. Plans of Workflow values are
cached (by identity, the last few), so that simulating one workflow many
times plans it once.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from pathlib import Path

from .._graph import Plan, plan
from .._model import Workflow
from .._parse import load_workflow, parse_workflow

__all__ = ["WorkflowLike", "load"]

WorkflowLike = Workflow | Plan | str | os.PathLike[str]

_CACHE_SIZE = 16
# id(workflow) -> (workflow, its plan); the workflow is kept so that its id stays its own.
_plans: OrderedDict[int, tuple[Workflow, Plan]] = OrderedDict()


def load(workflow: WorkflowLike) -> Plan:
    """The plan of ``workflow``; WorkflowError for a bad file or text, TypeError for others."""
    if isinstance(workflow, Plan):
        return workflow
    if isinstance(workflow, Workflow):
        key = id(workflow)
        cached = _plans.get(key)
        if cached is not None and cached[0] is workflow:
            _plans.move_to_end(key)
            return cached[1]
        planned = plan(workflow)
        _plans[key] = (workflow, planned)
        while len(_plans) > _CACHE_SIZE:
            _plans.popitem(last=False)
        return planned
    if isinstance(workflow, str) and ("\n" in workflow or workflow.startswith("---")):
        return plan(parse_workflow(workflow))
    if isinstance(workflow, str | os.PathLike):
        return plan(load_workflow(Path(workflow)))
    raise TypeError(
        f"workflow must be a path, .flow.md text, a Workflow or a Plan, got {workflow!r}"
    )
