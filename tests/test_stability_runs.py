"""Runs, outcomes, reports and the three commands of the stability / classification experiments."""

import csv
import json
import math

import pytest
import torch

from arma_core.nn import ARMA2d
from arma_experiments.stability import classify_cli, figure6, stability_cli
from arma_experiments.stability.monitor import ar_state, layer_sums
from arma_experiments.stability.run import RESULTS, outcome, run_one
from arma_experiments.stability.task import ClassifyTask, RunConfig


def _net(region):
    return torch.nn.Sequential(
        ARMA2d(1, 2, 3, padding=1, ar_region=region), torch.nn.ReLU(), ARMA2d(2, 3, 3, padding=1, ar_region=region)
    )


def test_monitor_sees_a_factor_leave_the_strip():
    net = _net("raw")
    s = ar_state(net)
    assert s == {"min_margin": 1.0, "max_abs_sum": 0.0, "worst_layer": "0", "outside": 0, "finite": True}
    with torch.no_grad():
        net[2].ar.theta[1, 1, 0] = torch.tensor([-0.6, -0.5])  # s = -1.1: outside
        net[0].ar.theta[0, 0, 0] = torch.tensor([0.4, 0.2])  # s = 0.6: inside, margin 0.4
    s = ar_state(net)
    assert s["worst_layer"] == "2" and s["outside"] == 1 and s["max_abs_sum"] == pytest.approx(1.1)
    # |A(w)|^2 = (1 + s c)^2 + d^2 (1 - c^2), c = cos w, smallest at c = -s / (s^2 - d^2) inside [-1, 1]
    sum_, diff = -1.1, -0.1
    assert s["min_margin"] == pytest.approx(math.sqrt(1 + diff**2 - sum_**2 / (sum_**2 - diff**2)), rel=1e-4)
    assert layer_sums(net) == pytest.approx({"0": 0.6, "2": 1.1})
    with torch.no_grad():
        net[0].ar.theta[0, 0, 0, 0] = math.nan
    s = ar_state(net)
    assert not s["finite"] and math.isnan(s["min_margin"])
    # the re-parameterized regions cannot leave the strip, whatever theta is
    net = _net("strip")
    with torch.no_grad():
        net[0].ar.theta.fill_(1e6)
    assert ar_state(net)["outside"] == 0


def test_raw_half_arm_and_config_checks():
    train = _tiny_pair()[0]
    task = ClassifyTask(RunConfig(arm="raw-half", lr=0.1, width=0.125), train, train)
    _, opt = task.build()
    lrs = [(g["lr"], g["weight_decay"], len(g["params"])) for g in opt.param_groups]
    assert lrs[1] == (0.05, pytest.approx(1e-3), 6)  # 6 AR layers; lr * weight decay unchanged
    assert lrs[0][0] == 0.1
    with pytest.raises(ValueError, match="arm must be one of"):
        RunConfig(arm="none")
    with pytest.raises(ValueError, match="optimizer"):
        RunConfig(optimizer="rmsprop")
    with pytest.raises(ValueError, match="epochs"):
        RunConfig(epochs=0)


def _tiny_pair():
    from arma_experiments.stability.data import load_pair

    return load_pair("mnist", train_size=64, test_size=32)


def _result(**kw):
    base = {
        "ar_layers": 2,
        "crossing": None,
        "final_max_abs_sum": 0.2,
        "nonfinite_step": None,
        "nonfinite_output_step": None,
        "test_accuracy": 0.9,
        "majority_accuracy": 0.1,
        "final_loss": 0.3,
    }
    return {**base, **kw}


def test_outcomes_and_reasons():
    assert outcome(_result()) == ("converged", "no AR factor left the strip (largest |f_-1+f_1| 0.2)")
    kind, why = outcome(_result(test_accuracy=0.5))  # below halfway from 0.1 to 1
    assert kind == "stalled" and why.startswith("test accuracy 0.500")
    cross = {"step": 40, "layer": "features.3", "abs_sum": 1.7}
    kind, why = outcome(_result(nonfinite_step=57, crossing=cross))
    assert kind == "non-finite"
    assert why == "loss non-finite at step 57; features.3 left the strip at step 40 (|f_-1+f_1| = 1.7)"
    assert outcome(_result(ar_layers=0))[1] == "no AR filters"


