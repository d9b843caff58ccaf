"""store.yaml, scenario.yaml and catalog.csv: every mistake a user can make names file and field.

Each broken case starts from one valid scenario directory and changes one thing, so a failure
here means that one mistake would reach the user as a traceback, a silent default, or an error
that does not say where to look.
"""

from __future__ import annotations

import pickle
import random
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pydantic
import pytest
import yaml

from store_runtime.config import (
    MAX_YAML_BYTES,
    ConfigError,
    Scenario,
    StoreConfig,
    load_catalog,
    load_scenario,
    load_store,
)

GTIN_A = "3017620422003"
GTIN_B = "5449000000996"
GTIN_UNSOLD = "4006381333931"  # valid, but not in the catalog
KEY_HEX = "9f2c" + "00112233445566778899aabbccddeeff" + "0123456789abcdef0123456789ab"
START = "2026-11-22T09:00:00Z"
START_UNIX = 1795338000.0


# --------------------------------------------------------------------------------------------
# A valid scenario, as data, and the factory that writes it


@dataclass
class Draft:
    """A scenario directory before it is written: tests change one thing in it."""

    scenario: dict[str, Any]
    store: dict[str, Any]
    catalog: list[list[str]]  # header first
    edits: dict[str, Callable[[str], str]] = field(default_factory=dict)  # name -> text edit
    raw: dict[str, bytes] = field(default_factory=dict)  # name -> bytes written as they are
    after: list[Callable[[Path], None]] = field(default_factory=list)  # run on the written dir


def draft() -> Draft:
    zone_in = [[0, 400], [160, 400], [160, 720], [0, 720]]
    zone_out = [[1120, 400], [1280, 400], [1280, 720], [1120, 720]]
    return Draft(
        scenario={
            "version": 1,
            "store": "store.yaml",
            "start": START,
            "cameras": {"gate": {"video": "cameras/gate.mp4"}, "aisle": {"video": "cameras/aisle.mp4"}},
        },
        store={
            "version": 1,
            "store_id": "paris-flash-01",
            "currency": "EUR",
            "entry_key": KEY_HEX,
            "catalog": "catalog.csv",
            "gates": {"entry-1": {"kind": "entry"}, "exit-1": {"kind": "exit"}},
            "cameras": {
                "gate": {"role": "gate", "gate": "entry-1", "size": [640, 480], "fps": 15},
                "aisle": {
                    "role": "shelf",
                    "size": [1280, 720],
                    "fps": 15,
                    "zones": {"entry-1": zone_in, "exit-1": zone_out},
                    "slots": [
                        {
                            "id": "A1",
                            "gtin": GTIN_A,
                            "polygon": [[100, 80], [260, 80], [260, 200], [100, 200]],
                            "label": [[110, 200], [250, 200], [250, 230], [110, 230]],
                        },
                        {"id": "A2", "gtin": GTIN_B, "polygon": [[300, 80], [460, 80], [460, 200]]},
                    ],
                },
            },
        },
        catalog=[
            ["gtin", "name", "price_cents", "image", "image2"],
            [GTIN_A, "Pâte à tartiner 400 g", "459", f"products/{GTIN_A}.png", f"products/{GTIN_A}-b.png"],
            [GTIN_B, "Cola 33 cl", "120", f"products/{GTIN_B}.png", ""],
        ],
    )


def write(d: Draft, base: Path) -> Path:
    """Write `d` as SCENARIO_DIR under `base`, next to a file outside it that escapes aim at."""
    root = base / "scn"
    root.mkdir()
    (base / "outside.mp4").write_bytes(b"not yours")
    texts = {
        "scenario.yaml": yaml.safe_dump(d.scenario, sort_keys=False),
        "store.yaml": yaml.safe_dump(d.store, sort_keys=False),
        "catalog.csv": "".join(",".join(row) + "\n" for row in d.catalog),
    }
    for name, text in texts.items():
        text = d.edits.get(name, lambda t: t)(text)
        (root / name).write_bytes(d.raw.get(name, text.encode("utf-8")))
    placeholders = [f"products/{GTIN_A}.png", f"products/{GTIN_A}-b.png", f"products/{GTIN_B}.png",
                    "cameras/gate.mp4", "cameras/aisle.mp4"]
    for rel in placeholders:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(b"placeholder")
    for step in d.after:
        step(root)
    return root


