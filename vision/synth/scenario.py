"""Render one scenario directory (SPEC section 2) with its ground truth (SPEC section 6).

`render_scenario(out_dir, SynthOptions(kind=..., seed=...))` plans the shoppers of a scenario kind,
choreographs them, renders the gate and aisle cameras frame by frame, and writes the manifest,
store layout, catalog, product images, videos, truth and per-frame face boxes.
"""

from __future__ import annotations

import contextlib
import csv
import json
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import cv2
import numpy as np
import yaml

from vision.entry_code import EntryClaims, make_code
from vision.synth import assets, draw
from vision.synth.dataset import DatasetWriter
from vision.synth.figure import FigureStyle, Pose, draw_figure, random_style
from vision.synth.randomize import PRESETS, Camera, Look, draw_look
from vision.synth.script import (
    Choreography,
    GateShow,
    ShopperPlan,
    TrueEvent,
    Unreachable,
    Visit,
    choreograph,
    gate_pose,
)
from vision.synth.world import AISLE_SIZE, GATE_SIZE, ShelfWall, build_shelf_wall, gate_background
from vision.video import VideoWriter

KINDS = ("single", "pick_put", "two_shoppers", "adjacent", "misplaced", "family", "refused", "several")
Refusal = Literal["expired", "reused", "forged"]
START = datetime(2026, 11, 22, 9, 0, 0, tzinfo=UTC)
STORE_ID = "walkout-synth-01"
MAX_SECONDS = 30.0
PLAN_ATTEMPTS = 8


@dataclass(frozen=True)
class SynthOptions:
    kind: str
    seed: int
    preset: str = "sample"
    data_dir: Path | None = None
    fps: int = 15
    refusal: Refusal | None = None  # for kind "refused"; drawn from the seed when None
    crf: int = 27


@dataclass(frozen=True)
class Shopper:
    """A planned shopper before timing: who they are and what they will do."""

    customer: str | None
    code: str | None
    group: int
    visits: tuple[Visit, ...]
    refusal: str | None = None
    lane_delay: float = 0.0  # extra seconds before this shopper reaches the gate


@dataclass
class _World:
    rng: np.random.Generator
    wall: ShelfWall
    contents: dict[str, list[str]]
    products: list[assets.ProductArt]
    look: Look
    key: bytes
    faces: list[np.ndarray]

    def slot_x(self, slot_id: str) -> float:
        return self.wall.slot_x(slot_id)


@dataclass
class Plan:
    """Everything about a scenario that is decided before a single pixel is drawn."""

    options: SynthOptions
    world: _World
    shoppers: list[Shopper]
    styles: list[FigureStyle]
    plans: list[ShopperPlan]
    shows: list[GateShow]
    chor: Choreography
    n_frames: int
    rng_pixels: np.random.Generator
    rng_gate: np.random.Generator

    @property
    def read_times(self) -> dict[int, float]:
        """When each code shown at the gate becomes readable: the scan time of the truth."""
        return {show.plan_index: round(show.show_from + 0.3, 3) for show in self.shows if show.shows_code}

    def truth(self) -> dict:
        return _truth(self.shoppers, self.chor, self.read_times, self.options)

    def truth_json(self) -> str:
        """truth.json's exact text: the bytes that must not change for the same seed."""
        return json.dumps(self.truth(), indent=1, ensure_ascii=False) + "\n"


