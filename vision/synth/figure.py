"""Articulated shoppers: head, torso, arms with hands, legs, drawn from a pose.

`draw_figure(canvas, style, pose)` draws one person and returns the boxes of what it drew (person,
head, face, hands, held products, phone), which are the ground truth of the renders. Arms reach by
two-bone inverse kinematics, so a script only says where a hand should be.

Sides are image sides ("L" = the arm on the image's left), not the shopper's own left and right,
so that a script never has to mirror anything when a shopper turns.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np

from vision.synth import draw
from vision.synth.draw import Box, Color

Facing = Literal["front", "back", "left", "right"]
Side = Literal["L", "R"]
SIDES: tuple[Side, Side] = ("L", "R")

SKIN_TONES: tuple[Color, ...] = (
    (189, 214, 241), (160, 196, 229), (130, 170, 214), (104, 142, 190), (80, 112, 160), (55, 80, 120), (40, 58, 92),
)
HAIR_COLORS: tuple[Color, ...] = ((20, 20, 25), (30, 45, 70), (40, 70, 110), (70, 120, 170), (150, 150, 150),
                                  (60, 60, 60), (30, 30, 120))


@dataclass(frozen=True)
class FigureStyle:
    skin: Color
    hair: Color
    shirt: Color
    accent: Color
    pants: Color
    shoes: Color
    bag: Color
    build: float  # shoulder and hip width factor
    limb: float  # limb thickness factor
    head_scale: float
    leg_ratio: float
    hair_style: Literal["short", "long", "bald", "cap"]
    pattern: Literal["plain", "stripes", "band"]
    long_sleeves: bool
    bag_side: Side
    face: np.ndarray | None = field(default=None, repr=False, compare=False)


def random_style(rng: np.random.Generator, faces: list[np.ndarray]) -> FigureStyle:
    def colour(lo: int = 20, hi: int = 235) -> Color:
        return tuple(int(v) for v in rng.integers(lo, hi, size=3))  # type: ignore[return-value]

    face = faces[int(rng.integers(len(faces)))] if faces else None
    return FigureStyle(
        skin=SKIN_TONES[int(rng.integers(len(SKIN_TONES)))],
        hair=HAIR_COLORS[int(rng.integers(len(HAIR_COLORS)))],
        shirt=colour(),
        accent=colour(),
        pants=colour(15, 140),
        shoes=colour(10, 90),
        bag=colour(30, 220),
        build=float(rng.uniform(0.85, 1.25)),
        limb=float(rng.uniform(0.85, 1.2)),
        head_scale=float(rng.uniform(0.92, 1.08)),
        leg_ratio=float(rng.uniform(0.95, 1.05)),
        hair_style=("short", "long", "bald", "cap")[int(rng.choice(4, p=[0.45, 0.3, 0.1, 0.15]))],
        pattern=("plain", "stripes", "band")[int(rng.choice(3, p=[0.6, 0.2, 0.2]))],
        long_sleeves=bool(rng.random() < 0.5),
        bag_side=SIDES[int(rng.integers(2))],
        face=face,
    )


@dataclass(frozen=True)
class Pose:
    """Where a figure stands and what its limbs do, in image pixels.

    (x, y) is the point on the floor between the feet; `height` the standing height in pixels.
    `reach` holds a target per side for a hand that reaches; `held` the product images a hand
    holds (already sized to the scene); `phone` a phone image shown in the "R" hand.
    """

    x: float
    y: float
    height: float
    facing: Facing
    walk_phase: float = 0.0
    walk: float = 0.0
    reach: dict[Side, tuple[float, float]] = field(default_factory=dict)
    held: dict[Side, tuple[np.ndarray, ...]] = field(default_factory=dict, repr=False)
    phone: np.ndarray | None = field(default=None, repr=False)
    bag: bool = True
    crouch: float = 0.0  # 0 standing .. 1 knees bent, the body lowered by a fifth of its height


@dataclass(frozen=True)
class Part:
    """A labelled part as it looked right after it was drawn: its box clipped to the canvas, the box in
    whole pixels, and the pixels there then. Comparing them with the finished frame tells how much of
    the part is still visible, whatever covered it: the figure's own torso or bag, or other people."""

    name: str
    box: Box
    pixel_box: tuple[int, int, int, int]
    snapshot: np.ndarray = field(repr=False)


