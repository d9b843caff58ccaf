"""The synthetic world's pictures: codes must decode exactly, art must be reproducible from a seed."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import zxingcpp

from vision.gtin import complete_gtin13, is_valid_gtin13
from vision.synth import assets

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
needs_data = pytest.mark.skipif(
    not DATA.is_dir(), reason=f"shared data folder {DATA} is absent (see shared/data/README.md)"
)

GTINS = [
    "3017620422003",  # the SPEC's catalog example
    "0012345678905",  # leading 0: all-L parity, the UPC-A compatible case
    "5901234123457",
    complete_gtin13("400638133393"),
    complete_gtin13("999999999999"),
    complete_gtin13("200000000001"),  # in-store range, as grocery products get
]


def _entry_code(jti: str = "8c1f" * 8) -> str:
    """An entry code shaped like SPEC section 4: WO1.<payload>.<sig>, about 190 characters."""
    claims = {"cid": "c-0001", "jti": jti, "sid": "paris-flash-01", "exp": 1795510800, "party": 1}
    payload = base64.urlsafe_b64encode(json.dumps(claims, separators=(",", ":")).encode()).rstrip(b"=")
    sig = hmac.new(b"\x9f" * 32, b"WO1." + payload, hashlib.sha256).digest()
    return "WO1." + payload.decode() + "." + base64.urlsafe_b64encode(sig).rstrip(b"=").decode()


def _zxing(img: np.ndarray) -> list[str]:
    return [r.text for r in zxingcpp.read_barcodes(img)]


def _pyzbar():
    try:
        from pyzbar import pyzbar
    except ImportError as exc:  # the libzbar0 system library may be missing
        pytest.skip(f"pyzbar unusable: {exc}")
    return pyzbar


def _gray(img: np.ndarray) -> np.ndarray:
    return img if img.ndim == 2 else cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)


# --- EAN-13 -------------------------------------------------------------------------------------


@pytest.mark.parametrize("gtin", GTINS)
def test_ean13_modules_match_zxing_writer(gtin):
    # An independent encoder as oracle: a parity-table slip would still decode as *some* EAN.
    written = zxingcpp.create_barcode(gtin, zxingcpp.BarcodeFormat.EAN13)
    row = np.asarray(written.to_image(scale=1, add_hrt=False, add_quiet_zones=False))
    expected = row[row.shape[0] // 2] < 128
    modules = assets.ean13_modules(gtin)
    assert modules.dtype == bool and modules.shape == (95,)
    assert np.array_equal(modules, expected)


@pytest.mark.parametrize(
    ("bad", "words"),
    [
        ("301762042200", "13 digits"),
        ("30176204220031", "13 digits"),
        ("30176204220a3", "13 digits"),
        ("３０１７６２０４２２００３", "13 digits"),  # full-width digits pass str.isdigit()
        ("3017620422004", "expected 3"),  # wrong check digit: the message names the right one
        (3017620422003, "string"),
    ],
)
def test_ean13_modules_rejects_invalid_gtin_naming_the_problem(bad, words):
    with pytest.raises(ValueError, match=words):
        assets.ean13_modules(bad)


@pytest.mark.parametrize("module_px", [1, 2, 3])
@pytest.mark.parametrize("gtin", GTINS)
def test_render_ean13_decodes_exactly(gtin, module_px):
    img = assets.render_ean13(gtin, module_px=module_px, bar_height_px=40)
    assert img.dtype == np.uint8 and img.ndim == 2
    assert _zxing(img) == [gtin]
    pyzbar = _pyzbar()
    assert [r.data.decode() for r in pyzbar.decode(img)] == [gtin]


def test_render_ean13_has_white_quiet_zones_beside_the_bars():
    img = assets.render_ean13("3017620422003", module_px=2, bar_height_px=50)
    assert img.shape[1] == (95 + 22) * 2
    bars = img[: 2 * 2 + 50]  # the human-readable first digit sits lower, in the left quiet zone
    assert (bars[:, : 2 * 11] == 255).all() and (bars[:, -2 * 11 :] == 255).all()
    assert (bars[:, 2 * 11 : -2 * 11] == 0).any()


# --- QR -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("module_px", [1, 2, 4])
@pytest.mark.parametrize("text", [_entry_code(), _entry_code("f" * 40) + "x" * 12, "A" * 300, "WO1.é"])
def test_render_qr_decodes_exactly(text, module_px):
    img = assets.render_qr(text, module_px=module_px)
    assert img.dtype == np.uint8 and img.ndim == 2
    assert (img[: 4 * module_px] == 255).all()  # 4-module quiet zone
    assert _zxing(img) == [text]


def test_render_qr_is_reproducible_and_rejects_empty_text():
    assert np.array_equal(assets.render_qr(_entry_code()), assets.render_qr(_entry_code()))
    with pytest.raises(ValueError):
        assets.render_qr("")


# --- shelf labels -------------------------------------------------------------------------------


@pytest.mark.parametrize(("width", "height"), [(160, 48), (200, 60)])
@pytest.mark.parametrize("gtin", GTINS)
def test_shelf_label_barcode_decodes_at_frame_sizes(gtin, width, height):
    rng = np.random.default_rng(int(gtin[-4:]))
    label = assets.render_shelf_label(gtin, "Pâte à tartiner noisette 400 g", 459, "EUR", width, height, rng)
    assert label.shape == (height, width, 3) and label.dtype == np.uint8
    assert _zxing(label) == [gtin]


@pytest.mark.parametrize("scale", [0.9, 1.25])
def test_wide_shelf_label_survives_resampling(scale):
    # From 214 px wide the modules are 2 px: the label still reads after the renderer resamples
    # it (1.5 px modules of a 160-200 px label read only as drawn, not once resized).
    gtin = "3017620422003"
    rng = np.random.default_rng(0)
    label = assets.render_shelf_label(gtin, "Lait demi-écrémé 1 L", 109, "EUR", 240, 72, rng)
    frame = cv2.resize(label, None, fx=scale, fy=scale, interpolation=cv2.INTER_LINEAR)
    frame = cv2.copyMakeBorder(frame, 12, 12, 12, 12, cv2.BORDER_CONSTANT, value=(60, 60, 60))
    assert _zxing(frame) == [gtin]


def test_shelf_label_refuses_sizes_too_small_for_a_barcode():
    with pytest.raises(ValueError, match="at least"):
        assets.render_shelf_label("3017620422003", "x", 100, "EUR", 100, 30, np.random.default_rng(0))


def test_shelf_label_refuses_invalid_gtin_and_price():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="check digit"):
        assets.render_shelf_label("3017620422004", "x", 100, "EUR", 160, 48, rng)
    with pytest.raises(ValueError, match="price_cents"):
        assets.render_shelf_label("3017620422003", "x", -1, "EUR", 160, 48, rng)


# --- phone --------------------------------------------------------------------------------------


@pytest.mark.parametrize("width", [150, 180, 240, 320])
def test_phone_screen_shows_a_readable_entry_code(width):
    code = _entry_code()
    phone = assets.phone_screen(code, width, np.random.default_rng(width))
    assert phone.shape[1] == width and phone.shape[2] == 3
    assert 1.8 < phone.shape[0] / width < 2.3
    assert _zxing(phone) == [code]


# --- products -----------------------------------------------------------------------------------


def _check_products(items, count):
    assert len(items) == count
    assert len({p.gtin for p in items}) == count
    for p in items:
        assert is_valid_gtin13(p.gtin), p
        assert p.name.isascii() and p.name.strip() == p.name and p.name
        assert 50 <= p.price_cents <= 999
        assert p.image.dtype == np.uint8 and p.image.ndim == 3 and p.image.shape[2] == 3
        assert 96 <= p.image.shape[0] <= 160
        assert p.mask is not None and p.mask.shape == p.image.shape[:2]


def test_procedural_products_cover_every_kind():
    items = assets.procedural_products(np.random.default_rng(3), 10)
    _check_products(items, 10)
    assert {p.kind for p in items} == {"carton", "box", "bottle", "can", "bag"}


def test_products_without_data_are_procedural():
    items = assets.products(None, np.random.default_rng(1), 7)
    _check_products(items, 7)
    assert assets.products(Path("/nonexistent/walkout-data"), np.random.default_rng(1), 2)[0].kind in {
        "carton", "box", "bottle", "can", "bag"}


@needs_data
@pytest.mark.data
def test_grocery_products_come_from_the_photos():
    items = assets.grocery_products(DATA, np.random.default_rng(0), 20)
    _check_products(items, 20)
    assert {p.kind for p in items} <= {"carton", "fruit", "vegetable"}
    assert all(p.gtin.startswith("2") for p in items)  # GS1 in-store range
    # The GTIN belongs to the class, not to the draw: another seed gives the same class the same id.
    others = {p.name: p.gtin for p in assets.grocery_products(DATA, np.random.default_rng(9), 81)}
    assert all(others[p.name] == p.gtin for p in items)


@needs_data
@pytest.mark.data
def test_products_top_up_grocery_with_drawn_ones():
    items = assets.products(DATA, np.random.default_rng(0), 90)
    _check_products(items, 90)
    with pytest.raises(ValueError, match="81 classes"):
        assets.grocery_products(DATA, np.random.default_rng(0), 90)


@needs_data
@pytest.mark.data
def test_grocery_products_are_reproducible():
    a = assets.grocery_products(DATA, np.random.default_rng(5), 6)
    b = assets.grocery_products(DATA, np.random.default_rng(5), 6)
    assert [p.gtin for p in a] == [p.gtin for p in b]
    assert all(np.array_equal(x.image, y.image) for x, y in zip(a, b, strict=True))


def test_procedural_products_are_reproducible():
    a = assets.procedural_products(np.random.default_rng(11), 6)
    b = assets.procedural_products(np.random.default_rng(11), 6)
    def facts(items):
        return [(p.gtin, p.name, p.price_cents, p.kind) for p in items]

    assert facts(a) == facts(b)
    assert all(np.array_equal(x.image, y.image) for x, y in zip(a, b, strict=True))


# --- faces --------------------------------------------------------------------------------------


@needs_data
@pytest.mark.data
def test_face_crops_from_the_dlib_examples():
    crops = assets.face_crops(DATA)
    assert len(crops) > 20
    assert all(c.ndim == 3 and c.shape[2] == 3 and min(c.shape[:2]) >= 20 for c in crops)
    shuffled = assets.face_crops(DATA, np.random.default_rng(0))
    assert sorted(c.shape for c in shuffled) == sorted(c.shape for c in crops)


def test_face_crops_without_the_folder_are_empty():
    assert assets.face_crops(None) == []
    assert assets.face_crops(Path("/nonexistent/walkout-data")) == []


@pytest.mark.parametrize("seed", range(5))
def test_drawn_face_keeps_texture_at_24_px(seed):
    # A flat blob would be blurred by nobody: the face detector and the privacy check need detail.
    face = assets.drawn_face(np.random.default_rng(seed), 24)
    assert face.shape == (24, 24, 3) and face.dtype == np.uint8
    assert cv2.Laplacian(_gray(face), cv2.CV_64F).var() > 10


# --- determinism of everything drawn ------------------------------------------------------------

DRAWN = {
    "floor": lambda rng: assets.floor_texture(rng, 320, 180),
    "wall": lambda rng: assets.wall_texture(rng, 320, 180),
    "shelf": lambda rng: assets.shelf_board(rng, 400, 36),
    "face": lambda rng: assets.drawn_face(rng, 64),
    "label": lambda rng: assets.render_shelf_label("3017620422003", "Lait", 109, "EUR", 180, 50, rng),
    "phone": lambda rng: assets.phone_screen("WO1.abc.def", 160, rng),
}


@pytest.mark.parametrize("name", sorted(DRAWN))
def test_same_seed_same_pixels_other_seed_other_pixels(name):
    draw = DRAWN[name]
    first, again = draw(np.random.default_rng(42)), draw(np.random.default_rng(42))
    assert first.dtype == np.uint8 and first.ndim == 3
    assert np.array_equal(first, again)
    assert not np.array_equal(first, draw(np.random.default_rng(43)))


@pytest.mark.parametrize("name", ["floor", "wall", "shelf"])
def test_textures_have_the_size_asked_and_some_detail(name):
    img = DRAWN[name](np.random.default_rng(0))
    assert img.shape[:2] == {"floor": (180, 320), "wall": (180, 320), "shelf": (36, 400)}[name]
    assert _gray(img).std() > 1.0
