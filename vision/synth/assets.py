"""Pictures for the synthetic store: codes, shelf labels, products, faces, textures, phone screens.

Every picture is a numpy uint8 array (BGR for colour, single channel for codes). Every random
choice comes from the `numpy.random.Generator` passed in, so one seed gives the same pixels.
Real photos are read from `data_dir` (the shared data folder of SPEC/data README) only when a
function is called; when a folder is absent, procedural art takes its place.
"""

from __future__ import annotations

import csv
import hashlib
import unicodedata
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from vision.gtin import check_digit, complete_gtin13, is_valid_gtin13

__all__ = [
    "ProductArt",
    "drawn_face",
    "ean13_modules",
    "face_crops",
    "floor_texture",
    "grocery_products",
    "phone_screen",
    "procedural_products",
    "products",
    "render_ean13",
    "render_qr",
    "render_shelf_label",
    "shelf_board",
    "wall_texture",
]

Color = tuple[int, int, int]
_FONT = cv2.FONT_HERSHEY_SIMPLEX
_FONT_BOLD = cv2.FONT_HERSHEY_DUPLEX
_AA = cv2.LINE_AA

# ---------------------------------------------------------------------------------------------
# EAN-13
# ---------------------------------------------------------------------------------------------

_EAN_L = ("0001101", "0011001", "0010011", "0111101", "0100011",
          "0110001", "0101111", "0111011", "0110111", "0001011")
_EAN_R = tuple("".join("1" if b == "0" else "0" for b in code) for code in _EAN_L)
_EAN_G = tuple(code[::-1] for code in _EAN_R)
# The first digit is not drawn as bars: it is spelled by the L/G parity of the next six.
_EAN_PARITY = ("LLLLLL", "LLGLGG", "LLGGLG", "LLGGGL", "LGLLGG",
               "LGGLLG", "LGGGLL", "LGLGLG", "LGLGGL", "LGGLGL")
_EAN_QUIET = 11  # modules of white each side (GS1 asks 11 left, 7 right; 11 both is safer)


def ean13_modules(gtin: str) -> np.ndarray:
    """The 95 modules of an EAN-13 symbol, True where a bar is printed."""
    if not isinstance(gtin, str):
        raise ValueError(f"a GTIN-13 is a string of 13 digits, got {type(gtin).__name__}")
    if len(gtin) != 13 or not gtin.isascii() or not gtin.isdigit():
        raise ValueError(f"a GTIN-13 is 13 digits, got {gtin!r}")
    if not is_valid_gtin13(gtin):
        raise ValueError(
            f"GTIN-13 {gtin!r} has check digit {gtin[12]}, expected {check_digit(gtin[:12])}"
        )
    parity = _EAN_PARITY[int(gtin[0])]
    left = "".join((_EAN_L if p == "L" else _EAN_G)[int(d)] for p, d in zip(parity, gtin[1:7], strict=True))
    right = "".join(_EAN_R[int(d)] for d in gtin[7:])
    bits = "101" + left + "01010" + right + "101"
    return np.frombuffer(bits.encode(), dtype=np.uint8) == ord("1")


def _guard_mask() -> np.ndarray:
    """True for the modules of the start, centre and end guards (drawn a little longer)."""
    mask = np.zeros(95, dtype=bool)
    mask[0:3] = mask[45:50] = mask[92:95] = True
    return mask


def render_ean13(gtin: str, module_px: int = 2, bar_height_px: int = 50) -> np.ndarray:
    """A printable EAN-13: white background, quiet zones, longer guards, digits underneath."""
    if module_px < 1 or bar_height_px < 4:
        raise ValueError(f"module_px >= 1 and bar_height_px >= 4 expected, got {module_px}, {bar_height_px}")
    modules = ean13_modules(gtin)
    m = module_px
    top = 2 * m
    guard_extra = 5 * m
    digit_h = max(5, 7 * m)
    height = top + bar_height_px + guard_extra + 2 * m + max(0, digit_h - guard_extra)
    width = (95 + 2 * _EAN_QUIET) * m
    img = np.full((height, width), 255, dtype=np.uint8)
    x0 = _EAN_QUIET * m
    guards = _guard_mask()
    for i in np.flatnonzero(modules):
        bottom = top + bar_height_px + (guard_extra if guards[i] else 0)
        img[top:bottom, x0 + i * m : x0 + (i + 1) * m] = 0
    _draw_ean_digits(img, gtin, x0, m, top + bar_height_px + m, digit_h)
    return img


def _draw_ean_digits(img: np.ndarray, gtin: str, x0: int, m: int, y_top: int, digit_h: int) -> None:
    """Human-readable digits: first one in the left quiet zone, then two groups of six."""
    scale = _fit_text("0", _FONT, 5.5 * m, digit_h, 1)
    (tw, th), _ = cv2.getTextSize("0", _FONT, scale, 1)
    baseline_y = y_top + th
    left, right = (x0 + (3 + 7 * i) * m for i in range(6)), (x0 + (50 + 7 * i) * m for i in range(6))
    cells = [x0 - 7 * m, *left, *right]
    for digit, cell_x in zip(gtin, cells, strict=True):
        x = int(round(cell_x + (7 * m - tw) / 2))
        cv2.putText(img, digit, (x, baseline_y), _FONT, scale, 0, 1, _AA)


def _ean13_strip(gtin: str, width_px: int, bar_h: int) -> np.ndarray:
    """Bars only, centred in width_px (white around them is the quiet zone), crisp as printed.

    Measured with zxing-cpp: modules of a whole or half number of pixels read from 1 px up,
    but grey edges (modules of 1.6-2.0 px) are read only now and then; and the quiet zone
    must be at least 6 modules each side when the label sits on a dark shelf. So the module
    is the largest multiple of 0.5 px that leaves 6 modules of white each side: 1.5 px in a
    160 px label, 2 px from 214 px.
    """
    modules = ean13_modules(gtin)

    def footprint(scale: float) -> int:
        return int(95 * scale) + 2 * int(np.ceil(6 * scale))

    if footprint(1.0) > width_px:
        raise ValueError(f"an EAN-13 with its quiet zones needs {footprint(1.0)} px of width, got {width_px}")
    scale = 1.0
    while footprint(scale + 0.5) <= width_px:
        scale += 0.5
    bars_px = int(95 * scale)
    # The first bar starts on a whole pixel: 1.5 px modules then alternate 1, 2, 1, 2 px.
    edges = (width_px - bars_px) // 2 + np.floor(np.arange(96) * scale).astype(int)
    line = np.full((1, width_px), 255, np.uint8)
    for i in np.flatnonzero(modules):
        line[0, edges[i] : edges[i + 1]] = 0
    return np.repeat(line, bar_h, axis=0)


# ---------------------------------------------------------------------------------------------
# QR
# ---------------------------------------------------------------------------------------------


def _qr_matrix(text: str) -> np.ndarray:
    """Dark modules of the QR of `text` with a 4-module quiet zone (True = dark)."""
    import segno  # only the renderers need it

    if not isinstance(text, str) or not text:
        raise ValueError("a QR code needs a non-empty text")
    # Error level M and no boosting: the version depends on the text length only.
    qr = segno.make_qr(text, error="m", boost_error=False)
    return np.array([list(row) for row in qr.matrix_iter(scale=1, border=4)], dtype=bool)


