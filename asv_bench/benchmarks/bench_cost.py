"""asv benchmarks of the costs users meet first (issue 13; ``benchmarks/cost.py`` has the same
workloads side by side with their goals).

- :class:`CallOverhead`: ``AR2d`` forward + backward on 1x8x8x8, the 3x3 convolution it is
  compared with, and NumPy ``ar_solve`` of that size.
- :class:`Layer`: ``ARMA2d(64, 128, 3)`` and ``Conv2d(64, 128, 3)`` forward + backward;
  :class:`LayerFreedKept` the same with freed memory kept in glibc's heap.
- :class:`Recurrent`, :class:`UNetStep`: one training step of ARMA-LSTM and ConvLSTM at the video
  experiment's CPU size, of the ARMA U-Net and the U-Net at the segmentation experiment's
  (skipped when ``arma_core.nn.models`` has no ``UNet``).
- :class:`SmallPlanes`: the line solver's solve and backward on a U-Net's bottom planes, with
  and without the dense inverses of small planes (``benchmarks/small_planes.py`` side by side).
- :class:`ColdStart`: the first ``ar_solve`` in a fresh interpreter (asv's ``timeraw``).
- :class:`SciPyBaselines`: ``ar_solve`` and ``scipy.signal.lfilter`` / ``scipy.linalg.solve_banded``
  on 64 x 65,536 float64 samples as 64 channels or a batch of one channel.
"""

from __future__ import annotations

import sys
from pathlib import Path

_REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(_REPO / "benchmarks"))


class _Settings:
    timeout = 600
    repeat = (1, 5, 20.0)
    number = 1
    processes = 1


class CallOverhead(_Settings):
    """The fixed cost of one call, 1x8x8x8 float32."""

    params = [["AR2d fwd+bwd", "conv3x3 fwd+bwd", "numpy ar_solve", "numpy ar_solve, new taps"]]
    param_names = ["call"]
    number = 50

    def setup(self, call):
        import numpy as np
        import torch
        from large import conv3x3, theta_like

        import arma_core as ac
        from arma_core.nn import AR2d

        torch.manual_seed(0)
        x = torch.randn(1, 8, 8, 8, requires_grad=True)
        g = torch.randn(1, 8, 8, 8)
        if call.startswith("numpy ar_solve"):
            xn = x.detach().numpy()
            taps = np.asarray(theta_like(AR2d(8)).taps().detach().numpy())
            if call == "numpy ar_solve":
                self.fn = lambda: ac.ar_solve(xn, taps)
            else:  # more distinct coefficients than the functional API keeps: every call builds
                from cost import new_taps_every_call

                self.fn = new_taps_every_call(xn, taps)
        else:
            mod = theta_like(AR2d(8)) if call.startswith("AR2d") else conv3x3(8)

            def fb():
                x.grad = None
                mod(x).backward(g)

            self.fn = fb
        self.fn()

    def time_call(self, call):
        self.fn()


class Layer(_Settings):
    """ARMA2d(64, 128, 3) and Conv2d(64, 128, 3) forward + backward."""

    params = [["4x64x16x16", "16x64x32x32", "8x64x64x64"], ["ARMA2d", "Conv2d"]]
    param_names = ["shape", "layer"]

    def setup(self, shape, layer):
        import torch
        from cost import _randomize_ar

        from arma_core.nn import ARMA2d

        s = tuple(int(v) for v in shape.split("x"))
        torch.manual_seed(0)
        self.m = (
            _randomize_ar(ARMA2d(64, 128, 3, padding=1))
            if layer == "ARMA2d"
            else torch.nn.Conv2d(64, 128, 3, padding=1)
        )
        self.x = torch.randn(s, requires_grad=True)
        self.g = torch.randn((s[0], 128) + s[2:])
        self.time_forward_backward(shape, layer)

    def time_forward_backward(self, shape, layer):
        self.x.grad = None
        self.m.zero_grad(set_to_none=True)
        self.m(self.x).backward(self.g)


class LayerFreedKept(Layer):
    """:class:`Layer` with freed memory kept in glibc's heap (``cost.keep_freed_here``, set in
    this benchmark's own process before anything is built): the layers' cost without the page
    faults of glibc's default settings, as ``make compare``'s "freed memory kept" rows. Skipped
    where the C library is not glibc."""

    def setup(self, shape, layer):
        from cost import keep_freed_here

        if not keep_freed_here():
            raise NotImplementedError("glibc's mallopt is needed to keep freed memory")
        super().setup(shape, layer)


class Recurrent(_Settings):
    """One Adam step of ARMA-LSTM and ConvLSTM at the video experiment's CPU size."""

    params = [["ConvLSTM", "ARMA-LSTM"]]
    param_names = ["network"]

    def setup(self, network):
        import torch
        from cost import _randomize_ar, _training_step, video_case

        from arma_core.nn.models import arma2d_gate

        torch.manual_seed(0)
        make, loss = video_case()
        net = make() if network == "ConvLSTM" else _randomize_ar(make(arma2d_gate()))
        self.step = _training_step(net, torch.optim.Adam(net.parameters(), 1e-3), loss)
        self.step()

    def time_step(self, network):
        self.step()


