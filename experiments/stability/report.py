"""Tables and figures of ``arma stability`` and ``arma classify`` from the runs' ``results.json``."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from arma_experiments.results import (
    collect,
    format_stat,
    markdown_table,
    stat,
    write_csv,
)

from .run import RESULTS, converged_threshold

__all__ = [
    "classify_table",
    "load_runs",
    "opt_label",
    "plot_figure5",
    "plot_margins",
    "stability_tables",
]


def opt_label(config: dict) -> str:
    """``"SGD 0.05"`` / ``"Adam 0.001"``: the optimizer setting of a run."""
    name = "SGD" if config["optimizer"] == "sgd" else "Adam"
    return f"{name} {config['lr']:g}"


def load_runs(out_dir: str | Path) -> list[dict]:
    """Every run's results under ``out_dir``."""
    return collect(out_dir, RESULTS)


def _groups(runs: Sequence[dict], arms: Sequence[str]) -> dict[str, dict[str, list[dict]]]:
    """``{optimizer label: {arm: [runs over seeds]}}`` in the order runs and arms are given."""
    out: dict[str, dict[str, list[dict]]] = {}
    for r in sorted(runs, key=lambda r: (r["config"]["optimizer"] != "sgd", r["config"]["lr"])):
        out.setdefault(opt_label(r["config"]), {a: [] for a in arms}).setdefault(r["config"]["arm"], []).append(r)
    for g in out.values():
        for members in g.values():
            members.sort(key=lambda r: r["config"]["seed"])
    return out


def _esc(cell) -> str:
    return str(cell).replace("|", "\\|")


def _md(header, rows) -> str:
    """:func:`markdown_table` with ``|`` inside cells escaped (``|f_-1+f_1|``)."""
    return markdown_table([_esc(h) for h in header], [[_esc(c) for c in row] for row in rows])


def _fmt(x, digits=3) -> str:
    if x is None:
        return "-"
    x = float(x)
    if not math.isfinite(x):
        return str(x)
    return f"{x:.{digits}f}" if abs(x) < 1e3 else f"{x:.1e}"


def stability_tables(runs: Sequence[dict], arms: Sequence[str], out_dir: str | Path) -> str:
    """The summary (per optimizer and arm) and per-run tables as Markdown; also writes CSVs."""
    out_dir = Path(out_dir)
    groups = _groups(runs, arms)
    head = [
        "optimizer",
        "arm",
        "seeds",
        "converged",
        "stalled",
        "non-finite",
        "test accuracy",
        "left the strip",
        "largest |f_-1+f_1| at the end, per seed",
        "first crossing step",
    ]
    rows = []
    for label, by_arm in groups.items():
        for arm, members in by_arm.items():
            if not members:
                continue
            kinds = [m["outcome"] for m in members]
            crossings = [m["crossing"]["step"] for m in members if m.get("crossing")]
            ar = members[0]["ar_layers"] > 0
            sums = [_fmt(m["final_max_abs_sum"], 2) for m in members]
            rows.append(
                [
                    label,
                    arm,
                    len(members),
                    kinds.count("converged"),
                    kinds.count("stalled"),
                    kinds.count("non-finite"),
                    format_stat(stat(m["test_accuracy"] for m in members)),
                    f"{len(crossings)}/{len(members)}" if ar else "-",
                    " / ".join(sums) if ar else "-",
                    ", ".join(map(str, crossings)) or "-",
                ]
            )
    write_csv(out_dir / "summary.csv", head, rows)
    per_head = [
        "optimizer",
        "arm",
        "seed",
        "outcome",
        "test accuracy",
        "final loss",
        "min margin (run)",
        "max |f_-1+f_1| (run)",
        "non-finite step",
        "why",
    ]
    per_rows = []
    for label, by_arm in groups.items():
        for arm, members in by_arm.items():
            for m in members:
                # every step's record holds the taps that step's forward used; the taps after
                # the last optimizer step are the run's final values
                margins = [s["min_margin"] for s in m["steps"] if s.get("min_margin") is not None]
                sums = [s["max_abs_sum"] for s in m["steps"] if s.get("max_abs_sum") is not None]
                margins += [v for v in [m.get("final_min_margin")] if v is not None]
                sums += [v for v in [m.get("final_max_abs_sum")] if v is not None]
                per_rows.append(
                    [
                        label,
                        arm,
                        m["config"]["seed"],
                        m["outcome"],
                        _fmt(m["test_accuracy"]),
                        _fmt(m["final_loss"], 2),
                        _fmt(np.nanmin(margins)) if margins else "-",
                        _fmt(np.nanmax(sums), 2) if sums else "-",
                        m["nonfinite_step"] or m["nonfinite_output_step"] or "-",
                        m["reason"],
                    ]
                )
    write_csv(out_dir / "runs.csv", per_head, per_rows)
    maj = runs[0]["majority_accuracy"] if runs else math.nan
    note = (
        f"\nConverged: finite throughout and test accuracy >= {converged_threshold(maj):.3f} "
        f"(halfway from the majority class, {maj:.3f}, to 1); test accuracy mean ± std over seeds.\n"
    )
    return "## Summary\n\n" + _md(head, rows) + note + "\n## Runs\n\n" + _md(per_head, per_rows)


def _series(members: Sequence[dict], key: str, steps: int, smooth: int = 1) -> np.ndarray:
    """``(seeds, steps)`` of a per-step value (NaN after a run stopped), running mean over ``smooth``."""
    out = np.full((len(members), steps), np.nan)
    for i, m in enumerate(members):
        values = np.array([np.nan if s.get(key) is None else float(s[key]) for s in m["steps"]], dtype=float)
        values[~np.isfinite(values)] = np.nan
        if smooth > 1 and len(values) >= smooth:
            kernel = np.ones(smooth) / smooth
            padded = np.concatenate([np.full(smooth - 1, values[0]), values])
            values = np.convolve(padded, kernel, mode="valid")
        out[i, : len(values)] = values[:steps]
    return out