@dataclass(frozen=True)
class FigureRender:
    person: Box
    head: Box
    face: Box | None
    hands: dict[Side, Box]
    held: tuple[Box, ...]
    phone: Box | None
    parts: tuple[Part, ...] = ()


@dataclass(frozen=True)
class _Skeleton:
    head: tuple[float, float]
    head_axes: tuple[float, float]
    neck: tuple[float, float]
    shoulders: dict[Side, tuple[float, float]]
    hips: dict[Side, tuple[float, float]]
    elbows: dict[Side, tuple[float, float]]
    hands: dict[Side, tuple[float, float]]
    knees: dict[Side, tuple[float, float]]
    feet: dict[Side, tuple[float, float]]
    bag_top: tuple[float, float]


def _two_bone(root: np.ndarray, target: np.ndarray, l1: float, l2: float, bend: float) -> tuple[np.ndarray, np.ndarray]:
    """Elbow and hand for a hand aiming at `target`; `bend` (+1/-1) picks the side the elbow bends to."""
    d = target - root
    dist = float(np.hypot(*d))
    dist_c = float(np.clip(dist, abs(l1 - l2) + 1e-3, l1 + l2 - 1e-3))
    u = d / dist if dist > 1e-6 else np.array([0.0, 1.0])
    hand = root + u * dist_c
    cos_a = (l1 * l1 + dist_c * dist_c - l2 * l2) / (2 * l1 * dist_c)
    a = math.acos(float(np.clip(cos_a, -1.0, 1.0))) * bend
    rot = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    elbow = root + rot @ u * l1
    return elbow, hand