def plan_scenario(options: SynthOptions) -> Plan:
    """Plan and time a scenario: its store, shoppers, motions and true events (deterministic by seed)."""
    if options.kind not in KINDS:
        raise ValueError(f"unknown scenario kind {options.kind!r}; expected one of {', '.join(KINDS)}")
    if options.preset not in PRESETS:
        raise ValueError(f"unknown randomisation preset {options.preset!r}; expected one of {', '.join(PRESETS)}")
    # Wide randomisation ranges now and then draw a shelf too high for a short shopper: draw again
    # from a derived seed. Attempt 0 is the plain seed, so scenarios that plan first time never change.
    for attempt in range(PLAN_ATTEMPTS):
        entropy = [options.seed, KINDS.index(options.kind)] + ([attempt] if attempt else [])
        seeds = np.random.SeedSequence(entropy).spawn(4)
        rng_world, rng_plan, rng_pixels, rng_gate = (np.random.default_rng(s) for s in seeds)
        world = _build_world(rng_world, options)
        shoppers = _PLANNERS[options.kind](world, options)
        styles = [random_style(rng_plan, world.faces) for _ in shoppers]
        try:
            plans, shows, chor = _time(world, shoppers, styles, rng_plan)
            break
        except Unreachable:
            if attempt == PLAN_ATTEMPTS - 1:
                raise
    duration = max(tl.exit_t for tl in chor.timelines) + 1.0
    if duration > MAX_SECONDS:
        raise ValueError(f"scenario {options.kind} seed {options.seed} lasts {duration:.1f} s, over {MAX_SECONDS} s")
    return Plan(options, world, shoppers, styles, plans, shows, chor, math.ceil(duration * options.fps),
                rng_pixels, rng_gate)


def render_scenario(out_dir: Path, options: SynthOptions, dataset: DatasetWriter | None = None,
                    split: str = "train", videos: bool = True) -> dict:
    """Render the scenario into `out_dir` (created); returns a summary of what was written.

    With `dataset`, every k-th frame of both cameras also goes into it with its boxes, under `split`.
    `videos=False` renders every frame but encodes none (for a dataset, which keeps only its frames).
    """
    plan = plan_scenario(options)
    out_dir = Path(out_dir)
    for sub in ("cameras", "products", "faces"):
        (out_dir / sub).mkdir(parents=True, exist_ok=True)
    _write_store(out_dir, plan.world, options)
    sink = None if dataset is None else _Sink(dataset, split, f"{options.kind}-{options.preset}-{options.seed}")
    aisle_faces = _render_aisle(out_dir / "cameras" / "aisle.mp4" if videos else None, plan, sink)
    gate_faces = _render_gate(out_dir / "cameras" / "gate.mp4" if videos else None, plan, sink)
    _write_faces(out_dir / "faces" / "aisle.jsonl", aisle_faces)
    _write_faces(out_dir / "faces" / "gate.jsonl", gate_faces)
    truth = plan.truth()
    (out_dir / "truth.json").write_text(plan.truth_json(), encoding="utf-8")
    return {"dir": str(out_dir), "kind": options.kind, "seed": options.seed,
            "seconds": round(plan.n_frames / options.fps, 3), "customers": len(truth["customers"]),
            "events": len(truth["events"])}


def goes_to_val(kind: str, seed: int, val_every: int) -> bool:
    """Whether `render_many` sends the scenario of this kind and seed to a dataset's val split."""
    return (seed * 7 + len(kind)) % val_every == 0


def render_many(out: Path, *, kinds: tuple[str, ...], seed: int, scenarios: int, preset: str = "sample",
                data_dir: Path | None = None, refusal: Refusal | None = None, dataset: DatasetWriter | None = None,
                val_every: int = 5, videos: bool = True) -> Iterator[dict]:
    """Render `scenarios` scenarios cycling through `kinds` for seed, seed + 1, ... into out/KIND-SEED.

    With `dataset`, whole scenarios go to its val split (one in `val_every`, by a fixed rule on
    kind and seed), never single frames: validation frames are not near-copies of training ones.
    Yields each scenario's summary as it is written.
    """
    if scenarios < 1 or val_every < 1:
        raise ValueError(f"scenarios and val_every must be at least 1, got {scenarios} and {val_every}")
    for n in range(scenarios):
        kind, s = kinds[n % len(kinds)], seed + n // len(kinds)
        split = "val" if goes_to_val(kind, s, val_every) else "train"
        options = SynthOptions(kind=kind, seed=s, preset=preset, data_dir=data_dir, refusal=refusal)
        yield render_scenario(Path(out) / f"{kind}-{s}", options, dataset, split, videos)


def _build_world(rng: np.random.Generator, options: SynthOptions) -> _World:
    look = draw_look(rng, PRESETS[options.preset])
    products = assets.products(options.data_dir, rng, 12)
    wall, contents = build_shelf_wall(rng, look, products)
    key = bytes(rng.integers(0, 256, size=32, dtype=np.uint8))
    faces = assets.face_crops(options.data_dir, rng) if options.data_dir else []
    if not faces:
        faces = [assets.drawn_face(rng, 96) for _ in range(8)]
    return _World(rng, wall, contents, products, look, key, faces)


