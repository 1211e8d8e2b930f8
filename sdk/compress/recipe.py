"""The ``compress`` recipe: a TOML file that maps 1:1 onto frozen config dataclasses.

Each TOML table is one dataclass below and each key one of its fields; an
unknown table or key is a ``ConfigError`` that lists the valid ones. A recipe
loads with ``load_recipe(path)`` or is built in Python directly:

    [model]                         # ModelSpec
    factory = "edgeseal.converters.zoo:DigitsCNN"   # module:callable, or give a TorchScript / torch.export file
    state_dict = "digits.pt"
    input_shape = [1, 8, 8]         # one sample, without the batch dimension

    [data]                          # DataSpec: .npz files with arrays x (inputs) and y (labels)
    train = "train.npz"
    calibration = "calib.npz"
    eval = "eval.npz"

    [prune]                         # PruneStage
    method = "structured"
    ratio = 0.5
    epochs = 10

    [distill]                       # DistillStage: fine-tune with the original model as teacher
    temperature = 4.0
    alpha = 0.7

    [cluster]                       # ClusterStage: k-means weight sharing (ONNX), 2..256 centroids per layer
    bits = [2, 3, 4, 5, 6, 8]       # candidate index widths; the budget picks one per layer
    method = "kmeans"               # or "grid": a uniform grid per channel, indices entropy-coded (epochs = 0)
    epochs = 2                      # centroid fine-tuning (needs [data] train)
    [dp]                            # DpStage: DP-SGD (Opacus) for the training after pruning, or DP distillation
    mode = "finetune"               # or "distill": learn the teacher's soft labels of [data] train with DP-SGD
    epsilon = 4.0
    delta = 1e-5                    # default 1 / (10 * train records)

    [defensive_prune]               # DefensivePruneStage: mask the channels PGD examples move most, then fine-tune
    ratio = 0.2
    epsilon = 0.1

    [adversarial]                   # AdversarialStage: PGD adversarial fine-tuning
    epsilon = 0.1
    epochs = 3

    [robustness]                    # RobustnessSpec: robust accuracy (PGD, L-inf) of every stage in the report
    epsilons = [0.05, 0.1]
    lo = 0.0                        # valid input range (pixels), or leave both out
    hi = 1.0

    [quantize]                      # QuantizeStage
    mode = "static"
    calibration = "percentile"
    max_drop = 0.5                  # or top-level max_drop: the budget of the whole recipe
    # bits = 4                      # int4 block-wise weight-only MatMuls (ONNX Runtime's MatMulNBits)

    [export]                        # ExportStage
    format = "onnx"

    [target]                        # TargetSpec: a target profile and/or an explicit op list
    name = "rpi4"
    supported_ops = ["Conv", "Gemm", "Relu", "MaxPool", "Reshape", "QuantizeLinear", "DequantizeLinear"]

    max_drop = 1.0                  # top level: clean accuracy budget (points vs the original model)
    min_robust_accuracy = 60.0      # top level: robust accuracy (percent) the final model must keep ...
    robust_epsilon = 0.1            # ... under PGD at this L-inf radius

Stages run in this order: distill a new student, prune + fine-tune (DP-SGD with [dp]),
defensive pruning, adversarial fine-tuning, export, int8.

Relative paths in a recipe file are resolved against the file's folder.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from edgeseal.converters.common import as_enum
from edgeseal.converters.prune import Importance, Scope
from edgeseal.converters.quantize import Calibration
from edgeseal.runtime.errors import ConfigError

from ..config import build_config  # re-exported: the one TOML-table builder
from edgeseal.targets import ModelFormat, read_toml  # read_toml: re-exported, release/search import it from here

__all__ = [
    "build_config",
    "PruneMethod",
    "QuantMode",
    "ModelFormat",
    "ModelSpec",
    "DataSpec",
    "PruneStage",
    "DistillStage",
    "QuantizeStage",
    "ClusterStage",
    "DpMode",
    "DpStage",
    "AdversarialStage",
    "DefensivePruneStage",
    "RobustnessSpec",
    "ExportStage",
    "TargetSpec",
    "CompressRecipe",
    "load_recipe",
    "recipe_from_dict",
]


class PruneMethod(str, enum.Enum):
    STRUCTURED = "structured"
    UNSTRUCTURED = "unstructured"


class QuantMode(str, enum.Enum):
    STATIC = "static"
    DYNAMIC = "dynamic"
    NONE = "none"


class DpMode(str, enum.Enum):
    FINETUNE = "finetune"  # DP-SGD on the labelled train data (after pruning, or of the whole model)
    DISTILL = "distill"  # DP-SGD on the teacher's soft labels of the train inputs (labels unused)



def _check(cond: bool, message: str) -> None:
    if not cond:
        raise ConfigError(message)


@dataclasses.dataclass(frozen=True, kw_only=True)
class ModelSpec:
    """Where the model comes from when no file is given, and the shape of one input sample."""

    factory: str | None = None  # "package.module:callable" returning an nn.Module
    state_dict: str | None = None  # torch.save(model.state_dict()) file loaded into the factory's model
    input_shape: tuple[int, ...] | None = None  # one sample, no batch dimension

    def __post_init__(self) -> None:
        if self.factory is not None:
            _check(
                isinstance(self.factory, str) and ":" in self.factory,
                f"[model] factory={self.factory!r} must look like 'package.module:callable'",
            )
        if self.input_shape is not None:
            shape = tuple(self.input_shape)
            _check(all(isinstance(d, int) and d > 0 for d in shape), f"[model] input_shape={list(shape)} must be positive ints")
            object.__setattr__(self, "input_shape", shape)


@dataclasses.dataclass(frozen=True, kw_only=True)
class DataSpec:
    """``.npz`` files in edgeseal's one layout: inputs (N, *input_shape) as ``x`` (or the only other
    array, e.g. ``input``), integer labels (N,) as ``y`` (or ``labels`` / ``label``); ``x_key`` / ``y_key``
    name other arrays."""

    train: str | None = None
    calibration: str | None = None
    eval: str | None = None
    x_key: str | None = None  # None: edgeseal's layout (x + y; input / labels read too)
    y_key: str | None = None


@dataclasses.dataclass(frozen=True, kw_only=True)
class PruneStage:
    """Pruning followed by fine-tuning on the training data (or distillation when [distill] is set)."""

    method: PruneMethod = PruneMethod.STRUCTURED
    ratio: float = 0.5  # structured: fraction of channels removed per layer
    importance: Importance = Importance.L2
    amount: float = 0.5  # unstructured: fraction of weights zeroed
    scope: Scope = Scope.GLOBAL
    gradual: bool = True
    epochs: int = 10
    lr: float = 1e-3
    batch_size: int = 64

    def __post_init__(self) -> None:
        object.__setattr__(self, "method", as_enum(PruneMethod, self.method, "[prune] method"))
        object.__setattr__(self, "importance", as_enum(Importance, self.importance, "[prune] importance"))
        object.__setattr__(self, "scope", as_enum(Scope, self.scope, "[prune] scope"))
        _check(0 < self.ratio < 1, f"[prune] ratio={self.ratio} must be in (0, 1)")
        _check(0 < self.amount < 1, f"[prune] amount={self.amount} must be in (0, 1)")
        _check(self.epochs >= 0, f"[prune] epochs={self.epochs} must be >= 0")
        _check(self.lr > 0, f"[prune] lr={self.lr} must be > 0")


@dataclasses.dataclass(frozen=True, kw_only=True)
class DistillStage:
    """Distillation with the input model as teacher.

    With ``student`` (``module:callable``) a new student is trained from scratch; without it,
    distillation is how the pruned model is fine-tuned.
    """

    student: str | None = None
    temperature: float = 4.0
    alpha: float = 0.7
    epochs: int = 20
    lr: float = 2e-3
    batch_size: int = 64

    def __post_init__(self) -> None:
        _check(self.temperature > 0, f"[distill] temperature={self.temperature} must be > 0")
        _check(0 <= self.alpha <= 1, f"[distill] alpha={self.alpha} must be in [0, 1]")
        _check(self.epochs >= 0, f"[distill] epochs={self.epochs} must be >= 0")
        if self.student is not None:
            _check(":" in self.student, f"[distill] student={self.student!r} must look like 'package.module:callable'")


@dataclasses.dataclass(frozen=True, kw_only=True)
class ClusterStage:
    """Weight clustering (``edgeseal.converters.cluster``) of the exported ONNX model, under the recipe's budget.

    ``bits``: candidate index widths (1..8: 2..256 centroids); each layer gets the fewest the budget allows,
    the most sensitive layers the most. ``epochs`` > 0 then fine-tunes the centroids on [data] train.
    ``adaround`` > 0 (``method = "grid"``): AdaRound steps per layer that learn the chosen grids' rounding on
    the calibration data (``converters.cluster.adaround_grids``).
    """

    bits: tuple[int, ...] = (1, 2, 3, 4, 5, 6, 8)
    method: str = "kmeans"  # or "grid": entropy-coded uniform grid per channel (converters.cluster.Method)
    per_channel: bool = False
    keep_zero: bool = True
    min_params: int = 256
    exclude: tuple[str, ...] = ()
    epochs: int = 0
    lr: float = 1e-4
    adaround: int = 0

    def __post_init__(self) -> None:
        _check(isinstance(self.bits, (list, tuple)), f"[cluster] bits={self.bits!r} must be a list of widths 1..8")
        object.__setattr__(self, "bits", tuple(self.bits))
        object.__setattr__(self, "exclude", tuple(self.exclude))
        self.config()  # validates every field now, before any work

    def config(self, max_drop: float = 1.0, seed: int = 0) -> Any:
        from edgeseal.converters.cluster import ClusterConfig

        return ClusterConfig(bits=self.bits, method=self.method, max_drop=max_drop, per_channel=self.per_channel,
                             keep_zero=self.keep_zero, min_params=self.min_params, exclude=self.exclude,
                             epochs=self.epochs, lr=self.lr, adaround=self.adaround, seed=seed)


@dataclasses.dataclass(frozen=True, kw_only=True)
class QuantizeStage:
    """int8 quantization. ONNX: static (QDQ, calibrated) or dynamic; TFLite: static full int8.

    ``max_drop`` is the accuracy budget in points (percent) when the recipe sets no top-level
    ``max_drop``; the worst layers are kept in float until it holds (at most ``max_excluded`` of them).
    """

    mode: QuantMode = QuantMode.STATIC
    calibration: Calibration = Calibration.MINMAX
    percentile: float = 99.999
    per_channel: bool = True
    activations: str | None = None  # "uint8" or "int8"; None: what the [target] profile runs fast (else uint8)
    symmetric_activations: bool = False
    samples: int = 256
    exclude_nodes: tuple[str, ...] = ()
    exclude_op_types: tuple[str, ...] = ()
    max_drop: float = 0.5
    max_excluded: int = 8
    ranking: str = "noise"  # how layers are picked for float: "noise" (one side-by-side run) or "leave_one_out"
    smooth_alpha: float | None = None  # ONNX: SmoothQuant-style outlier migration before quantizing (e.g. 0.7)
    qat_epochs: int = 0  # > 0: when the budget is still missed, quantization-aware fine-tuning, then quantize again
    qat_lr: float = 1e-4
    bits: int = 8  # 4: int4 block-wise weight-only MatMuls (ONNX); sensitive ones go to `fallback`
    algorithm: str = "rtn"  # bits = 4: "rtn" or "hqq" (ONNX Runtime's n-bit quantizer; "gptq" needs neural-compressor)
    block_size: int = 32  # bits = 4: weight rows per scale
    fallback: str = "int8"  # bits = 4: where MatMuls too sensitive for int4 go: "int8" (dynamic) or "float"

    def __post_init__(self) -> None:
        object.__setattr__(self, "mode", as_enum(QuantMode, self.mode, "[quantize] mode"))
        object.__setattr__(self, "calibration", as_enum(Calibration, self.calibration, "[quantize] calibration"))
        _check(50.0 < self.percentile <= 100.0, f"[quantize] percentile={self.percentile} must be in (50, 100]")
        _check(self.activations in (None, "int8", "uint8"),
               f"[quantize] activations={self.activations!r} must be 'int8' or 'uint8' (or absent: from the target)")
        _check(self.qat_epochs >= 0, f"[quantize] qat_epochs={self.qat_epochs} must be >= 0")
        _check(self.qat_lr > 0, f"[quantize] qat_lr={self.qat_lr} must be > 0")
        _check(self.ranking in ("noise", "leave_one_out"), f"[quantize] ranking={self.ranking!r} must be 'noise' or 'leave_one_out'")
        if self.smooth_alpha is not None:
            _check(0 <= self.smooth_alpha <= 1, f"[quantize] smooth_alpha={self.smooth_alpha} must be in [0, 1]")
        object.__setattr__(self, "exclude_nodes", tuple(self.exclude_nodes))
        object.__setattr__(self, "exclude_op_types", tuple(self.exclude_op_types))
        _check(self.max_drop >= 0, f"[quantize] max_drop={self.max_drop} must be >= 0 (accuracy points)")
        _check(self.samples >= 1, f"[quantize] samples={self.samples} must be >= 1")
        _check(self.max_excluded >= 0, f"[quantize] max_excluded={self.max_excluded} must be >= 0")
        _check(self.bits in (4, 8), f"[quantize] bits={self.bits!r} must be 8 (int8) or 4 (int4 block-wise weights)")
        _check(self.fallback in ("int8", "float"), f"[quantize] fallback={self.fallback!r} must be 'int8' or 'float'")
        if self.bits == 4:
            _check(self.qat_epochs == 0, "[quantize] qat_epochs fine-tunes for int8; it does not apply to bits = 4 "
                                         "(remove qat_epochs, or use bits = 8)")
            from edgeseal.converters.int4 import Int4Config

            Int4Config(algorithm=self.algorithm, block_size=self.block_size)  # validates both now


@dataclasses.dataclass(frozen=True, kw_only=True)
class DpStage:
    """Differential privacy for the training edgeseal does (Opacus DP-SGD, RDP accountant).

    ``finetune``: the fine-tuning after pruning (or of the model itself without [prune]) runs as
    DP-SGD on [data] train. ``distill``: a student — ``[distill] student``, else the pruned model —
    learns the original model's soft labels of the train inputs with DP-SGD. Epsilon covers the
    train records for that training only (see ``edgeseal.converters.dp``); the report and the
    sealed package's manifest say so.
    """

    mode: DpMode = DpMode.FINETUNE
    epsilon: float = 8.0
    delta: float | None = None  # None: 1 / (10 * train records)
    max_grad_norm: float = 1.0
    epochs: int = 10
    lr: float = 2e-3
    batch_size: int = 64
    temperature: float = 1.0  # mode "distill": softmax temperature of the soft labels (T = 4 drowns in DP noise)

    def __post_init__(self) -> None:
        object.__setattr__(self, "mode", as_enum(DpMode, self.mode, "[dp] mode"))
        _check(self.temperature > 0, f"[dp] temperature={self.temperature} must be > 0")
        _check(isinstance(self.epsilon, (int, float)) and self.epsilon > 0, f"[dp] epsilon={self.epsilon!r} must be > 0")
        if self.delta is not None:
            _check(0 < self.delta < 1, f"[dp] delta={self.delta} must be in (0, 1), well below 1 / train records")
        _check(self.max_grad_norm > 0, f"[dp] max_grad_norm={self.max_grad_norm} must be > 0")
        _check(self.epochs >= 1 and self.batch_size >= 1, f"[dp] epochs={self.epochs} and batch_size={self.batch_size} must be >= 1")
        _check(self.lr > 0, f"[dp] lr={self.lr} must be > 0")


@dataclasses.dataclass(frozen=True, kw_only=True)
class AdversarialStage:
    """PGD adversarial fine-tuning (Madry et al.) of the model so far, on [data] train.

    Each batch: ``steps`` PGD steps of ``step_ratio * epsilon`` within the L-inf ball of ``epsilon``
    (clipped to [robustness] lo/hi); loss ``(1 - mix) * CE(clean) + mix * CE(PGD)``."""

    epsilon: float = 0.1
    steps: int = 7
    step_ratio: float = 0.25
    mix: float = 0.5
    epochs: int = 3
    lr: float = 1e-3
    batch_size: int = 64

    def __post_init__(self) -> None:
        _check(self.epsilon > 0, f"[adversarial] epsilon={self.epsilon} must be > 0 (L-inf radius, input units)")
        _check(self.steps >= 1 and self.step_ratio > 0, f"[adversarial] steps={self.steps} must be >= 1, step_ratio > 0")
        _check(0 < self.mix <= 1, f"[adversarial] mix={self.mix} must be in (0, 1]")
        _check(self.epochs >= 1 and self.lr > 0, f"[adversarial] epochs={self.epochs} must be >= 1 and lr > 0")


@dataclasses.dataclass(frozen=True, kw_only=True)
class DefensivePruneStage:
    """Defensive pruning: mask ``ratio`` of each Conv/Linear layer's output channels (not the head) —
    those PGD examples at ``epsilon`` move most — then fine-tune ``epochs`` with the masks on
    (adversarially when [adversarial] is set). Masked channels stay in the file as zeros."""

    ratio: float = 0.2
    epsilon: float = 0.1
    steps: int = 10
    samples: int = 256
    epochs: int = 3
    lr: float = 1e-3
    batch_size: int = 64

    def __post_init__(self) -> None:
        _check(0 < self.ratio < 1, f"[defensive_prune] ratio={self.ratio} must be in (0, 1)")
        _check(self.epsilon > 0, f"[defensive_prune] epsilon={self.epsilon} must be > 0")
        _check(self.steps >= 1 and self.samples >= 1 and self.epochs >= 0 and self.lr > 0,
               "[defensive_prune] steps and samples must be >= 1, epochs >= 0 and lr > 0")


@dataclasses.dataclass(frozen=True, kw_only=True)
class RobustnessSpec:
    """Robust accuracy in the compress report: PGD (``steps`` of ``step_ratio * eps``, random start)
    at each of ``epsilons`` on the first ``examples`` eval inputs. Float stages are attacked
    white-box through their own torch module; int8 models get the examples of the float model
    they were quantized from (transferred). ``lo``/``hi``: the valid input range."""

    epsilons: tuple[float, ...] = (0.05, 0.1)
    steps: int = 10
    step_ratio: float = 0.25
    examples: int = 300
    lo: float | None = None
    hi: float | None = None

    def __post_init__(self) -> None:
        eps = tuple(float(e) for e in self.epsilons)
        _check(len(eps) > 0 and all(e > 0 for e in eps), f"[robustness] epsilons={list(eps)} must be numbers > 0")
        object.__setattr__(self, "epsilons", eps)
        _check(self.steps >= 1 and self.step_ratio > 0 and self.examples >= 1,
               "[robustness] steps and examples must be >= 1, step_ratio > 0")
        _check((self.lo is None) == (self.hi is None) and (self.lo is None or self.lo < self.hi),
               f"[robustness] give both lo and hi (lo < hi) for the valid input range, or neither (lo={self.lo}, hi={self.hi})")


@dataclasses.dataclass(frozen=True, kw_only=True)
class ExportStage:
    format: ModelFormat = ModelFormat.ONNX
    opset: int = 20

    def __post_init__(self) -> None:
        object.__setattr__(self, "format", as_enum(ModelFormat, self.format, "[export] format"))


@dataclasses.dataclass(frozen=True, kw_only=True)
class TargetSpec:
    """What the target can run. ``name`` other than ``host`` is an ``edgeseal.targets`` profile
    (rpi4, rpi5, android-arm64, linux-x86_64, or a profile file): the final model is checked
    against its format and op set. ``supported_ops`` is an extra explicit list of op types
    (ONNX op types or TFLite builtin names) checked after export and quantization."""

    name: str = "host"
    supported_ops: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "supported_ops", tuple(self.supported_ops))


@dataclasses.dataclass(frozen=True, kw_only=True)
class CompressRecipe:
    """A whole recipe; a stage left as ``None`` is skipped (export always runs).

    ``max_drop`` is the accuracy budget of the whole recipe in points, measured against the original
    model: pruning, distillation and int8 share it. Unset, it is ``[quantize] max_drop`` (0.5 by
    default), or 0.5 points when there is no [quantize] stage.
    """

    model: ModelSpec = dataclasses.field(default_factory=ModelSpec)
    data: DataSpec = dataclasses.field(default_factory=DataSpec)
    prune: PruneStage | None = None
    distill: DistillStage | None = None
    cluster: ClusterStage | None = None
    dp: DpStage | None = None
    defensive_prune: DefensivePruneStage | None = None
    adversarial: AdversarialStage | None = None
    robustness: RobustnessSpec | None = None
    quantize: QuantizeStage | None = None
    export: ExportStage = dataclasses.field(default_factory=ExportStage)
    target: TargetSpec = dataclasses.field(default_factory=TargetSpec)
    device: str = "auto"
    seed: int = 0
    latency_runs: int = 200
    max_drop: float | None = None
    min_robust_accuracy: float | None = None  # percent, under PGD at robust_epsilon, of the returned model
    robust_epsilon: float | None = None

    def __post_init__(self) -> None:
        _check(self.device in ("auto", "cpu", "cuda") or self.device.startswith("cuda:"),
               f"device={self.device!r} must be 'auto', 'cpu' or 'cuda'")
        _check(self.latency_runs >= 1, f"latency_runs={self.latency_runs} must be >= 1")
        if self.max_drop is not None:
            _check(isinstance(self.max_drop, (int, float)) and 0 <= self.max_drop <= 100,
                   f"max_drop={self.max_drop!r} must be accuracy points in [0, 100]")
        q = self.quantize
        if self.export.format is ModelFormat.TFLITE and (self.cluster is not None or (q is not None and q.bits == 4)):
            raise ConfigError("[cluster] and [quantize] bits = 4 work on ONNX models; set [export] format = 'onnx'")
        if q is not None and q.bits == 4 and q.mode is QuantMode.NONE:
            raise ConfigError("[quantize] bits = 4 with mode = 'none': remove bits, or set mode = 'dynamic'")
        if q is not None and q.mode is QuantMode.DYNAMIC and self.export.format is ModelFormat.TFLITE:
            raise ConfigError("[quantize] mode = 'dynamic' is offered for ONNX only; use mode = 'static' for "
                              "[export] format = 'tflite'")
        if (self.min_robust_accuracy is None) != (self.robust_epsilon is None):
            raise ConfigError("min_robust_accuracy and robust_epsilon go together: the robust accuracy (percent) the "
                              "returned model must keep under PGD at that L-inf radius; give both or neither")
        if self.min_robust_accuracy is not None:
            _check(isinstance(self.min_robust_accuracy, (int, float)) and 0 <= self.min_robust_accuracy <= 100,
                   f"min_robust_accuracy={self.min_robust_accuracy!r} must be a percentage in [0, 100]")
            _check(isinstance(self.robust_epsilon, (int, float)) and self.robust_epsilon > 0,
                   f"robust_epsilon={self.robust_epsilon!r} must be > 0 (L-inf radius in input units)")
        self._check_privacy()

    def _check_privacy(self) -> None:
        """DP-SGD's epsilon would not hold if other stages trained on the same data outside it."""
        if self.dp is None:
            return
        outside = [name for name, on in (("[adversarial]", self.adversarial is not None),
                                         ("[defensive_prune]", self.defensive_prune is not None),
                                         ("[quantize] qat_epochs", self.quantize is not None and self.quantize.qat_epochs > 0))
                   if on]
        if outside:
            raise ConfigError(f"[dp] cannot be combined with {', '.join(outside)}: they train on [data] train outside "
                              "DP-SGD, so the reported epsilon would not hold; drop them or drop [dp]")
        student = self.distill is not None and self.distill.student is not None
        if self.dp.mode is DpMode.DISTILL and student and self.prune is not None:
            raise ConfigError("[dp] mode = 'distill' with a [distill] student and [prune]: the pruned student would be "
                              "fine-tuned outside DP-SGD; drop [prune] (distill a small student) or the student")
        if self.dp.mode is DpMode.FINETUNE and self.distill is not None:
            raise ConfigError("[dp] mode = 'finetune' with [distill]: distillation would train on [data] train outside "
                              "DP-SGD; use [dp] mode = 'distill' (DP distillation) or drop [distill]")
        if self.dp.mode is DpMode.DISTILL and not student and self.prune is None:
            raise ConfigError("[dp] mode = 'distill' needs a student: [distill] student = 'module:callable' (a new "
                              "model), or a [prune] stage (the pruned model learns from the original)")

    def robustness_spec(self) -> RobustnessSpec | None:
        """What robust accuracy the report measures: [robustness], plus ``robust_epsilon`` and the
        [adversarial] epsilon when those are set; None when nothing asks for it."""
        spec = self.robustness
        extra = [e for e in (self.robust_epsilon, None if self.adversarial is None else self.adversarial.epsilon)
                 if e is not None]
        if spec is None and not extra:
            return None
        spec = spec or RobustnessSpec(epsilons=tuple(extra[:1]))
        eps = tuple(dict.fromkeys((*spec.epsilons, *extra)))
        return dataclasses.replace(spec, epsilons=eps)

    @property
    def budget(self) -> float:
        """The accuracy budget in points for the whole recipe, against the original model."""
        if self.max_drop is not None:
            return float(self.max_drop)
        return float(self.quantize.max_drop) if self.quantize is not None else 0.5


# --------------------------------------------------------------------------- TOML -> dataclasses


def recipe_from_dict(data: Mapping[str, Any], *, base_dir: Path | None = None) -> CompressRecipe:
    """Build a ``CompressRecipe`` from parsed TOML; relative file paths are resolved against ``base_dir``."""
    recipe = build_config(CompressRecipe, data, "the recipe (top level)")
    if base_dir is None:
        return recipe
    fix = lambda p: None if p is None or Path(p).is_absolute() else str(base_dir / p)  # noqa: E731
    model = dataclasses.replace(recipe.model, state_dict=fix(recipe.model.state_dict) or recipe.model.state_dict)
    data_spec = dataclasses.replace(
        recipe.data,
        **{k: fix(getattr(recipe.data, k)) or getattr(recipe.data, k) for k in ("train", "calibration", "eval")},
    )
    return dataclasses.replace(recipe, model=model, data=data_spec)


def load_recipe(path: str | Path) -> CompressRecipe:
    """Read a TOML recipe file into a ``CompressRecipe``."""
    path = Path(path)
    data = read_toml(path, "recipe")
    return recipe_from_dict(data, base_dir=path.resolve().parent)
