"""The files a user writes: scenario.yaml, store.yaml and catalog.csv (SPEC.md sections 2 and 3).

Everything here treats its input as hostile: a typo, a missing file, a `../` in a path or a
500 MB "catalog" all end as one `ConfigError` that names the file, the field and what was
expected, never as a traceback or a silent default.

Paths inside a file are relative and must stay inside a root directory:
- scenario.yaml's paths (the store, the camera videos) are relative to the scenario directory;
- store.yaml's and catalog.csv's paths (the catalog, product images) are relative to the
  directory of store.yaml, which is the store's root.
So `load_store(path)` on its own and `load_scenario(dir)` read one store.yaml the same way.
"""

from __future__ import annotations

import csv
import io
import math
import re
import reprlib
import stat
import unicodedata
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath, PureWindowsPath
from types import NoneType, UnionType
from typing import Annotated, Any, Literal, TypeVar, Union, get_args, get_origin

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_core import PydanticCustomError

from vision.gtin import check_digit, is_valid_gtin13

__all__ = [
    "CameraConfig",
    "CameraRecording",
    "Catalog",
    "ConfigError",
    "Gate",
    "Polygon",
    "PrivacyConfig",
    "Product",
    "Scenario",
    "ScenarioManifest",
    "Slot",
    "Store",
    "StoreConfig",
    "load_catalog",
    "load_scenario",
    "load_store",
]

MAX_YAML_BYTES = 1 << 20  # a store layout is a few KiB; anything near this is not one
MAX_CATALOG_BYTES = 16 << 20
MAX_CATALOG_ROWS = 100_000
MAX_POLYGON_POINTS = 256
MAX_CAMERA_SIDE = 16_384
MAX_FPS = 240
MAX_NAME_CHARS = 200
MAX_PRICE_DIGITS = 12
_SHOWN_CHARS = 60  # untrusted values are cut to this in messages

_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_ID_RULE = "a name of letters, digits, '.', '_' or '-' (at most 64, starting with a letter or digit)"
_CURRENCY_RE = re.compile(r"[A-Z]{3}")
_HEX_KEY_RE = re.compile(r"[0-9A-Fa-f]{64}")
_CATALOG_COLUMNS = ("gtin", "name", "price_cents", "image")


# --------------------------------------------------------------------------------------------
# The one error


class ConfigError(ValueError):
    """A user's file is wrong: which file, which field, what was expected and what was found.

    `str()` is `"<file>: <field>: expected <expected>, got <got>"`; when one file has several
    mistakes, the others (in `more`) follow on their own lines so they can all be fixed at once.
    """

    def __init__(
        self, file: str, field: str, expected: str, got: str, more: Sequence[ConfigError] = ()
    ) -> None:
        self.file = file
        self.field = field
        self.expected = expected
        self.got = got
        self.more = tuple(more)
        super().__init__(str(self))

    def __str__(self) -> str:
        lines = [f"{self.file}: {self.field}: expected {self.expected}, got {self.got}"]
        lines += [str(other) for other in self.more]
        return "\n".join(lines)

    def __reduce__(self) -> tuple[Any, ...]:
        # Exceptions pickle through their args by default; ours has keyword-like fields.
        return (ConfigError, (self.file, self.field, self.expected, self.got, self.more))


_repr = reprlib.Repr()
_repr.maxstring = _SHOWN_CHARS
_repr.maxother = _SHOWN_CHARS
_repr.maxlevel = 3
_repr.maxlist = _repr.maxtuple = _repr.maxdict = 6


def _shown(value: object) -> str:
    """A short, printable repr of an untrusted value (bounded in depth and length)."""
    try:
        text = _repr.repr(value)
    except ValueError:  # an int of more than 4300 digits refuses to become text
        return f"a {type(value).__name__} too large to show"
    return text if len(text) <= _SHOWN_CHARS else text[: _SHOWN_CHARS - 3] + "..."


def _bad(expected: str, got: object, at: str = "") -> PydanticCustomError:
    """Raised inside validators: `at` is a sub-path below the validated value ('slots[1].id')."""
    return PydanticCustomError("walkout", "{expected}", {"expected": expected, "got": got, "at": at})


# --------------------------------------------------------------------------------------------
# Field types shared by the models


def _check_id(value: object) -> str:
    if not isinstance(value, str):
        raise _bad(f"{_ID_RULE}, in quotes if it looks like a number", _shown(value))
    if not _ID_RE.fullmatch(value):
        raise _bad(_ID_RULE, _shown(value))
    return value


def _check_optional_id(value: object) -> str | None:
    return None if value is None else _check_id(value)


def _check_number(value: object) -> float:
    # bool is an int to Python but never a coordinate; NaN and inf would poison every area test,
    # and YAML ints have no bound: float(10**400) raises OverflowError, which pydantic lets out.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _bad("a finite number", _shown(value))
    try:
        number = float(value)
    except OverflowError:
        raise _bad("a finite number", _shown(value)) from None
    if not math.isfinite(number):
        raise _bad("a finite number", _shown(value))
    return number