def render_qr(text: str, module_px: int = 4) -> np.ndarray:
    """The QR code of `text` (error level M), grayscale, 4-module quiet zone."""
    if module_px < 1:
        raise ValueError(f"module_px >= 1 expected, got {module_px}")
    dark = _qr_matrix(text)
    img = np.where(dark, 0, 255).astype(np.uint8)
    return np.repeat(np.repeat(img, module_px, axis=0), module_px, axis=1)


def _qr_fitted(text: str, size_px: int) -> np.ndarray:
    """The QR (with quiet zone) in a size_px square; integer modules when they fit, else smoothed."""
    dark = _qr_matrix(text)
    n = dark.shape[0]
    if size_px >= 2 * n:
        module = size_px // n
        img = render_qr(text, module)
        pad = size_px - img.shape[0]
        return cv2.copyMakeBorder(img, pad // 2, pad - pad // 2, pad // 2, pad - pad // 2,
                                  cv2.BORDER_CONSTANT, value=255)
    big = render_qr(text, 8)
    return cv2.resize(big, (size_px, size_px), interpolation=cv2.INTER_AREA)


# ---------------------------------------------------------------------------------------------
# Text and colour helpers
# ---------------------------------------------------------------------------------------------


def _ascii(text: str) -> str:
    """Hershey fonts know ASCII only: strip accents (Pâte -> Pate), drop the rest."""
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    return " ".join(folded.split())


def _fit_text(text: str, font: int, max_w: float, max_h: float, thickness: int) -> float:
    """The font scale at which `text` fits in max_w x max_h (cap height, no descenders)."""
    (tw, th), _ = cv2.getTextSize(text, font, 1.0, thickness)
    return max(0.05, min(max_w / max(tw, 1), max_h / max(th, 1)))


def _put(img: np.ndarray, text: str, x: float, y_base: float, font: int, scale: float,
         color, thickness: int = 1) -> None:
    cv2.putText(img, text, (int(round(x)), int(round(y_base))), font, scale, color, thickness, _AA)


def _put_fitted(img: np.ndarray, text: str, box: tuple[float, float, float, float], font: int,
                color, thickness: int = 1, align: str = "center") -> None:
    """Draw `text` as large as fits in box (x, y, w, h), vertically centred."""
    x, y, w, h = box
    scale = _fit_text(text, font, w, h, thickness)
    (tw, th), _ = cv2.getTextSize(text, font, scale, thickness)
    tx = {"left": x, "center": x + (w - tw) / 2, "right": x + w - tw}[align]
    _put(img, text, tx, y + (h + th) / 2, font, scale, color, thickness)


def _hsv(h: float, s: float, v: float) -> Color:
    """BGR of an HSV colour given as hue in degrees, saturation and value in 0..1."""
    px = np.array([[[(h % 360) / 2, s * 255, v * 255]]], dtype=np.float32).clip(0, [179, 255, 255])
    b, g, r = cv2.cvtColor(px.astype(np.uint8), cv2.COLOR_HSV2BGR)[0, 0]
    return int(b), int(g), int(r)


def _shade(color: Color, factor: float) -> Color:
    return tuple(int(np.clip(c * factor, 0, 255)) for c in color)  # type: ignore[return-value]


def _ink_for(color: Color) -> Color:
    """Black or white, whichever reads better on `color`."""
    b, g, r = color
    return (20, 20, 20) if 0.114 * b + 0.587 * g + 0.299 * r > 140 else (250, 250, 250)


def _smooth_noise(rng: np.random.Generator, w: int, h: int, cell: float) -> np.ndarray:
    """Value noise in [-1, 1]: random values on a grid of `cell` px, bicubic in between."""
    gw, gh = max(2, int(w / cell) + 2), max(2, int(h / cell) + 2)
    grid = rng.uniform(-1, 1, size=(gh, gw)).astype(np.float32)
    return cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC).clip(-1, 1)


def _grain(rng: np.random.Generator, img: np.ndarray, sigma: float) -> np.ndarray:
    noise = rng.normal(0, sigma, size=img.shape[:2])[..., None]
    return np.clip(img.astype(np.float32) + noise, 0, 255).astype(np.uint8)


def _price_text(price_cents: int, currency: str) -> tuple[str, str]:
    """('4,59', 'EUR'): a French shelf writes a decimal comma and the currency after."""
    if not isinstance(price_cents, int | np.integer) or price_cents < 0:
        raise ValueError(f"price_cents is a non-negative integer, got {price_cents!r}")
    return f"{price_cents // 100},{price_cents % 100:02d}", _ascii(currency) or "EUR"


# ---------------------------------------------------------------------------------------------
# Shelf-edge label
# ---------------------------------------------------------------------------------------------


