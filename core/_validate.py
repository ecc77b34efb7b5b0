"""Semantic checks run after parsing: references, scope rules and cycles.

The checks are the planner's analysis (:mod:`._graph`); this module only
exposes them to the parser as a list of diagnostics.
"""

from __future__ import annotations

from ._errors import Diagnostic
from ._model import Workflow


def check_workflow(workflow: Workflow) -> list[Diagnostic]:
    """Every semantic problem of ``workflow``: unknown or illegal references and cycles."""
    from ._graph import analyse

    return list(analyse(workflow).diagnostics)