def at(tree: Any, dotted: str) -> Any:
    """The nested dict or list at 'cameras.aisle.slots.0' (list indexes as numbers)."""
    for part in dotted.split("."):
        tree = tree[int(part)] if isinstance(tree, list) else tree[part]
    return tree


def cell(d: Draft, row: int, column: str, value: str) -> None:
    """Set catalog.csv's `column` on spreadsheet row `row` (the header is row 1)."""
    d.catalog[row - 1][d.catalog[0].index(column)] = value


def edit(name: str, fn: Callable[[str], str]) -> Callable[[Draft], None]:
    return lambda d: d.edits.__setitem__(name, fn)


def raw(name: str, content: bytes) -> Callable[[Draft], None]:
    return lambda d: d.raw.__setitem__(name, content)


def put(tree: str, dotted: str, **values: Any) -> Callable[[Draft], None]:
    return lambda d: at(getattr(d, tree), dotted).update(values)


def drop(tree: str, dotted: str, key: str) -> Callable[[Draft], None]:
    return lambda d: at(getattr(d, tree), dotted).pop(key)


def symlink_video_outside(d: Draft) -> None:
    def link(root: Path) -> None:
        (root / "cameras" / "gate.mp4").unlink()
        (root / "cameras" / "gate.mp4").symlink_to(root.parent / "outside.mp4")

    d.after.append(link)


@pytest.fixture
def scenario_dir(tmp_path: Path) -> Path:
    return write(draft(), tmp_path)


# --------------------------------------------------------------------------------------------
# The valid scenario


def test_valid_scenario_loads_with_everything_resolved(scenario_dir: Path) -> None:
    scenario = load_scenario(scenario_dir)

    assert isinstance(scenario, Scenario)
    assert scenario.root == scenario_dir.resolve()
    assert scenario.start_unix == START_UNIX
    assert scenario.manifest.start == datetime(2026, 11, 22, 9, tzinfo=UTC)
    assert scenario.video_paths == {
        "gate": scenario_dir.resolve() / "cameras/gate.mp4",
        "aisle": scenario_dir.resolve() / "cameras/aisle.mp4",
    }
    assert scenario.truth_path == scenario.root / "truth.json"

    config = scenario.store.config
    assert scenario.store.root == scenario_dir.resolve()
    assert (config.store_id, config.currency) == ("paris-flash-01", "EUR")
    assert config.entry_key_bytes == bytes.fromhex(KEY_HEX) and len(config.entry_key_bytes) == 32
    assert config.gates["entry-1"].kind == "entry"
    gate, aisle = config.cameras["gate"], config.cameras["aisle"]
    assert (gate.role, gate.gate, gate.size, gate.fps) == ("gate", "entry-1", (640, 480), 15.0)
    assert gate.slots == () and gate.zones == {}
    assert aisle.gate is None and set(aisle.zones) == {"entry-1", "exit-1"}
    assert [s.id for s in aisle.slots] == ["A1", "A2"]
    assert aisle.slots[0].label is not None and aisle.slots[1].label is None
    assert aisle.slots[0].polygon[1] == (260.0, 80.0)

    catalog = scenario.store.catalog
    assert list(catalog.products) == [GTIN_A, GTIN_B]
    assert catalog.price(GTIN_A) == 459 and GTIN_B in catalog and len(catalog) == 2
    assert catalog.products[GTIN_A].name == "Pâte à tartiner 400 g"
    assert [p.name for p in catalog.products[GTIN_A].images] == [f"{GTIN_A}.png", f"{GTIN_A}-b.png"]
    assert catalog.products[GTIN_B].images == (scenario_dir.resolve() / f"products/{GTIN_B}.png",)


