"""Per-library kernels: what is particular to an array library (installed as ``arma_core.backends``).

Which kernel runs for a call is decided by one table, :mod:`arma_core.capabilities`; a
backend module only provides kernels (functions named in the table's ``kernel`` column) and
never calls back into the public functions (the dask kernels map the chunk library's kernel
over blocks). Modules are imported when their row is first used, so ``import arma_core`` never
imports torch, cupy, dask or scipy.

- :mod:`.numpy_scipy`: the compiled line solver and ``scipy.fft`` for numpy arrays;
- :mod:`.torch`: autograd (Theorem 4), the line solver on CPU tensors, ``F.conv*d``;
- :mod:`.dask`: the chunk-wise map;
- :mod:`._lines` / ``_lines_c``: the line solver itself (a C extension built by the install
  step, optional);
- :mod:`._fourier`: the Fourier-domain backward of the ``fft`` method.

CuPy, JAX, array-api-strict and any other array-API library run the generic kernels of the
core (:func:`arma_core.solve.fft_kernel`, :func:`arma_core.solve.dense_kernel`,
:func:`arma_core.apply.apply_kernel`, :func:`arma_core.conv.generic_kernel`).

The core names a backend may use (the internal API; anything else may change):

- kernels and math: ``arma_core.solve`` (``fft_kernel``, ``dense_kernel``, ``denominator``,
  ``solve_vjp``, ``taps_vjp``, ``cached``), ``arma_core.apply.apply_kernel``,
  ``arma_core.conv`` (``resolve_padding``, ``PADDING_MODES``), ``arma_core.boundary.source``;
- checks and array facts: ``arma_core._validate.check_finite``,
  ``arma_core._validate.real_dtype_for_precision``, ``arma_core._array`` (``library_name``,
  ``device_kind``, ``to_numpy``);
- the table: ``arma_core.capabilities.resolve`` (for a chunk library's kernel).

A kernel of ``solve`` / ``apply`` is called as
``kernel(xp, x, taps, boundary=, dilation=, adjoint=, cache=)`` with ``x`` in the standard
layout ``(..., C, n_1, ..., n_k)`` and ``taps (C, k, Q, 3)`` (``C`` may be 1: broadcast) of
``x``'s real dtype, both validated; ``cache`` is a dict for taps-dependent precomputation or
None. It returns an array like ``x``.
"""
