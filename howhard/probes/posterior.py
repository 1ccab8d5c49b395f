"""``GroupPosterior``: the online posterior of a :class:`BetaMarginalsMap`, exact up to its grid.

The shared parameters (a, β, τ) and each group's (δ_g, α_g) live on fixed grids. ``a`` and ``δ``
share one step, so a group's likelihood depends on them only through the offset ``c = a + δ``:
each group keeps one table ``L_g[c, β, α]``, the sum of its requests' Beta-binomial
log-likelihoods. The shared posterior is ``prior(a, β, τ) · Π_g Σ_{δ,α} π_τ(δ) π(α) exp L_g``,
maintained incrementally (only the groups that received feedback are recomputed, lazily at the
next prediction). A request's served row is the posterior-expected marginal row of its group.

Without any observation this is the map's *prior* row (``predict`` on a fresh posterior): what
a checkpoint serves with no feedback. With ``β = 0`` and one group every row is the same, so the
exact allocator splits evenly: uniform is the model's fallback, not a special case.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable, Iterator, Sequence

import numpy as np
import numpy.typing as npt

from howhard.errors import ConfigError
from howhard.probes.calibration import sigmoid
from howhard.probes.marginals_map import (
    BetaMarginalsMap,
    beta_binomial_loglik,
    beta_fail_moments,
    check_logits,
)

__all__ = ["GroupPosterior"]

FloatArray = npt.NDArray[np.float64]


def _lse(x: FloatArray, axes: tuple[int, ...]) -> FloatArray:
    """``log Σ exp`` over ``axes`` (finite inputs)."""
    m = x.max(axis=axes, keepdims=True)
    out: FloatArray = np.log(np.exp(x - m).sum(axis=axes)) + np.squeeze(m, axis=axes)
    return out


def _log_weights(prior: Sequence[float] | None, size: int) -> FloatArray:
    if prior is None:
        return np.zeros(size)
    with np.errstate(divide="ignore"):
        return np.log(np.asarray(prior, dtype=np.float64))


class GroupPosterior:
    """Posterior of one stream under ``marginals_map``: ``predict(z, keys)``, ``observe(...)``.

    Group keys are any hashables (a caller's key, an automatic cluster, ``"*"`` for one global
    group). At most ``max_groups`` groups are kept; beyond it the least recently used one is
    forgotten (its evidence leaves the shared posterior too). Synchronous numpy; one instance
    per stream, not shared across threads.
    """

    def __init__(self, marginals_map: BetaMarginalsMap, *, max_groups: int = 4096) -> None:
        if max_groups < 1:
            raise ConfigError(f"max_groups must be >= 1, got {max_groups}")
        c = self.map = marginals_map
        self.max_groups = max_groups
        h = c.step
        self.a = c.a0 + h * np.arange(-c.a_half, c.a_half + 1)
        self.delta = h * np.arange(-c.delta_half, c.delta_half + 1)
        self.c = c.a0 + h * np.arange(-c.a_half - c.delta_half, c.a_half + c.delta_half + 1)
        n_a, n_d = len(self.a), len(self.delta)
        self._c_index = np.arange(n_a)[:, None] + np.arange(n_d)[None, :]  # (A, D) -> c
        self.beta = np.asarray(c.beta_grid, dtype=np.float64)
        self.shape = np.asarray(c.shape_grid, dtype=np.float64)
        self.tau = np.asarray(c.tau_grid, dtype=np.float64)
        log_pa = -0.5 * ((self.a - c.a0) / c.s_a) ** 2
        log_pb = -0.5 * ((self.beta - c.beta0) / c.s_beta) ** 2
        log_pt = _log_weights(c.tau_prior, len(self.tau))
        self._log_prior_shared = log_pa[:, None, None] + log_pb[None, :, None] + log_pt
        log_pshape = _log_weights(c.shape_prior, len(self.shape))
        self._log_pshape = log_pshape - _lse(log_pshape, (0,))
        log_pdelta = -0.5 * (self.delta[None, :] / self.tau[:, None]) ** 2
        self._log_pdelta = log_pdelta - _lse(log_pdelta, (1,))[:, None]  # (T, D)
        self._table_shape = (len(self.c), len(self.beta), len(self.shape))
        self._tables: OrderedDict[Hashable, FloatArray] = OrderedDict()  # key -> L_g
        self._contrib: dict[Hashable, FloatArray] = {}  # key -> C_g (A, Bt, T)
        self._dirty: set[Hashable] = set()
        self._shared_sum = np.zeros((n_a, len(self.beta), len(self.tau)))  # Σ_g C_g
        self._empty = self._group_logmarg(np.zeros(self._table_shape))
        self.observations = 0
        """Requests with feedback observed so far."""

    # ------------------------------------------------------------------ posterior pieces

    def _group_joint(self, table: FloatArray) -> FloatArray:
        """``log π_τ(δ) π(α) exp L[a+δ, β, α]`` as ``(A, Bt, T, D, P)``."""
        expanded = table[self._c_index].transpose(0, 2, 1, 3)  # (A, Bt, D, P)
        joint: FloatArray = (
            expanded[:, :, None, :, :]
            + self._log_pdelta[None, None, :, :, None]
            + self._log_pshape[None, None, None, None, :]
        )
        return joint

    def _group_logmarg(self, table: FloatArray) -> FloatArray:
        return _lse(self._group_joint(table), (3, 4))  # (A, Bt, T)

    def _flush(self) -> None:
        """Recompute the contributions of groups that received feedback since the last call."""
        for key in self._dirty:
            table = self._tables.get(key)
            if table is None:  # evicted meanwhile
                continue
            new = self._group_logmarg(table)
            self._shared_sum += new - self._contrib.get(key, self._empty)
            self._contrib[key] = new
        self._dirty.clear()

    def shared_posterior(self) -> FloatArray:
        """Posterior weights of the shared parameters ``(a, β, τ)``, shape ``(A, Bt, T)``."""
        self._flush()
        lp = self._log_prior_shared + self._shared_sum
        w = np.exp(lp - lp.max())
        out: FloatArray = w / w.sum()
        return out

    def group_weights(self, key: Hashable, shared: FloatArray | None = None) -> FloatArray:
        """Posterior weight ``W[c, β, α]`` of the offset, weight and shape serving ``key``."""
        shared = self.shared_posterior() if shared is None else shared
        table = self._tables.get(key)
        if table is None:
            table, contrib = np.zeros(self._table_shape), self._empty
        else:
            contrib = self._contrib[key]
        conditional = np.exp(self._group_joint(table) - contrib[..., None, None])
        w4 = np.einsum("abt,abtdp->abdp", shared, conditional)  # (A, Bt, D, P)
        weights = np.zeros(self._table_shape)
        np.add.at(
            weights,
            self._c_index.ravel(),
            w4.transpose(0, 2, 1, 3).reshape(-1, *self._table_shape[1:]),
        )
        out: FloatArray = weights / weights.sum()
        return out

    # ------------------------------------------------------------------ serving

    def _rows(self, weights: FloatArray, z: FloatArray, width: int) -> FloatArray:
        ic, ib, ip = np.nonzero(weights > self.map.prune * weights.max())
        w = weights[ic, ib, ip]
        w = w / w.sum()
        mu = sigmoid(self.c[ic][None, :] + self.beta[ib][None, :] * z[:, None])
        moments = beta_fail_moments(mu, self.shape[ip][None, :], width, self.map.dispersion)
        rows: FloatArray = np.einsum("g,rgj->rj", w, moments[..., :-1] - moments[..., 1:])
        return rows

    @staticmethod
    def _by_key(keys: Sequence[Hashable]) -> Iterator[tuple[Hashable, npt.NDArray[np.intp]]]:
        positions: dict[Hashable, list[int]] = {}
        for i, key in enumerate(keys):
            positions.setdefault(key, []).append(i)
        for key, rows in positions.items():
            yield key, np.asarray(rows, dtype=np.intp)

    def predict(
        self, z: npt.ArrayLike, keys: Sequence[Hashable], max_budget: int | None = None
    ) -> FloatArray:
        """Posterior-expected marginals ``(n, max_budget)`` for logits ``z (n,)`` in ``keys``.

        Rows are non-negative and non-increasing (a mixture of non-increasing rows).
        """
        logits = check_logits(z)
        if len(keys) != len(logits):
            raise ConfigError(f"got {len(keys)} keys for {len(logits)} logits; pass one per logit")
        width = self.map.max_budget if max_budget is None else int(max_budget)
        out = np.zeros((len(logits), width))
        if not len(logits):
            return out
        shared = self.shared_posterior()
        for key, rows in self._by_key(keys):
            if key in self._tables:
                self._tables.move_to_end(key)
            out[rows] = self._rows(self.group_weights(key, shared), logits[rows], width)
        result: FloatArray = np.minimum.accumulate(np.maximum(out, 0.0), axis=1)
        return result

    def observe(
        self,
        z: npt.ArrayLike,
        keys: Sequence[Hashable],
        samples: npt.ArrayLike,
        successes: npt.ArrayLike,
    ) -> None:
        """Add feedback: ``successes[i]`` of ``samples[i]`` verified for the request with ``z[i]``.

        Requests with ``samples == 0`` carry no evidence and are skipped.
        """
        logits = check_logits(z)
        b = np.asarray(samples, dtype=np.float64).reshape(-1)
        k = np.asarray(successes, dtype=np.float64).reshape(-1)
        if not (len(keys) == len(logits) == len(b) == len(k)):
            raise ConfigError("observe needs one key, sample count and success count per logit")
        if (b < 0).any() or (k < 0).any() or (k > b).any() or (b != np.round(b)).any():
            raise ConfigError(
                "samples and successes must be integers with 0 <= successes <= samples"
            )
        for key, rows in self._by_key(keys):
            rows = rows[b[rows] > 0]
            if not len(rows):
                continue
            mu = sigmoid(
                self.c[None, :, None, None]
                + self.beta[None, None, :, None] * logits[rows, None, None, None]
            )
            table = beta_binomial_loglik(
                k[rows, None, None, None],
                b[rows, None, None, None],
                mu,
                self.shape[None, None, None, :],
                self.map.dispersion,
            ).sum(axis=0)
            old = self._tables.get(key)
            self._tables[key] = table if old is None else old + table
            self._tables.move_to_end(key)
            self._dirty.add(key)
            self.observations += len(rows)
        while len(self._tables) > self.max_groups:
            key, _ = self._tables.popitem(last=False)
            self._shared_sum -= self._contrib.pop(key, self._empty) - self._empty
            self._dirty.discard(key)

    # ------------------------------------------------------------------ stats

    @property
    def groups(self) -> int:
        """Groups with feedback currently kept."""
        return len(self._tables)

    def summary(self) -> dict[str, float]:
        """Posterior means of the shared parameters ``a``, ``beta`` and ``tau``."""
        shared = self.shared_posterior()
        return {
            "a": float((shared.sum(axis=(1, 2)) * self.a).sum()),
            "beta": float((shared.sum(axis=(0, 2)) * self.beta).sum()),
            "tau": float((shared.sum(axis=(0, 1)) * self.tau).sum()),
        }