# ---------------------------------------------------------------- planning per scenario kind

def _slots(world: _World, *, min_facings: int = 1, room: int = 0, exclude: tuple[str, ...] = (),
           x_range: tuple[float, float] = (0.0, 1280.0)) -> list[str]:
    """Slots (sorted by id) that hold at least `min_facings` and have `room` free places."""
    out = []
    for sid, slot in sorted(world.wall.slots.items()):
        n = len(world.contents[sid])
        if sid in exclude or not x_range[0] <= world.slot_x(sid) <= x_range[1]:
            continue
        if n >= min_facings and slot.capacity - n >= room:
            out.append(sid)
    return out


def _choose(world: _World, candidates: list[str], what: str) -> str:
    if not candidates:
        raise ValueError(f"the shelf layout has no slot for {what}")
    return candidates[int(world.rng.integers(len(candidates)))]


def _by_x(world: _World, visits: list[Visit]) -> tuple[Visit, ...]:
    return tuple(sorted(visits, key=lambda v: world.slot_x(v.slot)))


def _code(world: _World, cid: str, party: int = 1, *, exp_offset: float = 3600.0, key: bytes | None = None) -> str:
    jti = bytes(world.rng.integers(0, 256, size=8, dtype=np.uint8)).hex()
    claims = EntryClaims(cid=cid, jti=jti, sid=STORE_ID, exp=int(START.timestamp() + exp_offset), party=party)
    return make_code(key or world.key, claims)


def _plan_single(world: _World, options: SynthOptions) -> list[Shopper]:
    a = _choose(world, _slots(world), "a pick")
    b = _choose(world, _slots(world, exclude=(a,)), "a second pick")
    return [Shopper("c-0001", _code(world, "c-0001"), 0, _by_x(world, [Visit(a, "pick"), Visit(b, "pick")]))]


def _plan_pick_put(world: _World, options: SynthOptions) -> list[Shopper]:
    a = _choose(world, _slots(world, x_range=(200, 700)), "a pick to put back")
    b = _choose(world, _slots(world, exclude=(a,), x_range=(world.slot_x(a) + 150, 1200)), "a kept pick")
    visits = (Visit(a, "pick"), Visit(b, "pick"), Visit(a, "put", returns=0))
    return [Shopper("c-0001", _code(world, "c-0001"), 0, visits)]


def _plan_two(world: _World, options: SynthOptions) -> list[Shopper]:
    left = _slots(world, x_range=(150, 600))
    right = _slots(world, x_range=(700, 1150))
    a1 = _choose(world, left, "shopper 1")
    b1 = _choose(world, right, "shopper 2")
    b2 = _choose(world, [s for s in right if s != b1] or right, "shopper 2's second pick")
    visits_b = [Visit(b1, "pick")] + ([Visit(b2, "pick")] if b2 != b1 else [])
    return [Shopper("c-0001", _code(world, "c-0001"), 0, (Visit(a1, "pick"),)),
            Shopper("c-0002", _code(world, "c-0002"), 1, _by_x(world, visits_b), lane_delay=-1.0)]


def _plan_adjacent(world: _World, options: SynthOptions) -> list[Shopper]:
    # Two neighbouring slots in one row; each shopper stands under one and reaches for the other, arms crossing.
    # Not the top row: reaching across a neighbour, the top shelf is out of reach.
    pairs = [(sid, f"{sid[0]}{int(sid[1:]) + 1}") for sid in sorted(world.wall.slots)
             if sid[0] != "A" and f"{sid[0]}{int(sid[1:]) + 1}" in world.wall.slots
             and 250 < world.slot_x(sid) < 1000]
    if not pairs:
        raise ValueError("the shelf layout has no two neighbouring slots below the top row")
    left, right = pairs[int(world.rng.integers(len(pairs)))]
    # Stock them so the two facings taken are close: the left slot full, the right one with its first facing.
    world.contents[left] = [world.wall.slots[left].planned] * world.wall.slots[left].capacity
    world.contents[right] = [world.wall.slots[right].planned]
    return [Shopper("c-0001", _code(world, "c-0001"), 0, (Visit(right, "pick", side="R", stand_offset=0.27),)),
            Shopper("c-0002", _code(world, "c-0002"), 1, (Visit(left, "pick", side="L", stand_offset=0.27),))]


