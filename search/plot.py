"""The Pareto PNG: tokens/s/user (x) against tokens/s/GPU (y), aggregated and disaggregated.

All evaluated feasible points are drawn faintly, the SLA-meeting frontier of each mode as a line,
the TPOT target as a vertical dashed line (tokens/s/user = 1000 / TPOT: points right of it meet
TPOT), the request-latency bound dotted when set, and the winner as a star.

Drawn with Pillow (a matplotlib dependency) straight into an RGB array, not with matplotlib: the
matplotlib import alone costs 0.3-0.8 CPU s, more than the whole search, and `servecast plan` has a
one-second budget. The background cloud is alpha-blended with numpy on the covered pixels only
(one np.unique per mode), so thousands of points cost a few milliseconds.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

COLORS = {"agg": "#1f77b4", "disagg": "#d62728"}
CLOUD_ALPHA = 0.15        # per point; overlapping points darken towards the mode's colour
SIZE = (675, 450)         # pixels (7.5 x 5 in at 90 dpi, as before)
MARGIN = (70, 34, 18, 48)  # left, top, right, bottom, pixels


@dataclass(frozen=True)
class ParetoData:
    title: str
    tpot_ms: float
    request_latency_user_tps: float | None       # 1000 / (request latency / osl) when a latency SLA is set
    clouds: dict                                   # mode -> (x, y) arrays of feasible points (sampled)
    frontiers: dict                                # mode -> (x, y) arrays of the SLA-meeting frontier
    winner: tuple[float, float, str] | None        # (x, y, label)


def _rgb(hex_color: str) -> tuple[int, int, int]:
    return tuple(int(hex_color[i:i + 2], 16) for i in (1, 3, 5))


def nice_ticks(lo: float, hi: float, n: int = 6) -> np.ndarray:
    """Round tick positions (1, 2, 2.5, 5 x 10^k steps) covering [lo, hi]."""
    span = max(hi - lo, 1e-9)
    raw = span / n
    mag = 10.0 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    return np.arange(math.ceil(lo / step) * step, hi + step * 1e-6, step)


def _fmt(v: float) -> str:
    return f"{v:,.0f}" if abs(v) >= 10 or v == 0 else f"{v:g}"


class _Canvas:
    """Data-to-pixel mapping of the plot area plus the Pillow image being drawn."""

    def __init__(self, xlim: tuple[float, float], ylim: tuple[float, float]):
        from PIL import Image, ImageDraw, ImageFont

        self.img = Image.new("RGB", SIZE, "white")
        self.draw = ImageDraw.Draw(self.img)
        self.font = _font(ImageFont, 11)
        self.small = _font(ImageFont, 9)
        left, top, right, bottom = MARGIN
        self.box = (left, top, SIZE[0] - right, SIZE[1] - bottom)
        self.xlim, self.ylim = xlim, ylim

    def px(self, x, y):
        x0, y0, x1, y1 = self.box
        fx = (np.asarray(x, dtype=np.float64) - self.xlim[0]) / (self.xlim[1] - self.xlim[0])
        fy = (np.asarray(y, dtype=np.float64) - self.ylim[0]) / (self.ylim[1] - self.ylim[0])
        return x0 + fx * (x1 - x0), y1 - fy * (y1 - y0)


def _font(image_font, size: int):
    try:
        return image_font.load_default(size=size)   # scalable with FreeType
    except (ImportError, OSError, TypeError):        # Pillow without FreeType: the bitmap font
        return image_font.load_default()


def _limits(data: ParetoData) -> tuple[tuple[float, float], tuple[float, float]]:
    xs = [np.asarray(v[0], dtype=np.float64) for v in (*data.clouds.values(), *data.frontiers.values())]
    ys = [np.asarray(v[1], dtype=np.float64) for v in (*data.clouds.values(), *data.frontiers.values())]
    xs.append(np.array([1000.0 / data.tpot_ms]))
    if data.request_latency_user_tps:
        xs.append(np.array([data.request_latency_user_tps]))
    if data.winner:
        xs.append(np.array([data.winner[0]]))
        ys.append(np.array([data.winner[1]]))
    x = np.concatenate(xs)
    y = np.concatenate(ys) if ys else np.array([0.0, 1.0])
    x, y = x[np.isfinite(x)], y[np.isfinite(y)]
    xhi = float(x.max()) if len(x) else 1.0
    yhi = float(y.max()) if len(y) else 1.0
    return (0.0, xhi * 1.05 or 1.0), (0.0, yhi * 1.08 or 1.0)


def _axes(cv: _Canvas, data: ParetoData) -> None:
    from PIL import Image, ImageDraw

    d, (x0, y0, x1, y1) = cv.draw, cv.box
    for t in nice_ticks(*cv.xlim):
        px, _ = cv.px(t, 0.0)
        d.line([(px, y0), (px, y1)], fill=(225, 225, 225))
        d.line([(px, y1), (px, y1 + 4)], fill="black")
        d.text((px, y1 + 6), _fmt(t), fill="black", font=cv.small, anchor="mt")
    for t in nice_ticks(*cv.ylim):
        _, py = cv.px(0.0, t)
        d.line([(x0, py), (x1, py)], fill=(225, 225, 225))
        d.line([(x0 - 4, py), (x0, py)], fill="black")
        d.text((x0 - 6, py), _fmt(t), fill="black", font=cv.small, anchor="rm")
    d.rectangle(cv.box, outline="black")
    d.text(((x0 + x1) / 2, SIZE[1] - 6), "tokens/s/user", fill="black", font=cv.font, anchor="md")
    d.text((SIZE[0] / 2, 6), data.title, fill="black", font=cv.small, anchor="mt")
    label = "tokens/s/GPU (whole budget)"
    w = int(d.textlength(label, font=cv.font)) + 4
    tmp = Image.new("RGB", (w, 16), "white")
    ImageDraw.Draw(tmp).text((2, 1), label, fill="black", font=cv.font)
    rotated = tmp.rotate(90, expand=True)
    cv.img.paste(rotated, (4, int((y0 + y1) / 2 - w / 2)))


def _clouds(cv: _Canvas, clouds: dict) -> None:
    """Alpha-blend 2x2-pixel dots: a pixel covered k times by a mode gets 1 - (1 - alpha)^k of its
    colour. Only the covered pixels are touched (one np.unique per mode), not the whole image."""
    from PIL import Image

    w, h = SIZE
    x0, y0, x1, y1 = cv.box
    rgb = np.asarray(cv.img, dtype=np.uint8).reshape(-1, 3).copy()
    for mode, (x, y) in clouds.items():
        if not len(x):
            continue
        px, py = cv.px(np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64))
        ok = np.isfinite(px) & np.isfinite(py)
        ix, iy = np.round(px[ok]).astype(np.int64), np.round(py[ok]).astype(np.int64)
        ix = np.concatenate([ix, ix + 1, ix, ix + 1])
        iy = np.concatenate([iy, iy, iy + 1, iy + 1])
        inside = (ix > x0) & (ix < x1) & (iy > y0) & (iy < y1)
        pixels, counts = np.unique(iy[inside] * w + ix[inside], return_counts=True)
        cover = (1.0 - (1.0 - CLOUD_ALPHA) ** counts)[:, None]
        color = np.array(_rgb(COLORS.get(mode, "#808080")), dtype=np.float64)
        rgb[pixels] = np.round(rgb[pixels] * (1.0 - cover) + color * cover).astype(np.uint8)
    cv.img = Image.fromarray(rgb.reshape(h, w, 3), "RGB")
    from PIL import ImageDraw

    cv.draw = ImageDraw.Draw(cv.img)


def _vline(cv: _Canvas, x: float, color, dash: tuple[int, int]) -> None:
    px, _ = cv.px(x, 0.0)
    _, y0, _, y1 = cv.box
    y = y0
    while y < y1:
        cv.draw.line([(px, y), (px, min(y + dash[0], y1))], fill=color, width=1)
        y += dash[0] + dash[1]


def _star(cv: _Canvas, x: float, y: float, r: float = 9.0) -> None:
    px, py = cv.px(x, y)
    pts = [(float(px + (r if k % 2 == 0 else r * 0.42) * math.sin(k * math.pi / 5)),
            float(py - (r if k % 2 == 0 else r * 0.42) * math.cos(k * math.pi / 5))) for k in range(10)]
    cv.draw.polygon(pts, fill=(255, 215, 0), outline="black")


def _legend(cv: _Canvas, entries: list[tuple[str, object, str]]) -> None:
    """Entries (label, colour, kind) in a box at the top right; kind: line, dash, dot, star."""
    d = cv.draw
    width = max(int(d.textlength(t, font=cv.small)) for t, _, _ in entries) + 40
    x1, y0 = cv.box[2] - 6, cv.box[1] + 6
    x0 = x1 - width
    d.rectangle((x0, y0, x1, y0 + 14 * len(entries) + 6), fill="white", outline=(180, 180, 180))
    for i, (text, color, kind) in enumerate(entries):
        yy = y0 + 10 + 14 * i
        if kind == "star":
            d.regular_polygon((x0 + 16, yy, 5), 5, fill=(255, 215, 0), outline="black")
        elif kind == "line":
            d.line([(x0 + 6, yy), (x0 + 26, yy)], fill=color, width=2)
        else:
            step = 4 if kind == "dash" else 2
            for xx in range(x0 + 6, x0 + 26, 2 * step):
                d.line([(xx, yy), (xx + step - 1, yy)], fill=color)
        d.text((x0 + 32, yy), text, fill="black", font=cv.small, anchor="lm")


def write_pareto_png(data: ParetoData, path: Path) -> Path:
    """Draw the plot and write it as a PNG at `path` (returned)."""
    cv = _Canvas(*_limits(data))
    _axes(cv, data)
    _clouds(cv, data.clouds)
    entries = []
    for mode, (x, y) in data.frontiers.items():
        if len(x):
            color = _rgb(COLORS.get(mode, "#808080"))
            px, py = cv.px(x, y)
            pts = list(zip(px.tolist(), py.tolist(), strict=True))
            if len(pts) > 1:
                cv.draw.line(pts, fill=color, width=2, joint="curve")
            for qx, qy in pts:
                cv.draw.ellipse((qx - 2.5, qy - 2.5, qx + 2.5, qy + 2.5), fill=color)
            entries.append((f"{mode} frontier (meets SLA)", color, "line"))
    _vline(cv, 1000.0 / data.tpot_ms, (0, 0, 0), (5, 3))
    entries.append((f"TPOT {data.tpot_ms:g} ms", (0, 0, 0), "dash"))
    if data.request_latency_user_tps:
        _vline(cv, data.request_latency_user_tps, (128, 128, 128), (1, 2))
        entries.append(("request-latency bound", (128, 128, 128), "dot"))
    if data.winner:
        x, y, label = data.winner
        _star(cv, x, y)
        entries.append((f"winner: {label}", None, "star"))
    _legend(cv, entries)
    cv.img.save(path, format="PNG", compress_level=1)   # level 6 costs ~0.03 s more for ~2x smaller
    return Path(path)


def sample(x: np.ndarray, y: np.ndarray, limit: int = 4000) -> tuple[np.ndarray, np.ndarray]:
    """At most `limit` points for the background cloud (evenly strided: deterministic)."""
    if len(x) <= limit:
        return x, y
    idx = np.linspace(0, len(x) - 1, limit).astype(np.int64)
    return x[idx], y[idx]
