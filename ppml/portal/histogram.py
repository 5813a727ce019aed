"""A histogram of predictions as plain geometry, which the page draws as inline SVG: no plotting
library, no image, no script."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

WIDTH, HEIGHT = 640, 260
#: Room for the axes' labels: left, right, top, bottom.
MARGIN = (48, 48, 12, 40)
MAX_BINS = 30


@dataclass
class Bar:
    x: float
    y: float
    width: float
    height: float
    low: float
    high: float
    count: int


@dataclass
class Histogram:
    """Bars and axis ticks in SVG user units (``width`` × ``height``, y downwards)."""

    width: int
    height: int
    bars: list = field(default_factory=list)
    x_ticks: list = field(default_factory=list)  # (x, value)
    y_ticks: list = field(default_factory=list)  # (y, count)
    baseline: float = 0.0
    left: float = 0.0
    right: float = 0.0


def bin_count(n: int) -> int:
    """Sturges' rule, at most :data:`MAX_BINS`."""
    return max(1, min(MAX_BINS, math.ceil(math.log2(n)) + 1 if n > 1 else 1))


def histogram(values, bins: int | None = None, width: int = WIDTH, height: int = HEIGHT) -> Histogram | None:
    """Equal-width bins over ``values`` (None if there are none). All-equal values get one
    bar."""
    values = [v for v in values if math.isfinite(v)]
    if not values:
        return None
    bins = bins or bin_count(len(values))
    lo, hi = min(values), max(values)
    if hi == lo:
        bins = 1
        lo, hi = lo - 0.5, hi + 0.5
    span = (hi - lo) / bins
    counts = [0] * bins
    for v in values:
        counts[min(bins - 1, int((v - lo) / span))] += 1
    left, right, top, bottom = MARGIN[0], width - MARGIN[1], MARGIN[2], height - MARGIN[3]
    scale_x = (right - left) / bins
    peak = max(counts)
    scale_y = (bottom - top) / peak
    chart = Histogram(width, height, baseline=bottom, left=left, right=right)
    for i, count in enumerate(counts):
        h = count * scale_y
        chart.bars.append(Bar(left + i * scale_x + 1, bottom - h, max(scale_x - 2, 1), h, lo + i * span,
                              lo + (i + 1) * span, count))
    ticks = min(bins, 4)
    chart.x_ticks = [(left + (right - left) * k / ticks, lo + (hi - lo) * k / ticks) for k in range(ticks + 1)]
    step = max(1, math.ceil(peak / 4))
    chart.y_ticks = [(bottom - c * scale_y, c) for c in range(0, peak + 1, step)]
    return chart