def _plan_misplaced(world: _World, options: SynthOptions) -> list[Shopper]:
    src = _choose(world, _slots(world, x_range=(150, 650)), "the misplaced product")
    planned = world.wall.slots[src].planned
    dst = _choose(world, [s for s in _slots(world, room=1, x_range=(world.slot_x(src) + 120, 1150))
                          if world.wall.slots[s].planned != planned], "a wrong slot with room")
    a_visits = (Visit(src, "pick"), Visit(dst, "put", returns=0))
    b_extra = _slots(world, exclude=(src, dst), x_range=(100, world.slot_x(dst) - 100))
    b_visits = ([Visit(_choose(world, b_extra, "shopper 2's other pick"), "pick")] if b_extra else []) + [
        Visit(dst, "pick")]
    return [Shopper("c-0001", _code(world, "c-0001"), 0, a_visits),
            Shopper("c-0002", _code(world, "c-0002"), 1, _by_x(world, b_visits), lane_delay=2.5)]


def _plan_family(world: _World, options: SynthOptions) -> list[Shopper]:
    a = _choose(world, _slots(world, x_range=(150, 650)), "parent's pick")
    b = _choose(world, _slots(world, exclude=(a,), x_range=(700, 1150)), "child's pick")
    code = _code(world, "c-0001", party=2)
    return [Shopper("c-0001", code, 0, (Visit(a, "pick"),)),
            Shopper("c-0001", None, 0, (Visit(b, "pick"),))]


def _plan_refused(world: _World, options: SynthOptions) -> list[Shopper]:
    refusal = options.refusal or ("expired", "reused", "forged")[options.seed % 3]
    a = _choose(world, _slots(world, x_range=(150, 650)), "the customer's pick")
    b = _choose(world, _slots(world, exclude=(a,), x_range=(700, 1150)), "the intruder's pick")
    good = _code(world, "c-0001")
    if refusal == "expired":
        bad = _code(world, "c-0002", exp_offset=-600.0)
    elif refusal == "reused":
        bad = good
    else:
        bad = _code(world, "c-0002", key=bytes(world.rng.integers(0, 256, size=32, dtype=np.uint8)))
    return [Shopper("c-0001", good, 0, (Visit(a, "pick"),)),
            Shopper(None, bad, 1, (Visit(b, "pick"),), refusal=refusal)]


def _plan_several(world: _World, options: SynthOptions) -> list[Shopper]:
    roomy = [s for s in sorted(world.wall.slots) if world.wall.slots[s].capacity >= 3]
    if not roomy:
        raise ValueError("the shelf layout has no slot for three facings")
    sid = _choose(world, roomy, "several of one product")
    slot = world.wall.slots[sid]
    world.contents[sid] = [slot.planned] * slot.capacity
    other = _choose(world, _slots(world, exclude=(sid,)), "another pick")
    visits = _by_x(world, [Visit(sid, "pick", qty=2), Visit(other, "pick")])
    return [Shopper("c-0001", _code(world, "c-0001"), 0, visits + (Visit(sid, "pick"),))]


_PLANNERS: dict[str, Callable[[_World, SynthOptions], list[Shopper]]] = {
    "single": _plan_single, "pick_put": _plan_pick_put, "two_shoppers": _plan_two, "adjacent": _plan_adjacent,
    "misplaced": _plan_misplaced, "family": _plan_family, "refused": _plan_refused, "several": _plan_several,
}


# ---------------------------------------------------------------- timing

