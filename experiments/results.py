"""Result tables over seeds, shared by every experiment: mean +- standard deviation, and which
differences exceed two standard errors.

Every run writes one JSON record (:func:`write_json`); :func:`collect` reads a directory of
them back, :func:`summarize` groups them (e.g. by model and speed) and reduces each metric over
the seeds, :func:`compare` says whether two groups differ by more than two standard errors of
the difference, and :func:`markdown_table` / :func:`write_csv` write what the docs show.

Conventions: the standard deviation is the sample one (``ddof=1``; 0 for a single seed), the
standard error of a mean is ``std / sqrt(n)``, and two means differ "by more than two standard
errors" when ``|m_a - m_b| > 2 sqrt(se_a^2 + se_b^2)`` (about a 95% two-sided test for
normal errors; with 3 seeds it is a screening rule, not a proof, and the docs say so).

Examples
--------
>>> rows = [{"model": "a", "seed": s, "mse": v} for s, v in enumerate([1.0, 1.1, 0.9])]
>>> rows += [{"model": "b", "seed": s, "mse": v} for s, v in enumerate([2.0, 2.1, 1.9])]
>>> stats = summarize(rows, by=("model",), metrics=("mse",))
>>> stats[("a",)]["mse"].mean, stats[("a",)]["mse"].n
(1.0, 3)
>>> compare(stats[("a",)]["mse"], stats[("b",)]["mse"]).significant
True
>>> print(format_stat(stats[("b",)]["mse"], digits=2))
2.00 ± 0.10
"""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "Stat",
    "Comparison",
    "stat",
    "summarize",
    "compare",
    "format_stat",
    "markdown_table",
    "write_csv",
    "write_json",
    "collect",
]


@dataclass(frozen=True)
class Stat:
    """Mean, sample standard deviation and count of one metric over seeds."""

    mean: float
    std: float
    n: int

    @property
    def sem(self) -> float:
        """Standard error of the mean, ``std / sqrt(n)``."""
        return self.std / math.sqrt(self.n) if self.n > 0 else math.nan


@dataclass(frozen=True)
class Comparison:
    """``a - b`` with its standard error and whether it exceeds two of them."""

    difference: float
    se: float
    significant: bool


def stat(values: Iterable[float]) -> Stat:
    """:class:`Stat` of ``values`` (non-finite values are kept: they make the mean non-finite)."""
    v = [float(x) for x in values]
    n = len(v)
    if n == 0:
        return Stat(math.nan, math.nan, 0)
    mean = math.fsum(v) / n
    std = math.sqrt(math.fsum((x - mean) ** 2 for x in v) / (n - 1)) if n > 1 else 0.0
    return Stat(mean, std, n)


def _get(row: Mapping[str, Any], key: str) -> Any:
    """``row[key]``, where ``key`` may be a dotted path into nested dicts (``"metrics.mse"``)."""
    value: Any = row
    for part in key.split("."):
        value = value[part]
    return value


def summarize(
    rows: Iterable[Mapping[str, Any]], by: Sequence[str], metrics: Sequence[str]
) -> dict[tuple, dict[str, Stat]]:
    """Group ``rows`` by the values of ``by`` and reduce each metric over each group.

    Parameters
    ----------
    rows : iterable of dict
        One per run (seed); keys may be dotted paths into nested dicts.
    by : sequence of str
        The grouping keys, e.g. ``("model", "speed")``.
    metrics : sequence of str
        The keys to reduce; a row without one is skipped for that metric.

    Returns
    -------
    dict
        ``{group values tuple: {metric: Stat}}`` in first-seen group order.
    """
    groups: dict[tuple, list[Mapping[str, Any]]] = {}
    for row in rows:
        groups.setdefault(tuple(_get(row, k) for k in by), []).append(row)
    out: dict[tuple, dict[str, Stat]] = {}
    for key, members in groups.items():
        cells = {}
        for m in metrics:
            values = []
            for r in members:
                try:
                    values.append(_get(r, m))
                except (KeyError, TypeError):
                    continue
            cells[m] = stat(v for v in values if v is not None)
        out[key] = cells
    return out


def compare(a: Stat, b: Stat) -> Comparison:
    """Whether the means of ``a`` and ``b`` differ by more than two standard errors. With fewer
    than two values on either side there is no standard error: ``se`` is NaN and the difference
    is never called significant."""
    diff = a.mean - b.mean
    if a.n < 2 or b.n < 2:
        return Comparison(diff, math.nan, False)
    se = math.sqrt(a.sem**2 + b.sem**2)
    return Comparison(diff, se, bool(abs(diff) > 2 * se))


def format_stat(s: Stat, digits: int = 3, *, show_n: bool = False) -> str:
    """``"mean ± std"`` (with ``" (n=3)"`` when ``show_n``); ``"n/a"`` for no values; one value
    has no spread: ``"mean (n=1)"``."""
    if s.n == 0:
        return "n/a"
    if s.n == 1:
        return f"{s.mean:.{digits}f} (n=1)"
    text = f"{s.mean:.{digits}f} ± {s.std:.{digits}f}"
    return text + (f" (n={s.n})" if show_n else "")


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A GitHub Markdown table (cells converted with ``str``)."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def write_csv(path: str | os.PathLike, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> Path:
    """Write ``rows`` under ``header`` as CSV; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


def write_json(obj: Any, path: str | os.PathLike) -> Path:
    """Write ``obj`` as indented JSON atomically (a reader never sees half a file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=False, default=_jsonable) + "\n")
    os.replace(tmp, path)
    return path


def _jsonable(x: Any) -> Any:
    """numpy scalars and arrays, paths: as JSON values."""
    if hasattr(x, "tolist"):
        return x.tolist()
    if isinstance(x, os.PathLike):
        return os.fspath(x)
    raise TypeError(f"{type(x).__name__} is not JSON serialisable")


def collect(directory: str | os.PathLike, filename: str = "results.json") -> list[dict]:
    """Every ``filename`` under ``directory`` (recursively), parsed, in path order."""
    return [json.loads(p.read_text()) for p in sorted(Path(directory).rglob(filename))]