class UNetStep(_Settings):
    """One Adam step of the ARMA U-Net and the U-Net at the segmentation experiment's CPU size."""

    params = [["U-Net", "ARMA U-Net"]]
    param_names = ["network"]

    def setup(self, network):
        import torch
        from cost import _randomize_ar, _training_step, unet_loss, unet_make

        from arma_core.nn import models

        if not hasattr(models, "UNet"):
            raise NotImplementedError("arma_core.nn.models has no UNet")
        torch.manual_seed(0)
        net = unet_make() if network == "U-Net" else _randomize_ar(unet_make(gate=models.arma2d_gate()))
        self.step = _training_step(net, torch.optim.Adam(net.parameters(), 1e-3), unet_loss())
        self.step()

    def time_step(self, network):
        self.step()


class SmallPlanes(_Settings):
    """``_lines.solve`` and ``_lines.solve_vjp`` (taps' gradient included) of float32 planes of
    the segmentation U-Net's lower levels and of issue 13's 4x64x16x16 layer (its AR part,
    4x128x16x16), ``circular``, one thread: with each axis's dense inverse in the plans (the
    default) and with the recurrences (``set_dense_max(0)``). ``plans``: building both
    directions' plans (what a new filter pays after every optimizer step; 1x8x8x8 is issue 13's
    per-call row)."""

    params = [
        ["4x128x16x16", "16x64x8x8", "16x128x4x4", "1x8x8x8"],
        ["dense inverses", "recurrences"],
        ["solve", "solve_vjp", "plans"],
    ]
    param_names = ["planes", "method", "kernel"]
    number = 20

    def setup(self, planes, method, kernel):
        import numpy as np
        from large import layer_taps

        from arma_core.backends import _lines

        if not _lines.available():
            raise NotImplementedError("the compiled line solver is not built")
        shape = tuple(int(s) for s in planes.split("x"))
        taps = layer_taps(shape[1])
        x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
        g = np.random.default_rng(1).standard_normal(shape).astype(np.float32)
        ext = _lines._ext()
        previous = ext.set_dense_max(16 if method == "dense inverses" else 0)
        if not hasattr(self, "_old"):  # asv may run setup again before teardown
            self._old = previous
        kw = dict(boundary="circular", dilation=1, adjoint=False, cache={}, threads=1)
        y = _lines.solve(x, taps, **kw)  # the plans are built here, under this setting
        if kernel == "plans":
            taps64 = np.ascontiguousarray(taps, dtype=np.float64)
            args = (taps64, *taps64.shape[:3], shape[2:], 1, ext.CIRCULAR, 2, 1)
            self.fn = lambda: ext.plan(*args)
        elif kernel == "solve":
            self.fn = lambda: _lines.solve(x, taps, out=y, **kw)
        else:
            gx = np.empty_like(x)
            self.fn = lambda: _lines.solve_vjp(y, g, taps, need_taps=True, out=gx, **kw)
        self.fn()

    def teardown(self, planes, method, kernel):
        from arma_core.backends import _lines

        _lines._ext().set_dense_max(self._old)

    def time_kernel(self, planes, method, kernel):
        self.fn()


class ColdStart:
    """The first ``ar_solve`` (reflect boundary: the line solver where it is built) in a fresh
    interpreter, after ``import arma_core`` (setup, not timed)."""

    params = [[1, 2, 3]]
    param_names = ["k"]
    timeout = 120
    repeat = (1, 3, 60.0)

    def timeraw_first_solve(self, k):
        shape = {1: (4, 8, 256), 2: (2, 8, 32, 32), 3: (1, 4, 16, 16, 16)}[k]
        setup = (
            "import numpy as np\nimport arma_core as ac\n"
            f"x = np.random.default_rng(0).standard_normal({shape}).astype(np.float32)\n"
            f"taps = np.zeros(({shape[-k - 1]}, {k}, 1, 3), np.float32) + np.array([-0.3, 1.0, -0.4], np.float32)\n"
        )
        return "ac.ar_solve(x, taps, boundary='reflect')", setup


class SciPyBaselines(_Settings):
    """``ar_solve`` against SciPy's filters on 64 x 65,536 float64 samples (zeros boundary)."""

    params = [
        ["lfilter (causal)", "solve_banded (two-sided)"],
        ["64 channels", "batch 64 of one channel"],
        ["ar_solve", "scipy"],
    ]
    param_names = ["baseline", "layout", "implementation"]

    def setup(self, baseline, layout, implementation):
        import numpy as np
        from cost import _scipy_cases

        import arma_core as ac

        kind = "lfilter" if baseline.startswith("lfilter") else "banded"
        for k, lay, x, taps, fn in _scipy_cases(np.random.default_rng(6), 65536, 64):
            if k == kind and lay == layout:
                self.fn = (
                    fn if implementation == "scipy" else (lambda x=x, taps=taps: ac.ar_solve(x, taps, boundary="zeros"))
                )
        self.fn()

    def time_filter(self, baseline, layout, implementation):
        self.fn()
