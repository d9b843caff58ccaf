"""The scores of SPEC.md section 6, shared by the tests, `walkout replay --truth` and benchmarks.

Every score is a pure function of plain data (the dicts of `truth.json`, `receipts.json` and
`events.jsonl`), so a test can state a case in a few lines; `score_replay` only reads the files
of one replay and hands their contents to them. Malformed input is a `ScoringError` that names
the file, the line or item and what was expected; a missing or empty *output* is not an error, it
simply scores what an absent output deserves (0, or the full charge error).
"""

from __future__ import annotations

import json
import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

__all__ = [
    "EVENT_WINDOW_S",
    "EventMatch",
    "FaceRecall",
    "ScoringError",
    "charge_error_cents",
    "event_f1",
    "face_recall",
    "frame_face_recall",
    "read_faces",
    "realtime_factor",
    "receipt_accuracy",
    "score_replay",
    "write_metrics",
]

EVENT_WINDOW_S = 1.5
# Event times are decimal seconds stored as binary floats: 13.9 - 12.4 is 1.5000000000000018.
# A gap of exactly the window must count (SPEC: "within 1.5 s"), so the comparison allows this
# much rounding noise — far below any frame period.
_TIME_EPS = 1e-9
_FLOAT_DIGITS = 6
# A replay that blurs nothing would otherwise list every face box of every frame in metrics.json.
_MAX_LISTED_MISSED_FACES = 100


class ScoringError(ValueError):
    """Truth or replay output that cannot be scored; the message names the file and the field."""


# --------------------------------------------------------------------------- small validators


def _field(obj: Any, key: str, types: type | tuple[type, ...], where: str) -> Any:
    if not isinstance(obj, Mapping):
        raise ScoringError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    if key not in obj:
        raise ScoringError(f"{where}: missing field {key!r}")
    value = obj[key]
    # bool is an int in Python, never a quantity or a time in our files.
    if isinstance(value, bool) and bool not in (types if isinstance(types, tuple) else (types,)):
        raise ScoringError(f"{where}: field {key!r} must be {_names(types)}, got {value!r}")
    if not isinstance(value, types):
        raise ScoringError(f"{where}: field {key!r} must be {_names(types)}, got {value!r}")
    return value


def _names(types: type | tuple[type, ...]) -> str:
    types = types if isinstance(types, tuple) else (types,)
    return " or ".join("null" if t is type(None) else t.__name__ for t in types)


def _list(obj: Any, where: str) -> list:
    if not isinstance(obj, list):
        raise ScoringError(f"{where}: expected a JSON list, got {type(obj).__name__}")
    return obj


def _aggregate_lines(lines: Iterable[Any], where: str) -> dict[str, int]:
    """gtin -> total qty, rows of one gtin summed, gtins whose total is 0 dropped."""
    totals: Counter[str] = Counter()
    for i, line in enumerate(_list(lines, where)):
        at = f"{where}[{i}]"
        totals[_field(line, "gtin", str, at)] += _field(line, "qty", int, at)
    return {gtin: qty for gtin, qty in sorted(totals.items()) if qty != 0}


def _true_baskets(truth_customers: list[dict]) -> dict[str, dict[str, int]]:
    baskets: dict[str, dict[str, int]] = {}
    for i, customer in enumerate(_list(truth_customers, "truth customers")):
        where = f"truth customers[{i}]"
        cid = _field(customer, "customer", str, where)
        if cid in baskets:
            raise ScoringError(f"{where}: customer {cid!r} appears twice")
        basket = _aggregate_lines(_field(customer, "basket", list, where), f"{where}.basket")
        if any(qty < 0 for qty in basket.values()):
            raise ScoringError(f"{where}.basket: a true basket cannot hold a negative quantity")
        baskets[cid] = basket
    return baskets