def _check_point(value: object) -> tuple[float, float]:
    if not isinstance(value, list | tuple) or len(value) != 2:
        raise _bad("a point [x, y] of two numbers", _shown(value))
    try:
        return (_check_number(value[0]), _check_number(value[1]))
    except PydanticCustomError:
        raise _bad("a point [x, y] of two finite numbers", _shown(value)) from None


def _area(points: Sequence[tuple[float, float]]) -> float:
    """Shoelace area; zero for points on one line, which can contain nothing."""
    twice = sum(
        x0 * y1 - x1 * y0 for (x0, y0), (x1, y1) in zip(points, [*points[1:], points[0]], strict=True)
    )
    return abs(twice) / 2


def _check_polygon(value: object) -> tuple[tuple[float, float], ...]:
    if not isinstance(value, list | tuple):
        raise _bad("a polygon: a list of at least 3 points [x, y]", _shown(value))
    if not 3 <= len(value) <= MAX_POLYGON_POINTS:
        raise _bad(f"a polygon of 3 to {MAX_POLYGON_POINTS} points", f"{len(value)} points")
    points = []
    for i, point in enumerate(value):
        try:
            points.append(_check_point(point))
        except PydanticCustomError as e:
            raise _bad(e.context["expected"], e.context["got"], at=f"[{i}]") from None
    if _area(points) == 0:
        raise _bad("a polygon with a non-zero area (points not all on one line)", _shown(value))
    return tuple(points)


def _check_size(value: object) -> tuple[int, int]:
    expected = f"a frame size [width, height] of two whole numbers from 1 to {MAX_CAMERA_SIDE}"
    if not isinstance(value, list | tuple) or len(value) != 2:
        raise _bad(expected, _shown(value))
    for side in value:
        if isinstance(side, bool) or not isinstance(side, int) or not 1 <= side <= MAX_CAMERA_SIDE:
            raise _bad(expected, _shown(value))
    return (value[0], value[1])


def _check_fps(value: object) -> float:
    expected = f"frames per second, a number above 0 and at most {MAX_FPS}"
    try:
        fps = _check_number(value)
    except PydanticCustomError:
        raise _bad(expected, _shown(value)) from None
    if not 0 < fps <= MAX_FPS:
        raise _bad(expected, _shown(value))
    return fps


def _check_relative_path(value: object) -> PurePosixPath:
    # Store files come from anyone who can hand us a scenario: refuse paths that point outside
    # it before any file system call sees them. Symlinks are caught later, at resolution.
    expected = "a relative path with '/' separators inside this directory (no '..', not absolute)"
    if not isinstance(value, str) or not value or "\0" in value or "\\" in value:
        raise _bad(expected, _shown(value))
    posix, windows = PurePosixPath(value), PureWindowsPath(value)
    if posix.is_absolute() or windows.is_absolute() or windows.drive or ".." in posix.parts:
        raise _bad(expected, _shown(value))
    return posix


def _check_gtin(value: object) -> str:
    if not isinstance(value, str):
        # Unquoted in YAML, a GTIN becomes a number and loses its leading zeros.
        raise _bad('a GTIN-13 in quotes, like "3017620422003"', _shown(value))
    return _gtin_or_raise(value, lambda expected: _bad(expected, _shown(value)))


def _gtin_or_raise(value: str, error: Callable[[str], Exception]) -> str:
    if is_valid_gtin13(value):
        return value
    if len(value) == 13 and value.isascii() and value.isdigit():
        # The commonest slip is one wrong digit; saying which check digit fits helps find it.
        raise error(f"a GTIN-13 whose check digit is {check_digit(value[:12])} for these 12 digits")
    raise error("a GTIN-13: 13 digits, the last a valid check digit")


def _check_version(value: object) -> int:
    # Literal[1] alone lets True and 1.0 through; an edition number is exactly the integer 1.
    if type(value) is not int or value != 1:
        raise _bad("1 (the only edition of this file that walkout reads)", _shown(value))
    return value


def _check_currency(value: object) -> str:
    if not isinstance(value, str) or not _CURRENCY_RE.fullmatch(value):
        raise _bad("an ISO 4217 currency code of 3 capital letters, like EUR", _shown(value))
    return value


def _check_hex_key(value: object) -> str:
    if not isinstance(value, str) or not _HEX_KEY_RE.fullmatch(value):
        # Describe a wrong key rather than echo it: it is a secret, and errors end up in logs.
        got = f"{len(value)} characters" if isinstance(value, str) else "a value that is not text"
        if isinstance(value, str) and len(value) == 64:
            got = "64 characters, not all hex"
        raise _bad("a quoted string of 64 hex characters (a 32-byte key)", got)
    return value


def _check_utc_time(value: object) -> datetime:
    # Replays must give the same output everywhere, so frame 0's time may not depend on the
    # replaying machine's time zone, and a Unix number is refused as too easy to get wrong.
    expected = 'an ISO 8601 UTC time in quotes, like "2026-11-22T09:00:00Z"'
    # YAML turns an unquoted time into a datetime already; show it as the user wrote it.
    written = _shown(value.isoformat() if isinstance(value, datetime) else value)
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise _bad(expected, written) from None
    if not isinstance(value, datetime):
        raise _bad(expected, written)
    offset = value.utcoffset()
    if offset is None:
        raise _bad(expected + " (with its Z: a time without a zone is ambiguous)", written)
    if offset.total_seconds() != 0:
        raise _bad(expected + " (in UTC: Z or +00:00)", written)
    return value.astimezone(UTC)


