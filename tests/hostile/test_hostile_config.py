"""Broken scenario files through `walkout check`, as a user meets them: one line naming the file,
the field (or line) and what was expected, exit 2, no traceback; YAML bombs refused before they
grow (memory measured, never time). Unit cases of config.py are in tests/store_runtime/test_config.py.
"""

from __future__ import annotations

import shutil
import tracemalloc
from pathlib import Path

import pytest
from paths import SAMPLES

from store_runtime.cli import main

SAMPLE = SAMPLES / "02-pick-put"
HEADER, FIRST, *REST = (SAMPLE / "catalog.csv").read_text(encoding="utf-8").splitlines()


def catalog(*rows: str, header: str = HEADER) -> bytes:
    return ("\n".join([header, *rows]) + "\n").encode()


def with_price(price: str) -> str:
    gtin, name, _, image = FIRST.split(",")
    return f"{gtin},{name},{price},{image}"


# file -> (its new bytes, what the one-line error must contain)
BROKEN: dict[str, tuple[str, bytes, tuple[str, ...]]] = {
    "deep flow nesting": ("store.yaml", b"version: 1\nstore_id: " + b"[" * 1_000 + b"]" * 1_000,
                          ("store.yaml", "nested")),
    "billion laughs": ("scenario.yaml", b'a: &a ["lol","lol"]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\n'
                       b"c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\n"
                       b"e: [*d,*d,*d,*d,*d,*d,*d,*d,*d]\n", ("scenario.yaml",)),
    "a file past the size limit": ("store.yaml", b"version: 1\n" + b"#" * (2 << 20), ("store.yaml", "bytes")),
    "broken syntax": ("scenario.yaml", b"version: 1\nstore: [store.yaml\n", ("scenario.yaml", "line")),
    "a tag that runs code": ("scenario.yaml", b'version: 1\nstore: !!python/object/apply:os.system ["id"]\n',
                             ("scenario.yaml", "line 2")),
    "a duplicate key": ("scenario.yaml", b"version: 1\nversion: 1\n", ("scenario.yaml", "line 2")),
    "UTF-16": ("scenario.yaml", (SAMPLE / "scenario.yaml").read_text().encode("utf-16"), ("scenario.yaml", "UTF-8")),
    "Latin-1": ("store.yaml", (SAMPLE / "store.yaml").read_bytes().replace(b"version: 1", b"version: 1 # \xe9t\xe9"),
                ("store.yaml", "UTF-8")),
    "an absolute video path": ("scenario.yaml", (SAMPLE / "scenario.yaml").read_bytes().replace(
        b"cameras/aisle.mp4", b"/etc/passwd"), ("scenario.yaml", "cameras.aisle.video")),
    "a wrong type": ("store.yaml", (SAMPLE / "store.yaml").read_bytes().replace(b"fps: 15", b"fps: [15]", 1),
                     ("store.yaml", "fps")),
    "an unknown field": ("scenario.yaml", (SAMPLE / "scenario.yaml").read_bytes() + b"stat: 1\n",
                         ("scenario.yaml", "stat")),
    "catalog: wrong columns": ("catalog.csv", catalog(*REST, FIRST, header="gtin,name,price,image"),
                               ("catalog.csv", "header")),
    "catalog: negative price": ("catalog.csv", catalog(with_price("-5"), *REST), ("catalog.csv", "price_cents")),
    "catalog: NaN price": ("catalog.csv", catalog(with_price("NaN"), *REST), ("catalog.csv", "price_cents")),
    "catalog: a price in float notation": ("catalog.csv", catalog(with_price("1e9"), *REST),
                                           ("catalog.csv", "price_cents")),
    "catalog: duplicate GTIN": ("catalog.csv", catalog(FIRST, *REST, FIRST), ("catalog.csv", "gtin", "once")),
    "catalog: an unterminated quote": ("catalog.csv", catalog(FIRST.replace(",", ',"', 1), *REST),
                                       ("catalog.csv", "CSV")),
    "catalog: a 5 MB field": ("catalog.csv", catalog(FIRST.replace(",", "," + "x" * 5_000_000, 1), *REST),
                              ("catalog.csv",)),
    "catalog: NUL bytes": ("catalog.csv", catalog(FIRST.replace(",", ",\x00", 1), *REST), ("catalog.csv",)),
    "catalog: not UTF-8": ("catalog.csv", catalog(*REST).replace(b"gtin", b"\xff\xfegtin", 1), ("catalog.csv",)),
}


@pytest.mark.parametrize("case", BROKEN, ids=list(BROKEN))
def test_a_broken_file_is_one_line_naming_it_and_exit_2(tmp_path: Path, case: str,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    scenario = tmp_path / "scenario"
    shutil.copytree(SAMPLE, scenario, ignore=shutil.ignore_patterns("*.mp4", "faces"))
    for name in ("gate.mp4", "aisle.mp4"):  # check only opens them by name
        (scenario / "cameras" / name).write_bytes(b"\0")
    file, content, words = BROKEN[case]
    (scenario / file).write_bytes(content)
    # tracemalloc makes PyYAML's deep recursion a minute long: that one case is not measured.
    measured = case != "deep flow nesting"
    if measured:
        tracemalloc.start()
    try:
        code = main(["check", str(scenario)])
        peak = tracemalloc.get_traced_memory()[1] if measured else 0
    finally:
        tracemalloc.stop()
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err and err.startswith("walkout check: ")
    for word in words:
        assert word in err, err
    assert len(err) < 2000  # never the hostile input echoed back whole
    # Refused before anything grows: a bomb expanded, or a 5 MB field kept, would take far more.
    assert peak < 40 * 2**20, f"{peak / 2**20:.0f} MiB"


def test_a_formula_in_a_product_name_stays_text_everywhere_it_is_shown(tmp_path: Path) -> None:
    """Nothing here exports CSV; the name reaches the replay report and operator pages as escaped
    HTML text, which a spreadsheet never evaluates. The catalog keeps it verbatim."""
    from store_runtime.config import load_store
    from store_runtime.report import render_report

    formula = "=cmd|'/c calc'!A1<script>"
    shutil.copytree(SAMPLE, tmp_path / "s", ignore=shutil.ignore_patterns("*.mp4", "faces"))
    gtin = FIRST.split(",")[0]
    (tmp_path / "s" / "catalog.csv").write_bytes(catalog(FIRST.replace(FIRST.split(",")[1], f'"{formula}"'), *REST))
    store = load_store(tmp_path / "s" / "store.yaml")
    assert store.catalog.products[gtin].name == formula
    receipt = {"customer": "c-1", "session": "s_1", "entered_t": 0.0, "exited_t": 5.0,
               "lines": [{"gtin": gtin, "qty": 1, "unit_cents": 1}], "total_cents": 1, "status": "charged"}
    page = render_report(scenario="s", store_id="x", wall_seconds=1.0, recorded_seconds=1.0, receipts=[receipt],
                  events=[], names={gtin: formula}, duration=10.0, currency="EUR", metrics=None,
                         stages={})
    assert "<script>" not in page and "=cmd|&#x27;/c calc&#x27;!A1&lt;script&gt;" in page