def test_run_one_records_steps_and_resumes(tmp_path):
    config = RunConfig(
        arm="raw",
        width=0.125,
        train_size=64,
        test_size=32,
        eval_size=16,
        batch_size=16,
        steps_per_epoch=2,
        epochs=2,
        lr=0.05,
    )
    result = run_one(config, tmp_path / "r")
    assert result["steps_done"] == 4 and [s["step"] for s in result["steps"]] == [1, 2, 3, 4]
    assert {"loss", "acc", "min_margin", "max_abs_sum", "outside"} <= set(result["steps"][0])
    assert result["steps"][0]["max_abs_sum"] == 0.0  # the first step runs the identity filters
    assert result["ar_layers"] == 6 and len(result["history"]) == 2
    assert json.loads((tmp_path / "r" / RESULTS).read_text())["outcome"] == result["outcome"]
    # the per-run table's "largest in the run" covers the taps after the last step too
    from arma_experiments.stability.report import stability_tables

    during = max(s["max_abs_sum"] for s in result["steps"])
    for final in (result["final_max_abs_sum"], during + 1.0):  # as run; a last update that jumped
        stability_tables([{**result, "final_max_abs_sum": final}], ["raw"], tmp_path / "tables")
        row = next(csv.DictReader((tmp_path / "tables" / "runs.csv").open()))
        assert float(row["max |f_-1+f_1| (run)"]) == pytest.approx(max(during, final), abs=0.006)
    again = run_one(config, tmp_path / "r", resume=True)
    assert again["wall_seconds"] == result["wall_seconds"]  # finished: read back, not retrained
    with pytest.raises(FileExistsError):
        run_one(config, tmp_path / "r")


def test_blow_up_is_seen_and_explained(tmp_path):
    """Raw taps at an absurd learning rate: the run reports the layer that left the strip."""
    config = RunConfig(
        arm="raw",
        width=0.125,
        train_size=64,
        test_size=32,
        eval_size=16,
        batch_size=16,
        steps_per_epoch=4,
        epochs=1,
        lr=50.0,
        dropout=False,
    )
    result = run_one(config, tmp_path / "r")
    assert result["outcome"] in ("non-finite", "stalled")
    if result["crossing"] is not None:
        assert result["crossing"]["layer"] in result["ar_layer_names"]
        assert "left the strip at step" in result["reason"]


@pytest.mark.slow
def test_commands_end_to_end(tmp_path, capsys):
    out = tmp_path / "stab"
    assert stability_cli.main(["--preset", "smoke", "--out", str(out)]) == 0
    report = (out / "report.md").read_text()
    assert "| SGD 0.05 | raw | 1 |" in report and (out / "figure5.png").stat().st_size > 10_000
    assert (out / "margins.png").is_file() and (out / "runs.csv").is_file()
    assert stability_cli.main(["--preset", "smoke", "--out", str(out), "--resume"]) == 0
    if not torch.cuda.is_available():
        assert stability_cli.main(["--preset", "smoke", "--out", str(tmp_path / "gpu"), "--device", "cuda"]) == 2
        assert "cuda" in capsys.readouterr().err
    cls = tmp_path / "cls"
    assert classify_cli.main(["--preset", "smoke", "--models", "vgg11", "--out", str(cls)]) == 0
    text = (cls / "report.md").read_text()
    assert "| vgg11 | strip |" in text and "| majority class |" in text
    fig = tmp_path / "fig6.png"
    assert figure6.main(["--classify", str(cls / "vgg11-*-seed0"), "stability=" + str(out), "--out", str(fig)]) == 0
    summary = json.loads(fig.with_suffix(".json").read_text())
    assert summary["classification"]["checkpoints"] == 1 and summary["stability"]["region"] == "raw"
    assert summary["classification"]["factors"] == 2 * (8 + 16 + 32 + 32 + 64 + 64)
    capsys.readouterr()
    assert figure6.main(["--video", str(tmp_path / "missing")]) == 2
    assert "no such file" in capsys.readouterr().err
    assert figure6.main(["--classify", str(cls / "vgg11-conv-seed0")]) == 2
    assert "no checkpoint with AR parameters" in capsys.readouterr().err


def test_figure6_reads_other_checkpoint_layouts(tmp_path):
    layer = ARMA2d(2, 4, 3, padding=1, ar_region="diamond")
    with torch.no_grad():
        layer.ar.theta.normal_()
    expected = layer.ar.taps().detach().double()
    torch.save(
        {"config": {"ar_region": "diamond"}, "best_model": {"cell.ar.theta": layer.ar.theta.detach()}, "model": {}},
        tmp_path / "video.pt",
    )
    coef = figure6.coefficients(tmp_path / "video.pt")
    assert coef["region"] == "diamond" and coef["layers"] == 1
    torch.testing.assert_close(torch.from_numpy(coef["sum"]), (expected[..., 0] + expected[..., 2]).reshape(-1))
    other = {"cell.ar.theta": torch.zeros_like(layer.ar.theta)}  # last weights; the best come first
    torch.save(
        {
            "model": other,
            "task": {"best": {"epoch": 3, "weights": {"cell.ar.theta": layer.ar.theta.detach()}}},
            "config": {"arm": "diamond"},
        },
        tmp_path / "seg.pt",
    )
    assert figure6.coefficients(tmp_path / "seg.pt")["sum"] == pytest.approx(coef["sum"])
    torch.save({"gate.ar.theta": layer.ar.theta.detach()}, tmp_path / "plain.pt")  # a bare state dict
    assert figure6.coefficients(tmp_path / "plain.pt")["region"] == "strip"
    assert figure6.coefficients(tmp_path / "plain.pt", region="diamond")["sum"] == pytest.approx(coef["sum"])