def _time(world: _World, shoppers: list[Shopper], styles: list[FigureStyle], rng: np.random.Generator
          ) -> tuple[list[ShopperPlan], list[GateShow], Choreography]:
    """Gate passes one after another, then the aisle; adjacent shoppers wait to reach together."""
    look = world.look
    shows: list[GateShow] = []
    t = 0.6
    prev_group = -1
    for i, shopper in enumerate(shoppers):
        follower = shopper.code is None
        h_gate = float(rng.uniform(1000, 1150)) * (0.86 if follower else 1.0)
        head_y = float(rng.uniform(120, 170)) + (25 if follower else 0)
        if follower:
            lead = shows[-1]
            t0 = lead.t0 + 0.5
            show = GateShow(i, t0, lead.show_from + 0.2, lead.show_to, lead.t1 + 0.5, h_gate, False,
                            float(rng.uniform(120, 170)), head_y + 0.915 * h_gate)
        else:
            t0 = t + (max(0.0, shopper.lane_delay) if shopper.group != prev_group else 0.0)
            show_from = t0 + float(rng.uniform(0.8, 1.1))
            show_to = show_from + float(rng.uniform(1.2, 1.8))
            show = GateShow(i, t0, show_from, show_to, show_to + 1.1, h_gate, True, float(rng.uniform(-40, 40)),
                            head_y + 0.915 * h_gate)
        shows.append(show)
        t = show.t1 - 0.4
        prev_group = shopper.group

    def plans_for(waits: dict[int, float]) -> list[ShopperPlan]:
        out = []
        for i, (shopper, style, show) in enumerate(zip(shoppers, styles, shows, strict=True)):
            depth = world.wall.floor_y + (-22.0 if i % 2 == 0 else 12.0) * (1 if len(shoppers) > 1 else 0)
            height = look.person_height * (1 + (depth - world.wall.floor_y) * 0.004) * (0.92 if shopper.code is None
                                                                                         and shopper.customer else 1.0)
            visits = tuple(Visit(v.slot, v.action, v.qty, v.side, v.returns, v.stand_offset,
                                 waits.get(i, 0.0) if j == 0 else 0.0) for j, v in enumerate(shopper.visits))
            out.append(ShopperPlan(shopper.customer, shopper.code, show.t0, show.t1 + 0.6 + 0.3 * i, depth, height,
                                   style, visits))
        return out

    seed = int(rng.integers(2**31))

    def run(waits: dict[int, float], aims: dict | None) -> tuple[list[ShopperPlan], Choreography]:
        plans = plans_for(waits)
        return plans, choreograph(plans, world.wall, world.contents, np.random.default_rng(seed), aims)

    # Pass 1 finds where each hand must go; pass 2 stands shoppers there; pass 3 times the pairs together.
    plans, chor = run({}, None)
    plans, chor = run({}, chor.targets)
    waits = _waits(shoppers, chor)
    if waits:
        plans, chor = run(waits, chor.targets)
    return plans, shows, chor


def _waits(shoppers: list[Shopper], chor: Choreography) -> dict[int, float]:
    """Extra standing time that makes adjacent shoppers reach together and a misplaced pick come after its put."""
    if len(shoppers) != 2:
        return {}
    t = chor.change_times
    if all(v.side for s in shoppers for v in s.visits):  # adjacent: reach at the same moment
        delta = t[(1, 0)] - t[(0, 0)]
        return {0: delta} if delta > 0 else {1: -delta}
    put = [(0, j) for j, v in enumerate(shoppers[0].visits) if v.action == "put"]
    later = [(1, j) for j, v in enumerate(shoppers[1].visits) if any(v.slot == shoppers[0].visits[p[1]].slot
                                                                      for p in put)]
    if put and later:
        slack = t[put[0]] + 1.5 - t[later[0]]
        if slack > 0:
            return {1: slack}
    return {}


# ---------------------------------------------------------------- rendering

def _visible_fraction(canvas: np.ndarray, box: tuple[int, int, int, int], snapshot: np.ndarray) -> float:
    x1, y1, x2, y2 = box
    now = canvas[y1:y2, x1:x2]
    if now.size == 0 or now.shape != snapshot.shape:
        return 0.0
    return float(np.mean(np.all(now == snapshot, axis=-1)))


@dataclass(frozen=True)
class Drawn:
    """The boxes of one drawn figure that are still at least half visible when the frame is done."""

    person: tuple[float, float, float, float] | None
    face: tuple[float, float, float, float] | None
    hands: tuple[tuple[float, float, float, float], ...]
    held: tuple[tuple[float, float, float, float], ...]
    phone: tuple[float, float, float, float] | None


