"""Drawing primitives of the Pareto PNG (search.plot): panels with data-to-pixel mapping (linear or
log y), round ticks, alpha-blended point clouds, dashed lines, markers and a legend column.

Drawn with Pillow straight into an RGB image, not with matplotlib: the matplotlib import alone costs
0.3-0.8 CPU s, more than the whole search, and `servecast plan` has a one-second budget. A cloud is
alpha-blended with numpy on the covered pixels only (one np.unique per cloud), so thousands of points
cost a few milliseconds.
"""
from __future__ import annotations

import math

import numpy as np

CLOUD_ALPHA = 0.18        # per point; overlapping points darken towards the cloud's colour


def rgb(hex_color: str) -> tuple[int, int, int]:
    return tuple(int(hex_color[i:i + 2], 16) for i in (1, 3, 5))


def nice_ticks(lo: float, hi: float, n: int = 6) -> np.ndarray:
    """Round tick positions (1, 2, 2.5, 5 x 10^k steps) covering [lo, hi]."""
    span = max(hi - lo, 1e-9)
    raw = span / n
    mag = 10.0 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    return np.arange(math.ceil(lo / step) * step, hi + step * 1e-6, step)


def log_ticks(lo: float, hi: float) -> np.ndarray:
    """1-2-5 ticks per decade inside [lo, hi] (lo > 0)."""
    out = [m * 10.0 ** k for k in range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1)
           for m in (1, 2, 5)]
    return np.array([t for t in out if lo <= t <= hi])


def fmt(v: float) -> str:
    return f"{v:,.0f}" if abs(v) >= 10 or v == 0 else f"{v:g}"


def font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)   # scalable with FreeType
    except (ImportError, OSError, TypeError):        # Pillow without FreeType: the bitmap font
        return ImageFont.load_default()


class Panel:
    """One plot area of the image: its pixel box and the data range it shows."""

    def __init__(self, box: tuple[int, int, int, int], xlim: tuple[float, float], ylim: tuple[float, float],
                 log_y: bool = False):
        self.box, self.xlim, self.ylim, self.log_y = box, xlim, ylim, log_y

    def _fy(self, y):
        y = np.asarray(y, dtype=np.float64)
        if self.log_y:
            with np.errstate(divide="ignore", invalid="ignore"):
                return (np.log10(y) - math.log10(self.ylim[0])) / (math.log10(self.ylim[1]) - math.log10(self.ylim[0]))
        return (y - self.ylim[0]) / (self.ylim[1] - self.ylim[0])

    def px(self, x, y):
        x0, y0, x1, y1 = self.box
        fx = (np.asarray(x, dtype=np.float64) - self.xlim[0]) / (self.xlim[1] - self.xlim[0])
        return x0 + fx * (x1 - x0), y1 - self._fy(y) * (y1 - y0)

    def inside(self, px, py) -> np.ndarray:
        x0, y0, x1, y1 = self.box
        return np.isfinite(px) & np.isfinite(py) & (px >= x0) & (px <= x1) & (py >= y0) & (py <= y1)


def axes(img, panel: Panel, ylabel: str, fonts, xlabel: str | None = None) -> None:
    """Grid, ticks, tick labels and the frame; the y label written vertically left of the panel."""
    from PIL import ImageDraw

    draw = ImageDraw.Draw(img)
    x0, y0, x1, y1 = panel.box
    small, normal = fonts
    for t in nice_ticks(*panel.xlim):
        px, _ = panel.px(t, panel.ylim[0])
        draw.line([(px, y0), (px, y1)], fill=(228, 228, 228))
        draw.line([(px, y1), (px, y1 + 5)], fill="black")
        draw.text((px, y1 + 8), fmt(t), fill="black", font=small, anchor="mt")
    ticks = log_ticks(*panel.ylim) if panel.log_y else nice_ticks(*panel.ylim)
    for t in ticks:
        _, py = panel.px(panel.xlim[0], t)
        draw.line([(x0, py), (x1, py)], fill=(228, 228, 228))
        draw.line([(x0 - 5, py), (x0, py)], fill="black")
        draw.text((x0 - 8, py), fmt(t), fill="black", font=small, anchor="rm")
    draw.rectangle(panel.box, outline="black")
    if xlabel:
        draw.text(((x0 + x1) / 2, y1 + 30), xlabel, fill="black", font=normal, anchor="mt")
    vertical_text(img, ylabel, (x0 - 62, (y0 + y1) / 2), normal)


def vertical_text(img, text: str, center: tuple[float, float], fnt) -> None:
    from PIL import Image, ImageDraw

    w = int(ImageDraw.Draw(img).textlength(text, font=fnt)) + 4
    h = int(getattr(fnt, "size", 12) * 1.4) + 2
    tmp = Image.new("RGB", (w, h), "white")
    ImageDraw.Draw(tmp).text((2, 1), text, fill="black", font=fnt)
    img.paste(tmp.rotate(90, expand=True), (int(center[0] - h / 2), int(center[1] - w / 2)))


