"""The Pareto PNG of a plan: what each deployment gives per GPU and per user, and its TTFT.

Top panel: tokens/s/GPU (whole budget) against tokens/s/user, every feasible point faint in its
mode's colour, the SLA-meeting frontier of each mode as a line whose points are marked by backend
(circle trtllm, square sglang, triangle vllm), the winner as a star, the TPOT target as a vertical
dashed line (points right of it meet TPOT: tokens/s/user = 1000 / TPOT) and the request-latency bound
dotted when set. Bottom panel, same x axis: the TTFT of the same points (log scale) with the TTFT
target as a horizontal dashed line (points below it meet TTFT). Every mark is named in the legend
column on the right, so nothing covers the data. When nothing meets the targets, the frontier that
ignores them is drawn dashed and a boxed note says so and which target binds.
"""
from __future__ import annotations

import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from search.plot_canvas import Panel, axes, blend_clouds, dashed, font, legend, marker, nice_ticks, rgb

__all__ = ["SIZE", "ParetoData", "Series", "nice_ticks", "sample", "write_pareto_png"]

MODE_COLORS = {"agg": "#1f77b4", "disagg": "#d62728"}
TPOT_COLOR, TTFT_COLOR = (0, 0, 0), (118, 42, 131)
BACKEND_MARKERS = {"trtllm": "circle", "sglang": "square", "vllm": "triangle"}
SIZE = (1280, 960)                   # pixels: 12.8 x 9.6 in at 100 dpi
LEGEND_X = 935                       # the legend column starts here
TOP_BOX = (105, 78, 905, 560)        # left, top, right, bottom of the throughput panel
TTFT_BOX = (105, 610, 905, 868)      # the TTFT panel under it


@dataclass(frozen=True)
class Series:
    """Points of one mode: tokens/s/user (x), tokens/s/GPU (y), TTFT ms, backend index."""

    x: np.ndarray
    y: np.ndarray
    ttft: np.ndarray
    backend: np.ndarray

    @staticmethod
    def of(x, y, ttft, backend) -> "Series":
        return Series(*(np.asarray(v, dtype=np.float64) for v in (x, y, ttft)), np.asarray(backend, dtype=np.int64))

    def __len__(self) -> int:
        return len(self.x)


@dataclass(frozen=True)
class ParetoData:
    title: str
    tpot_ms: float
    ttft_ms: float
    request_latency_user_tps: float | None       # 1000 / (request latency / osl) when a latency SLA is set
    backends: tuple[str, ...]                      # backend names; Series.backend indexes them
    clouds: dict                                   # mode -> Series of every feasible point (sampled)
    frontiers: dict                                # mode -> Series: the SLA-meeting frontier
    winner: tuple[float, float, float, str] | None  # (x, y, ttft, label)
    missed: dict = field(default_factory=dict)     # mode -> frontier ignoring the targets (nothing met them)
    best: dict = field(default_factory=dict)       # backend -> (x, y, ttft, mode): its best SLA-meeting point
    note: str = ""                                 # the boxed note when nothing meets the targets


def sample(n: int, limit: int = 4000) -> np.ndarray:
    """At most `limit` row indices of n for the background cloud (evenly strided: deterministic)."""
    if n <= limit:
        return np.arange(n)
    return np.linspace(0, n - 1, limit).astype(np.int64)


def _finite(*arrays) -> np.ndarray:
    v = np.concatenate([np.asarray(a, dtype=np.float64).ravel() for a in arrays] or [np.zeros(0)])
    return v[np.isfinite(v)]


def _limits(data: ParetoData):
    series = [*data.clouds.values(), *data.frontiers.values(), *data.missed.values()]
    w = data.winner
    x = _finite(*(s.x for s in series), [1000.0 / data.tpot_ms], [data.request_latency_user_tps or 0.0],
                [w[0]] if w else [])
    y = _finite(*(s.y for s in series), [w[1]] if w else [])
    xlim = (0.0, (float(x.max()) if len(x) else 1.0) * 1.05 or 1.0)
    ylim = (0.0, (float(y.max()) if len(y) else 1.0) * 1.08 or 1.0)
    marks = _finite(*(s.ttft for s in (*data.frontiers.values(), *data.missed.values())), [data.ttft_ms],
                    [w[2]] if w else [])
    cloud = _finite(*(s.ttft for s in data.clouds.values()))
    if len(cloud):
        marks = np.concatenate([marks, np.percentile(cloud, [2, 98])])
    marks = marks[marks > 0]
    lo = float(marks.min()) / 1.6 if len(marks) else 1.0
    hi = float(marks.max()) * 1.6 if len(marks) else 10.0
    return xlim, ylim, (max(lo, 1e-3), max(hi, lo * 10))


def _draw_series(draw, top: Panel, low: Panel, s: Series, color, backends, dash: bool) -> None:
    order = np.argsort(s.x, kind="stable")
    for panel, ys in ((top, s.y[order]), (low, s.ttft[order])):
        px, py = panel.px(s.x[order], ys)
        pts = [(float(a), float(b)) for a, b in zip(px, py, strict=True) if np.isfinite(a) and np.isfinite(b)]
        for a, b in zip(pts, pts[1:], strict=False):
            if dash:
                dashed(draw, a, b, color, (7, 5), width=2)
            else:
                draw.line([a, b], fill=color, width=3)
        keep = panel.inside(px, py)
        for qx, qy, bi in zip(px[keep], py[keep], s.backend[order][keep], strict=True):
            shape = BACKEND_MARKERS.get(backends[bi] if 0 <= bi < len(backends) else "", "circle")
            if dash:
                marker(draw, float(qx), float(qy), shape, (255, 255, 255), r=5.0, outline=color)
            else:
                marker(draw, float(qx), float(qy), shape, color, r=5.0)