def _draw_people(canvas: np.ndarray, people: list[tuple[FigureStyle, Pose]]) -> list[Drawn]:
    """Draw back to front; a part's box counts only if at least half of what was drawn there survives
    everything drawn after it: the rest of its own figure (a far arm behind the torso, a hand behind
    the phone) and the people in front."""
    h, w = canvas.shape[:2]
    renders = [draw_figure(canvas, style, pose) for style, pose in sorted(people, key=lambda p: p[1].y)]
    out = []
    for render in renders:
        seen: dict[str, list] = {"face": [], "phone": [], "hand": [], "held": []}
        for part in render.parts:
            if _visible_fraction(canvas, part.pixel_box, part.snapshot) >= 0.5:
                seen[part.name].append(part.box)
        person = draw.clip_box(render.person, w, h)
        if person is not None:
            full = (render.person[2] - render.person[0]) * (render.person[3] - render.person[1])
            if (person[2] - person[0]) * (person[3] - person[1]) < 0.25 * full:
                person = None
        out.append(Drawn(person, seen["face"][0] if seen["face"] else None, tuple(seen["hand"]),
                         tuple(seen["held"]), seen["phone"][0] if seen["phone"] else None))
    return out


def _shifted(box: tuple[float, float, float, float], shift: tuple[float, float], size: tuple[int, int]
             ) -> list[float] | None:
    x1, y1, x2, y2 = box
    moved = draw.clip_box((x1 + shift[0], y1 + shift[1], x2 + shift[0], y2 + shift[1]), *size)
    return None if moved is None else [round(v, 1) for v in moved]


def _face_boxes(drawn: list[Drawn], shift: tuple[float, float], size: tuple[int, int]) -> list[list[float]]:
    return [b for d in drawn if d.face is not None and (b := _shifted(d.face, shift, size)) is not None]


@dataclass(frozen=True)
class _Sink:
    writer: DatasetWriter
    split: str
    prefix: str

    def offer(self, camera: str, index: int, image: np.ndarray, drawn: list[Drawn], shift: tuple[float, float],
              jpeg: int) -> None:
        if not self.writer.wants(index):
            return
        size = (image.shape[1], image.shape[0])
        labelled = []
        for d in drawn:
            parts = [(0, d.person)] + [(1, b) for b in d.hands] + [(2, b) for b in d.held] + [(3, d.phone)]
            labelled += [(cls, b) for cls, box in parts if box is not None and (b := _shifted(box, shift, size))]
        self.writer.add(self.split, f"{self.prefix}-{camera}-{index:05d}", image, labelled, jpeg)


def _held_art(world: _World, chor: Choreography) -> dict[tuple[str, str], np.ndarray]:
    art = {}
    for tl in chor.timelines:
        for _t0, _t1, _side, gtins, slot in tl.holds:
            for g in gtins:
                if (g, slot) not in art:
                    fw, fh = world.wall.facing_image_size(slot)
                    art[(g, slot)] = draw.resize_to(world.wall.facing_art[g], fw, fh)
    return art


def _aisle_scenes(plan: Plan) -> Iterator[tuple[int, float, np.ndarray, list[tuple[int, FigureStyle, Pose]]]]:
    """Per aisle frame: its index, time, the shelf wall as it stands then, and the shoppers in view
    (plan index, style, pose). Shared by the render and by `aisle_figures`, so both see the same scenes."""
    world, chor = plan.world, plan.chor
    held_art = _held_art(world, chor)
    contents = {k: list(v) for k, v in world.contents.items()}
    states = list(chor.shelf_states)
    background = world.wall.render(contents)
    for i in range(plan.n_frames):
        t = i / plan.options.fps
        changed = False
        while states and states[0][0] <= t:
            _, slot, facings = states.pop(0)
            contents[slot] = list(facings)
            changed = True
        if changed:
            background = world.wall.render(contents)
        posed = [(k, tl.plan.style, p) for k, tl in enumerate(chor.timelines)
                 if (p := tl.pose(t, held_art)) is not None]
        yield i, t, background, posed


def _video(path: Path | None, size: tuple[int, int], options: SynthOptions) -> VideoWriter | contextlib.nullcontext:
    return contextlib.nullcontext() if path is None else VideoWriter(path, size, options.fps, options.crf)