def test_config_is_frozen_and_keeps_the_key_out_of_repr(scenario_dir: Path) -> None:
    config = load_scenario(scenario_dir).store.config
    with pytest.raises(pydantic.ValidationError):
        config.store_id = "other"  # type: ignore[misc]
    assert KEY_HEX not in repr(config)


def test_store_and_catalog_load_on_their_own(scenario_dir: Path) -> None:
    store = load_store(scenario_dir / "store.yaml")
    assert store.root == scenario_dir.resolve() and store.catalog.price(GTIN_B) == 120
    catalog = load_catalog(scenario_dir / "catalog.csv", scenario_dir)
    assert catalog == store.catalog


def test_store_in_a_subdirectory_keeps_its_own_relative_paths(tmp_path: Path) -> None:
    d = draft()
    d.scenario["store"] = "layout/store.yaml"

    def move_store(root: Path) -> None:
        (root / "layout").mkdir()
        (root / "store.yaml").rename(root / "layout/store.yaml")
        (root / "catalog.csv").rename(root / "layout/catalog.csv")
        (root / "products").rename(root / "layout/products")

    d.after.append(move_store)
    scenario = load_scenario(write(d, tmp_path))
    assert scenario.store.root == scenario.root / "layout"

    # Errors still name files relative to the scenario directory.
    (scenario.root / "layout/catalog.csv").unlink()
    with pytest.raises(ConfigError) as caught:
        load_scenario(scenario.root)
    assert (caught.value.file, caught.value.field) == ("layout/store.yaml", "catalog")


def test_catalog_with_a_byte_order_mark_loads(tmp_path: Path) -> None:
    # Spreadsheet programs write one when exporting "CSV UTF-8".
    d = draft()
    d.edits["catalog.csv"] = lambda text: "\ufeff" + text
    assert load_scenario(write(d, tmp_path)).store.catalog.price(GTIN_A) == 459


def test_unquoted_yaml_timestamp_in_utc_is_accepted(tmp_path: Path) -> None:
    d = draft()
    d.edits["scenario.yaml"] = lambda text: text.replace(f"'{START}'", START)
    assert load_scenario(write(d, tmp_path)).start_unix == START_UNIX


# --------------------------------------------------------------------------------------------
# Broken files: (what changes, file the error names, field it names)

LINE = re.compile(r"line \d+, column \d+")

