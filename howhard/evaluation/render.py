"""Writing the benchmark report: ``report.md``, ``report.json`` and the PNG plots."""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from howhard.evaluation.report import BenchmarkReport, headline

__all__ = ["PLOTS", "markdown", "write_report"]

FloatArray = npt.NDArray[np.float64]


def _pct(x: float) -> str:
    return "n/a" if not math.isfinite(x) else f"{round(100 * x) + 0:.0f}%"


def markdown(report: BenchmarkReport) -> str:
    """The report as markdown: headline, best-of-k table, SC table, routing, probe metrics."""
    h = headline(report)
    info = report.info
    lines = ["# howhard benchmark report", ""]
    if info:
        lines += [f"- {k}: {v}" for k, v in info.items()]
        lines.append("")
    lines += [
        "## Headline (test split, in-distribution, offline)",
        "",
        "This report scores allocations offline on the test split: its *val-decile map* column "
        "maps λ̂ to marginal gains through a table fitted on val, which no served policy uses. "
        "The served figures (the learning adaptive policy, leave-family-out and in-distribution, "
        "through a real scheduler) are in `served.md` (`howhard evaluate --leave-group-out`).",
        "",
        f"- Val-decile map, best-of-k: up to **{_pct(h['online_best_saving'])}** less compute than "
        f"uniform at matched success (at B = {h['online_best_saving_at']:g}, B ∈ [2, 16]); "
        f"oracle: {_pct(h['oracle_best_saving'])} (at B = {h['oracle_best_saving_at']:g}).",
        f"- Offline adaptive: up to {_pct(h['offline_best_saving'])} "
        f"(at B = {h['offline_best_saving_at']:g}).",
        f"- Share of the oracle's gain over uniform, mean over B = 1…16: val-decile map "
        f"{_pct(h['online_gain_share_1_16'])}, offline {_pct(h['offline_gain_share_1_16'])}.",
        f"- Routing (weak = 1 sample, strong = self-consistency over {report.strong_k} samples, "
        f"{report.strong_k} units): APGR learned {h['apgr_learned']:.3f}, random "
        f"{h['apgr_random']:.3f}, oracle {h['apgr_oracle']:.3f}; the learned router matches "
        f"all-strong success with {_pct(h['routing_strong_saving'])} fewer strong calls "
        f"(oracle {_pct(h['routing_strong_saving_oracle'])}).",
        "",
        "## Best-of-k with a verifier: expected success vs average samples per question",
        "",
        "| B | uniform | val-decile map | λ̂ plug-in | offline | oracle | val-decile map saving "
        "| offline saving | oracle saving | val-decile map share of oracle gain |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in report.table():
        lines.append(
            f"| {r['budget']:g} | {r['uniform']:.3f} | {r['online']:.3f} "
            f"| {r['online_plugin']:.3f} | {r['offline']:.3f} "
            f"| {r['oracle']:.3f} | {_pct(r['online_saving'])} | {_pct(r['offline_saving'])} "
            f"| {_pct(r['oracle_saving'])} | {_pct(r['online_gain_share'])} |"
        )
    lines += [
        "",
        "Saving = 1 - (samples the method spent at B) / (samples uniform needs for the same "
        "success, interpolated between integer budgets); n/a = uniform never reaches it within "
        f"B ≤ {report.budgets[-1]:g}.",
        "",
        "## Self-consistency (majority vote, no verifier): expected success",
        "",
        "| B | uniform | val-decile map | oracle |",
        "|---|---|---|---|",
    ]
    for r in report.table():
        lines.append(
            f"| {r['budget']:g} | {r['sc_uniform']:.3f} | {r['sc_online']:.3f} "
            f"| {r['sc_oracle']:.3f} |"
        )
    lines += [
        "",
        "## Routing: expected success vs fraction sent to the strong procedure",
        "",
        "| fraction strong | random | learned | oracle |",
        "|---|---|---|---|",
    ]
    for j, f in enumerate(report.routing_fractions):
        if j % 2 == 0:
            lines.append(
                f"| {f:.1f} | {report.routing['random'][j]:.3f} | "
                f"{report.routing['learned'][j]:.3f} | {report.routing['oracle'][j]:.3f} |"
            )
    pm = report.probe_metrics
    lines += [
        "",
        "## λ probe (Table 1 metrics, test split, soft labels)",
        "",
        "| | Ours (CE) | Avg. | Opt. | Acc. | ECE | Spearman |",
        "|---|---|---|---|---|---|---|",
        f"| this benchmark | {pm['loss']:.3f} | {pm['avg_loss']:.3f} | {pm['opt_loss']:.3f} | "
        f"{100 * pm['accuracy']:.0f}% | {pm['ece']:.3f} | {pm['spearman']:.3f} |",
        "| paper, Math | 0.48 | 0.69 | 0.34 | 84% | | |",
        "| paper, Code | 0.33 | 0.58 | 0.20 | 74% | | |",
        "",
        "## Budget share by predicted difficulty (val-decile map allocation)",
        "",
        "| B | easy | medium | hard |",
        "|---|---|---|---|",
    ]
    for b, shares in zip(report.tercile_budgets, report.tercile_shares, strict=True):
        lines.append(f"| {b} | {_pct(shares[0])} | {_pct(shares[1])} | {_pct(shares[2])} |")
    lines.append("")
    return "\n".join(lines)


PLOTS = (
    "best_of_k.png",
    "self_consistency.png",
    "routing.png",
    "allocation.png",
    "calibration.png",
    "difficulty.png",
)
"""File names of the plots ``write_report`` produces."""


def write_report(
    report: BenchmarkReport, out: Path, *, observed_lambda: FloatArray | None = None
) -> list[Path]:
    """Write ``report.md``, ``report.json`` and the PNG plots into ``out``; returns the paths."""
    import json

    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "report.md", out / "report.json"]
    paths[0].write_text(markdown(report), encoding="utf-8")
    payload = {
        "budgets": report.budgets.tolist(),
        "best_of_k": {k: c.quality.tolist() for k, c in report.best_of_k.items()},
        "best_of_k_spent": {k: c.spent.tolist() for k, c in report.best_of_k.items()},
        "best_of_k_savings": {k: v.tolist() for k, v in report.best_of_k_savings.items()},
        "self_consistency": {k: c.quality.tolist() for k, c in report.self_consistency.items()},
        "routing_fractions": report.routing_fractions.tolist(),
        "routing": {k: v.tolist() for k, v in report.routing.items()},
        "apgr": report.apgr,
        "strong_k": report.strong_k,
        "tercile_budgets": list(report.tercile_budgets),
        "tercile_shares": report.tercile_shares.tolist(),
        "calibration": report.calibration.tolist(),
        "probe_metrics": report.probe_metrics,
        "headline": headline(report),
        "table": report.table(),
        "info": dict(report.info),
    }
    paths[1].write_text(json.dumps(payload, indent=1, allow_nan=True) + "\n", encoding="utf-8")
    paths += _plots(report, out, observed_lambda)
    return paths


