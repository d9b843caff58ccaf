"""Static int8 quantisation of our detector: QDQ, per-channel weights, calibrated on rendered frames.

Calibration feeds frames through `YoloDetector.preprocess`, so the int8 model is calibrated on
exactly the letterboxed input it will see. The head's decoding stays in float: it concatenates box
coordinates (0 to 384) with class scores (0 to 1) into one tensor, and one int8 scale for both
would round every score to nothing. The quantised file keeps the original's metadata (class names,
input size), so everything that loads the fp32 model loads this one the same way.

Whether it is kept is decided by mAP50 on the held-out set (at most one point below fp32), which
ultralytics' val measures; `walkout bench inference --int8` reports its speed and its agreement.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from vision.inference.runtime import RuntimeOptions, load_model
from vision.inference.yolo import YoloDetector

CACHE_DIR = Path(__file__).resolve().parents[1] / "models" / "cache"
_MODULE = re.compile(r"^/model\.(\d+)/")


class QuantiseError(Exception):
    """A model that cannot be quantised as asked, said in one line."""


def int8_path_for(model_path: Path, cache_dir: Path = CACHE_DIR) -> Path:
    """Where the int8 twin of `model_path` goes: models/cache/<stem>.int8.onnx (git-ignored)."""
    return Path(cache_dir) / f"{Path(model_path).stem}.int8.onnx"


def float_head_nodes(graph_nodes: Sequence[object], keep_last_convs: bool = True) -> list[str]:
    """Names of the nodes of the detection head (the last `/model.N/` module) to leave in float.

    Everything in the head but its convolutions: the DFL, the anchor and stride arithmetic, the
    sigmoid and the final concatenation. With `keep_last_convs`, also the 1x1 convolutions that
    produce the raw box and class logits, so a box edge or a score near the threshold does not move
    by a quantisation step.
    """
    modules = [int(m.group(1)) for n in graph_nodes if (m := _MODULE.match(n.name))]
    if not modules:
        raise QuantiseError("no /model.N/ node names: not an ultralytics export, cannot find its detection head")
    head = f"/model.{max(modules)}/"
    branch_convs = re.compile(re.escape(head) + r"cv[234]\.\d+/cv[234]\.\d+\.(\d+)/")
    keep = []
    for node in graph_nodes:
        if not node.name.startswith(head):
            continue
        branch = branch_convs.match(node.name)
        in_branch = branch is not None and "/dfl/" not in node.name
        if not in_branch or (keep_last_convs and node.op_type == "Conv" and branch.group(1) == "2"):
            keep.append(node.name)
    return keep


def quantise_detector(model_path: Path, out_path: Path, frames: Sequence[np.ndarray], *,
                      keep_last_convs: bool = True, reduce_range: bool = False) -> Path:
    """Write the int8 (QDQ) model of `model_path` to `out_path`, calibrated on `frames` (BGR)."""
    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quant_pre_process,
        quantize_static,
    )

    if not frames:
        raise QuantiseError("no calibration frames")
    model_path, out_path = Path(model_path), Path(out_path)
    original = onnx.load(str(model_path))
    float_head_nodes(original.graph.node)  # refuses a graph that is not ultralytics' before any work
    detector = YoloDetector(load_model(model_path, RuntimeOptions(providers=("cpu",), warmup_runs=0)))

    class Frames(CalibrationDataReader):
        def __init__(self) -> None:
            self._blobs = self._iterate()

        def _iterate(self) -> Iterator[dict[str, np.ndarray]]:
            for frame in frames:
                blob, _ = detector.preprocess([frame], batch=1)
                yield {detector.input_name: blob.copy()}  # the detector reuses its buffer

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self._blobs, None)

    with tempfile.TemporaryDirectory(prefix="walkout-quant-") as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        quant_pre_process(str(model_path), str(prepared), skip_symbolic_shape=True)
        keep_float = float_head_nodes(onnx.load(str(prepared)).graph.node, keep_last_convs)
        quantised = Path(tmp) / "int8.onnx"
        quantize_static(str(prepared), str(quantised), Frames(), quant_format=QuantFormat.QDQ, per_channel=True,
                        reduce_range=reduce_range, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        nodes_to_exclude=keep_float, calibrate_method=CalibrationMethod.MinMax)
        model = onnx.load(str(quantised))
    # ultralytics' metadata (names, imgsz, stride, task) is what the detector reads; carry it over.
    del model.metadata_props[:]
    for prop in original.metadata_props:
        model.metadata_props.add(key=prop.key, value=prop.value)
    model.metadata_props.add(key="walkout_quantisation",
                             value=f"int8 static QDQ, per-channel, MinMax on {len(frames)} frames, "
                                   f"from {model_path.name}")
    out_path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(out_path))
    return out_path
