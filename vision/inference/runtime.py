"""ONNX Runtime sessions: provider choice, threads, graph options, warm-up.

Every model in walkout (our detector, CenterFace, a user's own export) runs through `load_model`,
so provider order, thread counts and optimisation settings are decided in one place and reported
in one shape. onnxruntime is imported when a model is loaded, never at import time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, get_args

import numpy as np

# Fastest first. A provider is used only when this onnxruntime build offers it.
PROVIDER_ORDER = (
    "TensorrtExecutionProvider",
    "CUDAExecutionProvider",
    "OpenVINOExecutionProvider",
    "CoreMLExecutionProvider",
    "CPUExecutionProvider",
)
SHORT_NAMES = {"tensorrt": "TensorrtExecutionProvider", "cuda": "CUDAExecutionProvider",
               "openvino": "OpenVINOExecutionProvider", "coreml": "CoreMLExecutionProvider",
               "cpu": "CPUExecutionProvider"}
Optimisation = Literal["disable", "basic", "extended", "all"]
OPTIMISATIONS = get_args(Optimisation)


@dataclass(frozen=True)
class RuntimeOptions:
    """How to run a model. `providers` empty means PROVIDER_ORDER; names may be short ('cuda')."""

    providers: tuple[str, ...] = ()
    intra_op_threads: int = 0  # 0: let ONNX Runtime choose (one per physical core)
    optimisation: Optimisation = "all"
    warmup_runs: int = 1
    # Intra-op threads busy-wait for work between operators: the fastest for one model alone on the
    # machine, wasted cores when several models (a replay's cameras) run side by side.
    spin: bool = True

    def __post_init__(self) -> None:
        if self.intra_op_threads < 0:
            raise ValueError(f"intra_op_threads must be 0 (automatic) or more, got {self.intra_op_threads}")
        if self.warmup_runs < 0:
            raise ValueError(f"warmup_runs must be 0 or more, got {self.warmup_runs}")
        if self.optimisation not in OPTIMISATIONS:  # else load_model fails later with a bare KeyError
            raise ValueError(f"optimisation must be one of {', '.join(OPTIMISATIONS)}, got {self.optimisation!r}")
        if isinstance(self.providers, str):  # ("cuda") is a str: it would be read as 'c', 'u', 'd', 'a'
            raise ValueError(f"providers must be a tuple of names, got the string {self.providers!r}")
        unknown = [p for p in self.providers if _full_name(p) not in PROVIDER_ORDER]
        if unknown:
            raise ValueError(f"unknown execution provider(s) {unknown}; expected some of "
                             f"{', '.join(SHORT_NAMES)} or their full ONNX Runtime names")


@dataclass(frozen=True)
class TensorSpec:
    name: str
    shape: tuple[int | str | None, ...]  # str or None: a dynamic axis
    dtype: str


@dataclass(eq=False)
class LoadedModel:
    """An ONNX Runtime session with what was chosen for it and the model's own metadata."""

    path: Path
    session: object  # onnxruntime.InferenceSession
    provider: str
    threads: int
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    metadata: dict[str, str] = field(default_factory=dict)

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        return self.session.run(None, feeds)

    def describe(self) -> str:
        shapes = ", ".join(f"{t.name}{list(t.shape)}" for t in self.inputs)
        threads = self.threads or "auto"
        return f"{self.path.name}: {self.provider.removesuffix('ExecutionProvider')}, threads {threads}, in {shapes}"


def _full_name(provider: str) -> str:
    return SHORT_NAMES.get(provider.lower(), provider)


def choose_providers(wanted: tuple[str, ...], available: list[str]) -> list[str]:
    """The wanted providers that this build offers, in order, once each, always ending with the CPU.

    The CPU goes last even when named first: ONNX Runtime falls back to it anyway, and ahead of a GPU
    it would take every node.
    """
    order = [_full_name(p) for p in wanted] or list(PROVIDER_ORDER)
    chosen = [p for p in dict.fromkeys(order) if p in available and p != "CPUExecutionProvider"]
    return [*chosen, "CPUExecutionProvider"]


def load_model(path: Path, options: RuntimeOptions = RuntimeOptions(), graph: bytes | None = None) -> LoadedModel:
    """Open `path` with the best provider available and warm it up with zero inputs. `graph`: the bytes
    to run instead of the file's, an equivalent of it that a loader rewrote (see yolo.load_yolo)."""
    import onnxruntime as ort

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"model file {path} does not exist")
    so = ort.SessionOptions()
    so.intra_op_num_threads = options.intra_op_threads
    so.inter_op_num_threads = 1
    if not options.spin:
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = {
        "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }[options.optimisation]
    so.log_severity_level = 3
    providers = choose_providers(options.providers, ort.get_available_providers())
    try:
        session = ort.InferenceSession(str(path) if graph is None else graph, sess_options=so, providers=providers)
    except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph types
        raise ValueError(f"model file {path} is not a loadable ONNX model: {exc}") from exc
    model = LoadedModel(
        path=path,
        session=session,
        provider=session.get_providers()[0],
        threads=options.intra_op_threads,
        inputs=tuple(TensorSpec(i.name, tuple(i.shape), i.type) for i in session.get_inputs()),
        outputs=tuple(TensorSpec(o.name, tuple(o.shape), o.type) for o in session.get_outputs()),
        metadata=dict(session.get_modelmeta().custom_metadata_map),
    )
    for _ in range(options.warmup_runs):
        model.run({spec.name: _zeros_for(spec) for spec in model.inputs})
    return model


def _zeros_for(spec: TensorSpec) -> np.ndarray:
    # Dynamic axes get 1 for batch and 64 for spatial sizes: small, but divisible by any stride.
    shape = [d if isinstance(d, int) else (1 if i == 0 else 64) for i, d in enumerate(spec.shape)]
    dtype = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(uint8)": np.uint8}.get(
        spec.dtype, np.float32)
    return np.zeros(shape, dtype)
