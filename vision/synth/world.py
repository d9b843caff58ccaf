"""The places a scenario happens in: the shelf wall seen by the aisle camera and the entry gate.

The shelf wall is laid out face-on on a "plane" canvas and warped into the camera by a
homography, so that the wall is seen in perspective (camera height and angle are randomised) and
every slot and label polygon in store.yaml is the exact image of its face-on rectangle.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from vision.synth import assets, draw
from vision.synth.draw import Box
from vision.synth.randomize import Look

AISLE_SIZE = (1280, 720)
GATE_SIZE = (640, 480)
_MARGIN = 120  # the plane is larger than the image so that a warp never shows its edge


@dataclass(frozen=True)
class SlotLayout:
    id: str
    planned: str  # gtin of the product the planogram puts here
    rect: Box  # face-on plane rectangle of the slot
    label_rect: Box
    facing_size: tuple[int, int]  # (w, h) of one facing on the plane
    capacity: int

    def position(self, index: int) -> tuple[float, float]:
        """Plane centre of the facing at `index` (0 = leftmost)."""
        x0, _, _, y1 = self.rect
        fw, fh = self.facing_size
        gap = fw * 0.12
        return (x0 + gap + index * (fw + gap) + fw / 2, y1 - fh / 2 - 2)


@dataclass
class ShelfWall:
    """The aisle camera's view: static background parts plus the facings currently on the shelves."""

    slots: dict[str, SlotLayout]
    homography: np.ndarray  # plane -> image
    plane_background: np.ndarray = field(repr=False)  # wall, shelves, labels, distractors, no products
    facing_art: dict[str, np.ndarray] = field(repr=False)  # gtin -> face-on facing image (any slot's size)
    zones: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    floor_y: float = 690.0  # image y where shoppers' feet are, on average

    def to_image(self, points: np.ndarray | list) -> np.ndarray:
        pts = np.asarray(points, dtype=np.float64).reshape(-1, 1, 2)
        return cv2.perspectiveTransform(pts, self.homography).reshape(-1, 2)

    def polygon(self, rect: Box) -> list[list[float]]:
        x0, y0, x1, y1 = rect
        pts = self.to_image([[x0, y0], [x1, y0], [x1, y1], [x0, y1]])
        w, h = AISLE_SIZE
        return [[round(float(np.clip(x, 0, w)), 1), round(float(np.clip(y, 0, h)), 1)] for x, y in pts]

    def image_point(self, plane_xy: tuple[float, float]) -> tuple[float, float]:
        x, y = self.to_image([plane_xy])[0]
        return (float(x), float(y))

    def slot_x(self, slot_id: str) -> float:
        """Image x of the middle of a slot's shelf edge: where a shopper heads for it."""
        x0, _, x1, y1 = self.slots[slot_id].rect
        return self.image_point(((x0 + x1) / 2, y1))[0]

    def facing_image_size(self, slot_id: str) -> tuple[int, int]:
        """Approximate image-space size of one facing, for drawing it in a shopper's hand."""
        slot = self.slots[slot_id]
        cx, cy = slot.position(0)
        fw, fh = slot.facing_size
        pts = self.to_image([[cx - fw / 2, cy - fh / 2], [cx + fw / 2, cy + fh / 2]])
        return (max(4, round(abs(pts[1, 0] - pts[0, 0]))), max(4, round(abs(pts[1, 1] - pts[0, 1]))))

    def render(self, contents: dict[str, list[str]]) -> np.ndarray:
        """The background image with `contents` (slot -> gtins of its facings, left to right)."""
        plane = self.plane_background.copy()
        for slot_id, gtins in contents.items():
            slot = self.slots[slot_id]
            fw, fh = slot.facing_size
            for i, gtin in enumerate(gtins):
                art = draw.resize_to(self.facing_art[gtin], fw, fh)
                cx, cy = slot.position(i)
                draw.paste(plane, art, cx - fw / 2, cy - fh / 2)
        w, h = AISLE_SIZE
        return cv2.warpPerspective(plane, self.homography, (w, h), flags=cv2.INTER_LINEAR,
                                   borderMode=cv2.BORDER_REFLECT)