def _receipts_by_customer(receipts: list[dict]) -> dict[str | None, list[tuple[int, dict]]]:
    by_customer: dict[str | None, list[tuple[int, dict]]] = defaultdict(list)
    for i, receipt in enumerate(_list(receipts, "receipts")):
        cid = _field(receipt, "customer", (str, type(None)), f"receipts[{i}]")
        by_customer[cid].append((i, receipt))
    return by_customer


def _lines_out(basket: Mapping[str, int]) -> list[dict]:
    return [{"gtin": gtin, "qty": qty} for gtin, qty in sorted(basket.items())]


# --------------------------------------------------------------------------- receipt accuracy


def _receipt_verdicts(truth_customers: list[dict], receipts: list[dict]) -> tuple[int, int, list[dict]]:
    """(correct, denominator, what was wrong) — the one place the receipt rule is written."""
    baskets = _true_baskets(truth_customers)
    by_customer = _receipts_by_customer(receipts)
    correct, wrong = 0, []
    for cid, basket in baskets.items():
        theirs = by_customer.get(cid, [])
        got = [_aggregate_lines(_field(r, "lines", list, f"receipts[{i}]"), f"receipts[{i}].lines")
               for i, r in theirs]
        if len(got) == 1 and got[0] == basket:
            correct += 1
            continue
        reason = ("no receipt" if not got
                  else f"{len(got)} receipts for one session" if len(got) > 1
                  else "lines differ")
        wrong.append({"customer": cid, "reason": reason, "expected": _lines_out(basket),
                      "got": [_lines_out(g) for g in got]})
    strangers = 0
    for cid, theirs in by_customer.items():
        if cid in baskets:
            continue
        for i, r in theirs:
            strangers += 1
            got = _aggregate_lines(_field(r, "lines", list, f"receipts[{i}]"), f"receipts[{i}].lines")
            wrong.append({"customer": cid, "reason": "customer does not exist", "expected": None,
                          "got": [_lines_out(got)]})
    return correct, len(baskets) + strangers, wrong


def receipt_accuracy(truth_customers: list[dict], receipts: list[dict]) -> float:
    """Share of true customers whose receipt is exactly right (SPEC section 6).

    A true customer is right when exactly one receipt names it and that receipt's lines, rows of
    one gtin summed and zero quantities dropped, equal its true basket aggregated the same way —
    so a shopper who put everything back is right with an empty receipt, and two receipts for one
    shopper are wrong even if they add up. The denominator is the true customers plus every
    receipt whose customer does not exist (including `null`): a receipt for nobody is an error.
    Nothing to score (no customers, no receipts) is 1.0.
    """
    correct, denominator, _ = _receipt_verdicts(truth_customers, receipts)
    return 1.0 if denominator == 0 else correct / denominator


# --------------------------------------------------------------------------- event F1


@dataclass(frozen=True)
class EventMatch:
    """One-to-one matching of true events to output events; `matched` holds (true, output) pairs."""

    tp: int
    fp: int
    fn: int
    f1: float
    missed: list = field(default_factory=list)
    spurious: list = field(default_factory=list)
    matched: list[tuple] = field(default_factory=list)


def _event_key(event: Any, where: str) -> tuple[str | None, str, str]:
    customer = _field(event, "customer", (str, type(None)), where)
    action = _field(event, "action", str, where)
    return customer, action, _field(event, "gtin", str, where)


def _event_time(event: Any, where: str) -> float:
    t = float(_field(event, "t", (int, float), where))
    if not math.isfinite(t):
        raise ScoringError(f"{where}: field 't' must be a finite number, got {t!r}")
    return t


