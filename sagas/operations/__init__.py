"""Operating sagas: operator actions on instances and the statistics operators watch."""

from sagas.operations.actions import ActionRequest, ActionResult, Operations, Outcome
from sagas.operations.stats import SagaStats, Stats, StepLatency, collect_stats

__all__ = [
    "ActionRequest",
    "ActionResult",
    "Operations",
    "Outcome",
    "SagaStats",
    "Stats",
    "StepLatency",
    "collect_stats",
]
