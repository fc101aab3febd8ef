"""U-Net / ARMA U-Net / non-local variants (Table 2) and the flat segmentation networks."""

import pytest

torch = pytest.importorskip("torch")

from arma_core.nn import ARMA2d, armafy
from arma_core.nn.models import (
    UNET_ARMAFY_EXCLUDE,
    NonLocalBlock2d,
    UNet,
    arma2d_gate,
    nonlocal_unet,
    unet,
)


def count(model):
    return sum(p.numel() for p in model.parameters())


def test_full_width_parameter_counts_match_the_official_code():
    # notes/official-code.md: 34,527,041 and 34,554,433 (Table 2 prints 3.453M / 3.455M)
    plain, arma = unet(), unet(arma=True)
    assert count(plain) == 34_527_041
    assert count(arma) == 34_554_433
    # every 3 x 3 convolution is ARMA (4 AR parameters per output channel), the 1 x 1 head is not
    convs = [m for m in arma.modules() if isinstance(m, torch.nn.Conv2d)]
    assert sum(isinstance(m, ARMA2d) for m in convs) == len(convs) - 1 == 22
    assert type(arma.head) is torch.nn.Conv2d


def test_nonlocal_unet_adds_one_block_at_the_bottom_and_starts_as_the_unet():
    torch.manual_seed(0)
    plain = UNet(1, 3, widths=(4, 8, 16))
    nl = nonlocal_unet(1, 3, widths=(4, 8, 16))
    blocks = [m for m in nl.modules() if isinstance(m, NonLocalBlock2d)]
    assert len(blocks) == 1 and blocks[0].channels == 16
    assert count(nl) - count(plain) == count(blocks[0])
    missing, unexpected = nl.load_state_dict(plain.state_dict(), strict=False)
    assert not unexpected and all(k.startswith("nonlocal_blocks.") for k in missing)
    x = torch.randn(2, 1, 16, 16)
    plain.eval(), nl.eval()
    torch.testing.assert_close(nl(x), plain(x))  # the block's output projection starts at zero


def test_armafy_of_the_unet_is_the_arma_unet():
    torch.manual_seed(0)
    plain = nonlocal_unet(2, 3, widths=(4, 8, 16)).eval()
    converted = armafy(plain, exclude=UNET_ARMAFY_EXCLUDE)
    built = nonlocal_unet(2, 3, widths=(4, 8, 16), arma=True)
    assert count(converted) == count(built)
    assert [type(m).__name__ for m in converted.modules()] == [type(m).__name__ for m in built.modules()]
    x = torch.randn(2, 2, 16, 16)
    torch.testing.assert_close(converted(x), plain(x), rtol=1e-5, atol=1e-5)  # AR starts at identity


def test_arma_unet_trains_its_ar_coefficients():
    torch.manual_seed(0)
    net = UNet(1, 1, widths=(4, 8, 16), conv=arma2d_gate(ar_init=0.5))
    net(torch.randn(2, 1, 16, 16)).square().mean().backward()
    grads = [m.ar.theta.grad for m in net.modules() if isinstance(m, ARMA2d)]
    assert len(grads) == 12 and all(g is not None and g.abs().sum() > 0 for g in grads)


def test_unet_bad_arguments_name_the_argument():
    with pytest.raises(ValueError, match="widths"):
        UNet(1, 1, widths=(4, 0))
    with pytest.raises(ValueError, match="nonlocal_levels"):
        UNet(1, 1, widths=(4, 8), nonlocal_levels=(2,))
    with pytest.raises(ValueError, match="in_channels"):
        UNet(0, 1)
    with pytest.raises(ValueError, match="multiples of 4"):
        UNet(1, 1, widths=(4, 8, 16))(torch.zeros(1, 1, 18, 16))
    with pytest.raises(TypeError, match="arma=False"):
        unet(ar_init=0.5)
    # the bottom of a 3-level ARMA U-Net on 8 x 8 inputs is 2 x 2, too small for a length-3 AR factor
    with pytest.raises(ValueError, match="ARMA2d"):
        unet(1, 1, (4, 8, 16), arma=True)(torch.zeros(1, 1, 8, 8))


def test_flat_network_receptive_field():
    from arma_experiments.segment.models import build_model

    x = torch.randn(1, 1, 41, 41, requires_grad=True)
    for name, rf in (("conv3", 13), ("conv5", 25), ("dilated-conv3", 25)):
        net = build_model(name, in_channels=1, out_channels=11, depth=6, width=4).eval()
        assert net.receptive_field == rf
        (g,) = torch.autograd.grad(net(x)[0, :, 20, 20].sum(), x)
        rows = torch.nonzero(g[0, 0].abs().sum(1)).flatten()
        assert int(rows.max() - rows.min()) + 1 == rf
    arma = build_model("arma3", in_channels=1, out_channels=11, depth=6, width=8).eval()
    with torch.no_grad():  # move the AR filters off the identity
        for m in arma.modules():
            if isinstance(m, ARMA2d):
                m.ar.theta[..., 1].fill_(-0.5)
    (g,) = torch.autograd.grad(arma(x)[0, :, 20, 20].sum(), x)
    rows = torch.nonzero(g[0, 0].abs().sum(1)).flatten()
    cols = torch.nonzero(g[0, 0].abs().sum(0)).flatten()
    assert len(rows) == len(cols) == 41  # input pixels in every row and column reach the output pixel