def render_shelf_label(gtin: str, name: str, price_cents: int, currency: str, width_px: int,
                       height_px: int, rng: np.random.Generator) -> np.ndarray:
    """A French shelf-edge label: name and big price on top, an EAN-13 across the bottom.

    The barcode spans the label width less 6-module quiet zones: modules of 1.5 px from 160 px
    wide, 2 px from 214 px (see `_ean13_strip` for what zxing-cpp reads).
    """
    if width_px < 120 or height_px < 30:
        raise ValueError(f"a shelf label needs at least 120 x 30 px to carry its EAN-13, got "
                         f"{width_px} x {height_px}")
    ean13_modules(gtin)  # validate before drawing
    w, h = width_px, height_px
    promo = rng.random() < 0.25
    white = int(rng.integers(236, 252))
    paper = (40, 215, 250) if promo else (white - int(rng.integers(0, 6)), white, white)
    accent = (180, 60, 20) if not promo else (30, 30, 200)
    img = np.full((h, w, 3), paper, dtype=np.uint8)
    stripe = max(2, h // 16)
    img[:stripe] = accent
    bar_area = int(round(h * 0.44))
    top, bottom = stripe + 1, h - bar_area - 1
    units, unit = _price_text(price_cents, currency)
    price_w = w * 0.46
    _draw_price(img, units, unit, (w - price_w - 2, top, price_w, bottom - top))
    _draw_name(img, _ascii(name), (3, top + 1, w - price_w - 8, bottom - top - 1))
    bar_h = bar_area - max(1, h // 24)
    strip = _ean13_strip(gtin, w, bar_h)  # the card itself is the quiet zone
    region = img[h - bar_area : h - bar_area + bar_h]
    # Bars are printed in black ink on the card: white strip pixels keep the card colour.
    alpha = (strip.astype(np.float32) / 255.0)[..., None]
    region[:] = (region * alpha + 15 * (1 - alpha)).astype(np.uint8)
    return _grain(rng, img, 2.0)


def _draw_price(img: np.ndarray, units: str, unit: str, box: tuple[float, float, float, float]) -> None:
    """Big units in bold, the currency code small after them, right aligned."""
    x, y, w, h = box
    thick = 2 if h >= 18 else 1
    unit_scale = _fit_text(unit, _FONT, w * 0.3, h * 0.38, 1)
    (uw, uh), _ = cv2.getTextSize(unit, _FONT, unit_scale, 1)
    scale = _fit_text(units, _FONT_BOLD, w - uw - 3, h * 0.9, thick)
    (tw, th), _ = cv2.getTextSize(units, _FONT_BOLD, scale, thick)
    base = y + (h + th) / 2
    tx = x + w - uw - 2 - tw
    _put(img, units, tx, base, _FONT_BOLD, scale, (15, 15, 15), thick)
    _put(img, unit, tx + tw + 2, base, _FONT, unit_scale, (15, 15, 15), 1)


def _draw_name(img: np.ndarray, name: str, box: tuple[float, float, float, float]) -> None:
    """The product name on up to two lines, small, upper case as on printed labels."""
    x, y, w, h = box
    words = name.upper().split() or ["?"]
    lines = _wrap(words, 2)
    line_h = min(h / len(lines) * 0.62, h * 0.3)
    scale = min(_fit_text(line, _FONT, w, line_h, 1) for line in lines)
    (_, th), _ = cv2.getTextSize("A", _FONT, scale, 1)
    gap = (h - th * len(lines)) / (len(lines) + 1)
    for i, line in enumerate(lines):
        _put(img, line, x, y + gap * (i + 1) + th * (i + 1), _FONT, scale, (30, 30, 30), 1)


def _wrap(words: list[str], max_lines: int) -> list[str]:
    """Split words into at most max_lines lines of similar length."""
    if len(words) == 1 or max_lines == 1:
        return [" ".join(words)]
    total = sum(len(w) for w in words)
    first, count = [], 0
    for word in words:
        if first and count + len(word) > total / 2:
            break
        first.append(word)
        count += len(word)
    return [" ".join(first), " ".join(words[len(first):])] if len(first) < len(words) else [" ".join(first)]


# ---------------------------------------------------------------------------------------------
# Products
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class ProductArt:
    """One product of the synthetic world and the picture of its front.

    `mask` (uint8, 255 on the product, same height and width as `image`) lets a renderer paste
    shapes that are not rectangles (bottles, cans); where it is 0 the image holds a dark shelf
    shadow so that pasting without the mask still looks plausible.
    """

    gtin: str
    name: str
    price_cents: int
    image: np.ndarray
    kind: str
    mask: np.ndarray | None = None


def products(data_dir: Path | None, rng: np.random.Generator, count: int) -> list[ProductArt]:
    """Real grocery products when `<data_dir>/grocery/iconic` exists, drawn ones otherwise.

    When more products are asked for than there are grocery classes, drawn ones fill the rest.
    """
    classes = _grocery_classes(data_dir)
    if not classes:
        return procedural_products(rng, count)
    real = grocery_products(data_dir, rng, min(count, len(classes)))
    if count <= len(real):
        return real
    taken = {p.gtin for p in real}
    return real + procedural_products(rng, count - len(real), exclude=taken)


# --- grocery photos ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _GroceryClass:
    name: str  # "Golden-Delicious"
    coarse: str  # "Apple"
    category: str  # "Fruit", "Packages" or "Vegetables"
    image: Path


def _grocery_classes(data_dir: Path | None) -> list[_GroceryClass]:
    """The iconic classes, from classes.csv when present, else from the folder tree."""
    if data_dir is None:
        return []
    root = Path(data_dir) / "grocery"
    iconic = root / "iconic"
    if not iconic.is_dir():
        return []
    found: list[_GroceryClass] = []
    table = root / "classes.csv"
    if table.is_file():
        with table.open(newline="", encoding="utf-8") as f:
            for row in csv.DictReader(f):
                parts = Path(row["Iconic Image Path (str)"]).parts  # ('/', 'iconic-images...', 'Fruit', ...)
                path = iconic.joinpath(*parts[2:])
                if path.is_file():
                    found.append(_GroceryClass(row["Class Name (str)"], row["Coarse Class Name (str)"],
                                               parts[2], path))
    if not found:
        for path in sorted(iconic.rglob("*_Iconic.jpg")):
            rel = path.relative_to(iconic).parts
            coarse = rel[-3] if len(rel) >= 4 else rel[-2]
            found.append(_GroceryClass(path.stem.removesuffix("_Iconic"), coarse, rel[0], path))
    return found


def grocery_products(data_dir: Path | None, rng: np.random.Generator, count: int) -> list[ProductArt]:
    """`count` distinct products made from the studio photos of GroceryStoreDataset."""
    classes = _grocery_classes(data_dir)
    if not classes:
        raise ValueError(f"no grocery photos under {data_dir}/grocery/iconic")
    if not 0 <= count <= len(classes):
        raise ValueError(f"asked for {count} grocery products, {len(classes)} classes are available")
    chosen = [classes[i] for i in rng.choice(len(classes), size=count, replace=False)]
    out: list[ProductArt] = []
    taken: set[str] = set()
    for cls in chosen:
        photo = cv2.imread(str(cls.image), cv2.IMREAD_COLOR)
        if photo is None:
            raise ValueError(f"cannot read grocery image {cls.image}")
        gtin = _gtin_from_name(cls.name, taken)
        taken.add(gtin)
        if cls.category == "Packages":
            image, mask = _package_front(photo)
            kind, price = "carton", _price(rng, 99, 449)
        else:
            image, mask = _produce_tray(photo, rng)
            kind = "fruit" if cls.category == "Fruit" else "vegetable"
            price = _price(rng, 89, 599)
        out.append(ProductArt(gtin, _grocery_name(cls), price, image, kind, mask))
    return out


def _gtin_from_name(name: str, taken: set[str]) -> str:
    """A stable in-store GTIN (prefix 2, GS1's restricted range) from the class name."""
    for salt in range(1000):
        digest = hashlib.sha256(f"{name}#{salt}".encode()).hexdigest()
        body = "2" + str(int(digest, 16))[-11:].zfill(11)
        gtin = complete_gtin13(body)
        if gtin not in taken:
            return gtin
    raise RuntimeError(f"no free GTIN for {name!r}")  # pragma: no cover - 1000 collisions


def _grocery_name(cls: _GroceryClass) -> str:
    """'Anjou' of coarse 'Pear' -> 'Anjou Pear'; 'Bravo-Apple-Juice' stays as it reads."""
    words = _ascii(cls.name.replace("-", " "))
    coarse = _ascii(cls.coarse.replace("-", " "))
    if coarse.lower().rstrip("s") not in words.lower():
        words = f"{words} {coarse}"
    return words


def _price(rng: np.random.Generator, low: int, high: int) -> int:
    """A shelf price ending in 5 or 9 cents, like most French prices."""
    base = int(rng.integers(low // 10, high // 10 + 1)) * 10
    return base + (9 if rng.random() < 0.8 else 5)


def _foreground(photo: np.ndarray) -> np.ndarray:
    """Mask (0/255) of the object on a studio-white background, holes filled."""
    distance = 255 - photo.min(axis=2).astype(np.int16)
    fg = (distance > 22).astype(np.uint8) * 255
    fg = cv2.morphologyEx(fg, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    fg = cv2.morphologyEx(fg, cv2.MORPH_CLOSE, np.ones((7, 7), np.uint8))
    count, labels, stats, _ = cv2.connectedComponentsWithStats(fg)
    if count <= 1:
        return np.full(fg.shape, 255, np.uint8)
    largest = stats[1:, cv2.CC_STAT_AREA].max()
    keep = np.zeros(count, bool)
    keep[1:] = stats[1:, cv2.CC_STAT_AREA] >= 0.05 * largest
    fg = np.where(keep[labels], 255, 0).astype(np.uint8)
    # Fill holes: whatever white the border cannot reach belongs to the object.
    padded = cv2.copyMakeBorder(fg, 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=0)
    flood = padded.copy()
    cv2.floodFill(flood, None, (0, 0), 255)
    holes = cv2.bitwise_not(flood)[1:-1, 1:-1]
    return fg | holes


def _bbox(mask: np.ndarray) -> tuple[int, int, int, int]:
    ys, xs = np.nonzero(mask)
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


_SHADOW: Color = (34, 36, 40)


def _package_front(photo: np.ndarray, height: int = 144) -> tuple[np.ndarray, np.ndarray]:
    """The carton cropped from its photo, its convex outline as mask, shadow around it."""
    fg = _foreground(photo)
    points = cv2.findNonZero(fg)
    hull = np.zeros_like(fg)
    cv2.fillConvexPoly(hull, cv2.convexHull(points), 255)
    x0, y0, x1, y1 = _bbox(hull)
    crop, mask = photo[y0:y1, x0:x1], hull[y0:y1, x0:x1]
    width = max(8, int(round(crop.shape[1] * height / crop.shape[0])))
    crop = cv2.resize(crop, (width, height), interpolation=cv2.INTER_AREA)
    mask = cv2.resize(mask, (width, height), interpolation=cv2.INTER_LINEAR)
    return _over_shadow(crop, mask), mask


def _over_shadow(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    alpha = (mask.astype(np.float32) / 255.0)[..., None]
    shadow = np.array(_SHADOW, np.float32)
    return (image * alpha + shadow * (1 - alpha)).astype(np.uint8)


_TRAYS: tuple[Color, ...] = ((70, 120, 160), (60, 130, 70), (40, 40, 40), (190, 200, 205))


def _produce_tray(photo: np.ndarray, rng: np.random.Generator, w: int = 160,
                  h: int = 120) -> tuple[np.ndarray, np.ndarray]:
    """Loose produce as a shop shows it: a few copies of the photo heaped in a crate."""
    fg = _foreground(photo)
    x0, y0, x1, y1 = _bbox(fg)
    item, alpha = photo[y0:y1, x0:x1], fg[y0:y1, x0:x1]
    tray = _TRAYS[int(rng.integers(len(_TRAYS)))]
    img = np.empty((h, w, 3), np.uint8)
    depth = np.linspace(0.45, 0.8, h, dtype=np.float32)[:, None, None]  # darker at the back
    img[:] = (np.array(tray, np.float32) * depth).astype(np.uint8)
    lip = int(h * 0.2)
    # Back row smaller and higher, front row larger: a heap, drawn back to front.
    rows = [(0.55, h * 0.55, 3), (0.72, h - lip + 4, 2)]
    for size, bottom, n in rows:
        for i in range(n):
            scale = size * h / item.shape[0] * rng.uniform(0.9, 1.1)
            scale = min(scale, (w / n * 1.3) / item.shape[1])
            cx = w * (i + 0.5) / n + rng.uniform(-0.08, 0.08) * w
            flip = bool(rng.random() < 0.5)
            _paste(img, item, alpha, scale, cx, bottom, flip, rng.uniform(0.85, 1.08))
    _draw_crate_lip(img, tray, lip)
    return _grain(rng, img, 1.5), np.full((h, w), 255, np.uint8)


def _paste(img: np.ndarray, item: np.ndarray, alpha: np.ndarray, scale: float, cx: float,
           bottom: float, flip: bool, gain: float) -> None:
    """Alpha-paste a scaled copy of item whose bottom centre lands at (cx, bottom)."""
    iw, ih = max(2, int(item.shape[1] * scale)), max(2, int(item.shape[0] * scale))
    part = cv2.resize(item, (iw, ih), interpolation=cv2.INTER_AREA).astype(np.float32) * gain
    a = cv2.GaussianBlur(cv2.resize(alpha, (iw, ih), interpolation=cv2.INTER_AREA), (3, 3), 0)
    if flip:
        part, a = part[:, ::-1], a[:, ::-1]
    x, y = int(cx - iw / 2), int(bottom - ih)
    sx0, sy0 = max(0, -x), max(0, -y)
    dx0, dy0 = max(0, x), max(0, y)
    dx1, dy1 = min(img.shape[1], x + iw), min(img.shape[0], y + ih)
    if dx1 <= dx0 or dy1 <= dy0:
        return
    a = (a[sy0 : sy0 + dy1 - dy0, sx0 : sx0 + dx1 - dx0].astype(np.float32) / 255.0)[..., None]
    src = part[sy0 : sy0 + dy1 - dy0, sx0 : sx0 + dx1 - dx0]
    dst = img[dy0:dy1, dx0:dx1].astype(np.float32)
    img[dy0:dy1, dx0:dx1] = np.clip(src * a + dst * (1 - a), 0, 255).astype(np.uint8)


def _draw_crate_lip(img: np.ndarray, color: Color, lip: int) -> None:
    h, w = img.shape[:2]
    y = h - lip
    img[y:] = color
    img[y : y + 2] = _shade(color, 1.25)
    img[h - 2 :] = _shade(color, 0.7)
    for x in range(w // 8, w, w // 4):  # hand-hole slots of a crate
        cv2.rectangle(img, (x, y + lip // 3), (x + w // 10, y + 2 * lip // 3), _shade(color, 0.45), -1)


# --- procedural packaging ---------------------------------------------------------------------

_KINDS = ("carton", "box", "bottle", "can", "bag")
_PRODUCT_WORDS = {
    "carton": ("Jus Orange", "Lait Demi-Ecreme", "Jus Pomme", "Boisson Avoine", "Creme Fraiche"),
    "box": ("Biscuits", "Cereales", "Riz Long", "The Vert", "Pates Fusilli", "Sucre"),
    "bottle": ("Eau Minerale", "Cola", "Huile Olive", "Limonade", "The Glace"),
    "can": ("Soda Citron", "Tomates Pelees", "Mais Doux", "Petits Pois", "Energy"),
    "bag": ("Chips Sel", "Bonbons", "Cacahuetes", "Farine", "Cafe Moulu"),
}
_SIZES = {"carton": "1 L", "box": "500 g", "bottle": "1,5 L", "can": "33 cl", "bag": "150 g"}
_SYLLABLES = ("ka", "lo", "mi", "ra", "ve", "no", "ti", "sa", "bel", "dor", "lu", "fa", "zen",
              "po", "ri", "ma", "gu", "vo", "ste", "ar")


def procedural_products(rng: np.random.Generator, count: int,
                        exclude: set[str] | frozenset[str] = frozenset()) -> list[ProductArt]:
    """`count` drawn products: cartons, boxes, bottles, cans and bags in varied colours."""
    if count < 0:
        raise ValueError(f"count must be >= 0, got {count}")
    out: list[ProductArt] = []
    taken = set(exclude)
    first_kind = int(rng.integers(len(_KINDS)))
    for i in range(count):
        kind = _KINDS[(i + first_kind) % len(_KINDS)]  # every kind, in turn
        brand = _brand(rng)
        words = _PRODUCT_WORDS[kind]
        product = words[int(rng.integers(len(words)))]
        gtin = _random_gtin(rng, taken)
        taken.add(gtin)
        image, mask = _DRAWERS[kind](rng, brand, product)
        price = _price(rng, 69, 899)
        out.append(ProductArt(gtin, f"{brand} {product} {_SIZES[kind]}", price, image, kind, mask))
    return out


def _brand(rng: np.random.Generator) -> str:
    n = int(rng.integers(2, 4))
    return "".join(_SYLLABLES[int(rng.integers(len(_SYLLABLES)))] for _ in range(n)).capitalize()


def _random_gtin(rng: np.random.Generator, taken: set[str]) -> str:
    """A GTIN with a French GS1 prefix (30-37), new to `taken`."""
    while True:
        body = str(int(rng.integers(30, 38))) + "".join(str(d) for d in rng.integers(0, 10, 10))
        gtin = complete_gtin13(body)
        if gtin not in taken:
            return gtin


def _palette(rng: np.random.Generator) -> tuple[Color, Color, Color]:
    """Main, band and accent colours of a package: a hue, its complement, a light tint."""
    hue = rng.uniform(0, 360)
    main = _hsv(hue, rng.uniform(0.55, 0.95), rng.uniform(0.55, 0.95))
    band = _hsv(hue + rng.choice([150, 180, 210]), rng.uniform(0.5, 0.9), rng.uniform(0.7, 1.0))
    light = _hsv(hue, rng.uniform(0.05, 0.2), 0.97)
    return main, band, light


def _cylinder_light(img: np.ndarray, mask: np.ndarray, x0: int, x1: int, strength: float) -> np.ndarray:
    """Shade columns x0..x1 like a lit cylinder: dark edges, a highlight left of centre."""
    w = img.shape[1]
    t = (np.arange(w, dtype=np.float32) - x0) / max(1, x1 - x0)
    light = 1 - strength * (2 * t - 1) ** 2 + 0.35 * np.exp(-(((t - 0.3) / 0.07) ** 2))
    lit = np.clip(img.astype(np.float32) * light[None, :, None], 0, 255).astype(np.uint8)
    return np.where(mask[..., None] > 0, lit, img)


def _finish(rng: np.random.Generator, img: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mask = cv2.GaussianBlur(mask, (3, 3), 0)
    return _over_shadow(_grain(rng, img, 2.5), mask), mask


def _label_panel(img: np.ndarray, brand: str, product: str, box: tuple[int, int, int, int],
                 band: Color, light: Color, rng: np.random.Generator) -> None:
    """Brand word on a colour band, product name under it, a small 'picture' of the contents."""
    x, y, w, h = box
    band_h = int(h * 0.3)
    cv2.rectangle(img, (x, y), (x + w, y + band_h), band, -1)
    _put_fitted(img, brand.upper(), (x + 3, y + 2, w - 6, band_h - 4), _FONT_BOLD, _ink_for(band), 2)
    _put_fitted(img, product, (x + 3, y + band_h + 2, w - 6, h * 0.14), _FONT, _ink_for(img[y + band_h + 4,
                x + 2].tolist()), 1)
    _draw_motif(img, rng, (x, y + int(h * 0.5), w, h - int(h * 0.5)), light)


def _draw_motif(img: np.ndarray, rng: np.random.Generator, box: tuple[int, int, int, int],
                light: Color) -> None:
    """The 'photo' of the contents on a pack: fruit, biscuits, a bowl or a swoosh."""
    x, y, w, h = box
    food = _hsv(rng.uniform(0, 60), rng.uniform(0.5, 0.9), rng.uniform(0.6, 0.95))
    cy = y + h // 2
    motif = int(rng.integers(4))
    if motif == 0:  # three fruits
        for i in range(3):
            r = max(2, int(min(w, h) * rng.uniform(0.22, 0.3)))
            cx = x + int(w * (0.3 + 0.2 * i))
            cv2.circle(img, (cx, cy), r, _shade(food, 0.8 + 0.1 * i), -1, _AA)
            cv2.circle(img, (cx - r // 3, cy - r // 3), max(1, r // 4), light, -1, _AA)
    elif motif == 1:  # a stack of biscuits
        bw, bh = int(w * 0.6), max(3, h // 6)
        for i in range(3):
            top = cy - bh * 2 + i * (bh + 1)
            cv2.rectangle(img, (x + (w - bw) // 2, top), (x + (w + bw) // 2, top + bh),
                          _shade(food, 0.9 + 0.08 * i), -1)
    elif motif == 2:  # a bowl seen from the side
        cv2.ellipse(img, (x + w // 2, cy), (int(w * 0.36), int(h * 0.3)), 0, 0, 180, light, -1, _AA)
        cv2.ellipse(img, (x + w // 2, cy), (int(w * 0.34), max(2, int(h * 0.12))), 0, 0, 360, food, -1, _AA)
    else:  # a swoosh
        pts = [(x + int(w * t), cy + int(h * 0.25 * np.sin(t * 6.0))) for t in np.linspace(0.05, 0.95, 12)]
        cv2.polylines(img, [np.array(pts, np.int32)], False, food, max(2, h // 6), _AA)


def _draw_carton(rng: np.random.Generator, brand: str, product: str) -> tuple[np.ndarray, np.ndarray]:
    h = int(rng.integers(130, 151))
    w = int(h * rng.uniform(0.45, 0.55))
    main, band, light = _palette(rng)
    img = np.zeros((h, w, 3), np.uint8)
    mask = np.zeros((h, w), np.uint8)
    gable = int(h * 0.12)
    body = np.array([[0, gable], [w - 1, gable], [w - 1, h - 1], [0, h - 1]], np.int32)
    roof = np.array([[int(w * 0.1), gable], [int(w * 0.5), 2], [int(w * 0.9), gable]], np.int32)
    cv2.rectangle(mask, (int(w * 0.3), 0), (int(w * 0.7), gable), 255, -1)  # the sealed fin
    cv2.fillPoly(mask, [body, roof], 255)
    img[mask > 0] = light
    img[gable:] = light
    cv2.rectangle(img, (int(w * 0.3), 0), (int(w * 0.7), gable), _shade(light, 0.9), -1)
    cv2.fillPoly(img, [roof], _shade(main, 0.9))
    cv2.rectangle(img, (0, gable), (w, h), main, -1)
    _label_panel(img, brand, product, (3, gable + int(h * 0.1), w - 6, int(h * 0.7)), band, light, rng)
    img[:, : max(2, w // 10)] = (img[:, : max(2, w // 10)] * 0.75).astype(np.uint8)  # side face
    return _finish(rng, img, mask)


def _draw_box(rng: np.random.Generator, brand: str, product: str) -> tuple[np.ndarray, np.ndarray]:
    h = int(rng.integers(120, 151))
    w = int(h * rng.uniform(0.68, 0.8))
    main, band, light = _palette(rng)
    img = np.full((h, w, 3), main, np.uint8)
    mask = np.full((h, w), 255, np.uint8)
    cv2.rectangle(img, (0, 0), (w, int(h * 0.06)), _shade(main, 0.8), -1)
    _label_panel(img, brand, product, (4, int(h * 0.1), w - 8, int(h * 0.82)), band, light, rng)
    cv2.ellipse(img, (w // 2, int(h * 0.92)), (w // 3, int(h * 0.05)), 0, 0, 360, band, -1, _AA)
    img[:, w - max(2, w // 14) :] = (img[:, w - max(2, w // 14) :] * 0.7).astype(np.uint8)
    return _finish(rng, img, mask)


def _draw_bottle(rng: np.random.Generator, brand: str, product: str) -> tuple[np.ndarray, np.ndarray]:
    h = int(rng.integers(140, 161))
    w = int(h * rng.uniform(0.32, 0.4))
    main, band, light = _palette(rng)
    liquid = _hsv(rng.choice([200, 30, 90, 45]), rng.uniform(0.3, 0.8), rng.uniform(0.35, 0.9))
    mask = np.zeros((h, w), np.uint8)
    neck_w, cap_h, shoulder = int(w * 0.34), int(h * 0.07), int(h * 0.3)
    nx0 = (w - neck_w) // 2
    cv2.rectangle(mask, (nx0, 0), (nx0 + neck_w, shoulder), 255, -1)
    cv2.ellipse(mask, (w // 2, shoulder), (w // 2 - 1, int(h * 0.12)), 0, 180, 360, 255, -1, _AA)
    cv2.rectangle(mask, (0, shoulder), (w - 1, h - 4), 255, -1)
    cv2.ellipse(mask, (w // 2, h - 5), (w // 2 - 1, 4), 0, 0, 180, 255, -1, _AA)
    img = np.zeros((h, w, 3), np.uint8)
    img[mask > 0] = liquid
    cv2.rectangle(img, (nx0 - 1, 0), (nx0 + neck_w + 1, cap_h), main, -1)
    label = (0, int(h * 0.42), w, int(h * 0.36))
    cv2.rectangle(img, (0, label[1]), (w, label[1] + label[3]), light, -1)
    band_h = int(label[3] * 0.45)
    cv2.rectangle(img, (0, label[1]), (w, label[1] + band_h), band, -1)
    _put_fitted(img, brand.upper(), (2, label[1] + 2, w - 4, band_h - 4), _FONT_BOLD, _ink_for(band), 1)
    _put_fitted(img, product, (2, label[1] + band_h + 3, w - 4, label[3] * 0.3), _FONT, (40, 40, 40), 1)
    img = _cylinder_light(img, mask, 0, w, 0.5)
    return _finish(rng, img, mask)


def _draw_can(rng: np.random.Generator, brand: str, product: str) -> tuple[np.ndarray, np.ndarray]:
    h = int(rng.integers(100, 121))
    w = int(h * rng.uniform(0.58, 0.66))
    main, band, light = _palette(rng)
    rim = max(3, h // 18)
    mask = np.zeros((h, w), np.uint8)
    cv2.rectangle(mask, (0, rim), (w - 1, h - rim), 255, -1)
    cv2.ellipse(mask, (w // 2, rim), (w // 2 - 1, rim), 0, 0, 360, 255, -1, _AA)
    cv2.ellipse(mask, (w // 2, h - rim - 1), (w // 2 - 1, rim), 0, 0, 360, 255, -1, _AA)
    img = np.zeros((h, w, 3), np.uint8)
    img[mask > 0] = main
    metal = (190, 192, 195)
    img[: 2 * rim + 1][mask[: 2 * rim + 1] > 0] = metal
    img[h - 2 * rim - 1 :][mask[h - 2 * rim - 1 :] > 0] = metal
    cv2.rectangle(img, (0, int(h * 0.38)), (w, int(h * 0.62)), band, -1)
    _put_fitted(img, brand.upper(), (2, h * 0.4, w - 4, h * 0.2), _FONT_BOLD, _ink_for(band), 2)
    _put_fitted(img, product, (3, h * 0.68, w - 6, h * 0.1), _FONT, _ink_for(main), 1)
    img = _cylinder_light(img, mask, 0, w, 0.55)
    return _finish(rng, img, mask)


def _draw_bag(rng: np.random.Generator, brand: str, product: str) -> tuple[np.ndarray, np.ndarray]:
    h = int(rng.integers(120, 141))
    w = int(h * rng.uniform(0.72, 0.85))
    main, band, light = _palette(rng)
    mask = np.zeros((h, w), np.uint8)
    seal = max(4, h // 14)
    body = [(int(w * 0.04), seal), (w - 1 - int(w * 0.04), seal), (w - 1, h // 2),
            (w - 1 - int(w * 0.04), h - seal), (int(w * 0.04), h - seal), (0, h // 2)]
    cv2.fillPoly(mask, [np.array(body, np.int32)], 255)
    teeth = max(4, w // 8)
    for y0, y1 in ((0, seal + 1), (h - seal - 1, h - 1)):
        cv2.rectangle(mask, (int(w * 0.04), y0 + 2), (w - 1 - int(w * 0.04), y1 - 1), 255, -1)
        for x in range(int(w * 0.04), w - int(w * 0.04), teeth):  # crimped edge
            tip = y0 if y0 == 0 else y1
            cv2.fillPoly(mask, [np.array([(x, y0 + 2 if y0 == 0 else y1 - 2), (x + teeth // 2, tip),
                                          (x + teeth, y0 + 2 if y0 == 0 else y1 - 2)], np.int32)], 255)
    img = np.zeros((h, w, 3), np.uint8)
    img[mask > 0] = main
    img[: seal + 2][mask[: seal + 2] > 0] = _shade(main, 0.75)
    img[h - seal - 2 :][mask[h - seal - 2 :] > 0] = _shade(main, 0.75)
    _label_panel(img, brand, product, (int(w * 0.1), int(h * 0.16), int(w * 0.8), int(h * 0.68)),
                 band, light, rng)
    img = _cylinder_light(img, mask, 0, w, 0.35)
    shine = _smooth_noise(rng, w, h, 25) * 18
    img = np.clip(img + shine[..., None], 0, 255).astype(np.uint8)
    return _finish(rng, img, mask)


_DRAWERS = {"carton": _draw_carton, "box": _draw_box, "bottle": _draw_bottle, "can": _draw_can,
            "bag": _draw_bag}


# ---------------------------------------------------------------------------------------------
# Faces
# ---------------------------------------------------------------------------------------------


def face_crops(data_dir: Path | None, rng: np.random.Generator | None = None) -> list[np.ndarray]:
    """Real faces from `<data_dir>/faces/dlib-examples` (training.xml + testing.xml boxes).

    Each crop has a 15% margin so the whole face shows; boxes under 20 px are skipped.
    Returns [] when the folder is absent; with `rng` the order is shuffled.
    """
    if data_dir is None:
        return []
    folder = Path(data_dir) / "faces" / "dlib-examples"
    crops: list[np.ndarray] = []
    for xml_name in ("training.xml", "testing.xml"):
        xml_path = folder / xml_name
        if not xml_path.is_file():
            continue
        for image_el in ET.parse(xml_path).getroot().iter("image"):
            photo = cv2.imread(str(folder / image_el.get("file", "")), cv2.IMREAD_COLOR)
            if photo is None:
                continue
            for box in image_el.iter("box"):
                crop = _face_crop(photo, box)
                if crop is not None:
                    crops.append(crop)
    if rng is not None:
        crops = [crops[i] for i in rng.permutation(len(crops))]
    return crops


def _face_crop(photo: np.ndarray, box: ET.Element) -> np.ndarray | None:
    if box.get("ignore") == "1":
        return None
    top, left = int(box.get("top", 0)), int(box.get("left", 0))
    width, height = int(box.get("width", 0)), int(box.get("height", 0))
    if min(width, height) < 20:
        return None
    mx, my = int(round(width * 0.15)), int(round(height * 0.15))
    y0, y1 = max(0, top - my), min(photo.shape[0], top + height + my)
    x0, x1 = max(0, left - mx), min(photo.shape[1], left + width + mx)
    return photo[y0:y1, x0:x1].copy() if y1 > y0 and x1 > x0 else None


_SKIN: tuple[Color, ...] = ((185, 205, 240), (150, 180, 225), (120, 160, 210), (90, 130, 185),
                            (60, 95, 150), (45, 70, 110))
_HAIR: tuple[Color, ...] = ((20, 20, 25), (30, 45, 70), (50, 80, 120), (120, 170, 200), (150, 150, 155))


def drawn_face(rng: np.random.Generator, size_px: int) -> np.ndarray:
    """A drawn head and shoulders (shaded skin, hair, eyes, brows, nose, mouth), size_px square, BGR.

    Drawn at 128 px and shrunk, so small faces keep the contrast of real ones.
    """
    if size_px < 8:
        raise ValueError(f"size_px >= 8 expected, got {size_px}")
    s = 128
    skin = _shade(_SKIN[int(rng.integers(len(_SKIN)))], rng.uniform(0.92, 1.05))
    hair = _HAIR[int(rng.integers(len(_HAIR)))]
    back = np.array(_hsv(rng.uniform(0, 360), rng.uniform(0.05, 0.3), rng.uniform(0.35, 0.8)), np.float32)
    img = (back + _smooth_noise(rng, s, s, 40)[..., None] * 12).clip(0, 255).astype(np.uint8)
    cx, cy = s // 2 + int(rng.integers(-3, 4)), int(s * 0.5)
    fw, fh = int(s * rng.uniform(0.27, 0.31)), int(s * rng.uniform(0.36, 0.4))
    cloth = _hsv(rng.uniform(0, 360), rng.uniform(0.2, 0.8), rng.uniform(0.25, 0.8))
    cv2.ellipse(img, (cx, s + 14), (int(s * 0.5), 40), 0, 180, 360, cloth, -1, _AA)  # shoulders
    cv2.rectangle(img, (cx - fw // 2, cy + fh // 2), (cx + fw // 2, s - 20), _shade(skin, 0.72), -1)  # neck
    long_hair = rng.random() < 0.4
    hair_h = fh + (22 if long_hair else 6)
    cv2.ellipse(img, (cx, cy - 6 + (14 if long_hair else 0)), (fw + 7, hair_h), 0, 0, 360, hair, -1, _AA)
    for side in (-1, 1):
        cv2.ellipse(img, (cx + side * fw, cy + 2), (6, 11), 0, 0, 360, _shade(skin, 0.85), -1, _AA)
    face = np.zeros((s, s), np.uint8)
    cv2.ellipse(face, (cx, cy), (fw, fh), 0, 0, 360, 255, -1, _AA)
    # Light from above-left: the face is brighter at the forehead and darker at the jaw and sides.
    yy, xx = np.mgrid[0:s, 0:s].astype(np.float32)
    r2 = ((xx - cx + 6) / fw) ** 2 + ((yy - cy + 10) / fh) ** 2
    light = (1.1 - 0.3 * r2).clip(0.6, 1.15)[..., None]
    skin_layer = np.array(skin, np.float32) * light
    alpha = (face.astype(np.float32) / 255)[..., None]
    img = (skin_layer * alpha + img * (1 - alpha)).clip(0, 255).astype(np.uint8)
    fringe_h = int(rng.uniform(16, 26))
    cv2.ellipse(img, (cx + int(rng.integers(-6, 7)), cy - fh + fringe_h - 6), (fw + 3, fringe_h), 0, 180, 360,
                hair, -1, _AA)
    _draw_features(img, rng, cx, cy, fw, fh, skin, hair)
    img = cv2.GaussianBlur(_grain(rng, img, 3.0), (3, 3), 0)
    return cv2.resize(img, (size_px, size_px), interpolation=cv2.INTER_AREA)


def _draw_features(img: np.ndarray, rng: np.random.Generator, cx: int, cy: int, fw: int, fh: int,
                   skin: Color, hair: Color) -> None:
    eye_y, eye_dx = cy - int(fh * 0.08), int(fw * 0.42)
    iris = ((40, 50, 60), (90, 70, 40), (60, 90, 50), (30, 40, 70))[int(rng.integers(4))]
    for side in (-1, 1):
        ex = cx + side * eye_dx
        cv2.ellipse(img, (ex, eye_y + 3), (10, 6), 0, 180, 360, _shade(skin, 0.7), -1, _AA)  # eye socket
        cv2.ellipse(img, (ex, eye_y), (8, 4), 0, 0, 360, (215, 220, 225), -1, _AA)
        cv2.circle(img, (ex, eye_y), 4, iris, -1, _AA)
        cv2.circle(img, (ex, eye_y), 2, (10, 10, 10), -1, _AA)
        cv2.ellipse(img, (ex, eye_y), (8, 4), 0, 180, 360, _shade(skin, 0.45), 1, _AA)  # lid line
        cv2.ellipse(img, (ex, eye_y - 10), (11, 4), 0, 180 + 15 * side, 360 + 15 * side,
                    _shade(hair, 0.8), 3, _AA)  # brow
    nose_y = cy + int(fh * 0.25)
    cv2.line(img, (cx + 3, eye_y + 4), (cx + 5, nose_y - 2), _shade(skin, 0.8), 2, _AA)
    cv2.ellipse(img, (cx, nose_y), (8, 4), 0, 0, 180, _shade(skin, 0.62), 2, _AA)
    cv2.ellipse(img, (cx, nose_y + 6), (10, 3), 0, 0, 180, _shade(skin, 0.85), 2, _AA)  # nose shadow
    mouth_y = cy + int(fh * 0.52)
    lips = _shade((100, 100, 175), float(np.mean(skin)) / 170)
    cv2.ellipse(img, (cx, mouth_y), (12, 4), 0, 0, 360, lips, -1, _AA)
    cv2.line(img, (cx - 11, mouth_y), (cx + 11, mouth_y), _shade(lips, 0.45), 2, _AA)
    cv2.ellipse(img, (cx, mouth_y + 13), (9, 4), 0, 0, 180, _shade(skin, 0.85), 2, _AA)  # chin


# ---------------------------------------------------------------------------------------------
# Textures
# ---------------------------------------------------------------------------------------------


def _check_size(w: int, h: int) -> None:
    if w < 4 or h < 4:
        raise ValueError(f"texture size must be at least 4 x 4, got {w} x {h}")


def floor_texture(rng: np.random.Generator, w: int, h: int) -> np.ndarray:
    """A shop floor: square tiles with grout lines, or a linoleum sheet with speckles."""
    _check_size(w, h)
    base = np.array(_hsv(rng.uniform(15, 45), rng.uniform(0.05, 0.35), rng.uniform(0.55, 0.85)), np.float32)
    mottle = _smooth_noise(rng, w, h, rng.uniform(30, 90))[..., None] * 10
    img = base + mottle + rng.normal(0, 4, (h, w, 1))
    if rng.random() < 0.7:
        tile = int(rng.integers(48, 97))
        jitter = rng.uniform(-10, 10, ((h + tile - 1) // tile, (w + tile - 1) // tile)).astype(np.float32)
        img += np.repeat(np.repeat(jitter, tile, 0), tile, 1)[:h, :w, None]
        grout = int(rng.integers(1, 4))
        lines = np.zeros((h, w), bool)
        for y in range(0, h, tile):
            lines[y : y + grout] = True
        for x in range(0, w, tile):
            lines[:, x : x + grout] = True
        img[lines] = img[lines] * 0.7
    else:  # linoleum: dark and light flecks
        flecks = rng.random((h, w)) < 0.02
        img[flecks] = img[flecks] * rng.uniform(0.6, 1.3)
    img = np.clip(img, 0, 255).astype(np.uint8)
    return cv2.GaussianBlur(img, (3, 3), 0)


def wall_texture(rng: np.random.Generator, w: int, h: int) -> np.ndarray:
    """A painted wall (soft roller marks) or vertical panels with seams."""
    _check_size(w, h)
    base = np.array(_hsv(rng.uniform(0, 360), rng.uniform(0.03, 0.25), rng.uniform(0.7, 0.95)), np.float32)
    img = base + _smooth_noise(rng, w, h, rng.uniform(60, 160))[..., None] * 6
    img += rng.normal(0, 2.5, (h, w, 1))
    if rng.random() < 0.5:
        panel = int(rng.integers(90, 200))
        for x in range(panel, w, panel):
            img[:, max(0, x - 1) : x + 1] *= 0.8
            img[:, x + 1 : x + 3] *= 1.05
    # Light from the ceiling: a little brighter towards the top.
    img *= np.linspace(1.05, 0.92, h, dtype=np.float32)[:, None, None]
    return np.clip(img, 0, 255).astype(np.uint8)


def shelf_board(rng: np.random.Generator, w: int, h: int) -> np.ndarray:
    """A shelf's front edge: top face of metal or wood, a price rail over its lower ~60%."""
    _check_size(w, h)
    if rng.random() < 0.6:
        grey = float(rng.choice([60, 185, 215]))
        board = np.full((h, w, 3), grey, np.float32) + rng.normal(0, 2, (h, w, 1))
    else:
        wood = np.array(_hsv(rng.uniform(20, 35), rng.uniform(0.4, 0.65), rng.uniform(0.45, 0.75)),
                        np.float32)
        grain = _smooth_noise(rng, max(4, w // 8), h, 3)
        grain = cv2.resize(grain, (w, h), interpolation=cv2.INTER_LINEAR)[..., None]
        board = wood + grain * 18 + rng.normal(0, 3, (h, w, 1))
    rail_top = int(round(h * 0.4))
    board[:rail_top] *= np.linspace(1.1, 0.95, rail_top, dtype=np.float32)[:, None, None]
    rail = np.array(_hsv(rng.uniform(0, 360), rng.uniform(0.0, 0.08), rng.uniform(0.78, 0.9)), np.float32)
    board[rail_top:] = rail + rng.normal(0, 1.5, (h - rail_top, w, 1))
    lip = max(1, h // 14)
    board[rail_top : rail_top + lip] *= 0.6  # upper lip of the label channel
    board[h - lip :] *= 0.55  # lower lip
    return np.clip(board, 0, 255).astype(np.uint8)


# ---------------------------------------------------------------------------------------------
# Phone
# ---------------------------------------------------------------------------------------------

_BRAND_BLUE: Color = (176, 98, 18)


def phone_screen(code_text: str, width_px: int, rng: np.random.Generator) -> np.ndarray:
    """A phone held out at the gate, showing the walkout app and the entry QR, about 1:2, BGR.

    The QR (with its quiet zone) spans the white screen edge to edge, so it decodes from
    width_px 150 with texts up to ~300 characters.
    """
    if width_px < 60:
        raise ValueError(f"width_px >= 60 expected, got {width_px}")
    w = width_px
    h = int(round(w * 2.05))
    body = _shade((28, 28, 32), rng.uniform(0.6, 1.6))
    img = np.full((h, w, 3), body, np.uint8)
    bezel = max(3, int(round(w * 0.035)))
    radius = max(3, w // 9)
    cv2.rectangle(img, (0, 0), (w - 1, h - 1), _shade(body, 0.6), 1)
    screen = (bezel, bezel + max(2, w // 30), w - bezel, h - bezel - max(2, w // 30))
    _rounded_rect(img, screen, radius, (250, 250, 250))
    x0, y0, x1, _ = screen
    sw = x1 - x0
    header_h = max(14, int(sw * 0.22))
    _rounded_rect(img, (x0, y0, x1, y0 + header_h + radius), radius, _BRAND_BLUE)
    img[y0 + header_h : y0 + header_h + radius, x0:x1] = 250
    _put_fitted(img, "walkout", (x0 + sw * 0.18, y0 + header_h * 0.3, sw * 0.64, header_h * 0.5),
                _FONT_BOLD, (255, 255, 255), 1 if w < 240 else 2)
    top = y0
    qr_y = top + header_h + max(4, sw // 12)
    qr = _qr_fitted(code_text, sw)
    img[qr_y : qr_y + sw, x0:x1] = qr[..., None]
    caption_y = qr_y + sw + max(4, sw // 16)
    _put_fitted(img, "Scan at the gate", (x0 + sw * 0.1, caption_y, sw * 0.8, max(6, sw * 0.07)),
                _FONT, (80, 80, 80), 1)
    button_y = caption_y + max(10, int(sw * 0.16))
    cv2.rectangle(img, (x0 + sw // 5, button_y), (x1 - sw // 5, button_y + max(6, sw // 9)), _BRAND_BLUE, -1)
    return img


def _rounded_rect(img: np.ndarray, rect: tuple[int, int, int, int], r: int, color: Color) -> None:
    x0, y0, x1, y1 = rect
    cv2.rectangle(img, (x0 + r, y0), (x1 - r - 1, y1 - 1), color, -1)
    cv2.rectangle(img, (x0, y0 + r), (x1 - 1, y1 - r - 1), color, -1)
    for cx, cy in ((x0 + r, y0 + r), (x1 - r - 1, y0 + r), (x0 + r, y1 - r - 1), (x1 - r - 1, y1 - r - 1)):
        cv2.circle(img, (cx, cy), r, color, -1, _AA)
