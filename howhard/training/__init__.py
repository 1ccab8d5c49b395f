"""Training difficulty probes: collect scored samples, compute labels, extract features, fit.

``collect`` → :class:`Dataset` → :func:`labels_for` + :func:`extract_features` →
:func:`train_probe` → checkpoint (:mod:`howhard.probes`) →
:class:`howhard.probes.ProbePredictor`. Importing this package is cheap; torch is imported only
by the functions that train or load a torch probe.
"""

from howhard.backends.encoders import LayerEncoder, make_encoder
from howhard.probes import Checkpoint, SavedProbe, load_checkpoint, save_checkpoint
from howhard.probes.metrics import probe_metrics
from howhard.scoring.registry import resolve_scorer
from howhard.training.collect import CollectSummary, collect
from howhard.training.dataset import Dataset, load_dataset, read_requests
from howhard.training.features import Features, extract_features, load_features, save_features
from howhard.training.labels import Labels, best_of_curve, labels_for, success_rate
from howhard.training.train import (
    TrainConfig,
    TrainResult,
    train_from_files,
    train_lora,
    train_probe,
)

__all__ = [
    "Checkpoint",
    "CollectSummary",
    "Dataset",
    "Features",
    "Labels",
    "LayerEncoder",
    "SavedProbe",
    "TrainConfig",
    "TrainResult",
    "best_of_curve",
    "collect",
    "extract_features",
    "labels_for",
    "load_checkpoint",
    "load_dataset",
    "load_features",
    "make_encoder",
    "probe_metrics",
    "read_requests",
    "resolve_scorer",
    "save_checkpoint",
    "save_features",
    "success_rate",
    "train_from_files",
    "train_lora",
    "train_probe",
]
