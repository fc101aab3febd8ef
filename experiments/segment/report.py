"""Tables and pictures of ``arma segment``: Table-2-style results over seeds, predictions,
effective receptive fields and AR coefficients of the trained models.

Examples
--------
>>> from arma_experiments.segment.report import significance_rows
>>> from arma_experiments.results import stat
>>> stats = {("a",): {"miou": stat([0.5, 0.52, 0.51])}, ("b",): {"miou": stat([0.3, 0.31, 0.29])}}
>>> significance_rows(stats, [("a", "b")], "miou")[0][2:]
['+0.210', '0.016', 'yes']
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..results import compare, format_stat, markdown_table, stat, summarize, write_csv
from .metrics import BINARY_METRICS
from .models import SEGMENT_MODELS

__all__ = [
    "MULTICLASS_METRICS",
    "PAIRS",
    "collect_runs",
    "erf_png",
    "erf_radius",
    "prediction_png",
    "significance_rows",
    "write_tables",
]

MULTICLASS_METRICS = ("miou", "pixel_accuracy", "foreground_accuracy")
#: The comparisons the docs discuss (first minus second).
PAIRS = (
    ("arma3", "conv3"),
    ("arma3", "conv5"),
    ("arma3", "dilated-conv3"),
    ("conv5", "conv3"),
    ("dilated-conv3", "conv3"),
    ("arma-unet", "unet"),
    ("nonlocal-arma-unet", "nonlocal-unet"),
    ("nonlocal-unet", "unet"),
    ("nonlocal-arma-unet", "arma-unet"),
    ("unet", "arma3"),
)
_BASELINE_LABELS = {
    "all-background": "All background (majority class)",
    "threshold-majority": "Thresholded input, majority digit",
}
_COLUMNS = {
    "ACC": "ACC",
    "SE": "SE",
    "SP": "SP",
    "PC": "PC",
    "F1": "F1",
    "JS": "JS",
    "DC": "DC",
    "miou": "mIoU",
    "pixel_accuracy": "pixel acc.",
    "foreground_accuracy": "fg acc.",
}


def collect_runs(out_dir: str | os.PathLike) -> list[dict]:
    """Every run's ``results.json`` under ``out_dir``, in :data:`SEGMENT_MODELS` order, then seed."""
    runs = [json.loads(p.read_text()) for p in Path(out_dir).glob("*/seed*/results.json")]
    order = {name: i for i, name in enumerate(SEGMENT_MODELS)}
    return sorted(runs, key=lambda r: (order.get(r["model"], 99), r["seed"]))


def _metrics(task: str) -> tuple[str, ...]:
    return BINARY_METRICS + (MULTICLASS_METRICS if task == "digits" else ())


def significance_rows(stats: dict, pairs: Sequence[tuple[str, str]], metric: str) -> list[list[str]]:
    """``[A, B, A - B, 2 SE, exceeds 2 SE]`` rows for the pairs present in ``stats``."""
    rows = []
    for a, b in pairs:
        if (a,) in stats and (b,) in stats:
            sa, sb = stats[(a,)][metric], stats[(b,)][metric]
            c = compare(sa, sb)
            verdict = ("yes" if c.significant else "no") if min(sa.n, sb.n) > 1 else "n/a (1 seed)"
            rows.append([a, b, f"{c.difference:+.3f}", f"{2 * c.se:.3f}", verdict])
    return rows


