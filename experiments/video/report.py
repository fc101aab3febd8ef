"""Tables and figures of ``arma video`` from the runs in an output directory.

Every run writes ``<out>/<model>-speed<S>-seed<N>/results.json``; :func:`write_report` reads them
all back and writes, over the seeds of each model and speed (``arma_experiments.results``):

- ``results.md``: Table 3 (PSNR, SSIM, SSIM with the paper's data range 2: mean +- std), the
  MSE table with the baselines' margin (the acceptance test: every model at least 10% below
  every baseline at every speed), ARMA-LSTM minus each ConvLSTM with the differences that exceed
  two standard errors marked, Table 4 (non-local variants) when they were run, Figure 6's
  summary, the run times and the paper's numbers;
- ``results.csv`` (one row per model and speed: means, standard deviations, per-frame means),
  ``runs.csv`` (one row per run and seed, from which every claim of the tables can be
  recomputed) and ``comparisons.csv``;
- ``curves.png`` (PSNR / SSIM per predicted frame, per speed), ``comparison-speed<S>.png`` (the
  predictions of seed 0 on test sequence 0) and ``fig6.png`` (learned AR coefficients).

Examples
--------
>>> import tempfile
>>> with tempfile.TemporaryDirectory() as d:
...     write_report(d)
[]
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from .. import results as R
from .metrics import psnr_ceiling
from .models import TABLE3_MODELS, TABLE4_MODELS, VIDEO_MODELS
from .train import BASELINES, RESULTS, run_directory

__all__ = ["INVOCATIONS", "acceptance", "comparisons", "load_runs", "write_report"]

METRICS = ("psnr", "ssim", "ssim_dr2", "mse")
INVOCATIONS = "invocations.json"
#: Margin of the acceptance test: every model's MSE at most this fraction of every baseline's.
MARGIN = 0.9


def load_runs(out_dir: str | os.PathLike) -> list[dict]:
    """Every run's ``results.json`` under ``out_dir``, ordered by model (table order), speed, seed."""
    order = {name: i for i, name in enumerate(VIDEO_MODELS)}
    runs = [r for r in R.collect(out_dir, RESULTS) if "seed" in r]
    return sorted(runs, key=lambda r: (order.get(r["model"], 99), r["speed"], r["seed"]))


def _baselines(runs: list[dict]) -> dict:
    """``{speed: {baseline: metrics}}``; every run of a speed scored the same test set."""
    out: dict = {}
    for r in runs:
        mine = out.setdefault(r["speed"], r["baselines"])
        for key in BASELINES:
            if abs(mine[key]["mse"] - r["baselines"][key]["mse"]) > 1e-12 * max(1.0, mine[key]["mse"]):
                raise ValueError(
                    f"runs at speed {r['speed']} were scored on different test sets "
                    f"({r['model']} seed {r['seed']}: {key} MSE differs)"
                )
    return out


def _stats(runs: list[dict]) -> dict:
    return R.summarize(runs, by=("model", "speed"), metrics=tuple(f"metrics.{m}" for m in METRICS))


def acceptance(runs: list[dict]) -> list[dict]:
    """Per model and speed: the MSE ratio to the best baseline, over seeds, and whether every
    seed is below :data:`MARGIN` of every baseline.

    Also the same ratio on the last predicted frame alone (``last_ratio_mean`` /
    ``last_ratio_worst``, against the best baseline on that frame): a model whose predictions
    fade into a blur can pass the 10-frame test on its early frames and still be no better than
    the mean-pixel frame at the end. It is reported, not part of ``passed`` (the issue's test).
    """
    base = _baselines(runs)
    out = []
    for (model, speed), cell in _stats(runs).items():
        best = min(base[speed][k]["mse"] for k in BASELINES)
        best_last = min(base[speed][k]["mse_per_frame"][-1] for k in BASELINES)
        mine = [r for r in runs if (r["model"], r["speed"]) == (model, speed)]
        ratios = [r["metrics"]["mse"] / best for r in mine]
        last = [r["metrics"]["mse_per_frame"][-1] / best_last for r in mine]
        out.append(
            {
                "model": model,
                "speed": speed,
                "mse": cell["metrics.mse"],
                "best_baseline": best,
                "ratio_mean": sum(ratios) / len(ratios),
                "ratio_worst": max(ratios),
                "passed": max(ratios) <= MARGIN,
                "last_ratio_mean": sum(last) / len(last),
                "last_ratio_worst": max(last),
            }
        )
    return out


