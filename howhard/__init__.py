"""howhard: decide how hard a language model should think about each request.

Importing this package is cheap: torch, transformers, vllm and openai are imported only by the
components that need them.
"""

from howhard.config import (
    BatchingConfig,
    Price,
    QuotaConfig,
    RetryConfig,
    RoundsConfig,
    SchedulerConfig,
)
from howhard.errors import HowhardError
from howhard.scheduler import Scheduler
from howhard.types import (
    BudgetBounds,
    Candidate,
    Completion,
    Generation,
    GenerationParams,
    Request,
    Result,
    Usage,
)

__version__ = "0.1.0"

__all__ = [
    "BatchingConfig",
    "BudgetBounds",
    "Candidate",
    "Completion",
    "Generation",
    "GenerationParams",
    "HowhardError",
    "Price",
    "QuotaConfig",
    "Request",
    "Result",
    "RetryConfig",
    "RoundsConfig",
    "Scheduler",
    "SchedulerConfig",
    "Usage",
    "__version__",
]