def _targets(draw, top: Panel, low: Panel, data: ParetoData) -> None:
    for panel in (top, low):
        x, _ = panel.px(1000.0 / data.tpot_ms, panel.ylim[0])
        dashed(draw, (x, panel.box[1]), (x, panel.box[3]), TPOT_COLOR, (7, 4))
        if data.request_latency_user_tps:
            x, _ = panel.px(data.request_latency_user_tps, panel.ylim[0])
            dashed(draw, (x, panel.box[1]), (x, panel.box[3]), (110, 110, 110), (2, 3))
    _, y = low.px(low.xlim[0], data.ttft_ms)
    if low.box[1] <= y <= low.box[3]:
        dashed(draw, (low.box[0], y), (low.box[2], y), TTFT_COLOR, (7, 4))


def _best(draw, top: Panel, low: Panel, data: ParetoData) -> None:
    """Each backend's best SLA-meeting point, a large mark of its backend's shape."""
    for b, (x, y, ttft, mode) in data.best.items():
        for panel, yv in ((top, y), (low, ttft)):
            px, py = panel.px(x, yv)
            if panel.inside(np.array([px]), np.array([py])).all():
                marker(draw, float(px), float(py), BACKEND_MARKERS.get(b, "circle"),
                       rgb(MODE_COLORS.get(mode, "#808080")), r=10.0)


def _entries(data: ParetoData) -> list[tuple[str, object, str]]:
    out: list[tuple[str, object, str]] = [("What is drawn", None, "title")]
    for mode in data.clouds:
        out.append((f"{mode}: every feasible point", rgb(MODE_COLORS.get(mode, "#808080")), "cloud"))
    for mode, s in data.frontiers.items():
        if len(s):
            out.append((f"{mode} frontier (meets targets)", rgb(MODE_COLORS.get(mode, "#808080")), "line"))
    for mode, s in data.missed.items():
        if len(s):
            out.append((f"{mode}: best, misses a target", rgb(MODE_COLORS.get(mode, "#808080")), "dash"))
    out.append(("Frontier points by backend", None, "title"))
    out += [(b if not data.best or b in data.best else f"{b}: nothing meets the targets", (235, 235, 235),
             BACKEND_MARKERS.get(b, "circle")) for b in data.backends]
    if data.best:
        out.append(("large mark: a backend's best", (235, 235, 235), "big"))
    out.append(("Targets", None, "title"))
    out.append((f"TPOT {data.tpot_ms:g} ms (meets: right)", TPOT_COLOR, "dash"))
    out.append((f"TTFT {data.ttft_ms:g} ms (meets: below)", TTFT_COLOR, "dash"))
    if data.request_latency_user_tps:
        out.append(("request latency (meets: right)", (110, 110, 110), "dot"))
    if data.winner:
        out.append((f"winner: {data.winner[3]}", (255, 215, 0), "star"))
    return out


def _note(draw, origin: tuple[int, int], text: str, fnt) -> None:
    """The boxed note in the legend column, under the legend (never over the data)."""
    lines = textwrap.wrap(text, 30)
    x0, y0 = origin
    h = 24 * len(lines) + 14
    w = SIZE[0] - x0 - 16
    draw.rectangle((x0, y0, x0 + w, y0 + h), fill=(255, 240, 240), outline=(200, 0, 0), width=2)
    for i, line in enumerate(lines):
        draw.text((x0 + 12, y0 + 10 + 24 * i), line, fill=(150, 0, 0), font=fnt)


def write_pareto_png(data: ParetoData, path: Path) -> Path:
    """Draw the plot and write it as a PNG at `path` (returned)."""
    from PIL import Image, ImageDraw

    xlim, ylim, tlim = _limits(data)
    top, low = Panel(TOP_BOX, xlim, ylim), Panel(TTFT_BOX, xlim, tlim, log_y=True)
    small, normal, big = font(14), font(17), font(19)
    img = Image.new("RGB", SIZE, "white")
    axes(img, top, "tokens/s/GPU (whole budget)", (small, normal))
    axes(img, low, "TTFT ms (log)", (small, normal), xlabel="tokens/s/user (= 1000 / TPOT)")
    img = blend_clouds(img, [(panel, s.x, ys, rgb(MODE_COLORS.get(mode, "#808080")))
                             for mode, s in data.clouds.items() for panel, ys in ((top, s.y), (low, s.ttft))])
    draw = ImageDraw.Draw(img)
    draw.text((TOP_BOX[0], 24), data.title, fill="black", font=big, anchor="lm")
    _targets(draw, top, low, data)
    for mode, s in data.missed.items():
        _draw_series(draw, top, low, s, rgb(MODE_COLORS.get(mode, "#808080")), data.backends, dash=True)
    for mode, s in data.frontiers.items():
        _draw_series(draw, top, low, s, rgb(MODE_COLORS.get(mode, "#808080")), data.backends, dash=False)
    _best(draw, top, low, data)
    if data.winner:
        for panel, yv in ((top, data.winner[1]), (low, data.winner[2])):
            px, py = panel.px(data.winner[0], yv)
            if panel.inside(np.array([px]), np.array([py])).all():
                marker(draw, float(px), float(py), "star", (255, 215, 0), r=13.0)
    below = legend(draw, _entries(data), (LEGEND_X, TOP_BOX[1]), normal, line_h=28)
    if data.note:
        _note(draw, (LEGEND_X - 8, below + 16), data.note, normal)
    # RGB at the fastest compression: 24 ms for the README plan's PNG (120 kB), where choosing a 256-colour
    # palette first took 34 ms more than it saved in encoding (73 kB); the plot is written on the plan's
    # critical path (servecast.api._plan._write)
    img.save(path, format="PNG", compress_level=1)
    return Path(path)