def _pairs(models: set) -> list[tuple[str, str]]:
    """(a, b) pairs whose difference a - b the comparison table reports."""
    pairs = [(a, c) for a in ("arma-lstm", "dilated-arma-lstm") for c in ("convlstm3", "convlstm5", "dilated-convlstm")]
    # every Table 4 model has a base; a None would drop out at the filter below anyway
    pairs += [(n, base) for n in TABLE4_MODELS if (base := VIDEO_MODELS[n].base) is not None]
    pairs += [("nonlocal-arma-lstm", "nonlocal-convlstm3"), ("nonlocal-arma-lstm", "nonlocal-convlstm5")]
    return [(a, b) for a, b in pairs if a in models and b in models]


def comparisons(runs: list[dict]) -> list[dict]:
    """Differences ``a - b`` of the mean PSNR, SSIM and MSE between model pairs at each speed.

    Each entry: ``a``, ``b``, ``speed``, and per metric a
    :class:`arma_experiments.results.Comparison` (difference, its standard error, and whether it
    exceeds two standard errors).
    """
    stats = _stats(runs)
    out = []
    for a, b in _pairs({r["model"] for r in runs}):
        for speed in sorted({r["speed"] for r in runs}):
            if (a, speed) in stats and (b, speed) in stats:
                cells = {
                    m: R.compare(stats[(a, speed)][f"metrics.{m}"], stats[(b, speed)][f"metrics.{m}"])
                    for m in ("psnr", "ssim", "mse")
                }
                out.append({"a": a, "b": b, "speed": speed, **cells})
    return out


def _label(model: str) -> str:
    return VIDEO_MODELS[model].label if model in VIDEO_MODELS else BASELINES[model]


def _fmt(stat: R.Stat, digits: int, full: int) -> str:
    """``R.format_stat``, marked ``(n=k)`` when the cell has fewer than ``full`` seeds."""
    return R.format_stat(stat, digits, show_n=stat.n < full)


def _table3(runs: list[dict], models: list[str], speeds: list) -> str:
    stats, base = _stats(runs), _baselines(runs)
    full = len({r["seed"] for r in runs})
    params = {r["model"]: r["params"] for r in runs}
    header = ["Model", "K", "dil.", "AR", "params"]
    for s in speeds:
        header += [f"{s:g}x PSNR", f"{s:g}x SSIM", f"{s:g}x SSIM(L=2)"]
    rows = []
    for name in models:
        spec = VIDEO_MODELS[name]
        row = [spec.label, spec.kernel_size, spec.dilation, "1/axis" if spec.arma else "-", f"{params[name]:,}"]
        for s in speeds:
            cell = stats.get((name, s))
            row += (
                [
                    _fmt(cell["metrics.psnr"], 2, full),
                    _fmt(cell["metrics.ssim"], 3, full),
                    _fmt(cell["metrics.ssim_dr2"], 3, full),
                ]
                if cell
                else ["-"] * 3
            )
        rows.append(row)
    for key, label in BASELINES.items():
        row = [label, "-", "-", "-", "0"]
        for s in speeds:
            m = base[s][key]
            row += [f"{m['psnr']:.2f}", f"{m['ssim']:.3f}", f"{m['ssim_dr2']:.3f}"]
        rows.append(row)
    return R.markdown_table(header, rows)