def blend_clouds(img, clouds: list[tuple[Panel, object, object, tuple[int, int, int]]]):
    """Alpha-blend 2x2-pixel dots of every (panel, x, y, colour) cloud in one numpy round trip: a pixel
    covered k times by a cloud gets 1 - (1 - alpha)^k of its colour. Returns the new image."""
    from PIL import Image

    w, h = img.size
    rgb_arr = np.asarray(img, dtype=np.uint8).reshape(-1, 3).copy()
    for panel, x, y, color in clouds:
        px, py = panel.px(np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64))
        ok = panel.inside(px, py)
        if not ok.any():
            continue
        ix, iy = np.round(px[ok]).astype(np.int64), np.round(py[ok]).astype(np.int64)
        ix = np.clip(np.concatenate([ix, ix + 1, ix, ix + 1]), 0, w - 1)
        iy = np.clip(np.concatenate([iy, iy, iy + 1, iy + 1]), 0, h - 1)
        pixels, counts = np.unique(iy * w + ix, return_counts=True)
        cover = (1.0 - (1.0 - CLOUD_ALPHA) ** counts)[:, None]
        c = np.array(color, dtype=np.float64)
        rgb_arr[pixels] = np.round(rgb_arr[pixels] * (1.0 - cover) + c * cover).astype(np.uint8)
    return Image.fromarray(rgb_arr.reshape(h, w, 3), "RGB")


def dashed(draw, a: tuple[float, float], b: tuple[float, float], color, dash: tuple[int, int], width: int = 2) -> None:
    (xa, ya), (xb, yb) = a, b
    length = math.hypot(xb - xa, yb - ya)
    if length == 0:
        return
    ux, uy = (xb - xa) / length, (yb - ya) / length
    pos = 0.0
    while pos < length:
        end = min(pos + dash[0], length)
        draw.line([(xa + ux * pos, ya + uy * pos), (xa + ux * end, ya + uy * end)], fill=color, width=width)
        pos += dash[0] + dash[1]


def marker(draw, x: float, y: float, shape: str, color, r: float = 6.0, outline="black") -> None:
    """circle, square, triangle or star, outlined (black unless given)."""
    if shape == "circle":
        draw.ellipse((x - r, y - r, x + r, y + r), fill=color, outline=outline, width=1 + (outline != "black"))
    elif shape == "square":
        draw.rectangle((x - r * 0.9, y - r * 0.9, x + r * 0.9, y + r * 0.9), fill=color, outline=outline,
                       width=1 + (outline != "black"))
    elif shape == "triangle":
        draw.polygon([(x, y - r * 1.15), (x + r, y + r * 0.75), (x - r, y + r * 0.75)], fill=color, outline=outline,
                     width=1 + (outline != "black"))
    else:   # star
        pts = [(float(x + (r if k % 2 == 0 else r * 0.42) * math.sin(k * math.pi / 5)),
                float(y - (r if k % 2 == 0 else r * 0.42) * math.cos(k * math.pi / 5))) for k in range(10)]
        draw.polygon(pts, fill=color, outline="black")


def legend(draw, entries: list[tuple[str, object, str]], origin: tuple[int, int], fnt, line_h: int = 24) -> int:
    """Entries (text, colour, kind) top-down from origin; kind: title, line, dash, dot, cloud, big, or a
    marker shape. Returns the y below the last entry."""
    x0, y = origin
    for text, color, kind in entries:
        cy = y + line_h / 2
        if kind == "line":
            draw.line([(x0, cy), (x0 + 30, cy)], fill=color, width=3)
        elif kind in ("dash", "dot"):
            dashed(draw, (x0, cy), (x0 + 30, cy), color, (6, 4) if kind == "dash" else (2, 3))
        elif kind == "cloud":
            for dx, dy in ((4, -3), (11, 2), (18, -2), (25, 3), (14, -5)):
                draw.rectangle((x0 + dx, cy + dy, x0 + dx + 2, cy + dy + 2), fill=color)
        elif kind == "title":
            draw.text((x0, cy), text, fill="black", font=fnt, anchor="lm")
            y += line_h
            continue
        elif kind == "big":
            marker(draw, x0 + 15, cy, "circle", color, r=10.0)
        else:
            marker(draw, x0 + 15, cy, kind, color, r=7.0 if kind == "star" else 6.0)
        lines = _fit(draw, text, fnt, draw.im.size[0] - x0 - 48)
        for i, line in enumerate(lines):
            draw.text((x0 + 40, cy + i * (line_h - 6)), line, fill="black", font=fnt, anchor="lm")
        y += line_h + (len(lines) - 1) * (line_h - 6)
    return y


def _fit(draw, text: str, fnt, width: int) -> list[str]:
    """The text in lines no wider than `width` pixels (split at spaces)."""
    lines: list[str] = []
    for word in text.split(" "):
        if lines and draw.textlength(f"{lines[-1]} {word}", font=fnt) <= width:
            lines[-1] = f"{lines[-1]} {word}"
        else:
            lines.append(word)
    return lines or [""]
