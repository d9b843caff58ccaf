"""report.html: a page a person reads to check a disputed receipt; its values come from codes and files
that a stranger wrote, so nothing in them may become markup."""

from __future__ import annotations

from store_runtime.report import render_report

HOSTILE = '<script>alert("x")</script>'


def _page(**overrides) -> str:
    receipts = [{"customer": "c-0001", "session": "s-1", "entered_t": 1.5, "exited_t": 20.25,
                 "lines": [{"gtin": "3017620422003", "qty": 2, "unit_cents": 459}], "total_cents": 918,
                 "status": "charged"},
                {"customer": "c-0002", "session": "s-2", "entered_t": 3.0, "exited_t": None, "lines": [],
                 "total_cents": 0, "status": "open"}]
    events = [{"t": 7.0, "customer": "c-0001", "session": "s-1", "action": "pick", "gtin": "3017620422003",
               "qty": 2, "slot": "A1", "camera": "aisle", "confidence": 0.93}]
    args = dict(scenario="02-pick-put", store_id="paris-flash-01", currency="EUR", receipts=receipts,
                events=events, names={"3017620422003": "Pâte à tartiner 400 g"}, duration=30.0, metrics=None,
                stages={"aisle": {"frames": 450, "stages": {"detect": {"calls": 150, "ms_per_call": 12.5,
                                                                      "seconds": 1.9}}}},
                wall_seconds=10.0, recorded_seconds=60.0)
    args.update(overrides)
    return render_report(**args)


def test_the_page_shows_receipts_events_and_timings() -> None:
    page = _page()
    assert "9.18 EUR" in page and "Pâte à tartiner 400 g" in page
    assert "open" in page and "<i>nothing</i>" in page  # a session still inside, with an empty basket
    assert "realtime factor 6.00" in page and "detect" in page
    assert "without <code>--truth</code>" in page


def test_values_from_codes_and_files_are_escaped() -> None:
    page = _page(names={"3017620422003": HOSTILE}, scenario=HOSTILE,
                 receipts=[{"customer": HOSTILE, "session": HOSTILE, "entered_t": 0.0, "exited_t": 1.0,
                            "lines": [], "total_cents": 0, "status": "charged"}])
    assert "<script>" not in page and "&lt;script&gt;" in page


def test_scores_list_what_was_missed() -> None:
    metrics = {"receipt_accuracy": 0.5, "event_f1": 0.8, "charge_error_cents": 459, "face_recall": 1.0,
               "realtime_factor": 2.1,
               "details": {"events": {"missed": [{"t": 7.0, "gtin": "3017620422003"}], "spurious": []},
                           "receipts": {"wrong": []}, "faces": {"aisle": {"anonymized": 9, "total": 9}}}}
    page = _page(metrics=metrics)
    assert "missed: {&#x27;t&#x27;: 7.0" in page and "9 of 9 faces anonymized" in page


def test_the_same_inputs_give_the_same_bytes() -> None:
    assert _page() == _page()
