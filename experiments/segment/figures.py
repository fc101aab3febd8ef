"""The PNGs of ``arma segment``: predictions, ERF maps and AR coefficient histograms of the runs."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from ..results import write_json
from .models import SEGMENT_MODELS
from .report import collect_runs, erf_png, prediction_png
from .train import model_from_run, run_directory

__all__ = ["write_figures"]


def _first_seeds(runs: list[dict]) -> dict[str, int]:
    first: dict[str, int] = {}
    for r in runs:
        first[r["model"]] = min(first.get(r["model"], r["seed"]), r["seed"])
    return first


def write_figures(out_dir: str | os.PathLike, test, erf_images: int = 8) -> list[Path]:
    """``predictions.png``, ``erf.png`` (+ ``erf.json``: 90%-mass radii) and
    ``ar_histogram-<model>.png`` (+ ``ar_histograms.json``) for the first seed of every model.

    Parameters
    ----------
    out_dir : path
        The directory of the runs (``<model>/seed<k>/``).
    test
        The test set (its first ``erf_images`` images are the ERF inputs).
    """
    from ..video.histogram import plot_ar_histogram

    out_dir = Path(out_dir)
    runs = collect_runs(out_dir)
    written = []
    png = prediction_png(out_dir, runs, out_dir / "predictions.png")
    if png is not None:
        written.append(png)
    models = {}
    for name, seed in _first_seeds(runs).items():
        model, _ = model_from_run(run_directory(out_dir, name, seed))
        models[name] = model
    if not models:
        return written
    inputs = torch.from_numpy(test.batch(range(min(erf_images, len(test))))[0])
    radii = erf_png({SEGMENT_MODELS[n].label: m for n, m in models.items()}, inputs, out_dir / "erf.png")
    write_json(radii, out_dir / "erf.json")
    written.append(out_dir / "erf.png")
    summaries = {}
    for name, model in models.items():
        if SEGMENT_MODELS[name].arma:
            path = out_dir / f"ar_histogram-{name}.png"
            summaries[name] = plot_ar_histogram(model, path, f"{SEGMENT_MODELS[name].label}: learned AR coefficients")
            written.append(path)
    if summaries:
        write_json(summaries, out_dir / "ar_histograms.json")
    return written
