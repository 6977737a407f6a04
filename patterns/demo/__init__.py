"""The demonstration behind ``python -m patterns``: every pattern under the fault layer.

The pattern packages are plain Temporal code; this is the one part of
``patterns`` that puts :mod:`faults` underneath them. Each demonstration runs
its pattern on a real server under a fault plan and checks the pattern's
invariants from the services' databases and the workflow histories.
"""

from ._breaker import demonstrate as demonstrate_breaker
from ._chaos import CHAOS_TASK_QUEUE, ChaosResult, saga_chaos
from ._cli import PATTERNS, main, run
from ._fanout import DEFAULT_PLAN as FANOUT_PLAN
from ._fanout import check_batch
from ._fanout import demonstrate as demonstrate_fanout
from ._report import Demonstration, DemoReport, InvariantCheck, Say
from ._saga import demonstrate as demonstrate_saga
from ._saga import saga_registration

__all__ = [
    "CHAOS_TASK_QUEUE",
    "ChaosResult",
    "FANOUT_PLAN",
    "PATTERNS",
    "DemoReport",
    "Demonstration",
    "InvariantCheck",
    "Say",
    "check_batch",
    "demonstrate_breaker",
    "demonstrate_fanout",
    "demonstrate_saga",
    "main",
    "run",
    "saga_chaos",
    "saga_registration",
]