def write_tables(
    out_dir: str | os.PathLike, baseline_scores: dict | None = None, wall_seconds: float | None = None
) -> tuple[Path, Path, Path] | None:
    """``results.md`` (Table 2 style), ``results.csv`` (mean/std/n per model and metric, and the
    baselines) and ``runs.csv`` (one row per run and seed) from the runs in ``out_dir``."""
    out_dir = Path(out_dir)
    runs = collect_runs(out_dir)
    if not runs:
        return None
    task = runs[0]["task"]
    metrics = _metrics(task)
    stats = summarize(runs, by=("model",), metrics=[f"metrics.{m}" for m in metrics])
    stats = {k: {m.split(".", 1)[1]: s for m, s in v.items()} for k, v in stats.items()}
    params = {r["model"]: r["params"] for r in runs}
    header = ["Model", "params", "seeds"] + [_COLUMNS[m] for m in metrics]
    rows = [
        [SEGMENT_MODELS[m].label, f"{params[m]:,}", stats[(m,)][metrics[0]].n]
        + [format_stat(stats[(m,)][k]) for k in metrics]
        for (m,) in stats
    ]
    for name, scores in (baseline_scores or {}).items():
        rows.append([_BASELINE_LABELS.get(name, name), "0", "-"] + [f"{scores[k]:.3f}" for k in metrics])
    lines = [markdown_table(header, rows)]
    main = "miou" if task == "digits" else "JS"
    lines += [
        "",
        (
            f"Differences in {_COLUMNS[main]} (first minus second; 'yes' when larger than two "
            "standard errors of the difference):"
        ),
        "",
        markdown_table(["A", "B", "A - B", "2 SE", "> 2 SE"], significance_rows(stats, PAIRS, main)),
    ]
    lines += ["", _timing_table(runs, wall_seconds)]
    md = out_dir / "results.md"
    md.write_text("\n".join(lines))
    csv_rows = []
    for (m,), cells in stats.items():
        for k in metrics:
            csv_rows.append([m, SEGMENT_MODELS[m].label, params[m], k, cells[k].mean, cells[k].std, cells[k].n])
    for name, scores in (baseline_scores or {}).items():
        csv_rows += [[name, _BASELINE_LABELS.get(name, name), 0, k, scores[k], 0.0, 1] for k in metrics]
    summary = write_csv(out_dir / "results.csv", ["model", "label", "params", "metric", "mean", "std", "n"], csv_rows)
    per_run = write_csv(
        out_dir / "runs.csv",
        ["model", "seed", "params", "epochs", "steps", "train_seconds"] + list(metrics),
        [
            [r["model"], r["seed"], r["params"], r["epochs_completed"], r["steps"], round(r["train_seconds"], 1)]
            + [r["metrics"][k] for k in metrics]
            for r in runs
        ],
    )
    return md, summary, per_run


def _timing_table(runs: list[dict], wall_seconds: float | None) -> str:
    rows = []
    for model in dict.fromkeys(r["model"] for r in runs):
        mine = [r for r in runs if r["model"] == model]
        train = stat(r["train_seconds"] / 60 for r in mine)
        per_step = stat(r["train_seconds"] / max(r["steps"], 1) for r in mine)
        rows.append(
            [
                SEGMENT_MODELS[model].label,
                mine[0]["epochs_completed"],
                mine[0]["steps"],
                f"{train.mean:.1f}",
                f"{per_step.mean:.2f}",
                sum(r["stopped_by_budget"] for r in mine),
            ]
        )
    text = markdown_table(["Model", "epochs", "steps", "train min / run", "s / step", "budget stops"], rows)
    total = sum(r["train_seconds"] + r["eval_seconds"] for r in runs) / 60
    text += f"\nTraining + evaluation summed over the {len(runs)} runs: {total:.1f} min"
    if wall_seconds is not None:
        text += f"; wall time of the invocation: {wall_seconds / 60:.1f} min"
    return text + ".\n"


def _label_colours():
    from matplotlib import colors

    palette = ["#000000"] + [colors.to_hex(c) for c in __import__("matplotlib").colormaps["tab10"].colors]
    return colors.ListedColormap(palette)