def _match_on_line(truth_t: list[float], out_t: list[float], window_s: float) -> list[tuple[int, int]]:
    """A maximum one-to-one matching of two sorted lists of times, |dt| <= window; among those,
    one of least total |dt|. Returns (truth position, output position) pairs.

    Why the dynamic programme below is exact: if two pairs cross, (a1, b2) and (a2, b1) with
    a1 <= a2 and b1 <= b2, then (a1, b1) and (a2, b2) are also within the window (b1 >= a2 - w
    >= a1 - w and b1 <= b2 <= a1 + w; symmetrically for a2, b2) and |a1-b1| + |a2-b2| <=
    |a1-b2| + |a2-b1| (|x - y| is a Monge cost on a line). Uncrossing never loses a pair nor adds
    time, so some optimal matching preserves order, and an order-preserving matching is an
    alignment of the two sorted lists: the classic O(n*m) table finds the best one. (Nearest-
    first greedy is not exact: truths 0.0, 1.0 and outputs 0.9, 2.4 — it pairs 1.0 with 0.9 and
    leaves two events unmatched where two pairs exist.) `event_f1` splits each group at gaps
    wider than the window before calling this, so the table stays small on long recordings.
    """
    n, m = len(truth_t), len(out_t)
    # best[j] = (-pairs, total |dt|) for the first i truths and j outputs, one row kept at a time;
    # tuples compare lexicographically, so min() maximises the count first, then minimises time.
    # step[i][j] records the choice for the walk back: 1 skip truth, 2 skip output, 3 pair them.
    previous = [(0, 0.0)] * (m + 1)
    step = [bytearray([2] * (m + 1)) for _ in range(n + 1)]
    for i in range(1, n + 1):
        row = [previous[0]] * (m + 1)
        step[i][0] = 1
        for j in range(1, m + 1):
            choice, how = previous[j], 1
            if row[j - 1] < choice:
                choice, how = row[j - 1], 2
            dt = abs(truth_t[i - 1] - out_t[j - 1])
            if dt <= window_s + _TIME_EPS:
                paired = (previous[j - 1][0] - 1, previous[j - 1][1] + dt)
                if paired < choice:
                    choice, how = paired, 3
            row[j], step[i][j] = choice, how
        previous = row
    pairs, i, j = [], n, m
    while i and j:
        how = step[i][j]
        if how == 3:
            pairs.append((i - 1, j - 1))
        if how in (1, 3):
            i -= 1
        if how in (2, 3):
            j -= 1
    return pairs[::-1]


def _clusters(items: list[tuple[float, int, int]], window_s: float) -> Iterable[list[tuple[float, int, int]]]:
    """Split time-sorted (t, side, index) items where consecutive times are further apart than
    the window: nothing on one side of such a gap can match anything on the other."""
    start = 0
    for k in range(1, len(items) + 1):
        if k == len(items) or items[k][0] - items[k - 1][0] > window_s + _TIME_EPS:
            yield items[start:k]
            start = k


def event_f1(
    truth_events: list[dict], output_events: list[dict], window_s: float = EVENT_WINDOW_S
) -> EventMatch:
    """F1 of output basket events against true ones (SPEC section 6).

    True and output events match one to one when customer (`null` matches `null`: the anonymous
    shopper of a refused code), action and gtin are equal and their times are at most `window_s`
    apart, a gap of exactly `window_s` included. The matching has the most pairs possible and,
    among those, the least total time gap (see `_match_on_line`). Each event is one unit of
    matching whatever its `qty`: a pick of 2 is one event, as the SPEC counts events, not items
    (the receipts already score quantities). F1 = TP / (TP + (FP + FN) / 2); 1.0 when both lists
    are empty. `missed` and `spurious` keep the input order; `matched` follows the truth's order.
    """
    groups: dict[tuple, list[tuple[float, int, int]]] = defaultdict(list)
    for side, events, name in ((0, truth_events, "truth events"), (1, output_events, "output events")):
        for i, event in enumerate(_list(events, name)):
            where = f"{name}[{i}]"
            groups[_event_key(event, where)].append((_event_time(event, where), side, i))
    pairs: list[tuple[int, int]] = []
    for items in groups.values():
        items.sort()
        for cluster in _clusters(items, window_s):
            truths = [(t, i) for t, side, i in cluster if side == 0]
            outs = [(t, i) for t, side, i in cluster if side == 1]
            for a, b in _match_on_line([t for t, _ in truths], [t for t, _ in outs], window_s):
                pairs.append((truths[a][1], outs[b][1]))
    pairs.sort()
    used_truth = {a for a, _ in pairs}
    used_out = {b for _, b in pairs}
    tp = len(pairs)
    fn = len(truth_events) - tp
    fp = len(output_events) - tp
    f1 = 1.0 if tp + fp + fn == 0 else tp / (tp + (fp + fn) / 2)
    return EventMatch(
        tp=tp, fp=fp, fn=fn, f1=f1,
        missed=[e for i, e in enumerate(truth_events) if i not in used_truth],
        spurious=[e for i, e in enumerate(output_events) if i not in used_out],
        matched=[(truth_events[a], output_events[b]) for a, b in pairs],
    )


