"""What shoppers do and when: walks, reaches, picks, put-backs, and the truth that follows.

A scenario is planned as a list of `ShopperPlan`s (who, which code, which slots in which order).
`choreograph` turns the plans into timed motions, then replays every shelf change in time order so
that a pick takes whatever facing is really on the shelf at that instant (a misplaced product is
taken as what it is), and returns the timelines with the true events.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np

from vision.synth.figure import ARM_LENGTH, FigureStyle, Pose, Side, bag_opening, rest_hand, shoulder
from vision.synth.world import AISLE_SIZE, GATE_SIZE, ShelfWall

Action = Literal["pick", "put"]

WALK_SPEED = 0.55  # body heights per second
STRIDE = 0.75  # body heights per full walk cycle
_RAISE, _DWELL, _WITHDRAW, _HOLD, _TO_BAG = 0.6, 0.5, 0.6, 0.35, 0.5


@dataclass(frozen=True)
class Visit:
    slot: str
    action: Action
    qty: int = 1
    side: Side | None = None  # force the reaching arm (adjacent shoppers cross arms)
    returns: int | None = None  # for a put: the index of the earlier visit whose product goes back
    stand_offset: float | None = None  # body heights between the slot and where the shopper stands
    wait: float = 0.0  # seconds standing at the slot before reaching (to time two shoppers together)


@dataclass(frozen=True)
class ShopperPlan:
    customer: str | None  # None: the bearer of a refused code, anonymous to the store
    code: str | None  # entry code shown at the gate (None: follows a family member in)
    gate_t: float
    aisle_t: float
    depth: float  # feet's image y in the aisle
    height: float
    style: FigureStyle
    visits: tuple[Visit, ...]


@dataclass(frozen=True)
class Key:
    """A keyframe of a motion: hand target (None = at rest), facing and crouch at time t."""

    t: float
    x: float
    hand: tuple[float, float] | None = None
    side: Side = "R"
    facing: str = "back"
    crouch: float = 0.0
    to_bag: bool = False


@dataclass(frozen=True)
class ShelfChange:
    t: float
    shopper: int
    visit: int
    slot: str
    action: Action
    qty: int


@dataclass
class Timeline:
    """Every motion of one shopper in the aisle, as walks and keyframed acts."""

    plan: ShopperPlan
    walks: list[tuple[float, float, float, float]] = field(default_factory=list)  # t0, t1, x0, x1
    keys: list[Key] = field(default_factory=list)
    # (t_from, t_to, side, gtins, slot) for each interval a hand holds products.
    holds: list[tuple[float, float, Side, tuple[str, ...], str]] = field(default_factory=list)
    enter_t: float = 0.0
    exit_t: float = 0.0

    def pose(self, t: float, held_art: dict[tuple[str, str], np.ndarray]) -> Pose | None:
        if t < self.enter_t or t > self.exit_t:
            return None
        p = self.plan
        base = Pose(x=0.0, y=p.depth, height=p.height, facing="right")
        for t0, t1, x0, x1 in self.walks:
            if t0 <= t <= t1:
                f = (t - t0) / max(t1 - t0, 1e-6)
                x = x0 + (x1 - x0) * f
                phase = 2 * math.pi * abs(x - x0) / (STRIDE * p.height)
                return replace(base, x=x, facing="right" if x1 >= x0 else "left", walk_phase=phase, walk=1.0,
                               held=self._held(t, held_art))
        i = max(0, int(np.searchsorted([k.t for k in self.keys], t, side="right")) - 1)
        a = self.keys[i]
        b = self.keys[min(i + 1, len(self.keys) - 1)]
        f = 0.0 if b.t <= a.t else float(np.clip((t - a.t) / (b.t - a.t), 0, 1))
        f = f * f * (3 - 2 * f)  # ease in and out: hands accelerate and slow down
        pose = replace(base, x=a.x + (b.x - a.x) * f, facing=a.facing,  # type: ignore[arg-type]
                       crouch=a.crouch + (b.crouch - a.crouch) * f, held=self._held(t, held_art))
        if a.hand is None and b.hand is None and not a.to_bag and not b.to_bag:
            return pose
        ha = self._hand(a, pose)
        hb = self._hand(b, pose)
        target = (ha[0] + (hb[0] - ha[0]) * f, ha[1] + (hb[1] - ha[1]) * f)
        return replace(pose, reach={a.side: target})

    def _hand(self, k: Key, pose: Pose) -> tuple[float, float]:
        if k.to_bag:
            return bag_opening(self.plan.style, pose)
        if k.hand is not None:
            return k.hand
        return rest_hand(self.plan.style, pose, k.side)

    def _held(self, t: float, held_art: dict[tuple[str, str], np.ndarray]) -> dict[Side, tuple[np.ndarray, ...]]:
        held: dict[Side, tuple[np.ndarray, ...]] = {}
        for t0, t1, side, gtins, slot in self.holds:
            if t0 <= t < t1:
                held[side] = tuple(held_art[(g, slot)] for g in gtins)
        return held


@dataclass(frozen=True)
class TrueEvent:
    t: float
    customer: str | None
    action: Action
    gtin: str
    slot: str
    qty: int


def _walk(tl: Timeline, t: float, x0: float, x1: float) -> float:
    duration = abs(x1 - x0) / (WALK_SPEED * tl.plan.height)
    if duration > 1e-3:
        tl.walks.append((t, t + duration, x0, x1))
    return t + duration


class Unreachable(ValueError):
    """A planned reach no crouch brings within arm's length: the scenario must be planned again."""