def _plots(report: BenchmarkReport, out: Path, observed: FloatArray | None) -> list[Path]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:  # pragma: no cover - matplotlib ships with the dev extra
        from howhard.errors import missing_extra

        raise missing_extra("matplotlib", "plots") from exc

    written: list[Path] = []

    def save(fig: Any, name: str) -> None:
        fig.tight_layout()
        fig.savefig(out / name, dpi=90)
        plt.close(fig)
        written.append(out / name)

    styles = {
        "uniform": ("tab:gray", "--"),
        "random": ("tab:gray", "--"),
        "online": ("tab:blue", "-"),
        "online_plugin": ("tab:purple", "-"),
        "learned": ("tab:blue", "-"),
        "offline": ("tab:green", "-."),
        "oracle": ("black", ":"),
    }

    def curve_plot(curves: Mapping[str, FloatArray], title: str, name: str) -> None:
        fig, ax = plt.subplots(figsize=(5.2, 3.6))
        for label, values in curves.items():
            color, ls = styles[label]
            ax.plot(report.budgets, values, color=color, linestyle=ls, label=label)
        ax.set_xscale("log", base=2)
        ax.set_xlabel("average samples per question (B)")
        ax.set_ylabel("expected success")
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        save(fig, name)

    curve_plot(
        {k: c.quality for k, c in report.best_of_k.items()},
        "Best-of-k with a verifier (test)",
        PLOTS[0],
    )
    curve_plot(
        {k: c.quality for k, c in report.self_consistency.items()},
        "Self-consistency, majority vote (test)",
        PLOTS[1],
    )

    fig, ax = plt.subplots(figsize=(5.2, 3.6))
    for label, values in report.routing.items():
        color, ls = styles[label]
        ax.plot(report.routing_fractions, values, color=color, linestyle=ls, label=label)
    ax.set_xlabel(f"fraction routed to strong (self-consistency@{report.strong_k})")
    ax.set_ylabel("expected success")
    ax.set_title("Routing weak (1 sample) vs strong (test)", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    save(fig, PLOTS[2])

    fig, ax = plt.subplots(figsize=(5.2, 3.6))
    x = np.arange(len(report.tercile_budgets))
    bottom = np.zeros(len(x))
    for j, (label, color) in enumerate(
        (("easy", "tab:green"), ("medium", "tab:orange"), ("hard", "tab:red"))
    ):
        ax.bar(x, report.tercile_shares[:, j], bottom=bottom, color=color, label=label)
        bottom += report.tercile_shares[:, j]
    ax.set_xticks(x, [str(b) for b in report.tercile_budgets])
    ax.set_xlabel("average budget B")
    ax.set_ylabel("share of samples")
    ax.set_title("Allocation by predicted difficulty tercile", fontsize=10)
    ax.legend(fontsize=8)
    save(fig, PLOTS[3])

    fig, ax = plt.subplots(figsize=(4.2, 3.8))
    ax.plot([0, 1], [0, 1], color="gray", linestyle="--", linewidth=1)
    ax.plot(report.calibration[:, 0], report.calibration[:, 1], marker="o", color="tab:blue")
    ax.set_xlabel("predicted λ (bin mean)")
    ax.set_ylabel("observed λ (bin mean)")
    ax.set_title("λ probe calibration (test)", fontsize=10)
    ax.grid(alpha=0.3)
    save(fig, PLOTS[4])

    if observed is not None:
        fig, ax = plt.subplots(figsize=(4.6, 3.4))
        ax.hist(observed, bins=[j / 16 for j in range(17)], color="tab:blue", edgecolor="white")
        ax.set_xlabel("single-sample success λ")
        ax.set_ylabel("questions")
        ax.set_title("Difficulty distribution (test)", fontsize=10)
        save(fig, PLOTS[5])
    return written