def prediction_png(
    out_dir: str | os.PathLike, runs: list[dict], path: str | os.PathLike, images: int = 3
) -> Path | None:
    """Input, truth and every model's prediction (its first seed) for the first test images."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    firsts = {}
    for r in runs:
        file = Path(out_dir) / r["model"] / f"seed{r['seed']}" / "prediction.npz"
        if r["model"] not in firsts and file.exists():
            firsts[r["model"]] = np.load(file)
    if not firsts:
        return None
    first = next(iter(firsts.values()))
    digits = first["truth"].ndim == 3
    n = min(images, len(first["input"]))
    cols = [("input", None), ("truth", None)] + [(SEGMENT_MODELS[m].label, m) for m in firsts]
    fig, axes = plt.subplots(n, len(cols), figsize=(1.6 * len(cols), 1.7 * n + 0.3), squeeze=False)
    cmap = _label_colours() if digits else "gray"
    for i in range(n):
        for j, (title, model) in enumerate(cols):
            ax = axes[i, j]
            ax.set_xticks([]), ax.set_yticks([])
            if title == "input":
                img = first["input"][i]
                ax.imshow(
                    img[0] if img.shape[0] == 1 else np.clip(img.transpose(1, 2, 0) * 0.5 + 0.5, 0, 1), cmap="gray"
                )
            else:
                lab = (first["truth"] if model is None else firsts[model]["predicted"])[i]
                ax.imshow(np.squeeze(lab), cmap=cmap, vmin=0, vmax=10 if digits else 1, interpolation="nearest")
            if i == 0:
                ax.set_title(title, fontsize=7)
    fig.tight_layout()
    if digits:
        from matplotlib.cm import ScalarMappable
        from matplotlib.colors import BoundaryNorm

        fig.subplots_adjust(right=0.92)
        bar = fig.colorbar(
            ScalarMappable(BoundaryNorm(np.arange(-0.5, 11), 11), cmap),
            cax=fig.add_axes((0.935, 0.15, 0.012, 0.7)),
            ticks=range(11),
        )
        bar.ax.set_yticklabels(["bg"] + [str(d) for d in range(10)], fontsize=6)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


def erf_radius(erf_map: np.ndarray, mass: float = 0.9) -> float:
    """Radius (pixels, Euclidean from the centre pixel) of the smallest disc holding ``mass`` of an ERF map."""
    h, w = erf_map.shape
    yy, xx = np.mgrid[:h, :w]
    r = np.hypot(yy - h // 2, xx - w // 2).ravel()
    order = np.argsort(r, kind="stable")
    cum = np.cumsum(erf_map.ravel()[order])
    return float(r[order][min(np.searchsorted(cum, mass * cum[-1]), r.size - 1)])


def erf_png(models: dict, inputs, path: str | os.PathLike, pixel: tuple[int, int] | None = None) -> dict[str, float]:
    """ERF maps (``arma_core.nn.erf``) of trained models at one output pixel, on real inputs.

    Parameters
    ----------
    models : dict of label to nn.Module
        In eval mode.
    inputs : Tensor, shape (N, C, H, W)
        Test images; the maps are averaged over them.
    path : path
        Where the PNG goes (log10 colour scale, 4 decades).
    pixel : (int, int), optional
        The output pixel; default the centre.

    Returns
    -------
    dict of label to float
        The radius holding 90% of each map's mass (:func:`erf_radius`).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from arma_core.nn import erf

    pixel = pixel or (inputs.shape[-2] // 2, inputs.shape[-1] // 2)
    maps = {label: erf(m, input=inputs, positions=[pixel]) for label, m in models.items()}
    radii = {label: erf_radius(m) for label, m in maps.items()}
    fig, axes = plt.subplots(1, len(maps), figsize=(2.2 * len(maps), 2.6), squeeze=False)
    for ax, (label, m) in zip(axes[0], maps.items()):
        im = ax.imshow(np.log10(np.maximum(m / m.max(), 1e-4)), cmap="magma", vmin=-4, vmax=0)
        ax.set_title(f"{label}\n90% within r={radii[label]:.0f} px", fontsize=7)
        ax.set_xticks([]), ax.set_yticks([])
    fig.colorbar(im, ax=list(axes[0]), shrink=0.8, label="log10 ERF / max")
    fig.suptitle(
        f"effective receptive field at output pixel {tuple(pixel)}, trained models, {inputs.shape[0]} test images",
        fontsize=8,
    )
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return radii
