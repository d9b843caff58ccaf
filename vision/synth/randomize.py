"""Domain randomisation: the knobs that make what is learned here carry to other cameras.

`Ranges` are the bounds of every knob; a `Look` is one draw of them for one scene; `Camera`
applies a look to rendered frames (lighting, colour cast, vignette, blur, noise, small camera
shifts). Training, samples and the held-out evaluation set use different presets, so a score on
the held-out set is not a score on the training distribution.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class Ranges:
    keystone: tuple[float, float]  # perspective strength of the aisle camera (0 = face-on)
    gain: tuple[float, float]  # global brightness
    cast: float  # largest per-channel colour deviation
    vignette: tuple[float, float]  # darkening of the corners
    noise: tuple[float, float]  # sensor noise sigma, grey levels
    blur: tuple[float, float]  # defocus sigma, pixels
    shake: tuple[float, float]  # camera shift amplitude, pixels
    jpeg: tuple[int, int]  # JPEG quality of dataset images
    person_height: tuple[float, float]  # standing height in the aisle view, pixels


PRESETS: dict[str, Ranges] = {
    # Sample scenarios: a well-installed store camera, still not a clean render.
    "sample": Ranges((0.02, 0.08), (0.85, 1.1), 0.08, (0.0, 0.25), (1.0, 3.0), (0.0, 0.6), (0.0, 0.8), (85, 95),
                     (520, 600)),
    "train": Ranges((0.0, 0.14), (0.55, 1.35), 0.2, (0.0, 0.5), (0.0, 7.0), (0.0, 1.6), (0.0, 2.0), (35, 95),
                    (420, 640)),
    # Held out: other ranges than training (darker, stronger perspective, noisier) and other seeds.
    "heldout": Ranges((0.1, 0.18), (0.5, 0.75), 0.25, (0.3, 0.6), (4.0, 9.0), (0.8, 2.0), (1.0, 3.0), (30, 60),
                      (400, 660)),
}


@dataclass(frozen=True)
class Look:
    keystone: float
    gain: float
    cast: tuple[float, float, float]
    vignette: float
    noise: float
    blur: float
    shake: float
    jpeg: int
    person_height: float


def draw_look(rng: np.random.Generator, ranges: Ranges) -> Look:
    def u(bounds: tuple[float, float]) -> float:
        return float(rng.uniform(*bounds))

    cast = tuple(float(v) for v in 1.0 + rng.uniform(-ranges.cast, ranges.cast, size=3))
    return Look(u(ranges.keystone), u(ranges.gain), cast, u(ranges.vignette), u(ranges.noise),  # type: ignore[arg-type]
                u(ranges.blur), u(ranges.shake), int(rng.integers(ranges.jpeg[0], ranges.jpeg[1] + 1)),
                u(ranges.person_height))


class Camera:
    """Applies a look to frames of one size. Precomputes what does not change between frames."""

    _NOISE_BANK = 6

    def __init__(self, look: Look, size: tuple[int, int], rng: np.random.Generator) -> None:
        w, h = size
        self.look = look
        self.size = size
        self._rng = rng
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        r2 = ((xx - w / 2) / (w / 2)) ** 2 + ((yy - h / 2) / (h / 2)) ** 2
        light = look.gain * (1.0 - look.vignette * 0.5 * r2)
        # Light from one side: a gentle horizontal gradient, as from a window or an aisle end.
        light *= 1.0 + float(rng.uniform(-0.12, 0.12)) * (xx / w - 0.5)
        gains = np.stack([light * c for c in look.cast], axis=-1)
        # cv2.multiply with scale=1/128 keeps the per-pixel work in fast saturated integer maths.
        self._light = np.clip(gains * 128.0, 0, 255).astype(np.uint8)
        sigma = look.noise
        self._noise_pos = [np.clip(rng.normal(0, sigma, (h, w, 3)), 0, 255).astype(np.uint8)
                           for _ in range(self._NOISE_BANK)]
        self._noise_neg = [np.clip(-rng.normal(0, sigma, (h, w, 3)), 0, 255).astype(np.uint8)
                           for _ in range(self._NOISE_BANK)]
        self._phase = rng.uniform(0, 2 * np.pi, size=2)

    def shift(self, t: float) -> tuple[float, float]:
        """Camera sway at time t: slow drift plus a little shake, both small."""
        a = self.look.shake
        return (float(a * np.sin(0.7 * t + self._phase[0])), float(a * 0.6 * np.sin(1.1 * t + self._phase[1])))

    def apply(self, frame: np.ndarray, t: float, index: int) -> np.ndarray:
        dx, dy = self.shift(t)
        if abs(dx) > 0.05 or abs(dy) > 0.05:
            m = np.float32([[1, 0, dx], [0, 1, dy]])
            frame = cv2.warpAffine(frame, m, self.size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        if self.look.blur > 0.3:
            frame = cv2.GaussianBlur(frame, (0, 0), self.look.blur)
        frame = cv2.multiply(frame, self._light, scale=1.0 / 128.0)
        if self.look.noise > 0.2:
            k = index % self._NOISE_BANK
            j = (index * 7 + 3) % self._NOISE_BANK
            frame = cv2.subtract(cv2.add(frame, self._noise_pos[k]), self._noise_neg[j])
        return frame
