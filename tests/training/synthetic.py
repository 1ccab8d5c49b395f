"""A synthetic difficulty signal: λ depends on the features, rewards are sampled from it."""

import numpy as np
import numpy.typing as npt


def synthetic(
    n: int = 400, d: int = 8, m: int = 8, seed: int = 0
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float64]]:
    """Features ``(n, d)`` and binary rewards ``(n, m)`` with ``λ = sigmoid(2·x0 - 1)``."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d)).astype(np.float32)
    lam = 1 / (1 + np.exp(-(2 * x[:, 0] - 1)))
    rewards = (rng.random((n, m)) < lam[:, None]).astype(np.float64)
    return x, rewards