def _render_aisle(path: Path | None, plan: Plan, sink: _Sink | None) -> list[list[list[float]]]:
    world, options = plan.world, plan.options
    camera = Camera(world.look, AISLE_SIZE, plan.rng_pixels)
    faces: list[list[list[float]]] = []
    with _video(path, AISLE_SIZE, options) as video:
        for i, t, background, posed in _aisle_scenes(plan):
            canvas = background.copy()
            drawn = _draw_people(canvas, [(style, pose) for _, style, pose in posed])
            frame = camera.apply(canvas, t, i)
            if video is not None:
                video.write(frame)
            faces.append(_face_boxes(drawn, camera.shift(t), AISLE_SIZE))
            if sink is not None:
                sink.offer("aisle", i, frame, drawn, camera.shift(t), world.look.jpeg)
    return faces


@dataclass(frozen=True)
class SeenFigure:
    """One shopper in one aisle frame as a perfect detector and tracker would report it, in frame pixels:
    `shopper` is the index of its plan (a stable track id), boxes are those still at least half visible."""

    shopper: int
    customer: str | None
    person: tuple[float, float, float, float] | None
    hands: tuple[tuple[float, float, float, float], ...]
    held: tuple[tuple[float, float, float, float], ...]
    face: tuple[float, float, float, float] | None


def aisle_figures(options: SynthOptions) -> Iterator[list[SeenFigure]]:
    """Per aisle frame, the shoppers in it with their boxes, exactly as `render_scenario` draws them
    (same poses, same shelf states behind, same visibility rule, same camera sway), without encoding
    a video: the ground truth tracks of a rendered or committed scenario. Read-only: it renders nothing."""
    plan = plan_scenario(options)
    camera = Camera(plan.world.look, AISLE_SIZE, plan.rng_pixels)  # the same draws as the render: same sway
    for _i, t, background, posed in _aisle_scenes(plan):
        order = sorted(range(len(posed)), key=lambda j: posed[j][2].y)  # as _draw_people sorts (stably)
        drawn = _draw_people(background.copy(), [(style, pose) for _, style, pose in posed])
        shift = camera.shift(t)
        seen = []
        for j, d in zip(order, drawn, strict=True):
            k = posed[j][0]
            seen.append(SeenFigure(k, plan.chor.timelines[k].plan.customer, _moved(d.person, shift),
                                   tuple(b for h in d.hands if (b := _moved(h, shift))),
                                   tuple(b for h in d.held if (b := _moved(h, shift))), _moved(d.face, shift)))
        yield sorted(seen, key=lambda s: s.shopper)


def _moved(box: tuple[float, float, float, float] | None, shift: tuple[float, float]
           ) -> tuple[float, float, float, float] | None:
    b = None if box is None else _shifted(box, shift, AISLE_SIZE)
    return None if b is None else (float(b[0]), float(b[1]), float(b[2]), float(b[3]))


def _render_gate(path: Path | None, plan: Plan, sink: _Sink | None) -> list[list[list[float]]]:
    options, shows, styles, n_frames, rng = plan.options, plan.shows, plan.styles, plan.n_frames, plan.rng_gate
    gate_look = draw_look(rng, PRESETS[options.preset])
    camera = Camera(gate_look, GATE_SIZE, rng)
    background = gate_background(rng)
    phones = {i: assets.phone_screen(s.code, int(rng.uniform(235, 260)), rng)
              for i, s in enumerate(plan.shoppers) if s.code is not None}
    faces: list[list[list[float]]] = []
    with _video(path, GATE_SIZE, options) as video:
        for i in range(n_frames):
            t = i / options.fps
            canvas = background.copy()
            people = []
            # Followers are further back: drawn first, so their leader hides part of them.
            for show in sorted(shows, key=lambda s: s.depth):
                pose = gate_pose(show, t, phones.get(show.plan_index))
                if pose is not None:
                    people.append((styles[show.plan_index], pose))
            drawn = _draw_people(canvas, people)
            frame = camera.apply(canvas, t, i)
            if video is not None:
                video.write(frame)
            faces.append(_face_boxes(drawn, camera.shift(t), GATE_SIZE))
            if sink is not None:
                sink.offer("gate", i, frame, drawn, camera.shift(t), gate_look.jpeg)
    return faces


