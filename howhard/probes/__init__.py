"""howhard.probes: difficulty probes as they are saved, loaded, served and judged.

Checkpoint I/O (:mod:`.checkpoint`: safetensors + JSON, never pickle), the heads and their
marginals (:mod:`.heads`), post-hoc calibration (:mod:`.calibration`), the numpy MLP probe as
served (:mod:`.saved`), the marginals map from a probe's logit to served marginals with its
posterior and offline fit (:mod:`.marginals_map`, :mod:`.posterior`, :mod:`.map_fit`) and
:class:`ProbePredictor` (:mod:`.predictor`), which turns a probe and an injected encoder into the
marginals a policy allocates with. The self-consistency value model (:mod:`.vote_value`, with
the one shipped in the package) predicts what more votes would still gain. The torch networks
that train and serve LoRA probes are in :mod:`.networks`, imported only where used. Nothing here
imports training: serving a probe never needs the training code. See ``docs/architecture.md``.
"""

from howhard.probes.calibration import apply_isotonic, fit_isotonic, fit_temperature, sigmoid
from howhard.probes.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from howhard.probes.heads import Head, marginals_from_head
from howhard.probes.map_fit import fit_marginals_map
from howhard.probes.marginals_map import BetaMarginalsMap
from howhard.probes.posterior import GroupPosterior
from howhard.probes.predictor import ProbePredictor
from howhard.probes.recorded import RecordedProbe
from howhard.probes.saved import SavedProbe
from howhard.probes.vote_value import VoteValueModel, default_value_model

__all__ = [
    "BetaMarginalsMap",
    "Checkpoint",
    "GroupPosterior",
    "Head",
    "ProbePredictor",
    "RecordedProbe",
    "SavedProbe",
    "VoteValueModel",
    "apply_isotonic",
    "default_value_model",
    "fit_isotonic",
    "fit_marginals_map",
    "fit_temperature",
    "load_checkpoint",
    "marginals_from_head",
    "save_checkpoint",
    "sigmoid",
]