def _camera_homography(rng: np.random.Generator, look: Look, plane_w: int, plane_h: int) -> np.ndarray:
    """Plane -> image: a face-on view moved by a random camera height and angle.

    The four plane corners (outside the image by the margin) are pushed in by keystone amounts:
    a camera mounted high sees the top of the wall narrower; one off to the side, the far side
    shorter.
    """
    m = _MARGIN
    src = np.float32([[0, 0], [plane_w, 0], [plane_w, plane_h], [0, plane_h]])
    w, h = AISLE_SIZE
    yaw = float(rng.uniform(-1, 1)) * look.keystone * h  # vertical squeeze of one side
    pitch = float(rng.uniform(-0.3, 1.0)) * look.keystone * w  # horizontal squeeze of the top
    dst = np.float32([
        [-m + pitch, -m + max(yaw, 0)], [w + m - pitch, -m + max(-yaw, 0)],
        [w + m, h + m - max(-yaw, 0) * 0.3], [-m, h + m - max(yaw, 0) * 0.3],
    ])
    shift = rng.uniform(-1, 1, size=2) * look.keystone * np.array([w, h]) * 0.15
    dst = dst + shift.astype(np.float32)
    return cv2.getPerspectiveTransform(src, dst)


def build_shelf_wall(rng: np.random.Generator, look: Look, products: list[assets.ProductArt],
                     n_slots_hint: int = 12) -> tuple[ShelfWall, dict[str, list[str]]]:
    """Lay out 3-4 shelves of slots with the given products; returns the wall and its initial contents."""
    w, h = AISLE_SIZE
    pw, ph = w + 2 * _MARGIN, h + 2 * _MARGIN
    m = _MARGIN
    plane = np.ascontiguousarray(assets.wall_texture(rng, pw, ph))
    floor_y = m + float(rng.uniform(530, 570))
    plane[int(floor_y):] = assets.floor_texture(rng, pw, ph - int(floor_y))

    n_rows = int(rng.integers(3, 5))
    top = m + float(rng.uniform(40, 70))
    unit_x0, unit_x1 = m + float(rng.uniform(40, 120)), m + w - float(rng.uniform(40, 120))
    row_h = (floor_y - 20 - top) / n_rows
    # Shelving unit: back panel and side uprights.
    back = tuple(int(v) for v in rng.integers(150, 235, 3))
    cv2.rectangle(plane, (int(unit_x0), int(top - 10)), (int(unit_x1), int(floor_y)), back, -1)
    upright = tuple(int(v) for v in rng.integers(60, 200, 3))
    for ux in (unit_x0, unit_x1):
        cv2.rectangle(plane, (int(ux - 10), int(top - 20)), (int(ux + 10), int(floor_y)), upright, -1)
    _wall_distractors(rng, plane, unit_x0, unit_x1, top)

    slots: dict[str, SlotLayout] = {}
    contents: dict[str, list[str]] = {}
    facing_art: dict[str, np.ndarray] = {p.gtin: p.image for p in products}
    order = list(rng.permutation(len(products)))
    per_row = max(2, int(np.ceil(n_slots_hint / n_rows)))
    board_h, label_h = 10.0, float(rng.uniform(38, 46))
    k = 0
    for r in range(n_rows):
        row_top = top + r * row_h
        board_y = row_top + row_h - label_h
        board = assets.shelf_board(rng, int(unit_x1 - unit_x0), int(board_h + label_h))
        draw.paste(plane, board, unit_x0, board_y)
        widths = rng.uniform(0.8, 1.2, size=per_row)
        edges = unit_x0 + 14 + np.concatenate([[0], np.cumsum(widths)]) / widths.sum() * (unit_x1 - unit_x0 - 28)
        for c in range(per_row):
            if k >= len(products) * 3 or len(slots) >= n_slots_hint:
                break
            product = products[order[k % len(products)]]
            k += 1
            x0, x1 = float(edges[c]) + 4, float(edges[c + 1]) - 4
            avail_h = board_y - row_top - 10
            fh = int(avail_h * rng.uniform(0.72, 0.92))
            aspect = product.image.shape[1] / product.image.shape[0]
            fw = int(np.clip(fh * aspect, 30, (x1 - x0) / 2.2))
            fh = int(min(fh, fw / aspect))
            capacity = int(max(1, min(4, (x1 - x0 - fw * 0.12) // (fw * 1.12))))
            slot_id = f"{'ABCD'[r]}{c + 1}"
            label_w = min(x1 - x0 - 6, float(rng.uniform(232, 270)))
            lx0 = (x0 + x1) / 2 - label_w / 2
            label_rect = (lx0, board_y + board_h + 2, lx0 + label_w, board_y + board_h + label_h - 4)
            label = assets.render_shelf_label(product.gtin, product.name, product.price_cents, "EUR",
                                              int(label_w), int(label_h - 6), rng)
            draw.paste(plane, label, label_rect[0], label_rect[1])
            slots[slot_id] = SlotLayout(slot_id, product.gtin, (x0, row_top + 6, x1, board_y), label_rect,
                                        (fw, fh), capacity)
            # Leave room for a put-back in most slots: a full shelf hides nothing of a put.
            n = int(rng.integers(1, capacity + 1))
            if n == capacity and capacity > 1 and rng.random() < 0.6:
                n -= 1
            contents[slot_id] = [product.gtin] * n
    wall = ShelfWall(slots, _camera_homography(rng, look, pw, ph), plane, facing_art)
    img_floor = wall.image_point((m + w / 2, floor_y))[1]
    wall.floor_y = float(np.clip(img_floor + 110, 650, 705))
    wall.zones = {
        "entry-1": [(0, 400), (160, 400), (160, 720), (0, 720)],
        "exit-1": [(1120, 400), (1280, 400), (1280, 720), (1120, 720)],
    }
    return wall, contents


def _wall_distractors(rng: np.random.Generator, plane: np.ndarray, x0: float, x1: float, top: float) -> None:
    """Posters, promo signs and a pillar: things a detector must learn are not people or products."""
    for _ in range(int(rng.integers(1, 4))):
        pw, ph = int(rng.integers(60, 160)), int(rng.integers(40, 110))
        if rng.random() < 0.5:
            px = int(rng.uniform(10, max(11, x0 - pw - 10)))
        else:
            px = int(rng.uniform(min(x1 + 10, plane.shape[1] - pw - 11), plane.shape[1] - pw - 10))
        py = int(rng.uniform(top, top + 300))
        colour = tuple(int(v) for v in rng.integers(0, 255, 3))
        cv2.rectangle(plane, (px, py), (px + pw, py + ph), colour, -1)
        word = str(rng.choice(["PROMO", "-30%", "BIO", "NEW", "2+1", "LOCAL", "FRAIS"]))
        cv2.putText(plane, word, (px + 6, py + ph // 2 + 8), cv2.FONT_HERSHEY_DUPLEX, 0.7, (255, 255, 255), 2,
                    cv2.LINE_AA)
    if rng.random() < 0.5:
        # A hanging aisle sign above the shelves.
        sx = int(rng.uniform(x0 + 100, x1 - 300))
        colour = tuple(int(v) for v in rng.integers(0, 255, 3))
        cv2.rectangle(plane, (sx, int(top - 70)), (sx + 220, int(top - 25)), colour, -1)
        cv2.putText(plane, str(rng.choice(["EPICERIE", "PETIT DEJ", "BOISSONS", "SNACKS"])), (sx + 12, int(top - 38)),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.9, (255, 255, 255), 2, cv2.LINE_AA)


def gate_background(rng: np.random.Generator) -> np.ndarray:
    """The entry gate as its close-up camera sees it: wall, glass doors, a scanner post and a sign."""
    w, h = GATE_SIZE
    img = np.ascontiguousarray(assets.wall_texture(rng, w, h))
    floor_top = int(rng.uniform(330, 400))
    img[floor_top:] = assets.floor_texture(rng, w, h - floor_top)
    # Sliding glass doors: pale blue panes with frames, the store inside seen dimly through them.
    frame = tuple(int(v) for v in rng.integers(80, 200, 3))
    dx0 = int(rng.uniform(60, 200))
    for i in range(2):
        x = dx0 + i * 170
        pane = img[40:floor_top, x:x + 160].astype(np.float32)
        img[40:floor_top, x:x + 160] = (pane * 0.55 + np.array([230, 210, 190]) * 0.45).astype(np.uint8)
        cv2.rectangle(img, (x, 40), (x + 160, floor_top), frame, 6)
    post_x = int(rng.uniform(20, 60)) if rng.random() < 0.5 else int(rng.uniform(520, 580))
    cv2.rectangle(img, (post_x, 150), (post_x + 40, floor_top + 40), (70, 70, 75), -1)
    cv2.rectangle(img, (post_x + 4, 160), (post_x + 36, 200), (40, 160, 60), -1)
    sign = tuple(int(v) for v in rng.integers(0, 255, 3))
    cv2.rectangle(img, (dx0 + 40, 5), (dx0 + 300, 34), sign, -1)
    cv2.putText(img, "walkout  ENTREE", (dx0 + 50, 27), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (255, 255, 255), 2, cv2.LINE_AA)
    return img
