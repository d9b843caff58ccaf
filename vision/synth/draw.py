"""Drawing primitives shared by the figure, shelf and gate renderers.

All coordinates are float pixels; cv2 draws with 4 bits of sub-pixel precision and anti-aliasing so
that moving figures glide instead of jumping a pixel at a time (a tracker trained on jumpy renders
learns the jumps).
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

SHIFT = 4
_SCALE = 1 << SHIFT

Color = tuple[int, int, int]
Box = tuple[float, float, float, float]


def _fixed(points: Sequence[Sequence[float]]) -> np.ndarray:
    return np.round(np.asarray(points, dtype=np.float64) * _SCALE).astype(np.int32)


def polygon(img: np.ndarray, points: Sequence[Sequence[float]], color: Color) -> None:
    cv2.fillPoly(img, [_fixed(points)], color, cv2.LINE_AA, SHIFT)


def disc(img: np.ndarray, center: Sequence[float], radius: float, color: Color) -> None:
    cx, cy = center
    cv2.circle(img, (round(cx * _SCALE), round(cy * _SCALE)), max(1, round(radius * _SCALE)), color,
               -1, cv2.LINE_AA, SHIFT)


def ellipse(img: np.ndarray, center: Sequence[float], axes: Sequence[float], color: Color,
            angle: float = 0.0, start: float = 0.0, end: float = 360.0) -> None:
    cx, cy = center
    ax, ay = axes
    cv2.ellipse(img, (round(cx * _SCALE), round(cy * _SCALE)),
                (max(1, round(ax * _SCALE)), max(1, round(ay * _SCALE))), angle, start, end, color, -1,
                cv2.LINE_AA, SHIFT)


def line(img: np.ndarray, a: Sequence[float], b: Sequence[float], color: Color, thickness: int = 1) -> None:
    cv2.line(img, (round(a[0] * _SCALE), round(a[1] * _SCALE)), (round(b[0] * _SCALE), round(b[1] * _SCALE)),
             color, thickness, cv2.LINE_AA, SHIFT)


def limb(img: np.ndarray, a: Sequence[float], b: Sequence[float], width_a: float, width_b: float,
         color: Color) -> None:
    """A tapered segment with rounded ends: upper arms, forearms, thighs, shins."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    d = b - a
    n = float(np.hypot(*d))
    if n < 1e-6:
        disc(img, a, width_a / 2, color)
        return
    normal = np.array([-d[1], d[0]]) / n
    quad = [a + normal * width_a / 2, b + normal * width_b / 2, b - normal * width_b / 2, a - normal * width_a / 2]
    polygon(img, quad, color)
    disc(img, a, width_a / 2, color)
    disc(img, b, width_b / 2, color)


def shade(color: Color, factor: float) -> Color:
    return tuple(int(np.clip(c * factor, 0, 255)) for c in color)  # type: ignore[return-value]


def paste(dst: np.ndarray, src: np.ndarray, x: float, y: float, alpha: np.ndarray | None = None) -> Box | None:
    """Paste `src` with its top-left corner at (x, y), clipped to `dst`; `alpha` is float in [0, 1].

    Returns the box actually covered, or None when `src` falls entirely outside.
    """
    h, w = src.shape[:2]
    x0, y0 = round(x), round(y)
    dx0, dy0 = max(0, x0), max(0, y0)
    dx1, dy1 = min(dst.shape[1], x0 + w), min(dst.shape[0], y0 + h)
    if dx1 <= dx0 or dy1 <= dy0:
        return None
    sx0, sy0 = dx0 - x0, dy0 - y0
    crop = src[sy0:sy0 + dy1 - dy0, sx0:sx0 + dx1 - dx0]
    region = dst[dy0:dy1, dx0:dx1]
    if alpha is None:
        region[:] = crop
    else:
        a = alpha[sy0:sy0 + dy1 - dy0, sx0:sx0 + dx1 - dx0]
        if a.ndim == 2:
            a = a[..., None]
        region[:] = (crop.astype(np.float32) * a + region.astype(np.float32) * (1.0 - a) + 0.5).astype(np.uint8)
    return (float(dx0), float(dy0), float(dx1), float(dy1))


def resize_to(img: np.ndarray, width: float, height: float) -> np.ndarray:
    w, h = max(1, round(width)), max(1, round(height))
    interp = cv2.INTER_AREA if w < img.shape[1] else cv2.INTER_LINEAR
    return cv2.resize(img, (w, h), interpolation=interp)


def soft_ellipse_mask(width: int, height: int, feather: float = 0.12) -> np.ndarray:
    """An elliptical alpha mask with a feathered rim, so pasted faces have no hard rectangle edge."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    nx = (xx + 0.5 - width / 2) / (width / 2)
    ny = (yy + 0.5 - height / 2) / (height / 2)
    r = np.sqrt(nx * nx + ny * ny)
    return np.clip((1.0 - r) / feather, 0.0, 1.0)


def clip_box(box: Box, width: int, height: int) -> Box | None:
    x1, y1, x2, y2 = box
    x1, x2 = max(0.0, min(x1, x2)), min(float(width), max(x1, x2))
    y1, y2 = max(0.0, min(y1, y2)), min(float(height), max(y1, y2))
    if x2 - x1 < 1 or y2 - y1 < 1:
        return None
    return (x1, y1, x2, y2)


def union_box(boxes: Sequence[Box]) -> Box:
    arr = np.asarray(boxes, dtype=np.float64)
    return (float(arr[:, 0].min()), float(arr[:, 1].min()), float(arr[:, 2].max()), float(arr[:, 3].max()))