def _reach_pose(plan: ShopperPlan, x: float, target: tuple[float, float], side: Side) -> float:
    """How far the shopper must crouch so that `target` is within reach from standing at `x`.

    Raises when no crouch brings it within reach: a plan whose hand never gets into the slot would
    make truth that no camera could see.
    """
    pose = Pose(x=x, y=plan.depth, height=plan.height, facing="back")
    sx, sy = shoulder(plan.style, pose, side)
    reach = ARM_LENGTH * plan.height * 0.92
    dx = target[0] - sx
    need_dy = target[1] - sy - math.sqrt(max(0.0, reach * reach - dx * dx))
    crouch = float(np.clip(need_dy / (0.2 * plan.height) + 0.1, 0.0, 1.0)) if need_dy > 0 else 0.0
    crouched = Pose(x=x, y=plan.depth, height=plan.height, facing="back", crouch=crouch)
    sx, sy = shoulder(plan.style, crouched, side)
    if math.hypot(target[0] - sx, target[1] - sy) > ARM_LENGTH * plan.height * 0.98:
        raise Unreachable(f"a shopper standing at x={x:.0f} cannot reach ({target[0]:.0f}, {target[1]:.0f})")
    return crouch


def choreograph(plans: list[ShopperPlan], wall: ShelfWall, contents: dict[str, list[str]],
                rng: np.random.Generator, aims: dict[tuple[int, int], tuple[float, float]] | None = None
                ) -> Choreography:
    """Time every plan, then settle what each reach takes or returns in the order of time.

    Where a facing is depends on what others took before, so a first pass (no `aims`) finds each
    reach's target and a second pass, given them as `aims`, stands each shopper within reach of it.
    """
    w, _ = AISLE_SIZE
    timelines: list[Timeline] = []
    pending: list[tuple[ShelfChange, Timeline, int]] = []
    for si, plan in enumerate(plans):
        tl = Timeline(plan)
        h = plan.height
        x = -0.25 * h
        t = plan.aisle_t
        tl.enter_t = t
        for vi, visit in enumerate(plan.visits):
            slot_x = aims[(si, vi)][0] if aims and (si, vi) in aims else wall.slot_x(visit.slot)
            side: Side = visit.side or ("R" if slot_x >= x else "L")
            offset = (visit.stand_offset if visit.stand_offset is not None else float(rng.uniform(0.16, 0.22))) * h
            stand_x = slot_x - offset if side == "R" else slot_x + offset
            t = _walk(tl, t, x, stand_x)
            x = stand_x
            # Hand target: the facing taken (the last one) or the free place a put fills; settled later for
            # picks whose facing count depends on other shoppers, so aim at the slot's middle facing row.
            tl.keys.append(Key(t, x, None, side, "back"))
            t += 0.25 + visit.wait
            tl.keys.append(Key(t, x, None, side, "back"))
            hold_side = side
            if visit.action == "put":
                t_out = t
                tl.keys.append(Key(t + 0.45, x, None, side, "back", to_bag=True))
                t += 0.45
                tl.keys.append(Key(t + 0.35, x, (x + (0.1 if side == "R" else -0.1) * h, plan.depth - 0.55 * h),
                                   side, "back"))
                t += 0.35
            # Placeholder target, replaced once the slot's facing position is known.
            reach_key_index = len(tl.keys)
            tl.keys.append(Key(t + _RAISE, x, (slot_x, 0.0), side, "back"))
            t += _RAISE
            tl.keys.append(Key(t + _DWELL, x, (slot_x, 0.0), side, "back"))
            t += _DWELL
            change = ShelfChange(t, si, vi, visit.slot, visit.action, visit.qty)
            facing_front = bool(rng.random() < 0.5)
            if visit.action == "pick":
                # Beside the body, not behind it: seen from the back, a hand at the chest hides what it took.
                chest = (x + (0.27 if side == "R" else -0.27) * h, plan.depth - 0.6 * h)
                tl.keys.append(Key(t + _WITHDRAW, x, chest, side, "back"))
                t += _WITHDRAW
                turn = "front" if facing_front else "back"
                tl.keys.append(Key(t + _HOLD, x, chest, side, turn))
                t += _HOLD
                tl.keys.append(Key(t + _TO_BAG, x, None, side, turn, to_bag=True))
                t += _TO_BAG
                tl.holds.append((change.t, t, hold_side, (), visit.slot))
            else:
                tl.holds.append((t_out, change.t, hold_side, (), visit.slot))
                tl.keys.append(Key(t + _WITHDRAW, x, None, side, "back"))
                t += _WITHDRAW
            tl.keys.append(Key(t + 0.3, x, None, side, "back"))
            t += 0.3
            pending.append((change, tl, reach_key_index))
        t = _walk(tl, t, x, w + 0.3 * h)
        tl.exit_t = t
        timelines.append(tl)

    return _settle(timelines, pending, wall, contents, strict=aims is not None)