BROKEN: list[tuple[str, Callable[[Draft], None], str, str | re.Pattern[str]]] = [
    # typos and missing fields
    ("unknown top-level field", lambda d: d.store.update(camras={}), "store.yaml", "camras"),
    ("unknown camera field", put("store", "cameras.aisle", zoom=2), "store.yaml", "cameras.aisle.zoom"),
    ("unknown slot field", put("store", "cameras.aisle.slots.0", gitn=GTIN_A), "store.yaml",
     "cameras.aisle.slots[0].gitn"),
    ("unknown gate field", put("store", "gates.exit-1", knid="exit"), "store.yaml", "gates.exit-1.knid"),
    ("unknown scenario field", lambda d: d.scenario.update(strat=START), "scenario.yaml", "strat"),
    ("unknown recording field", put("scenario", "cameras.gate", vidoe="x.mp4"), "scenario.yaml",
     "cameras.gate.vidoe"),
    ("missing currency", lambda d: d.store.pop("currency"), "store.yaml", "currency"),
    ("missing fps", drop("store", "cameras.aisle", "fps"), "store.yaml", "cameras.aisle.fps"),
    ("missing gate kind", drop("store", "gates.entry-1", "kind"), "store.yaml", "gates.entry-1.kind"),
    ("missing cameras", lambda d: d.store.pop("cameras"), "store.yaml", "cameras"),
    ("slots not a list", put("store", "cameras.aisle", slots={"A1": {}}), "store.yaml", "cameras.aisle.slots"),
    ("missing start", lambda d: d.scenario.pop("start"), "scenario.yaml", "start"),
    ("missing video", drop("scenario", "cameras.gate", "video"), "scenario.yaml", "cameras.gate.video"),
    ("camera is not a mapping", put("store", "cameras", gate="entry-1"), "store.yaml", "cameras.gate"),
    # versions
    ("store version 2", lambda d: d.store.update(version=2), "store.yaml", "version"),
    ("store version true", lambda d: d.store.update(version=True), "store.yaml", "version"),
    ("scenario version '1'", lambda d: d.scenario.update(version="1"), "scenario.yaml", "version"),
    # ids, currency, key
    ("store_id with a space", lambda d: d.store.update(store_id="paris flash"), "store.yaml", "store_id"),
    ("camera id with a space", lambda d: d.store["cameras"].update({"my cam": {}}), "store.yaml",
     "cameras['my cam']"),
    ("slot id not a string", put("store", "cameras.aisle.slots.0", id=1), "store.yaml",
     "cameras.aisle.slots[0].id"),
    ("currency lowercase", lambda d: d.store.update(currency="eur"), "store.yaml", "currency"),
    ("entry key short", lambda d: d.store.update(entry_key=KEY_HEX[:62]), "store.yaml", "entry_key"),
    ("entry key not hex", lambda d: d.store.update(entry_key="z" * 64), "store.yaml", "entry_key"),
    ("entry key a number", lambda d: d.store.update(entry_key=12345), "store.yaml", "entry_key"),
    # gates and roles
    ("no entry gate", lambda d: d.store["gates"].update({"entry-1": {"kind": "exit"}}), "store.yaml",
     "gates"),
    ("gate kind unknown", put("store", "gates.exit-1", kind="exitt"), "store.yaml", "gates.exit-1.kind"),
    ("gate camera names unknown gate", put("store", "cameras.gate", gate="entry-9"), "store.yaml",
     "cameras.gate.gate"),
    ("gate camera without gate", drop("store", "cameras.gate", "gate"), "store.yaml", "cameras.gate.gate"),
    ("gate camera with slots", put("store", "cameras.gate", slots=[{"id": "G1", "gtin": GTIN_A,
                                                                      "polygon": [[0, 0], [9, 0], [9, 9]]}]),
     "store.yaml", "cameras.gate.slots"),
    ("shelf camera with gate", put("store", "cameras.aisle", gate="entry-1"), "store.yaml",
     "cameras.aisle.gate"),
    ("zone names unknown gate", lambda d: at(d.store, "cameras.aisle.zones").update(
        {"exit-9": [[0, 0], [10, 0], [10, 10]]}), "store.yaml", "cameras.aisle.zones.exit-9"),
    ("role unknown", put("store", "cameras.aisle", role="ceiling"), "store.yaml", "cameras.aisle.role"),
    ("size zero", put("store", "cameras.gate", size=[0, 480]), "store.yaml", "cameras.gate.size"),
    ("size of three numbers", put("store", "cameras.gate", size=[640, 480, 3]), "store.yaml",
     "cameras.gate.size"),
    ("fps zero", put("store", "cameras.gate", fps=0), "store.yaml", "cameras.gate.fps"),
    ("fps text", put("store", "cameras.gate", fps="fast"), "store.yaml", "cameras.gate.fps"),
    # slots and polygons
    ("duplicate slot ids", put("store", "cameras.aisle.slots.1", id="A1"), "store.yaml",
     "cameras.aisle.slots[1].id"),
    ("slot gtin bad check digit", put("store", "cameras.aisle.slots.0", gtin=GTIN_A[:-1] + "4"),
     "store.yaml", "cameras.aisle.slots[0].gtin"),
    ("slot gtin unquoted number", put("store", "cameras.aisle.slots.0", gtin=int(GTIN_A)), "store.yaml",
     "cameras.aisle.slots[0].gtin"),
    ("slot gtin not in catalog", put("store", "cameras.aisle.slots.1", gtin=GTIN_UNSOLD), "store.yaml",
     "cameras.aisle.slots[1].gtin"),
    ("polygon of 2 points", put("store", "cameras.aisle.slots.0", polygon=[[0, 0], [10, 10]]),
     "store.yaml", "cameras.aisle.slots[0].polygon"),
    ("polygon of zero area", put("store", "cameras.aisle.zones", **{"entry-1": [[0, 0], [5, 5], [10, 10]]}),
     "store.yaml", "cameras.aisle.zones.entry-1"),
    ("polygon outside the frame", put("store", "cameras.aisle.slots.0",
                                      polygon=[[100, 80], [1300, 80], [260, 200]]),
     "store.yaml", "cameras.aisle.slots[0].polygon[1]"),
    ("label below the frame", put("store", "cameras.aisle.slots.0",
                                  label=[[110, 200], [250, 200], [250, 730]]),
     "store.yaml", "cameras.aisle.slots[0].label[2]"),
    ("zone of a gate camera outside its smaller frame", put("store", "cameras.gate",
                                                            zones={"entry-1": [[0, 0], [700, 0], [0, 10]]}),
     "store.yaml", "cameras.gate.zones.entry-1[1]"),
    ("point of three numbers", put("store", "cameras.aisle.slots.1",
                                   polygon=[[300, 80, 1], [460, 80], [460, 200]]),
     "store.yaml", "cameras.aisle.slots[1].polygon[0]"),
    ("point not a number", put("store", "cameras.aisle.slots.1",
                               polygon=[[300, 80], [460, ".nan"], [460, 200]]),
     "store.yaml", "cameras.aisle.slots[1].polygon[1]"),
    ("point beyond any float", put("store", "cameras.aisle.slots.1",
                                   polygon=[[300, 80], [460, 10**400], [460, 200]]),
     "store.yaml", "cameras.aisle.slots[1].polygon[1]"),
    ("point NaN", edit("store.yaml", lambda t: t.replace("- 460\n", "- .nan\n", 1)), "store.yaml",
     re.compile(r"cameras\.aisle\.slots\[1\]\.polygon\[\d\]")),
    # scenario.yaml: time and cameras
    ("start without time zone", lambda d: d.scenario.update(start="2026-11-22T09:00:00"),
     "scenario.yaml", "start"),
    ("start in another zone", lambda d: d.scenario.update(start="2026-11-22T09:00:00+01:00"),
     "scenario.yaml", "start"),
    ("start as unix seconds", lambda d: d.scenario.update(start=1795338000), "scenario.yaml", "start"),
    ("start not a time", lambda d: d.scenario.update(start="next tuesday"), "scenario.yaml", "start"),
    ("recording of a camera not in the store",
     put("scenario", "cameras", ceiling={"video": "cameras/gate.mp4"}), "scenario.yaml", "cameras.ceiling"),
    ("store camera without recording", drop("scenario", "cameras", "aisle"), "scenario.yaml",
     "cameras.aisle"),
    # referenced files
    ("missing video", put("scenario", "cameras.aisle", video="cameras/nope.mp4"), "scenario.yaml",
     "cameras.aisle.video"),
    ("video is a directory", put("scenario", "cameras.aisle", video="cameras"), "scenario.yaml",
     "cameras.aisle.video"),
    ("missing store", lambda d: d.scenario.update(store="shop.yaml"), "scenario.yaml", "store"),
    ("missing catalog", lambda d: d.store.update(catalog="products.csv"), "store.yaml", "catalog"),
    ("missing image", lambda d: cell(d, 3, "image", "products/nope.png"), "catalog.csv",
     "row 3, column image"),
    ("missing image2", lambda d: cell(d, 2, "image2", "products/nope.png"), "catalog.csv",
     "row 2, column image2"),
    ("video ../ escape", put("scenario", "cameras.gate", video="../outside.mp4"), "scenario.yaml",
     "cameras.gate.video"),
    ("video ../ in the middle", put("scenario", "cameras.gate", video="cameras/../../outside.mp4"),
     "scenario.yaml", "cameras.gate.video"),
    ("video absolute path", put("scenario", "cameras.gate", video="/etc/passwd"),
     "scenario.yaml", "cameras.gate.video"),
    ("video windows path", put("scenario", "cameras.gate", video="C:\\videos\\gate.mp4"), "scenario.yaml",
     "cameras.gate.video"),
    ("video symlink out of the scenario", symlink_video_outside, "scenario.yaml", "cameras.gate.video"),
    ("catalog absolute path", lambda d: d.store.update(catalog="/etc/passwd"), "store.yaml", "catalog"),
    ("store ../ escape", lambda d: d.scenario.update(store="../store.yaml"), "scenario.yaml", "store"),
    ("image ../ escape", lambda d: cell(d, 2, "image", "../outside.mp4"), "catalog.csv",
     "row 2, column image"),
    ("image absolute", lambda d: cell(d, 2, "image", "/etc/passwd"), "catalog.csv", "row 2, column image"),
    # YAML itself
    ("duplicate top-level key", edit("store.yaml", lambda t: t + "currency: USD\n"), "store.yaml",
     "currency"),
    ("duplicate nested key", edit("store.yaml", lambda t: t.replace("    role: shelf\n",
                                                                     "    role: shelf\n    role: gate\n")),
     "store.yaml", "cameras.aisle.role"),
    ("duplicate camera", edit("scenario.yaml", lambda t: t + "cameras: {}\n"), "scenario.yaml", "cameras"),
    ("yaml syntax error", edit("store.yaml", lambda t: t.replace("currency: EUR", "currency: [EUR")),
     "store.yaml", LINE),
    ("yaml tab indentation", edit("scenario.yaml", lambda t: t.replace("  gate:", "\tgate:")),
     "scenario.yaml", LINE),
    ("yaml alias", edit("store.yaml", lambda t: t.replace("gates:", "gates: &g").replace(
        "cameras:", "other: *g\ncameras:", 1)), "store.yaml", LINE),
    ("yaml two documents", edit("store.yaml", lambda t: t + "---\nversion: 1\n"), "store.yaml", LINE),
    ("yaml impossible date", raw("store.yaml", b"version: 1\nopened: 2026-02-30\n"), "store.yaml", LINE),
    ("yaml int of 5000 digits", raw("store.yaml", b"version: 1" + b"0" * 5000 + b"\n"), "store.yaml", LINE),
    ("hex int of 5000 digits", edit("store.yaml", lambda t: t.replace("- 640\n", "- 0x" + "f" * 5000 + "\n")),
     "store.yaml", "cameras.gate.size"),
    ("top level list", raw("scenario.yaml", b"- version: 1\n"), "scenario.yaml", "(top level)"),
    ("top level text", raw("store.yaml", b"hello\n"), "store.yaml", "(top level)"),
    ("empty store.yaml", raw("store.yaml", b""), "store.yaml", "(top level)"),
    ("oversized yaml", edit("store.yaml", lambda t: t + "#" * MAX_YAML_BYTES + "\n"), "store.yaml",
     "(whole file)"),
    ("yaml not utf-8", raw("store.yaml", b"version: 1\nstore_id: caf\xe9\n"), "store.yaml", "line 2"),
    ("yaml control character", raw("store.yaml", b"version: 1\nstore_id: a\x07\n"), "store.yaml", "line 2"),
    ("yaml deep nesting", raw("store.yaml", b"a: " + b"[" * 5_000), "store.yaml", "(whole file)"),
    # catalog.csv
    ("catalog header renamed", lambda d: d.catalog[0].__setitem__(2, "price"), "catalog.csv",
     "row 1 (header)"),
    ("catalog header reordered", lambda d: d.catalog[0].__setitem__(slice(0, 2), ["name", "gtin"]),
     "catalog.csv", "row 1 (header)"),
    ("catalog header with spaces", lambda d: d.catalog[0].__setitem__(1, " name"), "catalog.csv",
     "row 1 (header)"),
    ("catalog image3 before image2", lambda d: d.catalog[0].__setitem__(4, "image3"), "catalog.csv",
     "row 1 (header)"),
    ("catalog empty", raw("catalog.csv", b""), "catalog.csv", "row 1 (header)"),
    ("catalog bad check digit", lambda d: cell(d, 2, "gtin", GTIN_A[:-1] + "9"), "catalog.csv",
     "row 2, column gtin"),
    ("catalog gtin of 12 digits", lambda d: cell(d, 3, "gtin", GTIN_B[1:]), "catalog.csv",
     "row 3, column gtin"),
    ("catalog duplicate gtin", lambda d: cell(d, 3, "gtin", GTIN_A), "catalog.csv", "row 3, column gtin"),
    ("catalog negative price", lambda d: cell(d, 2, "price_cents", "-5"), "catalog.csv",
     "row 2, column price_cents"),
    ("catalog decimal price", lambda d: cell(d, 2, "price_cents", "4.59"), "catalog.csv",
     "row 2, column price_cents"),
    ("catalog empty price", lambda d: cell(d, 3, "price_cents", ""), "catalog.csv",
     "row 3, column price_cents"),
    ("catalog price with sign", lambda d: cell(d, 3, "price_cents", "+120"), "catalog.csv",
     "row 3, column price_cents"),
    ("catalog empty name", lambda d: cell(d, 3, "name", "  "), "catalog.csv", "row 3, column name"),
    ("catalog name too long", lambda d: cell(d, 3, "name", "x" * 201), "catalog.csv", "row 3, column name"),
    ("catalog empty image", lambda d: cell(d, 3, "image", ""), "catalog.csv", "row 3, column image"),
    ("catalog short row", lambda d: d.catalog[2].pop(), "catalog.csv", "row 3"),
    ("catalog bad quoting", lambda d: cell(d, 2, "name", '"Pâte" à tartiner'), "catalog.csv",
     re.compile(r"line \d+")),
    ("catalog not utf-8", raw("catalog.csv", b"gtin,name,price_cents,image\n" + GTIN_A.encode()
                              + b",P\xe2te,459,a.png\n"), "catalog.csv", "line 2"),
]


