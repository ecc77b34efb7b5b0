"""Semantic checks run after parsing: references, scope rules and cycles.

The checks are the planner's analysis (:mod:`._graph`); this module only
exposes them to the parser as a list of diagnostics.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from ._errors import Diagnostic
from ._model import Workflow

if TYPE_CHECKING:
    from ._expr import References


def check_workflow(
    workflow: Workflow, known: Mapping[tuple[str, bool], References] | None = None
) -> list[Diagnostic]:
    """Every semantic problem of ``workflow``: unknown or illegal references and cycles.

    ``known`` is what texts read, as the parser found it (see ``analyse``).
    """
    from ._graph import analyse

    return list(analyse(workflow, known).diagnostics)
