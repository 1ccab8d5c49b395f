"""Split a compute budget across a batch of requests where it helps most.

Eight requests with different single-sample success probabilities share 16 samples (2 per
request on average). Best-of-k with a verifier succeeds with probability 1 - (1 - p)^k, so one
more sample is worth p(1 - p)^(k-1): easy requests saturate fast, impossible ones never pay off.

    python examples/allocate.py
"""

from __future__ import annotations

import numpy as np

from howhard.evaluation import expected_quality
from howhard.policies import (
    allocate,
    allocate_success_prob,
    marginals_from_success_prob,
    uniform_budgets,
)


def main() -> None:
    p = np.array([0.95, 0.6, 0.3, 0.15, 0.08, 0.0, 0.5, 0.02])
    marginals = marginals_from_success_prob(p, max_budget=8)  # (8 requests, 8 units)
    total = 16

    adaptive = allocate(marginals, total)
    uniform = uniform_budgets(len(p), total / len(p), max_budget=8)
    # For binary rewards the matrix is optional: same budgets straight from p.
    matrix_free = allocate_success_prob(p, total, max_budget=8)

    print("success prob  uniform  adaptive")
    for prob, u, a in zip(p, uniform, adaptive, strict=True):
        print(f"{prob:12.2f}  {u:7d}  {a:8d}")
    print(f"samples used  {uniform.sum():7d}  {adaptive.sum():8d}")
    print(f"allocate_success_prob gives the same budgets: {bool((matrix_free == adaptive).all())}")
    print(
        f"expected success rate: uniform {expected_quality(uniform, marginals):.3f}, "
        f"adaptive {expected_quality(adaptive, marginals):.3f}"
    )


if __name__ == "__main__":
    main()