@pytest.mark.parametrize(("mutate", "file", "field"), [c[1:] for c in BROKEN], ids=[c[0] for c in BROKEN])
def test_broken_scenario_names_file_and_field(
    tmp_path: Path, mutate: Callable[[Draft], None], file: str, field: str | re.Pattern[str]
) -> None:
    d = draft()
    mutate(d)
    root = write(d, tmp_path)

    with pytest.raises(ConfigError) as caught:
        load_scenario(root)

    error = caught.value
    assert error.file == file, str(error)
    if isinstance(field, re.Pattern):
        assert field.fullmatch(error.field), str(error)
    else:
        assert error.field == field, str(error)
    assert error.expected and error.got, str(error)
    assert str(error).startswith(f"{error.file}: {error.field}: expected {error.expected}, got ")


# --------------------------------------------------------------------------------------------
# The error itself


def test_error_message_reads_as_one_line_per_mistake(tmp_path: Path) -> None:
    d = draft()
    d.store["currency"] = "eur"
    at(d.store, "cameras.aisle")["zoom"] = 2
    with pytest.raises(ConfigError) as caught:
        load_scenario(write(d, tmp_path))

    lines = str(caught.value).splitlines()
    assert lines[0] == ("store.yaml: currency: expected an ISO 4217 currency code of 3 capital letters, "
                        "like EUR, got 'eur'")
    assert lines[1].startswith("store.yaml: cameras.aisle.zoom: expected one of the fields role, gate,")
    assert [e.field for e in caught.value.more] == ["cameras.aisle.zoom"]