def _mse_table(runs: list[dict], speeds: list) -> tuple[str, bool]:
    acc = {(a["model"], a["speed"]): a for a in acceptance(runs)}
    base = _baselines(runs)
    full = len({r["seed"] for r in runs})
    header = ["Model"] + [
        c
        for s in speeds
        for c in (f"{s:g}x MSE (x1e-3)", f"{s:g}x vs best baseline", f"{s:g}x last frame vs best baseline")
    ]
    rows = []
    for name in dict.fromkeys(r["model"] for r in runs):
        row = [_label(name)]
        for s in speeds:
            a = acc.get((name, s))
            if a is None:
                row += ["-", "-", "-"]
                continue
            mse = R.Stat(1e3 * a["mse"].mean, 1e3 * a["mse"].std, a["mse"].n)
            mark = "" if a["passed"] else " (fails)"
            margin = f"{100 * (a['ratio_mean'] - 1):+.0f}% (worst seed {100 * (a['ratio_worst'] - 1):+.0f}%){mark}"
            last = f"{100 * (a['last_ratio_mean'] - 1):+.0f}% (worst seed {100 * (a['last_ratio_worst'] - 1):+.0f}%)"
            row += [_fmt(mse, 2, full), margin, last]
        rows.append(row)
    for key, label in BASELINES.items():
        rows.append(
            [label]
            + [
                c
                for s in speeds
                for c in (f"{1e3 * base[s][key]['mse']:.2f}", "", f"{1e3 * base[s][key]['mse_per_frame'][-1]:.2f}")
            ]
        )
    return R.markdown_table(header, rows), all(a["passed"] for a in acc.values())


def _comparison_table(comps: list[dict]) -> str:
    speeds = sorted({c["speed"] for c in comps})
    header = ["a - b"] + [f"{s:g}x {m}" for s in speeds for m in ("PSNR", "SSIM", "MSE (x1e-3)")]
    rows = []
    for a, b in dict.fromkeys((c["a"], c["b"]) for c in comps):
        row = [f"{_label(a)} - {_label(b)}"]
        for s in speeds:
            c = next((c for c in comps if (c["a"], c["b"], c["speed"]) == (a, b, s)), None)
            for m, scale, digits in (("psnr", 1, 2), ("ssim", 1, 3), ("mse", 1e3, 2)):
                if c is None:
                    row.append("-")
                    continue
                d = c[m]
                star = " *" if d.significant else ""
                spread = f" ± {scale * d.se:.{digits}f}" if d.se == d.se else " (1 seed: no SE)"
                row.append(f"{scale * d.difference:+.{digits}f}{spread}{star}")
        rows.append(row)
    return R.markdown_table(header, rows)


def _times_table(runs: list[dict]) -> str:
    rows = []
    for name in dict.fromkeys(r["model"] for r in runs):
        mine = [r for r in runs if r["model"] == name]
        train = R.stat(r["train_seconds"] / 60 for r in mine)
        ev = R.stat(r["eval_seconds"] / 60 for r in mine)
        steps = sorted({r["steps"] for r in mine})
        stopped = sum(r["stopped_by_budget"] for r in mine)
        rows.append(
            [_label(name), len(mine), "/".join(map(str, steps)), R.format_stat(train, 1), R.format_stat(ev, 2), stopped]
        )
    return R.markdown_table(["Model", "runs", "steps", "train min per run", "eval min per run", "budget stops"], rows)


def _invocations(out_dir: Path) -> list[dict]:
    path = out_dir / INVOCATIONS
    return json.loads(path.read_text()) if path.is_file() else []


def record_invocation(out_dir: str | os.PathLike, entry: dict) -> None:
    """Append one command's wall time (and what it ran) to ``out_dir / invocations.json``."""
    out_dir = Path(out_dir)
    R.write_json(_invocations(out_dir) + [entry], out_dir / INVOCATIONS)


def _paper_rows(models: list[str], speeds: list) -> str:
    header = ["Model", "params"] + [c for s in speeds for c in (f"{s:g}x PSNR", f"{s:g}x SSIM")]
    rows = []
    for name in models:
        spec = VIDEO_MODELS[name]
        cells = []
        for s in speeds:
            v = spec.paper_table3.get(s)
            cells += [f"{v[0]:.2f}", f"{v[1]:.3f}"] if v else ["-", "-"]
        rows.append([spec.label, f"{spec.paper_params}M" if spec.paper_params else "-"] + cells)
    return R.markdown_table(header, rows)


