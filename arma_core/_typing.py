"""The names the public API accepts, as ``Literal`` types and the tuples that validate them."""

from __future__ import annotations

from typing import Literal, get_args

__all__ = ["Boundary", "Method", "Region", "Operation", "BOUNDARIES", "METHODS", "REGIONS"]

#: What ``y[i +- d]`` means outside ``[0, n)`` (the names of ``nn.Conv2d``'s ``padding_mode``).
Boundary = Literal["circular", "zeros", "reflect", "replicate"]
#: How an AR system is solved (``"auto"``: the fastest exact one, :mod:`arma_core.capabilities`).
Method = Literal["auto", "fft", "dense", "lines"]
#: The stable region a reparameterization maps onto.
Region = Literal["strip", "diamond"]
#: The operations the capability table describes.
Operation = Literal["solve", "apply", "conv"]

BOUNDARIES: tuple[Boundary, ...] = get_args(Boundary)
METHODS: tuple[Method, ...] = get_args(Method)
REGIONS: tuple[Region, ...] = get_args(Region)