def test_untrusted_values_are_cut_short_in_messages(tmp_path: Path) -> None:
    d = draft()
    d.store["store_id"] = "x" * 10_000
    d.store["y" * 10_000] = 1
    with pytest.raises(ConfigError) as caught:
        load_scenario(write(d, tmp_path))
    assert all(len(line) < 400 for line in str(caught.value).splitlines())


def test_missing_field_says_what_it_is_for(tmp_path: Path) -> None:
    d = draft()
    del at(d.store, "cameras.aisle")["fps"]
    with pytest.raises(ConfigError) as caught:
        load_scenario(write(d, tmp_path))
    assert caught.value.got == "nothing" and "Frames per second" in caught.value.expected


def test_bad_check_digit_says_which_digit_fits(tmp_path: Path) -> None:
    d = draft()
    cell(d, 2, "gtin", GTIN_A[:-1] + "9")
    with pytest.raises(ConfigError, match="check digit is 3"):
        load_scenario(write(d, tmp_path))


def test_wrong_entry_key_is_not_echoed(tmp_path: Path) -> None:
    d = draft()
    d.store["entry_key"] = KEY_HEX[:-1] + "g"
    with pytest.raises(ConfigError) as caught:
        load_scenario(write(d, tmp_path))
    assert KEY_HEX[:20] not in str(caught.value)