# --------------------------------------------------------------------------- charge error


def _charges(truth_customers: list[dict], receipts: list[dict], prices: Mapping[str, int]) -> list[dict]:
    """Per customer (true or charged stranger): true total and charged total, in cents."""
    baskets = _true_baskets(truth_customers)
    charged: Counter[str | None] = Counter()
    for i, receipt in enumerate(_list(receipts, "receipts")):
        where = f"receipts[{i}]"
        cid = _field(receipt, "customer", (str, type(None)), where)
        if _field(receipt, "status", str, where) == "charged":
            charged[cid] += _field(receipt, "total_cents", int, where)
    rows = []
    for cid, basket in baskets.items():
        true_total = 0
        for gtin, qty in basket.items():
            if gtin not in prices:
                raise ScoringError(f"truth basket of {cid!r}: gtin {gtin} has no price in the catalog")
            true_total += qty * prices[gtin]
        rows.append({"customer": cid, "true_cents": true_total, "charged_cents": charged.get(cid, 0)})
    for cid, cents in charged.items():
        if cid not in baskets:
            rows.append({"customer": cid, "true_cents": 0, "charged_cents": cents})
    return rows


def charge_error_cents(truth_customers: list[dict], receipts: list[dict], prices: Mapping[str, int]) -> int:
    """Sum over customers of |charged - true total| in cents (SPEC section 6).

    The true total is sum(qty * price) of the true basket, prices being the catalog's gtin ->
    price_cents. Charged is the sum of `total_cents` of the customer's receipts whose status is
    `charged`; a receipt in `review` or still `open` has charged nothing, so a shopper who waits
    for a person counts in full until the person settles it. Receipts with status `charged` for a
    customer who does not exist (`null` included) add their whole total: charging a stranger is
    as much an error as not charging a shopper.
    """
    return sum(abs(r["charged_cents"] - r["true_cents"]) for r in _charges(truth_customers, receipts, prices))


# --------------------------------------------------------------------------- face recall


Box = tuple[int, int, int, int]


@dataclass(frozen=True)
class FaceRecall:
    """Face boxes anonymized in the private video out of all boxes with something to hide.

    `missed` lists (frame, box) with the box clipped to the frame and rounded, as measured.
    """

    anonymized: int
    total: int
    recall: float
    missed: list[tuple[int, Box]] = field(default_factory=list)