def _band(ax, x, data, color, label, log=False, seeds=False):
    """Mean over seeds with a band of ± one standard deviation (and thin per-seed lines)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # steps where every seed has stopped
        mean = np.nanmean(data, axis=0)
        std = np.nanstd(data, axis=0)
    low = np.maximum(mean - std, 1e-6) if log else mean - std
    ax.plot(x, mean, color=color, label=label, lw=1.4)
    ax.fill_between(x, low, mean + std, color=color, alpha=0.2, lw=0)
    if seeds:
        for row in data:
            ax.plot(x, row, color=color, lw=0.5, alpha=0.5)


_COLORS = {"conv": "tab:gray", "strip": "tab:blue", "diamond": "tab:green", "raw": "tab:red", "raw-half": "tab:orange"}


def _figure(runs, arms, panels, path, title):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = _groups(runs, arms)
    steps = max(r["config"]["epochs"] * r["config"]["steps_per_epoch"] for r in runs)
    x = np.arange(1, steps + 1)
    fig, axes = plt.subplots(len(groups), len(panels), figsize=(4.2 * len(panels), 2.6 * len(groups)), squeeze=False)
    for row, (label, by_arm) in enumerate(groups.items()):
        for col, (key, ylabel, smooth, log, ref, ylim) in enumerate(panels):
            ax = axes[row, col]
            for arm, members in by_arm.items():
                if members and (key in ("loss", "acc") or members[0]["ar_layers"] > 0):
                    color = _COLORS.get(arm, None)
                    _band(
                        ax,
                        x,
                        _series(members, key, steps, smooth),
                        color,
                        f"{arm} (n={len(members)})",
                        log,
                        seeds=key in ("max_abs_sum", "min_margin"),
                    )
                    for m in members:  # where a run went non-finite
                        stop = m.get("nonfinite_step") or m.get("nonfinite_output_step")
                        if stop is not None:
                            ax.axvline(stop, color=color, lw=0.8, ls=":")
            if ref is not None:
                ax.axhline(ref, color="k", lw=0.7, ls="--")
            if log:
                ax.set_yscale("log")
            if ylim is not None:
                ax.set_ylim(*ylim)
            ax.set_title(f"{label}: {ylabel}", fontsize=9)
            ax.set_xlabel("step", fontsize=8)
            ax.tick_params(labelsize=7)
        axes[row, 0].legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return Path(path)


def plot_figure5(runs: Sequence[dict], arms: Sequence[str], path: str | Path) -> Path:
    """Figure 5: training loss and batch accuracy per step (mean ± std over seeds, running mean 10)."""
    panels = [
        ("loss", "training loss", 10, True, math.log(10), (0.05, 30)),
        ("acc", "batch accuracy", 10, False, None, (0, 1)),
    ]
    return _figure(
        runs,
        arms,
        panels,
        path,
        "Learning curves with and without the re-parameterization, mean ± std over seeds\n"
        "(dashed: chance-level loss ln 10; dotted: a run's first non-finite step)",
    )


def plot_margins(runs: Sequence[dict], arms: Sequence[str], path: str | Path) -> Path:
    """Largest ``|f_-1 + f_1|`` and smallest response modulus over all AR factors, per step."""
    panels = [
        ("max_abs_sum", "largest |f_-1+f_1|", 1, True, 1.0, (1e-3, 1e3)),
        ("min_margin", "smallest response modulus", 1, True, None, (1e-3, 1.5)),
    ]
    return _figure(
        runs,
        arms,
        panels,
        path,
        "AR factors during training, mean ± std and each seed\n"
        "(dashed: the strip's edge |f_-1+f_1| = 1; dotted: a run's first non-finite step)",
    )


def classify_table(runs: Sequence[dict], out_dir: str | Path) -> str:
    """Appendix A.4's table: test accuracy mean ± std and time per epoch per model and arm."""
    out_dir = Path(out_dir)
    groups: dict[tuple, list[dict]] = {}
    for r in runs:
        groups.setdefault((r["config"]["model"], r["config"]["arm"]), []).append(r)
    head = [
        "model",
        "convolution",
        "params",
        "seeds",
        "test accuracy",
        "test loss",
        "train s / epoch",
        "max |f_-1+f_1|",
        "mean |f_-1+f_1|",
    ]
    rows = []
    for (model, arm), members in groups.items():
        ar = members[0]["ar_layers"] > 0
        mean_abs = [m["mean_abs_sum"] for m in members if m.get("mean_abs_sum") is not None]
        rows.append(
            [
                model,
                arm,
                f"{members[0]['parameters']:,}",
                len(members),
                format_stat(stat(m["test_accuracy"] for m in members), 4),
                format_stat(stat(m["test_loss"] for m in members), 3),
                format_stat(stat(m["seconds_per_epoch"] for m in members), 1),
                format_stat(stat(m["final_max_abs_sum"] for m in members), 3) if ar else "-",
                format_stat(stat(mean_abs), 3) if ar and mean_abs else "-",
            ]
        )
    maj = runs[0]["majority_accuracy"] if runs else math.nan
    rows.append(["majority class", "-", "0", "-", f"{maj:.4f}", "-", "-", "-", "-"])
    write_csv(out_dir / "classify.csv", head, rows)
    return _md(head, rows)
