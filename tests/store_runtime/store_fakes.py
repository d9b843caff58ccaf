"""Small factories for the store runtime's tests: a store built in code, entry codes signed with
its key, node events with stable ids, a clock the test moves, a runtime on a SQLite file."""

from __future__ import annotations

from pathlib import Path

from store_runtime.config import Catalog, Product, Store, StoreConfig
from store_runtime.db import Database, open_database
from store_runtime.events import EntryRead, ShelfAction, TrackZone, event_id
from store_runtime.payments import DeclineRule, LocalProvider
from store_runtime.runtime import RuntimeSettings, StoreRuntime
from vision.entry_code import EntryClaims, make_code
from vision.gtin import complete_gtin13

KEY_HEX = "d4dc9c4b91445788294f15cb744f3ad6a76986685914dad26bf190027fca64fc"
STORE_ID = "test-store-01"
T0 = 1_795_300_000.0  # the store clock at the start of every test: 2026-11-22, well before EXP
EXP = 1_795_400_000

MILK = complete_gtin13("300000000001")
BREAD = complete_gtin13("300000000002")
JAM = complete_gtin13("300000000003")
PRICES = {MILK: 120, BREAD: 250, JAM: 459}


# The aisle's planogram: slot -> its product. The runtime refuses a shelf event at a slot its camera
# does not have; some products stand in two slots, as in a real store.
PLANOGRAM = {"A1": MILK, "A2": BREAD, "A3": JAM, "B1": MILK, "B4": BREAD, "C3": BREAD}


def make_store(root: Path = Path(".")) -> Store:
    square = [[0, 0], [100, 0], [100, 100], [0, 100]]
    slots = [{"id": slot, "gtin": gtin, "polygon": [[200 + 100 * n, 200], [280 + 100 * n, 200],
                                                      [280 + 100 * n, 280], [200 + 100 * n, 280]]}
             for n, (slot, gtin) in enumerate(PLANOGRAM.items())]
    config = StoreConfig.model_validate({
        "version": 1, "store_id": STORE_ID, "currency": "EUR", "entry_key": KEY_HEX, "catalog": "catalog.csv",
        "gates": {"entry-1": {"kind": "entry"}, "exit-1": {"kind": "exit"}},
        "cameras": {
            "gate": {"role": "gate", "gate": "entry-1", "size": [640, 480], "fps": 15},
            "aisle": {"role": "shelf", "size": [1280, 720], "fps": 15, "slots": slots,
                      "zones": {"entry-1": square, "exit-1": [[1180, 0], [1280, 0], [1280, 100], [1180, 100]]}},
        },
    })
    products = {g: Product(gtin=g, name=f"product {g}", price_cents=p, images=()) for g, p in PRICES.items()}
    return Store(config=config, catalog=Catalog(products=products), root=root)


def code(cid: str = "c-0001", jti: str | None = None, *, party: int = 1, exp: int = EXP, sid: str = STORE_ID,
         key_hex: str = KEY_HEX) -> str:
    return make_code(bytes.fromhex(key_hex), EntryClaims(cid, jti or f"jti-{cid}", sid, exp, party))


class Clock:
    """The store clock, moved by the test."""

    def __init__(self, t: float = T0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> float:
        self.t += seconds
        return self.t


def entry_read(text: str, t: float, *, gate: str = "entry-1", admitted: bool = True) -> EntryRead:
    # `admitted` is what the node claims; the runtime checks the code itself.
    return EntryRead(id=event_id("gate", "entry", t, text), t=t, camera="gate", gate=gate, code=text,
                     admitted=admitted, detail="as the node saw it")


def entered(track: int, t: float, *, camera: str = "aisle", zone: str = "entry-1") -> TrackZone:
    return TrackZone(id=event_id(camera, "entered", track, zone, t), t=t, camera=camera, kind="entered",
                     track=track, zone=zone)


def exited(track: int, t: float, *, camera: str = "aisle", zone: str = "exit-1") -> TrackZone:
    return TrackZone(id=event_id(camera, "exited", track, zone, t), t=t, camera=camera, kind="exited",
                     track=track, zone=zone)


def shelf(track: int, action: str, gtin: str, t: float, *, qty: int = 1, confidence: float = 0.95,
          slot: str = "A1", camera: str = "aisle", **extra: object) -> ShelfAction:
    # As a node's shelf stage says it: by the planogram, or (another product there) by its look.
    sources = ("planogram",) if PLANOGRAM.get(slot) == gtin else ("appearance",)
    return ShelfAction(id=event_id(camera, "shelf", slot, action, round(t, 3), track, gtin), t=t, camera=camera,
                       action=action, track=track, gtin=gtin, qty=qty, slot=slot, confidence=confidence,
                       **{"sources": sources, **extra})


def open_runtime(tmp_path: Path, *, clock: Clock | None = None, decline: DeclineRule | None = None,
                 db: Database | None = None, name: str = "store.db", **settings: object) -> StoreRuntime:
    db = db or open_database(f"sqlite:///{tmp_path / name}")
    clock = clock or Clock()
    provider = LocalProvider(db, decline=decline, clock=clock)
    return StoreRuntime(db, make_store(tmp_path), provider=provider, clock=clock,
                        settings=RuntimeSettings(**settings))


def inside(tmp_path: Path, *events: object, **kw: object) -> tuple[StoreRuntime, str]:
    """A runtime with shopper c-0001 admitted (T0 + 1) and in through the entry zone as track 1
    (T0 + 3), then `events` applied; the runtime and the session. `kw` goes to `open_runtime`."""
    runtime = open_runtime(tmp_path, **kw)  # type: ignore[arg-type]
    for event in [entry_read(code(), T0 + 1), entered(1, T0 + 3), *events]:
        runtime.apply(event)  # type: ignore[arg-type]
    return runtime, runtime.receipts()[0].session


def two_inside(tmp_path: Path, **kw: object) -> StoreRuntime:
    """A runtime with c-a and c-b admitted one after the other (T0 + 1, + 2), in as tracks 1 and 2."""
    runtime = open_runtime(tmp_path, **kw)  # type: ignore[arg-type]
    for event in [entry_read(code("c-a"), T0 + 1), entry_read(code("c-b"), T0 + 2), entered(1, T0 + 4),
                  entered(2, T0 + 5)]:
        runtime.apply(event)
    return runtime


class Crash(BaseException):
    """The process dies: not an Exception, so no handler of ours gets to tidy up."""


class CrashingProvider(LocalProvider):
    """Dies at `when` (before the provider is reached, or after it captured), once."""

    def __init__(self, db, when: str, **kw) -> None:
        super().__init__(db, **kw)
        self.when = when

    def authorise(self, **kw):
        if self.when == "before_provider":
            self.when = ""
            raise Crash
        return super().authorise(**kw)

    def capture(self, **kw):
        result = super().capture(**kw)
        if self.when == "after_capture":
            self.when = ""
            raise Crash
        return result