def read_faces(faces_jsonl: Path) -> dict[int, list[tuple[float, float, float, float]]]:
    """frame index -> face boxes [x1, y1, x2, y2] of one faces file (SPEC section 6)."""
    try:
        text = Path(faces_jsonl).read_text(encoding="utf-8")
    except OSError as exc:
        raise ScoringError(f"{faces_jsonl}: cannot read the faces file ({exc.strerror})") from exc
    frames: dict[int, list[tuple[float, float, float, float]]] = {}
    first_line: dict[int, int] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{faces_jsonl}, line {number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ScoringError(f"{where}: not JSON ({exc.msg})") from exc
        frame = _field(record, "frame", int, where)
        if frame < 0:
            raise ScoringError(f"{where}: field 'frame' must be >= 0, got {frame}")
        if frame in frames:
            raise ScoringError(f"{where}: frame {frame} already listed on line {first_line[frame]}")
        boxes = []
        for k, box in enumerate(_field(record, "boxes", list, where)):
            if (not isinstance(box, list) or len(box) != 4
                    or not all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
                               for v in box)):
                raise ScoringError(f"{where}: boxes[{k}] must be [x1, y1, x2, y2] numbers, got {box!r}")
            x1, y1, x2, y2 = (float(v) for v in box)
            if x2 < x1 or y2 < y1:
                raise ScoringError(f"{where}: boxes[{k}] must have x1 <= x2 and y1 <= y2, got {box!r}")
            boxes.append((x1, y1, x2, y2))
        frames[frame] = boxes
        first_line[frame] = number
    return frames


def _clip_box(box: tuple[float, float, float, float], width: int, height: int) -> Box:
    x1, y1, x2, y2 = box
    return (round(min(max(x1, 0.0), width)), round(min(max(y1, 0.0), height)),
            round(min(max(x2, 0.0), width)), round(min(max(y2, 0.0), height)))


def _laplacian_variance(frame: np.ndarray, box: Box) -> float:
    x1, y1, x2, y2 = box
    crop = frame[y1:y2, x1:x2]
    if crop.size == 0:
        return 0.0
    gray = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY) if crop.ndim == 3 else crop
    return float(cv2.Laplacian(gray, cv2.CV_64F).var())


def frame_face_recall(
    original: np.ndarray,
    private: np.ndarray | None,
    boxes: Iterable[tuple[float, float, float, float]],
    min_height: int = 12,
    min_variance: float = 10.0,
    max_ratio: float = 0.20,
) -> FaceRecall:
    """SPEC section 6's rule on one picture: which of `boxes` (x1, y1, x2, y2) the private picture
    anonymizes. `face_recall` applies it to every frame of a video; a benchmark on still photos calls
    it directly. A private picture that is missing or of another size anonymizes nothing; `missed`
    holds (0, box) pairs."""
    if private is not None and private.shape[:2] != original.shape[:2]:
        private = None
    height, width = original.shape[:2]
    anonymized, total, missed = 0, 0, []
    for raw in boxes:
        if raw[3] - raw[1] < min_height:
            continue
        box = _clip_box(raw, width, height)
        before = _laplacian_variance(original, box)
        if before < min_variance:
            continue
        total += 1
        after = None if private is None else _laplacian_variance(private, box)
        if after is not None and after <= max_ratio * before:
            anonymized += 1
        else:
            missed.append((0, box))
    return FaceRecall(anonymized=anonymized, total=total,
                      recall=1.0 if total == 0 else anonymized / total, missed=missed)