Id = Annotated[str, BeforeValidator(_check_id)]
OptionalId = Annotated[str | None, BeforeValidator(_check_optional_id)]
Point = tuple[float, float]
Polygon = Annotated[tuple[Point, ...], BeforeValidator(_check_polygon)]
"""A closed polygon in the pixels of its camera: at least 3 points [x, y], non-zero area."""
RelativePath = Annotated[PurePosixPath, BeforeValidator(_check_relative_path)]
Gtin = Annotated[str, BeforeValidator(_check_gtin)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --------------------------------------------------------------------------------------------
# store.yaml


class Gate(_Strict):
    """A door a shopper passes: where entry codes are scanned, or where baskets are charged."""

    kind: Literal["entry", "exit"] = Field(
        description="entry, where shoppers scan a code to come in, or exit, where they are charged."
    )


class Slot(_Strict):
    """One shelf slot of the planogram: where one product is meant to stand."""

    id: Id = Field(description="The slot's name, unique within its camera, e.g. 'A1'.")
    gtin: Gtin = Field(description="GTIN-13 of the product planned here; must be in catalog.csv.")
    polygon: Polygon = Field(description="The slot's outline in the camera's pixels.")
    label: Polygon | None = Field(
        default=None, description="Outline of the shelf-edge label with the slot's EAN-13, if any."
    )


class CameraConfig(_Strict):
    """One camera: a gate close-up reading entry codes, or a view of a shelf wall."""

    role: Literal["gate", "shelf"] = Field(
        description="gate, a close-up that reads entry codes, or shelf, a view of a shelf wall."
    )
    gate: OptionalId = Field(default=None, description="For a gate camera: the gate it watches.")
    size: Annotated[tuple[int, int], BeforeValidator(_check_size)] = Field(
        description="Frame size [width, height] in pixels."
    )
    fps: Annotated[float, BeforeValidator(_check_fps)] = Field(description="Frames per second.")
    zones: dict[Id, Polygon] = Field(
        default_factory=dict,
        description="Gate name -> floor polygon (pixels) where shoppers pass that gate.",
    )
    slots: tuple[Slot, ...] = Field(default=(), description="The planogram seen by a shelf camera.")

    @model_validator(mode="after")
    def _role_and_geometry(self) -> CameraConfig:
        if self.role == "gate":
            if self.gate is None:
                raise _bad("the name of the gate this gate camera watches", "nothing", at="gate")
            if self.slots:
                raise _bad("no slots on a gate camera (slots belong to shelf cameras)",
                           f"{len(self.slots)} slot(s)", at="slots")
        elif self.gate is not None:
            raise _bad("no 'gate' on a shelf camera (its gates are given by zones)",
                       _shown(self.gate), at="gate")
        seen: dict[str, int] = {}
        for i, slot in enumerate(self.slots):
            if slot.id in seen:
                raise _bad(f"a slot id not already used by slots[{seen[slot.id]}]",
                           _shown(slot.id), at=f"slots[{i}].id")
            seen[slot.id] = i
        for at, polygon in self._polygons():
            self._check_inside_frame(polygon, at)
        return self

    def _polygons(self) -> Iterator[tuple[str, tuple[Point, ...]]]:
        for name, zone in self.zones.items():
            yield f"zones.{_key(name)}", zone
        for i, slot in enumerate(self.slots):
            yield f"slots[{i}].polygon", slot.polygon
            if slot.label is not None:
                yield f"slots[{i}].label", slot.label

    def _check_inside_frame(self, polygon: tuple[Point, ...], at: str) -> None:
        width, height = self.size
        for k, (x, y) in enumerate(polygon):
            if not (0 <= x <= width and 0 <= y <= height):
                raise _bad(f"a point inside the {width}x{height} frame, 0 <= x <= {width}, "
                           f"0 <= y <= {height}", _shown([x, y]), at=f"{at}[{k}]")


MAX_VIDEO_DAYS = 30  # the promise: private video and review clips never outlive a month
MAX_TRACKING_DAYS = 366
MAX_RECEIPT_YEARS = 30


def _whole_number(low: int, high: int, unit: str, why: str = "") -> Callable[[object], int]:
    def check(value: object) -> int:
        # bool is an int to Python, and 3.5 days would be read as 3 somewhere down the line.
        if type(value) is not int or not low <= value <= high:
            raise _bad(f"a whole number of {unit} from {low} to {high}{why}", _shown(value))
        return value
    return check


def _check_label(value: object) -> str:
    if not isinstance(value, str) or not 1 <= len(value) <= MAX_NAME_CHARS or not value.isprintable():
        raise _bad(f"text of 1 to {MAX_NAME_CHARS} printable characters, in quotes", _shown(value))
    return value


Label = Annotated[str, BeforeValidator(_check_label)]


class PrivacyConfig(_Strict):
    """store.yaml's optional `privacy:` section: the notice shoppers accept, who answers for the
    data, and how long each kind of it is kept (store_runtime/privacy.py applies these)."""

    notice_version: Label = Field(
        default="1", description="Version of the privacy notice the shopper app shows; recorded with every consent.")
    controller: Label | None = Field(
        default=None, description="Name and contact of the data controller, for the record of processing.")
    dpo: Label | None = Field(default=None, description="Contact of the data protection officer, if there is one.")
    video_days: Annotated[int, BeforeValidator(_whole_number(
        1, MAX_VIDEO_DAYS, "days", " (private video and review clips are kept at most 30 days)"))] = Field(
        default=3, description="Days private (blurred) video and review clips are kept before the purge deletes them.")
    tracking_days: Annotated[int, BeforeValidator(_whole_number(1, MAX_TRACKING_DAYS, "days"))] = Field(
        default=30, description="Days tracking data (tracks, shelf events, entries, decided reviews) is kept; "
                                "receipts are then detached from it.")
    receipt_years: Annotated[int, BeforeValidator(_whole_number(1, MAX_RECEIPT_YEARS, "years"))] = Field(
        default=10, description="Years receipts and payment records are kept, as accounting law requires "
                                "(10 in France, Code de commerce L123-22).")
    media_dirs: tuple[RelativePath, ...] = Field(
        default=(PurePosixPath("private"), PurePosixPath("clips")),
        description="Folders, relative to store.yaml, of private video and review clips that the purge ages out.")

    @model_validator(mode="after")
    def _media_below_root(self) -> PrivacyConfig:
        for i, folder in enumerate(self.media_dirs):
            if not folder.parts:  # '.': the purge would age out the store's own files
                raise _bad("a folder below store.yaml's, like private", _shown(str(folder)), at=f"media_dirs[{i}]")
        return self


class StoreConfig(_Strict):
    """store.yaml: the layout of one store (SPEC.md section 3)."""

    version: Annotated[Literal[1], BeforeValidator(_check_version)] = Field(
        description="Edition of the store.yaml format; 1."
    )
    store_id: Id = Field(description="The store's id, as entry codes name it in 'sid'.")
    currency: Annotated[str, BeforeValidator(_check_currency)] = Field(
        description="ISO 4217 code of the currency prices are in, e.g. EUR."
    )
    entry_key: Annotated[str, BeforeValidator(_check_hex_key)] = Field(
        repr=False,  # a secret: keep it out of logs and tracebacks
        description="HMAC key of entry codes, 64 hex characters (test stores only).",
    )
    catalog: RelativePath = Field(description="Path of catalog.csv, relative to store.yaml.")
    gates: dict[Id, Gate] = Field(description="Gate name -> gate; at least one entry gate.")
    cameras: dict[Id, CameraConfig] = Field(description="Camera id -> camera.")
    privacy: PrivacyConfig = Field(default_factory=PrivacyConfig,
                                   description="Consent notice, controller and retention (optional: defaults).")

    @property
    def entry_key_bytes(self) -> bytes:
        """The 32 bytes the hex of `entry_key` spells: the HMAC key itself (SPEC.md section 4)."""
        return bytes.fromhex(self.entry_key)

    @model_validator(mode="after")
    def _references(self) -> StoreConfig:
        if not any(gate.kind == "entry" for gate in self.gates.values()):
            raise _bad("at least one gate of kind 'entry'", _shown(sorted(self.gates)), at="gates")
        known = f"one of the gates: {', '.join(sorted(self.gates))}"
        for cam_id, camera in self.cameras.items():
            at = f"cameras.{_key(cam_id)}"
            if camera.gate is not None and camera.gate not in self.gates:
                raise _bad(known, _shown(camera.gate), at=f"{at}.gate")
            for zone in camera.zones:
                if zone not in self.gates:
                    raise _bad(f"zones named after gates ({known})", _shown(zone),
                               at=f"{at}.zones.{_key(zone)}")
        return self


# --------------------------------------------------------------------------------------------
# scenario.yaml


class CameraRecording(_Strict):
    """The recording of one camera in a scenario."""

    video: RelativePath = Field(description="Video file, relative to the scenario directory.")


class ScenarioManifest(_Strict):
    """scenario.yaml: a recorded scenario (SPEC.md section 2)."""

    version: Annotated[Literal[1], BeforeValidator(_check_version)] = Field(
        description="Edition of the scenario.yaml format; 1."
    )
    store: RelativePath = Field(description="Path of store.yaml, relative to the scenario directory.")
    start: Annotated[datetime, BeforeValidator(_check_utc_time)] = Field(
        description="UTC wall-clock time of frame 0 of every camera, ISO 8601 with Z."
    )
    cameras: dict[Id, CameraRecording] = Field(
        description="Camera id (as in store.yaml) -> its recording; one for every camera."
    )


# --------------------------------------------------------------------------------------------
# Loaded objects


@dataclass(frozen=True, slots=True)
class Product:
    """One row of catalog.csv."""

    gtin: str
    name: str
    price_cents: int
    images: tuple[Path, ...]  # resolved, existing reference photos; the first is `image`


@dataclass(frozen=True, slots=True)
class Catalog:
    """The products a store sells, by GTIN-13."""

    products: dict[str, Product]  # gtin -> product, in file order

    def price(self, gtin: str) -> int:
        """Unit price in cents; KeyError for a gtin the store does not sell."""
        return self.products[gtin].price_cents

    def __contains__(self, gtin: object) -> bool:
        return gtin in self.products

    def __len__(self) -> int:
        return len(self.products)


@dataclass(frozen=True, slots=True)
class Store:
    """store.yaml with its catalog, as the runtime uses them."""

    config: StoreConfig
    catalog: Catalog
    root: Path  # resolved directory of store.yaml; catalog and image paths are relative to it


@dataclass(frozen=True, slots=True)
class Scenario:
    """A recorded scenario, checked: every file it names exists inside it."""

    root: Path  # resolved scenario directory
    manifest: ScenarioManifest
    store: Store
    start_unix: float  # Unix seconds of frame 0 of every camera
    video_paths: dict[str, Path]  # camera id -> resolved recording, one per store camera

    @property
    def truth_path(self) -> Path:
        """Where ground truth lives (SPEC.md section 6); the file may not exist."""
        return self.root / "truth.json"


# --------------------------------------------------------------------------------------------
# Files and where they may be


@dataclass(frozen=True, slots=True)
class _Dir:
    """A directory files must stay inside, and how names under it are shown in errors."""

    path: Path  # resolved
    shown_as: Path  # as the user knows it: '' for the scenario directory itself

    def name(self, rel: PurePosixPath | str) -> str:
        return str(self.shown_as / rel)

    def file(self, rel: PurePosixPath, *, named_in: str, field: str) -> Path:
        """The existing regular file `rel` names, refusing anything that resolves outside."""
        try:
            target = (self.path / rel).resolve()
        except (OSError, RuntimeError):  # a symlink loop: RuntimeError before Python 3.13
            raise ConfigError(named_in, field, f"an existing file {_shown(self.name(rel))}",
                              "a symlink loop") from None
        if not target.is_relative_to(self.path):
            # A symlink (or a scenario dir that moved under us) pointing out of the directory.
            raise ConfigError(named_in, field, f"a file inside {self._describe()}",
                              f"{_shown(str(rel))}, which leads outside it")
        problem = _not_a_regular_file(target)
        if problem:
            raise ConfigError(named_in, field, f"an existing file {_shown(self.name(rel))}", problem)
        return target

    def _describe(self) -> str:
        return "the scenario directory" if str(self.shown_as) == "." else _shown(str(self.shown_as))


def _not_a_regular_file(path: Path) -> str | None:
    """Why `path` is no regular file, or None when it is one.

    Path.is_file() answers False for a missing file but raises on others (a name too long),
    and a FIFO or device would block or never end when read.
    """
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return "no such file"
    except OSError as e:
        return e.strerror or "a file that cannot be looked at"
    if stat.S_ISDIR(mode):
        return "a directory"
    return None if stat.S_ISREG(mode) else "not a regular file"


def _read_bounded(path: Path, limit: int, shown_name: str) -> bytes:
    try:
        with path.open("rb") as f:
            data = f.read(limit + 1)
    except OSError as e:
        raise ConfigError(shown_name, "(whole file)", "a readable file", e.strerror or "an error") from None
    if len(data) > limit:
        raise ConfigError(shown_name, "(whole file)", f"a file of at most {limit} bytes",
                          f"more than {limit} bytes")
    return data


def _decode(data: bytes, shown_name: str) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise ConfigError(shown_name, f"line {line}", "UTF-8 text",
                          f"the byte {data[e.start:e.start + 1]!r}") from None


# --------------------------------------------------------------------------------------------
# YAML


class _AliasRefused(yaml.composer.ComposerError):
    pass


class _UnreadableValue(yaml.constructor.ConstructorError):
    pass


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses aliases and reports every failure as a YAMLError.

    An alias lets a 1 KiB file expand into a billion list items once pydantic walks it (the
    "billion laughs"); store files have no use for them. Duplicate keys are caught on the node
    tree (`_duplicate_key`), where the full path of the key is known.
    """

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        # PyYAML lets plain ValueErrors out of its scalar constructors ('2026-02-30', an int
        # of 5000 digits); give them the node's position like every other YAML error.
        try:
            return super().construct_object(node, deep=deep)
        except ValueError as e:
            raise _UnreadableValue(None, None, str(e)[:_SHOWN_CHARS], node.start_mark) from None

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise _AliasRefused(None, None, "an alias", event.start_mark)
        return super().compose_node(parent, index)


def _duplicate_key(loader: _StrictLoader, root: yaml.Node) -> tuple[str, int, int] | None:
    """(path, first line, second line) of the first key given twice in a mapping, if any.

    PyYAML keeps the last of two equal keys silently, so a layout pasted twice would quietly
    lose its first half.
    """
    stack: list[tuple[yaml.Node, str]] = [(root, "")]
    while stack:  # iterative: nesting depth is the input's to choose
        node, path = stack.pop()
        if isinstance(node, yaml.SequenceNode):
            stack.extend((child, f"{path}[{i}]") for i, child in enumerate(node.value))
        elif isinstance(node, yaml.MappingNode):
            lines: dict[object, int] = {}
            for key_node, value_node in node.value:
                key = (loader.construct_object(key_node, deep=True)
                       if isinstance(key_node, yaml.ScalarNode) else object())
                sub = _join(path, key)
                if key in lines:
                    return sub, lines[key], key_node.start_mark.line + 1
                lines[key] = key_node.start_mark.line + 1
                stack.append((value_node, sub))
    return None


def _parse_yaml(text: str, shown_name: str) -> Any:
    loader = None
    try:
        loader = _StrictLoader(text)  # reads the whole text at once: control characters fail here
        node = loader.get_single_node()
        if node is None:
            return None
        duplicate = _duplicate_key(loader, node)
        if duplicate is not None:
            path, first, second = duplicate
            raise ConfigError(shown_name, path, f"each key once (first given on line {first})",
                              f"it again on line {second}")
        return loader.construct_document(node)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "(whole file)"
        if isinstance(e, _AliasRefused):
            raise ConfigError(shown_name, where, "YAML without anchors and aliases (&name, *name)",
                              "an alias") from None
        if isinstance(e, _UnreadableValue):
            raise ConfigError(shown_name, where, "a value YAML can read", f"one that fails: {e.problem}") from None
        problem = _shown(e.problem or "unreadable YAML")[1:-1]
        raise ConfigError(shown_name, where, "valid YAML", f"a syntax error ({problem})") from None
    except yaml.reader.ReaderError as e:  # control characters; these carry no mark
        line = text[: e.position].count("\n") + 1
        raise ConfigError(shown_name, f"line {line}", "YAML text without control characters",
                          f"the character {chr(e.character)!r}") from None
    except yaml.YAMLError as e:
        raise ConfigError(shown_name, "(whole file)", "valid YAML", _shown(str(e))) from None
    except RecursionError:
        raise ConfigError(shown_name, "(whole file)", "YAML nested a sane number of levels deep",
                          "deeper nesting than Python can follow") from None
    finally:
        if loader is not None:
            loader.dispose()


def _read_yaml_mapping(path: Path, shown_name: str) -> dict[Any, Any]:
    data = _parse_yaml(_decode(_read_bounded(path, MAX_YAML_BYTES, shown_name), shown_name),
                       shown_name)
    if not isinstance(data, dict):
        got = "an empty file" if data is None else f"a {type(data).__name__} {_shown(data)}"
        raise ConfigError(shown_name, "(top level)", "a mapping of fields like 'version: 1'", got)
    return data


# --------------------------------------------------------------------------------------------
# pydantic errors -> ConfigError


def _key(part: object) -> str:
    """One step of a dotted field path, printable even when the key is hostile."""
    if isinstance(part, int) and not isinstance(part, bool):
        return f"[{part}]"
    if isinstance(part, str) and _ID_RE.fullmatch(part):
        return part
    return f"[{_shown(part)}]"


def _join(path: str, part: object) -> str:
    step = _key(part)
    return step if not path else path + (step if step.startswith("[") else "." + step)


def _field_path(loc: tuple[object, ...], at: str = "") -> str:
    path = ""
    for part in loc:
        if part == "[key]":  # pydantic's marker for "the key itself was wrong"
            continue
        path = _join(path, part)
    if at:
        path = path + at if (not path or at.startswith("[")) else f"{path}.{at}"
    return path or "(top level)"


def _unwrap(tp: Any) -> Any:
    while True:
        origin = get_origin(tp)
        if origin is Annotated:
            tp = get_args(tp)[0]
        elif origin in (Union, UnionType):
            rest = [arg for arg in get_args(tp) if arg is not NoneType]
            if len(rest) != 1:
                return tp
            tp = rest[0]
        else:
            return tp


def _model_at(model: type[BaseModel], loc: Sequence[object]) -> type[BaseModel] | None:
    """The model class whose fields live at `loc` (field names, dict keys, list indexes)."""
    tp: Any = model
    for part in loc:
        tp = _unwrap(tp)
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            info = tp.model_fields.get(part) if isinstance(part, str) else None
            if info is None:
                return None
            tp = info.annotation
        elif get_origin(tp) is dict:
            tp = get_args(tp)[1]
        elif get_origin(tp) in (list, tuple):
            tp = get_args(tp)[0]
        else:
            return None
    tp = _unwrap(tp)
    return tp if isinstance(tp, type) and issubclass(tp, BaseModel) else None


def _field_info(model: type[BaseModel], loc: tuple[object, ...]) -> FieldInfo | None:
    owner = _model_at(model, loc[:-1]) if loc else None
    return owner.model_fields.get(loc[-1]) if owner and isinstance(loc[-1], str) else None


def _expected_of(model: type[BaseModel], err: Mapping[str, Any]) -> tuple[str, str]:
    """(expected, got) in words for one pydantic error."""
    kind, loc, ctx = err["type"], tuple(err["loc"]), err.get("ctx") or {}
    if kind == "walkout":
        return ctx["expected"], str(ctx["got"])
    if kind == "extra_forbidden":
        owner = _model_at(model, loc[:-1])
        names = ", ".join(owner.model_fields) if owner else "the documented fields"
        return f"one of the fields {names}", f"an unknown field {_shown(loc[-1])} (a typo?)"
    if kind == "missing":
        info = _field_info(model, loc)
        what = info.description.rstrip(".") if info and info.description else "a value"
        return f"a value for this required field ({what})", "nothing"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return "a mapping of fields", _shown(err.get("input"))
    if kind in ("tuple_type", "list_type"):  # tuples in the models are lists in YAML
        return "a list", _shown(err.get("input"))
    message = str(err.get("msg", "a valid value"))
    for prefix in ("Input should be ", "Value error, "):
        message = message.removeprefix(prefix)
    return message, _shown(err.get("input"))


def _to_config_error(model: type[BaseModel], error: ValidationError, shown_name: str) -> ConfigError:
    found = []
    for err in error.errors(include_url=False)[:20]:
        expected, got = _expected_of(model, err)
        at = (err.get("ctx") or {}).get("at", "") if err["type"] == "walkout" else ""
        found.append(ConfigError(shown_name, _field_path(tuple(err["loc"]), at), expected, got))
    first, *rest = found
    return ConfigError(first.file, first.field, first.expected, first.got, rest)


_M = TypeVar("_M", bound=BaseModel)


def _validate(model: type[_M], data: dict[Any, Any], shown_name: str) -> _M:
    try:
        return model.model_validate(data)
    except ValidationError as e:
        raise _to_config_error(model, e, shown_name) from None


# --------------------------------------------------------------------------------------------
# catalog.csv


def _header_error(header: list[str], shown_name: str) -> ConfigError:
    return ConfigError(shown_name, "row 1 (header)",
                       "exactly gtin,name,price_cents,image (then image2, image3, ... if any)",
                       _shown(",".join(header)) if header else "an empty file")


def _check_header(header: list[str], shown_name: str) -> None:
    extra = header[len(_CATALOG_COLUMNS):]
    if tuple(header[: len(_CATALOG_COLUMNS)]) != _CATALOG_COLUMNS or extra != [
        f"image{n}" for n in range(2, len(extra) + 2)
    ]:
        raise _header_error(header, shown_name)


def _product(row: list[str], n: int, header: list[str], root: _Dir, shown_name: str) -> Product:
    def fail(column: str, expected: str, got: str) -> ConfigError:
        return ConfigError(shown_name, f"row {n}, column {column}", expected, got)

    if len(row) != len(header):
        raise ConfigError(shown_name, f"row {n}", f"{len(header)} columns as in the header",
                          f"{len(row)} columns")
    gtin, name, price, *images = row
    _gtin_or_raise(gtin, lambda expected: fail("gtin", expected, _shown(gtin)))
    if not name.strip() or len(name) > MAX_NAME_CHARS:
        raise fail("name", f"a product name of 1 to {MAX_NAME_CHARS} characters", _shown(name))
    if any(unicodedata.category(c) == "Cc" for c in name):
        raise fail("name", "a product name without control characters", _shown(name))
    # Digits only: int() would also take '+5', ' 5', '5_0' and '٥' (Arabic-Indic five).
    if not (price.isascii() and price.isdigit() and len(price) <= MAX_PRICE_DIGITS):
        raise fail("price_cents", f"a non-negative whole number of cents (at most "
                   f"{MAX_PRICE_DIGITS} digits, no sign or decimals)", _shown(price))
    paths = []
    for column, value in zip(header[3:], images, strict=True):
        if not value and column != "image":
            continue  # a product may have fewer photos than the widest row
        try:
            rel = _check_relative_path(value)
        except PydanticCustomError as e:
            raise fail(column, e.context["expected"], e.context["got"]) from None
        paths.append(root.file(rel, named_in=shown_name, field=f"row {n}, column {column}"))
    return Product(gtin=gtin, name=name, price_cents=int(price), images=tuple(paths))


def _read_catalog(path: Path, shown_name: str, root: _Dir) -> Catalog:
    text = _decode(_read_bounded(path, MAX_CATALOG_BYTES, shown_name), shown_name)
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    products: dict[str, Product] = {}
    rows_of: dict[str, int] = {}
    header: list[str] | None = None
    try:
        for n, row in enumerate(reader, start=1):  # row 1 is the header, as a spreadsheet shows
            if n > MAX_CATALOG_ROWS + 1:
                raise ConfigError(shown_name, f"row {n}", f"at most {MAX_CATALOG_ROWS} products",
                                  "more rows")
            if header is None:
                _check_header(row, shown_name)
                header = row
                continue
            if not row:
                continue  # a blank line, e.g. at the end of the file
            product = _product(row, n, header, root, shown_name)
            if product.gtin in rows_of:
                raise ConfigError(shown_name, f"row {n}, column gtin",
                                  f"each gtin once (already on row {rows_of[product.gtin]})",
                                  _shown(product.gtin))
            rows_of[product.gtin] = n
            products[product.gtin] = product
    except csv.Error as e:
        raise ConfigError(shown_name, f"line {reader.line_num}", "well-formed CSV",
                          _shown(str(e))) from None
    if header is None:
        raise _header_error([], shown_name)
    return Catalog(products=products)


def load_catalog(path: Path, root: Path) -> Catalog:
    """Read catalog.csv; image paths in it are relative to `root` and must stay inside it."""
    path, root = Path(path), Path(root)
    problem = _not_a_regular_file(path)
    if problem:
        raise ConfigError(str(path), "(whole file)", "an existing catalog.csv", problem)
    return _read_catalog(path, str(path), _Dir(root.resolve(), root))


# --------------------------------------------------------------------------------------------
# Loaders


def _check_slots_sold(config: StoreConfig, catalog: Catalog, shown_name: str) -> None:
    for cam_id, camera in config.cameras.items():
        for i, slot in enumerate(camera.slots):
            if slot.gtin not in catalog:
                raise ConfigError(shown_name, f"cameras.{_key(cam_id)}.slots[{i}].gtin",
                                  f"a gtin listed in {config.catalog}", _shown(slot.gtin))


def _load_store(store_dir: _Dir, file_name: str, entry_key: str | None = None,
                key_source: str | None = None) -> Store:
    """store.yaml at `store_dir/file_name`; errors name files as the user knows them."""
    shown_name = store_dir.name(file_name)
    data = _read_yaml_mapping(store_dir.path / file_name, shown_name)
    if entry_key is not None:
        if key_source is not None and "entry_key" in data:
            raise ConfigError(shown_name, "entry_key", f"no entry_key in store.yaml (the key comes from "
                              f"{key_source} only)", "a key in the file")
        data = {**data, "entry_key": entry_key}
    config = _validate(StoreConfig, data, shown_name)
    catalog_path = store_dir.file(config.catalog, named_in=shown_name, field="catalog")
    catalog = _read_catalog(catalog_path, store_dir.name(config.catalog), store_dir)
    _check_slots_sold(config, catalog, shown_name)
    return Store(config=config, catalog=catalog, root=store_dir.path)


def load_store(path: Path, *, entry_key: str | None = None, key_source: str | None = None) -> Store:
    """Read store.yaml and the catalog it names (as `walkout serve --store` does).

    `entry_key`, given, is the key from elsewhere (an environment variable): it takes the place of
    store.yaml's. With `key_source` (where it comes from, for the error) as well, a store.yaml that
    holds a key of its own is refused: the key must live in one place only.
    """
    path = Path(path)
    problem = _not_a_regular_file(path)
    if problem:
        raise ConfigError(str(path), "(whole file)", "an existing store.yaml", problem)
    store_dir = _Dir(path.parent.resolve(), path.parent)
    return _load_store(store_dir, path.name, entry_key, key_source)


def _check_cameras_match(manifest: ScenarioManifest, config: StoreConfig, store_name: str) -> None:
    """Each recording is of a store camera, and each store camera has one."""
    for cam_id in manifest.cameras:
        if cam_id not in config.cameras:
            known = ", ".join(config.cameras) or "none"
            raise ConfigError("scenario.yaml", f"cameras.{_key(cam_id)}",
                              f"a camera of {store_name} (it has: {known})", _shown(cam_id))
    for cam_id in config.cameras:
        if cam_id not in manifest.cameras:
            raise ConfigError("scenario.yaml", f"cameras.{_key(cam_id)}",
                              f"a recording of camera {cam_id!r} of {store_name}, like "
                              f"{{video: cameras/{cam_id}.mp4}}", "nothing")


def load_scenario(scenario_dir: Path) -> Scenario:
    """Read a recorded scenario (SPEC.md section 2) and check that every file it names exists."""
    scenario_dir = Path(scenario_dir)
    manifest_path = scenario_dir / "scenario.yaml"
    problem = _not_a_regular_file(manifest_path)
    if problem:
        raise ConfigError(str(manifest_path), "(whole file)",
                          "a scenario directory with a scenario.yaml", problem)
    root = _Dir(scenario_dir.resolve(), Path(""))
    manifest = _validate(ScenarioManifest, _read_yaml_mapping(manifest_path, "scenario.yaml"),
                         "scenario.yaml")
    store_path = root.file(manifest.store, named_in="scenario.yaml", field="store")
    store_dir_rel = store_path.parent.relative_to(root.path)
    store = _load_store(_Dir(store_path.parent, store_dir_rel), store_path.name)
    _check_cameras_match(manifest, store.config, str(manifest.store))
    videos = {
        cam_id: root.file(rec.video, named_in="scenario.yaml", field=f"cameras.{_key(cam_id)}.video")
        for cam_id, rec in manifest.cameras.items()
    }
    return Scenario(root=root.path, manifest=manifest, store=store,
                    start_unix=manifest.start.timestamp(), video_paths=videos)
