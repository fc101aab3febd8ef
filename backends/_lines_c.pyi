"""Type stub of the compiled line solver (``backends/_lines_c.c``); see :mod:`arma_core.backends._lines`."""

from typing import Literal, overload

from typing_extensions import Buffer

STRIP: int
STRIP_MAX_N: int
CIRCULAR: int
ZEROS: int
REFLECT: int
REPLICATE: int
#: buffers from this size up are advised by advise_hugepages
HUGE_MIN: int
#: the work (multiply-adds) per thread from which a call without a runner starts threads
OWN_THREAD_WORK: int
#: the C interface for compiled callers (a PyCapsule holding backends/_lines_c_api.h's LinesCApi)
_C_API: object
#: 1 when the 8-lane loops run as 64-byte vectors (AVX-512F, or ARMA_LINES_WIDE=1 at import), 0 as two halves
LANES_WIDE: int

@overload
def plan(
    taps: Buffer,
    C: int,
    k: int,
    Q: int,
    sizes: tuple[int, ...],
    dilation: int,
    boundary: int,
    transposed: Literal[0, 1],
    threads: int,
    /,
) -> bytes: ...
@overload
def plan(
    taps: Buffer,
    C: int,
    k: int,
    Q: int,
    sizes: tuple[int, ...],
    dilation: int,
    boundary: int,
    transposed: Literal[2],
    threads: int,
    /,
) -> tuple[bytes, bytes]: ...
def solve(
    src: Buffer, dst: Buffer, plan: bytes, P: int, src_f32: bool, dst_f32: bool, rev: bool, threads: int, /
) -> None: ...
def vjp(
    y: Buffer,
    g: Buffer,
    w: Buffer,
    gtaps: Buffer,
    plan: bytes,
    P: int,
    f32: bool,
    adjoint: bool,
    need_taps: bool,
    threads: int,
    /,
) -> None: ...
def accurate(taps64: Buffer, zeros: bool, max_spread: float, /) -> bool: ...
def taps_facts(taps: Buffer, f32: bool, /) -> int: ...
def reparam_strip(theta: Buffer, t1: Buffer, taps: Buffer, jac: Buffer, f32: bool, /) -> None: ...
def theta_grad(gtaps: Buffer, jac: Buffer, out: Buffer, f32: bool, /) -> None: ...
def advise_hugepages(ptr: int, nbytes: int, /) -> None: ...
def set_work32(flag: bool, /) -> bool: ...
def set_dense_max(n: int, /) -> int: ...