def _skeleton(style: FigureStyle, pose: Pose) -> _Skeleton:
    h = pose.height
    side_view = pose.facing in ("left", "right")
    forward = 1.0 if pose.facing == "right" else -1.0
    leg_len = 0.48 * h * style.leg_ratio
    thigh, shin = leg_len * 0.5, leg_len * 0.5
    walk = pose.walk
    lowered = 0.2 * h * float(np.clip(pose.crouch, 0.0, 1.0))
    # Bent knees: the knee moves out (or forward, seen from the side) so each bone keeps its length.
    knee_out = math.sqrt(max(0.0, thigh * thigh - ((leg_len - lowered) / 2) ** 2))
    hip_c = np.array([pose.x, pose.y - leg_len + lowered])
    hip_half = (0.045 if side_view else 0.075) * h * style.build

    hips: dict[Side, tuple[float, float]] = {}
    knees: dict[Side, tuple[float, float]] = {}
    feet: dict[Side, tuple[float, float]] = {}
    for i, s in enumerate(SIDES):
        phase = pose.walk_phase + i * math.pi
        hip = hip_c + np.array([(-1 if s == "L" else 1) * (0.01 * h if side_view else hip_half * 0.6), 0.0])
        if side_view:
            a = 0.42 * walk * math.sin(phase)
            b = a - 0.7 * walk * max(0.0, -math.cos(phase))
            knee = hip + thigh * np.array([math.sin(a) * forward, math.cos(a)])
            foot = knee + shin * np.array([math.sin(b) * forward, math.cos(b)])
            if lowered > 0:
                foot = np.array([hip[0], pose.y])
                knee = (hip + foot) / 2 + np.array([forward * knee_out, 0.0])
        else:
            lift = 0.06 * h * walk * max(0.0, math.sin(phase))
            foot = np.array([hip[0] + (hip[0] - hip_c[0]) * 0.3, pose.y - lift])
            outward = -1.0 if s == "L" else 1.0
            knee = (hip + foot) / 2 + np.array([(hip[0] - hip_c[0]) * 0.15 + outward * knee_out * 0.8, -lift * 0.3])
        hips[s], knees[s], feet[s] = tuple(hip), tuple(knee), tuple(foot)
    # Plant the lowest foot on the floor: the body rises and falls as a walking body does.
    drop = pose.y - max(f[1] for f in feet.values())

    def moved(p: tuple[float, float] | np.ndarray) -> tuple[float, float]:
        return (float(p[0]), float(p[1] + drop))

    hips = {s: moved(p) for s, p in hips.items()}
    knees = {s: moved(p) for s, p in knees.items()}
    feet = {s: moved(p) for s, p in feet.items()}

    shoulder_y = hip_c[1] + drop - (0.81 * h - leg_len)
    shoulder_half = (0.035 if side_view else 0.115) * h * style.build
    shoulders: dict[Side, tuple[float, float]] = {
        "L": (pose.x - shoulder_half, shoulder_y), "R": (pose.x + shoulder_half, shoulder_y)}
    neck = (pose.x, shoulder_y - 0.035 * h)
    hs = style.head_scale
    head = (pose.x + (0.01 * h * forward if side_view else 0.0), shoulder_y - 0.105 * h * hs)
    head_axes = (0.052 * h * hs * (0.9 if side_view else 1.0), 0.066 * h * hs)

    upper, fore = 0.185 * h, 0.17 * h
    elbows: dict[Side, tuple[float, float]] = {}
    hands: dict[Side, tuple[float, float]] = {}
    for i, s in enumerate(SIDES):
        root = np.array(shoulders[s])
        outward = -1.0 if s == "L" else 1.0
        if s in pose.reach:
            # Elbows bend down and outward, as they do when one reaches onto a shelf.
            target = np.array(pose.reach[s], dtype=np.float64)
            bend = -outward if target[1] < root[1] else outward
            elbow, hand = _two_bone(root, target, upper, fore, bend)
        elif s == "R" and pose.phone is not None:
            elbow, hand = _two_bone(root, np.array([pose.x + 0.19 * h, shoulder_y + 0.08 * h]), upper, fore, 1.0)
        else:
            swing = 0.35 * walk * math.sin(pose.walk_phase + (i + 1) * math.pi) if side_view else 0.0
            spread = 0.0 if side_view else 0.07 + 0.03 * style.build
            a = swing * forward + outward * spread
            elbow = root + upper * np.array([math.sin(a), math.cos(a)])
            fa = a + (0.25 * forward if side_view else outward * 0.03)
            hand = elbow + fore * np.array([math.sin(fa), math.cos(fa)])
        elbows[s], hands[s] = (float(elbow[0]), float(elbow[1])), (float(hand[0]), float(hand[1]))

    bag_dir = -1.0 if style.bag_side == "L" else 1.0
    bag_top = (pose.x + bag_dir * (0.06 if side_view else 0.16) * h * style.build, hips["L"][1] - 0.02 * h)
    return _Skeleton(head, head_axes, neck, shoulders, hips, elbows, hands, knees, feet, bag_top)


def rest_hand(style: FigureStyle, pose: Pose, side: Side) -> tuple[float, float]:
    """Where the hand of `side` is when it reaches for nothing."""
    return _skeleton(style, replace(pose, reach={}, phone=None)).hands[side]


def bag_opening(style: FigureStyle, pose: Pose) -> tuple[float, float]:
    """Where a hand goes to drop a product into this figure's bag."""
    return _skeleton(style, pose).bag_top


def shoulder(style: FigureStyle, pose: Pose, side: Side) -> tuple[float, float]:
    return _skeleton(style, pose).shoulders[side]


ARM_LENGTH = 0.355  # upper arm + forearm, as a fraction of height