def test_billion_laughs_is_refused_before_it_expands(tmp_path: Path) -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 10)]
    d = draft()
    d.raw["store.yaml"] = "\n".join(lines).encode()
    with pytest.raises(ConfigError) as caught:
        load_scenario(write(d, tmp_path))
    assert "alias" in caught.value.got


@pytest.mark.parametrize(
    ("call", "file"),
    [
        (lambda p: load_scenario(p / "nowhere"), "nowhere/scenario.yaml"),
        (lambda p: load_store(p / "nowhere.yaml"), "nowhere.yaml"),
        (lambda p: load_catalog(p / "nowhere.csv", p), "nowhere.csv"),
    ],
    ids=["scenario dir", "store", "catalog"],
)
def test_missing_top_file_is_a_config_error(
    tmp_path: Path, call: Callable[[Path], object], file: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        call(tmp_path)
    assert caught.value.file.endswith(file) and caught.value.expected


def test_store_loaded_alone_names_files_as_given(scenario_dir: Path) -> None:
    (scenario_dir / "catalog.csv").write_text("gtin,name\n")
    with pytest.raises(ConfigError) as caught:
        load_store(scenario_dir / "store.yaml")
    assert caught.value.file == str(scenario_dir / "catalog.csv")


def test_models_check_references_when_built_directly() -> None:
    # Code that builds a layout (the synthetic world) gets the same checks as a user's file.
    store = draft().store
    store["cameras"]["gate"]["gate"] = "entry-9"
    with pytest.raises(pydantic.ValidationError, match="one of the gates"):
        StoreConfig.model_validate(store)


def test_config_error_survives_pickling() -> None:
    # Camera nodes may run in other processes and hand their errors back.
    error = ConfigError("store.yaml", "currency", "EUR", "'eur'")
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.file, copy.field, copy.expected, copy.got, str(copy)) == (
        error.file, error.field, error.expected, error.got, str(error))