def face_recall(
    original_video: Path,
    private_video: Path | None,
    faces_jsonl: Path,
    min_height: int = 12,
    min_variance: float = 10.0,
    max_ratio: float = 0.20,
) -> FaceRecall:
    """Share of true face boxes that the private video anonymizes (SPEC section 6).

    Both videos are decoded in lockstep, one frame at a time. A box counts when it is at least
    `min_height` px high (y2 - y1, before clipping) and, clipped to the frame and rounded, the
    variance of the Laplacian of the original's grayscale crop is at least `min_variance` (a flat
    box has nothing to hide). It is anonymized when the same crop of the private frame has a
    Laplacian variance of at most `max_ratio` times the original's. A missing or unreadable
    private video, private frames that run out early, or a private frame of another size than
    the original count as not anonymized. A faces file naming a frame the original does not
    have is an error. Recall is 1.0 when no box counts.
    """
    faces = read_faces(faces_jsonl)
    last = max((f for f, boxes in faces.items() if boxes), default=-1)
    original = cv2.VideoCapture(str(original_video))
    if not original.isOpened():
        raise ScoringError(f"{original_video}: cannot open the original video")
    private_capture = None
    if private_video is not None and Path(private_video).is_file():
        private_capture = cv2.VideoCapture(str(private_video))
    # `private` becomes None for good once the private video is absent, unreadable or over.
    private = private_capture if private_capture is not None and private_capture.isOpened() else None
    anonymized, total, missed = 0, 0, []
    try:
        for index in range(last + 1):
            boxes = faces.get(index)
            if not boxes:
                # grab() decodes without converting: the cheap way to keep the two in lockstep.
                ok = original.grab()
                if ok and private is not None and not private.grab():
                    private = None
            else:
                ok, frame = original.read()
            if not ok:
                raise ScoringError(
                    f"{faces_jsonl}: frame {last} has faces but {original_video} has only {index} frames")
            if not boxes:
                continue
            private_frame = None
            if private is not None:
                ok, private_frame = private.read()
                if not ok:
                    private, private_frame = None, None
            result = frame_face_recall(frame, private_frame, boxes, min_height, min_variance, max_ratio)
            anonymized, total = anonymized + result.anonymized, total + result.total
            missed += [(index, box) for _, box in result.missed]
    finally:
        original.release()
        if private_capture is not None:
            private_capture.release()
    return FaceRecall(anonymized=anonymized, total=total,
                      recall=1.0 if total == 0 else anonymized / total, missed=missed)


# --------------------------------------------------------------------------- speed


def realtime_factor(recorded_seconds: float, wall_seconds: float) -> float:
    """Recorded seconds (all cameras together) per wall-clock second of the replay."""
    if not (math.isfinite(recorded_seconds) and recorded_seconds >= 0):
        raise ValueError(f"recorded_seconds must be a finite number >= 0, got {recorded_seconds!r}")
    if not (math.isfinite(wall_seconds) and wall_seconds > 0):
        raise ValueError(f"wall_seconds must be a finite number > 0, got {wall_seconds!r}")
    return recorded_seconds / wall_seconds


def _video_seconds(path: Path) -> float:
    capture = cv2.VideoCapture(str(path))
    try:
        if not capture.isOpened():
            raise ScoringError(f"{path}: cannot open the camera video")
        fps = capture.get(cv2.CAP_PROP_FPS)
        frames = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
        if frames <= 0:  # some containers do not say: count them
            frames = 0
            while capture.grab():
                frames += 1
    finally:
        capture.release()
    if not fps or fps <= 0:
        raise ScoringError(f"{path}: the video does not state its frame rate")
    return frames / fps


# --------------------------------------------------------------------------- one replay


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ScoringError(f"{path}: not JSON (line {exc.lineno}: {exc.msg})") from exc


def _read_truth(path: Path) -> dict:
    if not path.is_file():
        raise ScoringError(f"{path}: no ground truth to score against")
    truth = _read_json(path)
    where = str(path)
    version = _field(truth, "version", int, where)
    if version != 1:
        raise ScoringError(f"{where}: field 'version' is {version}, this scorer reads version 1")
    _field(truth, "customers", list, where)
    _field(truth, "events", list, where)
    if not isinstance(truth.get("faces", {}), dict):
        raise ScoringError(f"{where}: field 'faces' must map camera -> faces file")
    return truth


def _read_receipts(path: Path) -> list[dict]:
    text = path.read_text(encoding="utf-8") if path.is_file() else ""
    if not text.strip():
        return []
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ScoringError(f"{path}: not JSON (line {exc.lineno}: {exc.msg})") from exc
    return _field(document, "receipts", list, str(path))


def _read_events(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    events = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            event = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ScoringError(f"{path}, line {number}: not JSON ({exc.msg})") from exc
        where = f"{path}, line {number}"
        _event_key(event, where)
        _event_time(event, where)
        events.append(event)
    return events


def _rounded(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, _FLOAT_DIGITS)
    if isinstance(value, Mapping):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_rounded(v) for v in value]
    return value