# ---------------------------------------------------------------- files

def _write_faces(path: Path, per_frame: list[list[list[float]]]) -> None:
    with path.open("w", encoding="utf-8") as f:
        for i, boxes in enumerate(per_frame):
            f.write(json.dumps({"frame": i, "boxes": boxes}, separators=(",", ":")) + "\n")


def _write_store(out_dir: Path, world: _World, options: SynthOptions) -> None:
    wall = world.wall
    used = {g for facings in world.contents.values() for g in facings} | {s.planned for s in wall.slots.values()}
    with (out_dir / "catalog.csv").open("w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["gtin", "name", "price_cents", "image"])
        for p in sorted(world.products, key=lambda p: p.gtin):
            if p.gtin in used:
                cv2.imwrite(str(out_dir / "products" / f"{p.gtin}.png"), p.image)
                writer.writerow([p.gtin, p.name, p.price_cents, f"products/{p.gtin}.png"])
    store = {
        "version": 1,
        "store_id": STORE_ID,
        "currency": "EUR",
        "entry_key": world.key.hex(),
        "catalog": "catalog.csv",
        "gates": {"entry-1": {"kind": "entry"}, "exit-1": {"kind": "exit"}},
        "cameras": {
            "gate": {"role": "gate", "gate": "entry-1", "size": list(GATE_SIZE), "fps": options.fps},
            "aisle": {
                "role": "shelf", "size": list(AISLE_SIZE), "fps": options.fps,
                "zones": {k: [list(p) for p in v] for k, v in wall.zones.items()},
                "slots": [{"id": s.id, "gtin": s.planned, "polygon": wall.polygon(s.rect),
                           "label": wall.polygon(s.label_rect)}
                          for s in sorted(wall.slots.values(), key=lambda s: s.id)],
            },
        },
    }
    (out_dir / "store.yaml").write_text(
        "# Rendered by `walkout synth`: a test store (its entry_key is not a secret).\n"
        + yaml.safe_dump(store, sort_keys=False, default_flow_style=None, width=120), encoding="utf-8")
    manifest = {"version": 1, "store": "store.yaml", "start": START.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "cameras": {"gate": {"video": "cameras/gate.mp4"}, "aisle": {"video": "cameras/aisle.mp4"}}}
    (out_dir / "scenario.yaml").write_text(
        f"# kind: {options.kind}, seed: {options.seed}, preset: {options.preset}\n"
        + yaml.safe_dump(manifest, sort_keys=False), encoding="utf-8")


def _truth(shoppers: list[Shopper], chor: Choreography, read_times: dict[int, float], options: SynthOptions) -> dict:
    customers: dict[str, dict] = {}
    refused = []
    for i, (shopper, tl) in enumerate(zip(shoppers, chor.timelines, strict=True)):
        if shopper.refusal is not None:
            refused.append({"t": read_times[i], "token": shopper.code, "reason": shopper.refusal})
            continue
        if shopper.customer is None:
            continue
        entry = customers.setdefault(shopper.customer, {
            "customer": shopper.customer, "token": shopper.code, "party": 0,
            "entered_t": read_times.get(i), "exited_t": 0.0, "basket": {}})
        entry["party"] += 1
        entry["exited_t"] = max(entry["exited_t"], round(tl.exit_t, 3))
    for e in chor.events:
        if e.customer in customers:
            basket = customers[e.customer]["basket"]
            basket[e.gtin] = basket.get(e.gtin, 0) + (e.qty if e.action == "pick" else -e.qty)
    for c in customers.values():
        c["basket"] = [{"gtin": g, "qty": q} for g, q in sorted(c["basket"].items()) if q > 0]
    return {
        "version": 1,
        "kind": options.kind,
        "seed": options.seed,
        "customers": list(customers.values()),
        "events": [_event_json(e) for e in chor.events],
        "refused": refused,
        "faces": {"gate": "faces/gate.jsonl", "aisle": "faces/aisle.jsonl"},
    }


def _event_json(e: TrueEvent) -> dict:
    return {"t": e.t, "customer": e.customer, "action": e.action, "gtin": e.gtin, "slot": e.slot, "qty": e.qty}