def draw_figure(canvas: np.ndarray, style: FigureStyle, pose: Pose) -> FigureRender:
    sk = _skeleton(style, pose)
    h = pose.height
    lw = style.limb
    side_view = pose.facing in ("left", "right")
    extents: list[Box] = []
    parts: list[Part] = []

    def snap(name: str, box: Box) -> None:
        clipped = draw.clip_box(box, canvas.shape[1], canvas.shape[0])
        if clipped is not None:
            x1, y1, x2, y2 = (int(round(v)) for v in clipped)
            parts.append(Part(name, clipped, (x1, y1, x2, y2), canvas[y1:y2, x1:x2].copy()))

    def legs() -> None:
        for s in SIDES:
            draw.limb(canvas, sk.hips[s], sk.knees[s], 0.075 * h * lw, 0.06 * h * lw, style.pants)
            draw.limb(canvas, sk.knees[s], sk.feet[s], 0.06 * h * lw, 0.045 * h * lw, draw.shade(style.pants, 0.9))
            fx, fy = sk.feet[s]
            toe = 0.04 * h * (1 if pose.facing == "right" else -1 if pose.facing == "left" else 0)
            draw.ellipse(canvas, (fx + toe, fy - 0.012 * h), (0.045 * h if side_view else 0.03 * h, 0.018 * h),
                         style.shoes)
            extents.append((fx - 0.06 * h, fy - 0.03 * h, fx + 0.06 * h, fy + 0.005 * h))

    def torso() -> None:
        (lx, ly), (rx, ry) = sk.shoulders["L"], sk.shoulders["R"]
        hip_y = sk.hips["L"][1]
        half_hip = abs(sk.hips["R"][0] - sk.hips["L"][0]) / 2 + 0.045 * h * lw
        cx = pose.x
        widen = 0.035 * h * lw if side_view else 0.02 * h
        top_l, top_r = lx - widen, rx + widen
        if side_view:
            top_l, top_r = cx - 0.065 * h * style.build, cx + 0.065 * h * style.build
            half_hip = 0.06 * h * style.build
        shirt_bottom = hip_y + 0.04 * h
        body = [(top_l, ly), (top_r, ry), (cx + half_hip, shirt_bottom), (cx - half_hip, shirt_bottom)]
        # Pelvis in trouser colour first, the shirt overlaps it.
        draw.polygon(canvas, [(cx - half_hip, hip_y - 0.02 * h), (cx + half_hip, hip_y - 0.02 * h),
                              (cx + half_hip, hip_y + 0.08 * h), (cx - half_hip, hip_y + 0.08 * h)], style.pants)
        draw.polygon(canvas, body, style.shirt)
        if style.pattern != "plain":
            rows = [0.35, 0.55] if style.pattern == "band" else list(np.linspace(0.1, 0.9, 7))
            for f in rows:
                y = ly + (shirt_bottom - ly) * f
                half = (top_r - top_l) / 2 * (1 - f) + half_hip * f
                draw.line(canvas, (cx - half + 1, y), (cx + half - 1, y), style.accent,
                          max(1, round(0.012 * h if style.pattern == "stripes" else 0.03 * h)))
        draw.limb(canvas, (cx, ly), sk.neck, 0.05 * h, 0.045 * h, draw.shade(style.skin, 0.92))
        if pose.facing == "front":
            draw.ellipse(canvas, (cx, ly + 0.005 * h), (0.04 * h, 0.02 * h), draw.shade(style.skin, 0.92), 0, 0, 180)
        extents.append((min(top_l, cx - half_hip), ly - 0.01 * h, max(top_r, cx + half_hip), shirt_bottom))

    def bag() -> None:
        if not pose.bag:
            return
        bx, by = sk.bag_top
        bw, bh = 0.15 * h, 0.14 * h
        strap = sk.shoulders[style.bag_side]
        draw.line(canvas, strap, (bx - bw * 0.3, by), draw.shade(style.bag, 0.7), max(1, round(0.008 * h)))
        draw.line(canvas, strap, (bx + bw * 0.3, by), draw.shade(style.bag, 0.7), max(1, round(0.008 * h)))
        body = [(bx - bw / 2, by), (bx + bw / 2, by), (bx + bw * 0.55, by + bh), (bx - bw * 0.55, by + bh)]
        draw.polygon(canvas, body, style.bag)
        draw.line(canvas, (bx - bw / 2, by + 2), (bx + bw / 2, by + 2), draw.shade(style.bag, 0.6), 2)
        extents.append((bx - bw * 0.55, by, bx + bw * 0.55, by + bh))

    hand_boxes: dict[Side, Box] = {}
    held_boxes: list[Box] = []

    def arm(s: Side) -> None:
        sh, el, hd = sk.shoulders[s], sk.elbows[s], sk.hands[s]
        draw.limb(canvas, sh, el, 0.06 * h * lw, 0.05 * h * lw, style.shirt)
        fore_color = style.shirt if style.long_sleeves else style.skin
        draw.limb(canvas, el, hd, 0.05 * h * lw, 0.04 * h * lw, fore_color)
        held_here: list[Box] = []
        for i, img in enumerate(pose.held.get(s, ())):
            ih, iw = img.shape[:2]
            # The hand grips the lower part of the item; a second item sits beside the first.
            ox = hd[0] - iw / 2 + i * iw * 0.6
            oy = hd[1] - ih * 0.7
            box = draw.paste(canvas, img, ox, oy)
            if box is not None:
                held_here.append((ox, oy, ox + iw, oy + ih))
        r = 0.03 * h * lw
        draw.disc(canvas, hd, r, style.skin)
        # Knuckles: a darker arc so a hand reads as a hand, not a ball.
        draw.ellipse(canvas, (hd[0], hd[1] + r * 0.3), (r * 0.8, r * 0.5), draw.shade(style.skin, 0.85), 0, 0, 180)
        hand_boxes[s] = (hd[0] - r * 1.25, hd[1] - r * 1.25, hd[0] + r * 1.25, hd[1] + r * 1.25)
        snap("hand", hand_boxes[s])
        for box in held_here:
            snap("held", box)
        held_boxes.extend(held_here)
        extents.append((min(sh[0], el[0], hd[0]) - r, min(sh[1], el[1], hd[1]) - r,
                        max(sh[0], el[0], hd[0]) + r, max(sh[1], el[1], hd[1]) + r))

    phone_box: list[Box] = []

    def phone() -> None:
        if pose.phone is None:
            return
        ph, pw = pose.phone.shape[:2]
        hx, hy = sk.hands["R"]
        ox, oy = hx - pw / 2, hy - ph * 0.55
        draw.paste(canvas, pose.phone, ox, oy)
        # Fingers around the phone's lower edge, clear of the screen's code.
        draw.ellipse(canvas, (hx + pw * 0.5, hy + ph * 0.3), (0.015 * h, 0.028 * h), style.skin)
        phone_box.append((ox, oy, ox + pw, oy + ph))
        snap("phone", phone_box[0])

    face_box: list[Box] = []

    def head() -> None:
        (cx, cy), (ax, ay) = sk.head, sk.head_axes
        hair = style.hair
        if style.hair_style == "long" and pose.facing != "front":
            draw.polygon(canvas, [(cx - ax * 1.05, cy), (cx + ax * 1.05, cy), (cx + ax * 1.1, cy + ay * 1.5),
                                  (cx - ax * 1.1, cy + ay * 1.5)], hair)
        if style.hair_style == "long" and pose.facing == "front":
            draw.polygon(canvas, [(cx - ax * 1.1, cy - ay * 0.3), (cx - ax * 0.8, cy - ay * 0.3),
                                  (cx - ax * 0.85, cy + ay * 1.4), (cx - ax * 1.15, cy + ay * 1.4)], hair)
            draw.polygon(canvas, [(cx + ax * 0.8, cy - ay * 0.3), (cx + ax * 1.1, cy - ay * 0.3),
                                  (cx + ax * 1.15, cy + ay * 1.4), (cx + ax * 0.85, cy + ay * 1.4)], hair)
        draw.ellipse(canvas, (cx, cy), (ax, ay), style.skin)
        if pose.facing == "back":
            if style.hair_style != "bald":
                draw.ellipse(canvas, (cx, cy - ay * 0.05), (ax * 1.04, ay * 0.98), hair)
        else:
            fw = 2 * ax * (0.78 if side_view else 1.0)
            fh = 2 * ay * 0.82
            fx = cx - fw / 2 + (ax * 0.22 * (1 if pose.facing == "right" else -1) if side_view else 0.0)
            fy = cy - ay * 0.62
            face_img = style.face
            if face_img is not None and fw >= 3 and fh >= 3:
                if pose.facing == "left":
                    face_img = face_img[:, ::-1]
                crop = draw.resize_to(face_img, fw, fh)
                draw.paste(canvas, crop, fx, fy, draw.soft_ellipse_mask(crop.shape[1], crop.shape[0]))
            else:
                _drawn_features(canvas, (fx + fw / 2, fy + fh / 2), fw, fh, style)
            face_box.append((fx, fy, fx + fw, fy + fh))
            if style.hair_style != "bald":
                draw.ellipse(canvas, (cx, cy - ay * 0.55), (ax * 1.03, ay * 0.5), hair, 0, 180, 360)
                if side_view:
                    back = -1 if pose.facing == "right" else 1
                    draw.ellipse(canvas, (cx + back * ax * 0.45, cy - ay * 0.1), (ax * 0.6, ay * 0.85), hair)
        if style.hair_style == "cap":
            draw.ellipse(canvas, (cx, cy - ay * 0.6), (ax * 1.06, ay * 0.55), style.accent, 0, 180, 360)
            if pose.facing != "back":
                brim = 1 if pose.facing == "right" else -1 if pose.facing == "left" else 0
                draw.ellipse(canvas, (cx + brim * ax * 0.7, cy - ay * 0.58), (ax * (0.7 if brim else 1.0), ay * 0.12),
                             draw.shade(style.accent, 0.8))
        extents.append((cx - ax * 1.1, cy - ay * 1.1, cx + ax * 1.1, cy + ay))

    # Paint from far to near: what faces away from the camera is hidden by the body.
    if pose.facing == "back":
        legs()
        for s in SIDES:
            if s in pose.reach:
                arm(s)
        torso()
        bag()
        for s in SIDES:
            if s not in pose.reach:
                arm(s)
        head()
    elif side_view:
        far: Side = "L" if pose.facing == "right" else "R"
        near: Side = "R" if far == "L" else "L"
        arm(far)
        legs()
        torso()
        head()
        bag()
        arm(near)
    else:
        legs()
        bag()
        torso()
        head()
        for s in SIDES:
            arm(s)
        phone()

    # The face's snapshot is taken last, as the face truth of the sample scenarios always was.
    if face_box:
        snap("face", face_box[0])
    (hcx, hcy), (hax, hay) = sk.head, sk.head_axes
    return FigureRender(
        person=draw.union_box(extents),
        head=(hcx - hax * 1.05, hcy - hay * 1.05, hcx + hax * 1.05, hcy + hay * 1.02),
        face=face_box[0] if face_box else None,
        hands=hand_boxes,
        held=tuple(held_boxes),
        phone=phone_box[0] if phone_box else None,
        parts=tuple(parts),
    )


def _drawn_features(canvas: np.ndarray, center: tuple[float, float], fw: float, fh: float, style: FigureStyle) -> None:
    """Eyes, brows, nose and mouth, for when no real face crop is available."""
    cx, cy = center
    dark = (40, 40, 50)
    for sx in (-1, 1):
        draw.ellipse(canvas, (cx + sx * fw * 0.2, cy - fh * 0.05), (fw * 0.09, fh * 0.05), (245, 245, 245))
        draw.disc(canvas, (cx + sx * fw * 0.2, cy - fh * 0.05), fw * 0.045, dark)
        draw.line(canvas, (cx + sx * fw * 0.1, cy - fh * 0.17), (cx + sx * fw * 0.32, cy - fh * 0.15), style.hair,
                  max(1, round(fh * 0.03)))
    draw.line(canvas, (cx, cy), (cx - fw * 0.04, cy + fh * 0.15), draw.shade(style.skin, 0.7), max(1, round(fh * 0.02)))
    draw.ellipse(canvas, (cx, cy + fh * 0.3), (fw * 0.16, fh * 0.05), (60, 60, 150))