def test_symlink_loop_is_a_config_error(scenario_dir: Path) -> None:
    video = scenario_dir / "cameras/gate.mp4"
    video.unlink()
    video.symlink_to(video)
    with pytest.raises(ConfigError) as caught:
        load_scenario(scenario_dir)
    assert (caught.value.file, caught.value.field) == ("scenario.yaml", "cameras.gate.video")


@pytest.mark.parametrize("name", ["scenario.yaml", "store.yaml", "catalog.csv"])
def test_damaged_files_never_raise_anything_but_config_error(tmp_path: Path, name: str) -> None:
    # Whatever a damaged file holds, the user sees a ConfigError, never a traceback.
    root = write(draft(), tmp_path)
    original = (root / name).read_bytes()
    rng = random.Random(name)
    for _ in range(80):
        data = bytearray(original)
        for _ in range(rng.randint(1, 4)):
            i = rng.randrange(len(data))
            choice = rng.random()
            if choice < 0.4:
                data[i] = rng.choice(b"-:[]{},'\"#&*!|>%@ \n\t0123456789abc\x00\xff")
            elif choice < 0.7:
                del data[i : i + rng.randint(1, 8)]
            else:
                data[i:i] = data[rng.randrange(len(data)) :][: rng.randint(1, 16)]
        (root / name).write_bytes(bytes(data))
        try:
            load_scenario(root)
        except ConfigError as error:
            assert error.file and error.field and error.expected
