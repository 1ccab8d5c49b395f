"""Speed of the exact allocator against the memory floor and a heap-based greedy.

Prints, from one run: the time of ``allocate`` on an n x B_max matrix, of one plain read of that
matrix (``marginals.sum()``, the memory-bandwidth floor), and of a straightforward heap greedy
(the textbook exact solver), with the ratios and a check that all give the same objective; then
the matrix-free ``allocate_success_prob`` on a million requests.

Targets: allocate <= 10x one read and >= 20x faster than the heap greedy; a million requests
from success probabilities in tens of milliseconds. Every time is the best of several repeats
(other load on the machine only ever adds time).

    python benchmarks/bench_allocate.py            # n=10,000 x 128, and n=1,000,000
    python benchmarks/bench_allocate.py --quick    # smaller, for a smoke run
"""

from __future__ import annotations

import argparse
import heapq
import time
from collections.abc import Callable

import numpy as np

from howhard.policies import allocate, allocate_success_prob, marginals_from_success_prob


def best_time(fn: Callable[[], object], repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def heap_greedy(marginals: np.ndarray, total: int) -> np.ndarray:
    """Textbook exact greedy: repeatedly buy the largest next unit from a heap of row heads."""
    n, width = marginals.shape
    budgets = np.zeros(n, dtype=np.int64)
    heap = [(-marginals[i, 0], i) for i in range(n) if marginals[i, 0] > 0]
    heapq.heapify(heap)
    for _ in range(total):
        if not heap:
            break
        _, i = heapq.heappop(heap)
        budgets[i] += 1
        if budgets[i] < width and marginals[i, budgets[i]] > 0:
            heapq.heappush(heap, (-marginals[i, budgets[i]], i))
    return budgets


def objective(marginals: np.ndarray, budgets: np.ndarray) -> float:
    mask = np.arange(marginals.shape[1])[None, :] < budgets[:, None]
    return float((marginals * mask).sum())


def difficulty_spread(n: int, impossible: float, rng: np.random.Generator) -> np.ndarray:
    """Math-like success probabilities: a share of impossible questions, the rest Beta(0.5, 2)."""
    return np.where(rng.random(n) < impossible, 0.0, rng.beta(0.5, 2.0, size=n))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000, help="requests in the matrix benchmark")
    parser.add_argument("--max-budget", type=int, default=128, help="columns B_max")
    parser.add_argument("--average", type=float, default=8.0, help="average budget per request")
    parser.add_argument("--big-n", type=int, default=1_000_000, help="requests, matrix-free path")
    parser.add_argument("--repeats", type=int, default=15, help="repeats (best is reported)")
    parser.add_argument(
        "--impossible", type=float, default=0.25, help="share of requests with p = 0"
    )
    parser.add_argument("--quick", action="store_true", help="small sizes for a smoke run")
    args = parser.parse_args()
    if args.quick:
        args.n, args.big_n, args.repeats = 2_000, 50_000, 3

    rng = np.random.default_rng(0)
    p = difficulty_spread(args.n, args.impossible, rng)
    marginals = marginals_from_success_prob(p, args.max_budget)
    total = int(args.average * args.n)

    budgets = allocate(marginals, total)
    reference = heap_greedy(marginals, total)
    t_read = best_time(marginals.sum, args.repeats)
    t_alloc = best_time(lambda: allocate(marginals, total), args.repeats)
    t_heap = best_time(lambda: heap_greedy(marginals, total), max(2, args.repeats // 5))
    same = np.array_equal(budgets, reference)
    print(
        f"allocate: n={args.n:,} x B_max={args.max_budget}, total_budget={total:,}, "
        f"{args.impossible:.0%} of requests impossible"
    )
    print(f"  one read (marginals.sum())   {t_read * 1e3:9.3f} ms")
    ratio = t_alloc / t_read
    print(f"  allocate                     {t_alloc * 1e3:9.3f} ms   {ratio:6.1f}x one read")
    print(
        f"  heap greedy                  {t_heap * 1e3:9.3f} ms   {t_heap / t_alloc:6.1f}x slower"
    )
    print(
        f"  objective allocate {objective(marginals, budgets):.9f}  heap "
        f"{objective(marginals, reference):.9f}  identical budgets: {same}"
    )

    big_p = difficulty_spread(args.big_n, args.impossible, rng)
    big_total = int(args.average * args.big_n)
    t_prob = best_time(
        lambda: allocate_success_prob(big_p, big_total, max_budget=args.max_budget),
        max(3, args.repeats // 3),
    )
    print(f"allocate_success_prob: n={args.big_n:,}, B_max={args.max_budget}, no matrix")
    print(f"  allocate_success_prob        {t_prob * 1e3:9.3f} ms")
    # Identity with the matrix path, on a matrix small enough to materialise here.
    width = 16
    check_total = int(4.0 * args.big_n)
    via_matrix = allocate(marginals_from_success_prob(big_p, width), check_total)
    direct = allocate_success_prob(big_p, check_total, max_budget=width)
    print(
        f"  identical to allocate on the {args.big_n:,} x {width} matrix: "
        f"{np.array_equal(via_matrix, direct)}"
    )


if __name__ == "__main__":
    main()