def score_replay(
    scenario_dir: Path,
    out_dir: Path,
    *,
    prices: dict[str, int],
    camera_videos: dict[str, Path],
    wall_seconds: float | None,
    recorded_seconds: float | None,
) -> dict:
    """The metrics of one replay (SPEC section 6) with the details a person needs to see why.

    Reads `scenario_dir/truth.json` and the replay's `out_dir/receipts.json`, `events.jsonl` and
    `private/<camera>.mp4`; a missing or empty output counts as no receipts, no events, or
    nothing anonymized. `camera_videos` maps camera id -> its original recording. When
    `wall_seconds` is given and `recorded_seconds` is not, the recorded time is read from those
    videos; `realtime_factor` is null without `wall_seconds`. Floats are rounded to 6 decimals;
    each camera's list of missed faces stops at the first 100 (its count is total - anonymized).
    """
    scenario_dir, out_dir = Path(scenario_dir), Path(out_dir)
    truth = _read_truth(scenario_dir / "truth.json")
    receipts = _read_receipts(out_dir / "receipts.json")
    events = _read_events(out_dir / "events.jsonl")

    correct, denominator, wrong_receipts = _receipt_verdicts(truth["customers"], receipts)
    match = event_f1(truth["events"], events)
    charges = _charges(truth["customers"], receipts, prices)

    per_camera, anonymized, total = {}, 0, 0
    for camera, faces_file in sorted(truth.get("faces", {}).items()):
        if not isinstance(faces_file, str):
            raise ScoringError(f"{scenario_dir / 'truth.json'}: faces.{camera} must be a file path")
        if camera not in camera_videos:
            raise ScoringError(f"{scenario_dir / 'truth.json'}: faces name camera {camera!r}, "
                               f"which the scenario does not record")
        result = face_recall(Path(camera_videos[camera]), out_dir / "private" / f"{camera}.mp4",
                             scenario_dir / faces_file)
        anonymized, total = anonymized + result.anonymized, total + result.total
        per_camera[camera] = {
            "anonymized": result.anonymized, "total": result.total, "recall": result.recall,
            "missed": [{"frame": f, "box": list(b)} for f, b in result.missed[:_MAX_LISTED_MISSED_FACES]],
        }

    rtf = None
    if wall_seconds is not None:
        if recorded_seconds is None:
            recorded_seconds = sum(_video_seconds(Path(p)) for _, p in sorted(camera_videos.items()))
        rtf = realtime_factor(recorded_seconds, wall_seconds)

    metrics = {
        "receipt_accuracy": 1.0 if denominator == 0 else correct / denominator,
        "event_f1": match.f1,
        "charge_error_cents": sum(abs(r["charged_cents"] - r["true_cents"]) for r in charges),
        "face_recall": 1.0 if total == 0 else anonymized / total,
        "realtime_factor": rtf,
        "details": {
            "receipts": {"correct": correct, "denominator": denominator, "wrong": wrong_receipts},
            "events": {"tp": match.tp, "fp": match.fp, "fn": match.fn,
                       "missed": match.missed, "spurious": match.spurious},
            "charges": [r for r in charges if r["charged_cents"] != r["true_cents"]],
            "faces": per_camera,
            "recorded_seconds": recorded_seconds,
            "wall_seconds": wall_seconds,
        },
    }
    return _rounded(metrics)


def write_metrics(path: Path, metrics: Mapping[str, Any]) -> None:
    """Write metrics.json: sorted keys, floats at 6 decimals, trailing newline — same bytes for
    the same replay."""
    text = json.dumps(_rounded(metrics), sort_keys=True, indent=2, ensure_ascii=False, allow_nan=False)
    Path(path).write_text(text + "\n", encoding="utf-8")