@dataclass(frozen=True)
class Choreography:
    timelines: list[Timeline]
    events: list[TrueEvent]  # time order
    shelf_states: list[tuple[float, str, tuple[str, ...]]]  # (t, slot, facings from then on), time order
    change_times: dict[tuple[int, int], float]  # (shopper, visit) -> time the shelf changed
    targets: dict[tuple[int, int], tuple[float, float]]  # (shopper, visit) -> image point the hand reaches


def _settle(timelines: list[Timeline], pending: list[tuple[ShelfChange, Timeline, int]], wall: ShelfWall,
            contents: dict[str, list[str]], strict: bool) -> Choreography:
    shelf = {k: list(v) for k, v in contents.items()}
    states: list[tuple[float, str, tuple[str, ...]]] = []
    change_times: dict[tuple[int, int], float] = {}
    targets: dict[tuple[int, int], tuple[float, float]] = {}
    events: list[TrueEvent] = []
    taken: dict[tuple[int, int], tuple[str, ...]] = {}
    for change, tl, key_index in sorted(pending, key=lambda p: (p[0].t, p[0].shopper)):
        plan = tl.plan
        visit = plan.visits[change.visit]
        facings = shelf[change.slot]
        slot = wall.slots[change.slot]
        if change.action == "pick":
            if len(facings) < change.qty:
                raise ValueError(f"plan picks {change.qty} from slot {change.slot} which holds {len(facings)}")
            gtins = tuple(facings[-change.qty:])
            target_index = len(facings) - 1
            del facings[-change.qty:]
            taken[(change.shopper, change.visit)] = gtins
        else:
            if visit.returns is None or (change.shopper, visit.returns) not in taken:
                raise ValueError(f"put in slot {change.slot} returns no earlier pick of the same shopper")
            gtins = taken[(change.shopper, visit.returns)][: change.qty]
            if len(facings) + len(gtins) > slot.capacity:
                raise ValueError(f"slot {change.slot} has no room for a put-back")
            target_index = len(facings)
            facings.extend(gtins)
        target = wall.image_point(slot.position(target_index))
        # Aim the reach at the facing's position, and crouch for the low shelves.
        targets[(change.shopper, change.visit)] = target
        try:
            crouch = _reach_pose(plan, tl.keys[key_index].x, target, tl.keys[key_index].side)
        except ValueError:
            if strict:
                raise
            crouch = 1.0
        for j in (key_index - 1, key_index, key_index + 1):
            k = tl.keys[j]
            tl.keys[j] = replace(k, crouch=crouch, hand=target if j >= key_index else k.hand)
        for j, (t0, t1, side, held, slot_id) in enumerate(tl.holds):
            if slot_id == change.slot and not held and (t0 == change.t or t1 == change.t):
                tl.holds[j] = (t0, t1, side, gtins, slot_id)
                break
        for gtin in sorted(set(gtins)):
            events.append(TrueEvent(round(change.t, 3), plan.customer, change.action, gtin, change.slot,
                                    gtins.count(gtin)))
        states.append((change.t, change.slot, tuple(facings)))
        change_times[(change.shopper, change.visit)] = change.t
    events.sort(key=lambda e: (e.t, e.customer or "", e.gtin))
    return Choreography(timelines, events, states, change_times, targets)


@dataclass(frozen=True)
class GateShow:
    """One shopper's pass in front of the gate camera."""

    plan_index: int
    t0: float
    show_from: float
    show_to: float
    t1: float
    height: float
    shows_code: bool
    lane: float  # horizontal offset of where they stand, pixels
    depth: float  # feet image y (people further back stand higher and smaller)


def gate_pose(show: GateShow, t: float, phone: np.ndarray | None) -> Pose | None:
    if t < show.t0 or t > show.t1:
        return None
    w, _ = GATE_SIZE
    h = show.height
    centre = w * 0.42 + show.lane
    start_x, end_x = w + 0.25 * h, -0.3 * h
    if t < show.show_from - 0.3:
        f = (t - show.t0) / max(show.show_from - 0.3 - show.t0, 1e-6)
        x = start_x + (centre - start_x) * f
        return Pose(x, show.depth, h, "left", walk_phase=2 * math.pi * abs(x - start_x) / (STRIDE * h), walk=1.0)
    if t <= show.show_to + 0.2:
        shown = show.shows_code and show.show_from <= t <= show.show_to
        return Pose(centre, show.depth, h, "front", phone=phone if shown else None)
    f = (t - show.show_to - 0.2) / max(show.t1 - show.show_to - 0.2, 1e-6)
    x = centre + (end_x - centre) * f
    return Pose(x, show.depth, h, "left", walk_phase=2 * math.pi * abs(x - centre) / (STRIDE * h), walk=1.0)
