"""Training difficulty probes: collect scored samples, compute labels, extract features, fit.

Importing this package is cheap; torch is imported only by the functions that train or load a
probe.
"""

from howhard.training.collect import CollectSummary, collect
from howhard.training.dataset import Dataset, load_dataset, read_requests
from howhard.training.scorers import resolve_scorer

__all__ = [
    "CollectSummary",
    "Dataset",
    "collect",
    "load_dataset",
    "read_requests",
    "resolve_scorer",
]