def _training(runs: list[dict]) -> str:
    """``"training: 12 epochs x 50 steps at 1x, 18 epochs x 50 steps at 3x"`` (the recipe may
    differ between speeds, never between the models and seeds of one speed's comparison)."""
    said = []
    for speed in sorted({r["speed"] for r in runs}):
        kinds = sorted(
            {(r["config"]["epochs"], r["steps"] // max(r["epochs_completed"], 1)) for r in runs if r["speed"] == speed}
        )
        said.append(" or ".join(f"{e} epochs x {k} steps" for e, k in kinds) + f" at {speed:g}x")
    return "training: " + ", ".join(said)


def _markdown(out_dir: Path, runs: list[dict]) -> str:
    cfg = runs[0]["config"]
    speeds = sorted({r["speed"] for r in runs})
    t3 = [m for m in TABLE3_MODELS if any(r["model"] == m for r in runs)]
    t4 = [m for m in TABLE4_MODELS if any(r["model"] == m for r in runs)]
    seeds = sorted({r["seed"] for r in runs})
    mse_md, passed = _mse_table(runs, speeds)
    parts = [
        "# Video prediction on Moving-MNIST-2\n",
        (
            f"{cfg['canvas_size']}x{cfg['canvas_size']} canvas, {cfg['digit_size']}x{cfg['digit_size']} "
            f"digits, {cfg['input_frames']} -> {cfg['future_frames']} frames; network {cfg['blocks']} "
            f"blocks x {cfg['cells_per_block']} cell(s) x {cfg['hidden']} channels (skip stride "
            f"{cfg['skip_stride']}); loss {cfg['loss']}; {_training(runs)}; {cfg['test_size']} test "
            "sequences (MNIST test "
            f"digits), the same for every model and seed. Every model cell: mean ± std over seeds "
            f"{seeds} (n=k where a cell has fewer). Metrics averaged over the predicted frames; "
            "SSIM: 7x7 uniform window, data range 1; SSIM(L=2): data range 2, the convention of "
            "the paper's SSIM values; a frame "
            f"reproduced exactly scores {psnr_ceiling(cfg['canvas_size'], cfg['canvas_size']):.1f} dB "
            "PSNR (one 8-bit step in one pixel), not inf.\n"
        ),
        "## Table 3\n",
        _table3(runs, t3 or t4, speeds),
        (
            f"\n## MSE over the predicted frames (acceptance: every seed of every model at least "
            f"{100 * (1 - MARGIN):.0f}% below every baseline: {'met' if passed else 'NOT met'})\n"
        ),
        mse_md,
    ]
    comps = comparisons(runs)
    if comps:
        parts += [
            (
                "\n## Differences between models (a - b): mean ± standard error of the "
                "difference; * = exceeds two standard errors\n"
            ),
            _comparison_table(comps),
        ]
    if t4:
        parts += [
            "\n## Table 4 (non-local variants, two non-local blocks)\n",
            _table3(runs, t4, [s for s in speeds if any(r["speed"] == s for r in runs if r["model"] in t4)]),
        ]
    fig6 = out_dir / "fig6.json"
    if fig6.is_file():
        parts += ["\n## Figure 6: learned AR coefficients\n", _fig6_table(json.loads(fig6.read_text()))]
    parts += ["\n## Run times\n", _times_table(runs)]
    inv = _invocations(out_dir)
    if inv:
        rows = [
            [e.get("command", ""), e["runs_trained"], e["jobs"], f"{e['wall_seconds'] / 60:.1f}", e.get("date", "")]
            for e in inv
        ]
        parts += [
            "\nWall time of each invocation:\n",
            R.markdown_table(["command", "runs trained", "parallel processes", "wall min", "date"], rows),
        ]
    parts += [
        "\n## The paper's numbers (64x64, 500 epochs; SSIM with data range 2)\n",
        _paper_rows(t3 + t4, [s for s in speeds if float(s).is_integer()]),
    ]
    return "\n".join(parts)


def _fig6_table(summary: list[dict]) -> str:
    rows = [
        [
            _label(s["model"]),
            f"{s['speed']:g}x",
            s["runs"],
            R.format_stat(R.Stat(*s["mean_abs_sum"]), 3),
            R.format_stat(R.Stat(*s["max_abs_sum"]), 3),
            R.format_stat(R.Stat(*s["frac_gt_half"]), 3),
        ]
        for s in summary
    ]
    return R.markdown_table(["Model", "speed", "runs", "mean abs(f-1 + f1)", "max abs(f-1 + f1)", "share > 0.5"], rows)


def _csv_rows(runs: list[dict]) -> tuple[list, list]:
    stats = _stats(runs)
    nf = len(runs[0]["metrics"]["psnr_per_frame"])
    header = ["model", "label", "speed", "seeds", "params"]
    header += [f"{m}_{x}" for m in METRICS for x in ("mean", "std")]
    header += [f"{m}_t{k + 1}" for m in ("psnr", "ssim", "mse") for k in range(nf)]
    rows = []
    for (model, speed), cell in stats.items():
        mine = [r for r in runs if (r["model"], r["speed"]) == (model, speed)]
        row = [model, _label(model), speed, cell["metrics.mse"].n, mine[0]["params"]]
        row += [v for m in METRICS for v in (cell[f"metrics.{m}"].mean, cell[f"metrics.{m}"].std)]
        for m in ("psnr", "ssim", "mse"):
            row += [sum(r["metrics"][f"{m}_per_frame"][k] for r in mine) / len(mine) for k in range(nf)]
        rows.append(row)
    for speed, base in _baselines(runs).items():
        for key in BASELINES:
            m = base[key]
            row = [key, BASELINES[key], speed, 0, 0]
            row += [v for k in METRICS for v in (m[k], 0.0)]
            row += [m[f"{k}_per_frame"][t] for k in ("psnr", "ssim", "mse") for t in range(nf)]
            rows.append(row)
    return header, rows


def _write_csvs(out_dir: Path, runs: list[dict]) -> list[Path]:
    header, rows = _csv_rows(runs)
    paths = [R.write_csv(out_dir / "results.csv", header, rows)]
    run_rows = [
        [r["model"], r["speed"], r["seed"], r["params"], r["steps"]]
        + [r["metrics"][m] for m in METRICS]
        + [r["baselines"][k]["mse"] for k in BASELINES]
        + [r["train_seconds"], r["eval_seconds"]]
        for r in runs
    ]
    paths.append(
        R.write_csv(
            out_dir / "runs.csv",
            [
                "model",
                "speed",
                "seed",
                "params",
                "steps",
                *METRICS,
                *(f"{k}_mse" for k in BASELINES),
                "train_seconds",
                "eval_seconds",
            ],
            run_rows,
        )
    )
    comp_rows = [
        [c["a"], c["b"], c["speed"], m, c[m].difference, c[m].se, c[m].significant]
        for c in comparisons(runs)
        for m in ("psnr", "ssim", "mse")
    ]
    paths.append(
        R.write_csv(
            out_dir / "comparisons.csv", ["a", "b", "speed", "metric", "difference", "se", "exceeds_2se"], comp_rows
        )
    )
    return paths


def write_report(out_dir: str | os.PathLike, invocation: dict | None = None) -> list[Path]:
    """Write the tables and figures of every run in ``out_dir``; returns the paths (none: no runs).

    ``invocation`` (``command``, ``runs_trained``, ``jobs``, ``wall_seconds``), when given, is
    appended to ``invocations.json`` first, so the tables list the wall time of every command.
    """
    from .figures import comparison_figures, curves_figure, fig6_figure

    out_dir = Path(out_dir)
    runs = load_runs(out_dir)
    if not runs:
        return []
    if invocation is not None:
        record_invocation(out_dir, {**invocation, "date": _now()})
    paths = [curves_figure(out_dir, runs), *comparison_figures(out_dir, runs)]
    paths += fig6_figure(out_dir, runs)
    md = out_dir / "results.md"
    md.write_text(_markdown(out_dir, runs))
    return [md, *_write_csvs(out_dir, runs), *paths]


def _now() -> str:
    import datetime

    return datetime.datetime.now().isoformat(timespec="seconds")


def run_dir_of(out_dir: Path, r: dict) -> Path:
    """The directory of the run whose results are ``r``."""
    return run_directory(out_dir, r["model"], r["speed"], r["seed"])
