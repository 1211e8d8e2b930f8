"""``edgeseal.compress``: one call from a PyTorch model to a smaller exported model and a report.

    >>> import edgeseal.compress as ec
    >>> result = ec.compress(model, "recipe.toml", train=(x, y), calibration=x_cal, eval=(x_te, y_te))
    >>> print(result.report.render())
    >>> open("model.int8.onnx", "wb").write(result.model)

Stages run in a fixed order — load, (distill a new student), prune + fine-tune
(DP-SGD with [dp]), defensive pruning, adversarial fine-tuning, export, quantize —
and each one that runs is measured the same way: exported file size (raw and
zlib), accuracy / macro-F1 / per-class precision, recall and F1 on the eval set,
latency (batch 1, one thread, this machine), and robust accuracy under PGD when
the recipe asks for it. With [dp] the report's ``privacy`` section holds the spent
(epsilon, delta) and what it covers; ``manifest_summary`` carries it into a package.

CLI: ``edgeseal compress MODEL --recipe r.toml`` (see ``add_parser``).
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import sys
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from edgeseal.runtime.errors import ConfigError, UnsupportedError

from ..report.base import Report
from .recipe import CompressRecipe, ModelFormat, PruneMethod, QuantMode, load_recipe

__all__ = ["StageReport", "CompressReport", "CompressResult", "manifest_summary", "resolve_callable", "compress", "validate_recipe", "load_model", "load_npz", "read_split", "add_parser", "main"]


# --------------------------------------------------------------------------- reports


@dataclasses.dataclass(frozen=True)
class StageReport:
    """One measured model along the pipeline."""

    stage: str
    format: str
    size_bytes: int
    zlib_bytes: int
    params: int | None
    classification: Any  # edgeseal.converters.metrics.ClassificationReport | None
    latency: Any  # edgeseal.converters.metrics.Latency
    notes: tuple[str, ...] = ()
    speed_vs_original: float | None = None  # original time / this stage's time, measured side by side (> 1 faster)
    robust_accuracy: tuple[float, ...] | None = None  # fraction correct under PGD at each report.robustness epsilon
    fidelity: Any = None  # edgeseal.runtime.fidelity.Fidelity of this stage's outputs against the original's
    encoded_bytes: int | None = None  # codebook-encoded weights + zlib graph (converters.cluster.encoded_size); not sealed

    def to_dict(self) -> dict[str, Any]:
        return {
            "robust_accuracy": None if self.robust_accuracy is None else list(self.robust_accuracy),
            "stage": self.stage,
            "format": self.format,
            "size_bytes": self.size_bytes,
            "zlib_bytes": self.zlib_bytes,
            "params": self.params,
            "classification": None if self.classification is None else self.classification.to_dict(),
            "latency": self.latency.to_dict(),
            "speed_vs_original": self.speed_vs_original,
            "fidelity": None if self.fidelity is None else self.fidelity.to_dict(),
            "encoded_bytes": self.encoded_bytes,
            "notes": list(self.notes),
        }


@dataclasses.dataclass(frozen=True)
class CompressReport(Report):
    """Every stage's measurements plus the pruning plan and the int8 report when those ran.

    ``budget`` (accuracy points) covers the whole recipe against the original model
    (``reference_accuracy``, percent); ``met`` is None without labelled eval data. ``float_ops``
    is read off the returned model's graph; ``speed`` timed every stage side by side in one run.
    """

    stages: tuple[StageReport, ...]
    pruning: Any = None  # PruningPlan
    quantization: Any = None  # QuantReport (ONNX int8) or Int4Report ([quantize] bits = 4)
    export: Any = None  # ExportResult of the final float export
    warnings: tuple[str, ...] = ()
    budget: float | None = None
    reference_accuracy: float | None = None
    final_drop: float | None = None
    met: bool | None = None
    verdict: str = ""
    float_ops: Any = None  # edgeseal.converters.float_ops.FloatOps of the returned model
    speed: Any = None  # edgeseal.converters.latency.SideBySide
    privacy: dict[str, Any] | None = None  # [dp]: spent (epsilon, delta), DP-SGD settings, what epsilon covers
    robustness: dict[str, Any] | None = None  # robust accuracy of every stage under PGD
    robust_requirement: dict[str, Any] | None = None  # min_robust_accuracy at robust_epsilon, checked on the result
    defense: dict[str, Any] | None = None  # [defensive_prune]: the channels masked
    clustering: Any = None  # ClusterReport when [cluster] ran

    def to_dict(self) -> dict[str, Any]:
        return {
            "budget": {"max_drop_points": self.budget, "reference_accuracy": self.reference_accuracy,
                       "final_drop_points": self.final_drop, "met": self.met, "verdict": self.verdict,
                       "robust": self.robust_requirement},
            "privacy": self.privacy,
            "robustness": self.robustness,
            "defensive_pruning": self.defense,
            "stages": [s.to_dict() for s in self.stages],
            "float_ops": None if self.float_ops is None else self.float_ops.to_dict(),
            "speed": None if self.speed is None else self.speed.to_dict(),
            "pruning": None if self.pruning is None else self.pruning.to_dict(),
            "quantization": None if self.quantization is None else self.quantization.to_dict(),
            "clustering": None if self.clustering is None else self.clustering.to_dict(),
            "export": None if self.export is None else self.export.to_dict(),
            "warnings": list(self.warnings),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def manifest_summary(self) -> dict[str, Any]:
        """What a sealed package's manifest carries about this compression (see ``manifest_summary``)."""
        return manifest_summary(self.to_dict())

    kind = "compress"

    def text(self) -> str:
        return self.render()

    def render(self) -> str:
        """A plain-text table for people: one row per stage, then per-class metrics of the last stage."""
        head = (f"{'stage':<24}{'format':<8}{'size':>12}{'zlib':>12}{'acc %':>8}{'macro F1':>10}{'agree %':>9}"
                f"{'top-5 %':>9}{'SQNR dB':>9}{'p50 ms':>9}{'p95 ms':>9}{'speed':>8}")
        lines = [head, "-" * len(head)]
        for s in self.stages:
            c = s.classification
            acc = f"{100 * c.accuracy:.2f}" if c else "-"
            f1 = f"{c.macro_f1:.4f}" if c else "-"
            speed = "-" if s.speed_vs_original is None else f"{s.speed_vs_original:.2f}x"
            fid = s.fidelity
            agree = "-" if fid is None else f"{100 * fid.top1_agreement:.2f}"
            top5 = "-" if fid is None else f"{100 * fid.top5_overlap:.2f}"
            sqnr = "-" if fid is None else ("inf" if fid.sqnr_db == float("inf") else f"{fid.sqnr_db:.1f}")
            lines.append(
                f"{s.stage:<24}{s.format:<8}{s.size_bytes:>12,}{s.zlib_bytes:>12,}{acc:>8}{f1:>10}{agree:>9}{top5:>9}"
                f"{sqnr:>9}{s.latency.p50_ms:>9.3f}{s.latency.p95_ms:>9.3f}{speed:>8}"
            )
        if any(st.fidelity is not None for st in self.stages):
            n = next(st.fidelity.n for st in self.stages if st.fidelity is not None)
            lines.append(f"agree / top-5 / SQNR: top-1 agreement, top-5 overlap and logit SQNR against the original "
                         f"model's outputs on the same {n} evaluation inputs (no labels needed)")
        if self.speed is not None:
            lines.append(f"speed: original time / stage time, all stages timed side by side in one run "
                         f"({self.speed.rounds} rounds; {self.speed.timed})")
        if self.robustness is not None:
            r = self.robustness
            lines += ["", f"robust accuracy % ({r['attack']}; {r['examples']} eval inputs):",
                      f"{'stage':<26}" + "".join(f"{'eps ' + format(e, 'g'):>11}" for e in r["epsilons"])]
            for s in self.stages:
                if s.robust_accuracy is not None:
                    lines.append(f"{s.stage:<26}" + "".join(f"{100 * a:>11.2f}" for a in s.robust_accuracy)
                                 + f"  ({r['stages'][s.stage]['attacked']})")
        if self.privacy is not None:
            p = self.privacy
            lines += ["", f"privacy: (epsilon {p['epsilon']:.3g}, delta {p['delta']:.2g}) by DP-SGD ({p['mode']}), "
                      f"{p['accountant'].upper()} accountant, {p['steps']} steps, noise {p['noise_multiplier']:.3g}",
                      f"  covers: {p['covers']}"] + [f"  does NOT cover: {n}" for n in p["not_covered"]]
        last = self.stages[-1].classification if self.stages else None
        if last is not None:
            lines += ["", f"per class ({self.stages[-1].stage}):", f"{'class':>6}{'precision':>11}{'recall':>9}{'F1':>8}{'n':>6}"]
            lines += [f"{m.label:>6}{m.precision:>11.3f}{m.recall:>9.3f}{m.f1:>8.3f}{m.support:>6}" for m in last.per_class]
        if self.pruning is not None:
            lines += ["", "pruning:", self.pruning.summary()]
        if self.clustering is not None:
            lines += ["", "clustering:", self.clustering.summary()]
        if self.quantization is not None:
            lines += ["", self.quantization.summary()]
        if self.float_ops is not None:
            lines += ["", f"returned model: {self.float_ops.summary()}"]
        for s in self.stages:
            lines += [f"note ({s.stage}): {n}" for n in s.notes]
        if self.verdict:
            lines += ["", ("budget: " if self.met is not False else "BUDGET MISSED: ") + self.verdict]
        lines += [f"warning: {w}" for w in self.warnings if w != self.verdict]
        return "\n".join(lines)


def manifest_summary(report: dict[str, Any]) -> dict[str, Any]:
    """The compression summary a sealed package's manifest carries, from a compress report's JSON form:
    stages, sizes and eval accuracy, and — when the recipe measured them — the spent (epsilon, delta)
    with what it covers and does not, and the returned model's robust accuracy. ``edgeseal build`` and
    ``edgeseal seal --compress-report`` both write it."""
    stages = report["stages"]
    first, last = stages[0], stages[-1]
    out: dict[str, Any] = {"stages": [s["stage"] for s in stages], "fp32_bytes": first["size_bytes"],
                           "bytes": last["size_bytes"], "eval_accuracy": (last["classification"] or {}).get("accuracy")}
    p = report.get("privacy")
    if p:
        out["privacy"] = {k: p[k] for k in ("mechanism", "mode", "epsilon", "delta", "accountant", "noise_multiplier",
                                             "max_grad_norm", "steps", "sample_rate", "records", "covers", "not_covered")}
    r = report.get("robustness")
    if r and last.get("robust_accuracy") is not None:
        out["robustness"] = {"attack": r["attack"], "epsilons": r["epsilons"], "examples": r["examples"],
                             "robust_accuracy": last["robust_accuracy"]}
    return out


@dataclasses.dataclass(frozen=True)
class CompressResult:
    model: bytes = dataclasses.field(repr=False)
    format: str
    report: CompressReport
    torch_model: Any = dataclasses.field(default=None, repr=False)


# --------------------------------------------------------------------------- inputs


def resolve_callable(ref: str, what: str) -> Any:
    """The callable named by ``'package.module:attr'`` (recipes, ``--train-fn``); ``ConfigError`` naming ``what``."""
    mod_name, _, attr = ref.partition(":")
    try:
        obj = importlib.import_module(mod_name)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"{what} {ref!r} cannot be imported ({exc}); give 'package.module:callable' on PYTHONPATH") from None
    if not callable(obj):
        raise ConfigError(f"{what} {ref!r} is not callable")
    return obj


def load_model(path: str | Path | None = None, *, factory: str | None = None, state_dict: str | None = None) -> Any:
    """A torch module from a TorchScript or ``torch.export`` (.pt2) file, or ``factory`` + optional state dict."""
    import torch

    if path is None:
        if factory is None:
            raise ConfigError("no model: give a TorchScript/torch.export file, or [model] factory = 'module:callable'")
        model = resolve_callable(factory, "[model] factory")()
        if not isinstance(model, torch.nn.Module):
            raise ConfigError(f"[model] factory {factory!r} returned {type(model).__name__}, not a torch.nn.Module")
        if state_dict is not None:
            sd = _load_state_dict(Path(state_dict))
            try:
                model.load_state_dict(sd)
            except RuntimeError as exc:
                first = str(exc).splitlines()[0]
                raise ConfigError(f"state dict {state_dict} does not fit the factory's model: {first}") from None
        return model.eval()
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"model file {path} does not exist")
    import zipfile

    if not zipfile.is_zipfile(path):
        raise ConfigError(
            f"{path} is not a model: expected a TorchScript (torch.jit.save) or torch.export (torch.export.save) "
            "file, which are zip archives"
        )
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
    try:
        if any(n.endswith("archive_format") for n in names) or any("/models/" in n for n in names):
            return _Wrapped(torch.export.load(str(path)).module())
        if any(n.endswith("constants.pkl") for n in names) or any("/code/" in n for n in names):
            return torch.jit.load(str(path), map_location="cpu").eval()
    except Exception as exc:  # corrupt archives raise assorted errors
        raise ConfigError(f"{path} could not be loaded as a model: {str(exc).splitlines()[0]}") from None
    raise ConfigError(
        f"{path} is not a model (it looks like a plain torch.save file, e.g. a state dict); give "
        "[model] factory = 'module:callable' and state_dict = that file, or save with torch.jit.save / torch.export.save"
    )


def _wrapped_class() -> Any:
    import torch

    class Wrapped(torch.nn.Module):
        """An exported graph as an nn.Module: forward calls it; train()/eval() do not recurse into it
        (torch.export's modules refuse mode switches)."""

        def __init__(self, graph: Any) -> None:
            super().__init__()
            self.inner = graph  # not "graph": fx would confuse it with GraphModule.graph on re-export

        def forward(self, x: Any) -> Any:
            return self.inner(x)

        def train(self, mode: bool = True) -> Any:
            self.training = mode
            return self

    return Wrapped


def _Wrapped(graph: Any) -> Any:  # noqa: N802 - a factory standing in for the class
    return _wrapped_class()(graph)


def _script_to_module(model: Any, sample: np.ndarray) -> Any:
    """TorchScript -> torch.export program (TS2EPConverter) -> module, so the exporters accept it."""
    import torch
    from torch._export.converter import TS2EPConverter

    try:
        program = TS2EPConverter(model, (torch.as_tensor(sample[:2]),)).convert()
    except Exception as exc:
        raise UnsupportedError(
            f"this TorchScript model cannot be converted to a torch.export program ({str(exc).splitlines()[0]}); "
            "save it with torch.export.save, or give [model] factory + state_dict"
        ) from None
    return _Wrapped(program.module())


def _load_state_dict(path: Path) -> Any:
    import torch

    if not path.is_file():
        raise ConfigError(f"state dict {path} does not exist")
    try:
        sd = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ConfigError(f"{path} is not a torch state dict: {str(exc).splitlines()[0]}") from None
    if not isinstance(sd, dict):
        raise ConfigError(f"{path} holds a {type(sd).__name__}, not a state dict")
    return sd


def load_npz(path: str | Path, *, x_key: str | None = None, y_key: str | None = None,
             need_y: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
    """Inputs (float32) and integer labels of an ``.npz`` data set, in edgeseal's one layout
    (``edgeseal.runtime.evaluate.features_and_labels``: ``x`` + ``y``; ``input`` / ``labels`` read too)."""
    from edgeseal.runtime.evaluate import features_and_labels, read_npz

    what = f"data set {path}"
    x, y = features_and_labels(read_npz(Path(path), what), what, x_key=x_key, y_key=y_key)
    if need_y and y is None:
        raise ConfigError(f"{what} has no labels: save them as 'y' (or name the array with [data] y_key)")
    return x.astype(np.float32), None if y is None else y.astype(np.int64)


def read_split(value: Any, what: str, data: Any = None) -> tuple[np.ndarray, np.ndarray | None]:
    """A data split given as an .npz path (read with [data] x_key / y_key), an (x, y) tuple or an x array."""
    if value is None:
        return None, None  # type: ignore[return-value]
    if isinstance(value, (str, Path)):
        keys = {} if data is None else {"x_key": data.x_key, "y_key": None if what == "calibration" else data.y_key}
        return load_npz(value, need_y=what != "calibration", **keys)
    if isinstance(value, tuple):
        x, y = value
        return np.asarray(x, np.float32), None if y is None else np.asarray(y).astype(np.int64)
    return np.asarray(value, np.float32), None


def _check_shape(model: Any, x: np.ndarray, what: str, input_shape: tuple[int, ...] | None) -> None:
    import torch

    if input_shape is not None and tuple(x.shape[1:]) != tuple(input_shape):
        raise ConfigError(
            f"{what} data has samples of shape {tuple(x.shape[1:])} but the model input is {tuple(input_shape)}; "
            "give arrays shaped (N, *input_shape)"
        )
    try:
        with torch.no_grad():
            model.eval()(torch.as_tensor(x[:1]))
    except Exception as exc:
        raise ConfigError(
            f"{what} data of shape {x.shape} does not fit the model ({str(exc).splitlines()[0]}); "
            "give arrays shaped like the model input, batch first"
        ) from None


# --------------------------------------------------------------------------- the pipeline


def _accuracy(model_bytes: bytes, eval_xy: Any) -> Any:
    """Classification report of ``model_bytes`` on the eval set (None without labelled eval data)."""
    from edgeseal.converters.infer import runner_for
    from edgeseal.converters.metrics import classification_report

    x, y = eval_xy
    if x is None or y is None:
        return None
    logits = runner_for(model_bytes).run_batched(x)
    return classification_report(y, logits.argmax(-1), num_classes=logits.shape[-1])


@dataclasses.dataclass
class _Candidate:
    """One model along the pipeline, before its latency is measured (side by side with the others)."""

    name: str
    model: bytes
    params: int | None
    classification: Any
    notes: list[str]
    quantized: bool = False
    module: Any = None  # the torch module PGD attacks for this model: its own, or (int8) the float model it came from
    attack_from: str | None = None  # int8: the float candidate whose PGD examples it is measured on
    robust: list[float] | None = None  # robust accuracy (fraction) at each [robustness] epsilon
    encoded: int | None = None


def _export(model: Any, x: np.ndarray, recipe: CompressRecipe) -> Any:
    from edgeseal.converters.export import ExportConfig, export_onnx, export_tflite

    cfg = ExportConfig(opset=recipe.export.opset, supported_ops=recipe.target.supported_ops)
    if recipe.export.format is ModelFormat.TFLITE:
        return export_tflite(model, x, cfg)
    return export_onnx(model, x, cfg)


def validate_recipe(recipe: CompressRecipe) -> Any:
    """Checks that need more than one table, done before any work: the target profile and its format.

    Returns the target profile, or None for ``host`` and for a custom target given only by
    ``[target] supported_ops``.
    """
    if recipe.target.name == "host":
        return None
    from edgeseal.targets import get_profile

    try:
        profile = get_profile(recipe.target.name)
    except ConfigError:
        if recipe.target.supported_ops:  # a custom target described by its op list
            return None
        raise
    if profile.format.value != recipe.export.format.value:
        raise ConfigError(
            f"[target] {recipe.target.name!r} runs {profile.format.value} models but [export] format = "
            f"{recipe.export.format.value!r}; set [export] format = {profile.format.value!r}"
        )
    return profile


def compress(
    model: Any = None,
    recipe: CompressRecipe | str | Path | None = None,
    *,
    train: Any = None,
    calibration: Any = None,
    eval: Any = None,  # noqa: A002 - mirrors the recipe's [data] eval
    show_progress: bool = True,
) -> CompressResult:
    """Run a compress recipe on ``model`` (an ``nn.Module``, a model file path, or None for [model] factory).

    Data arguments override the recipe's [data] files: ``(x, y)`` tuples or ``.npz`` paths;
    ``calibration`` may be a bare array. Returns the final model bytes and the ``CompressReport``;
    ``report.met`` is False when no candidate held the recipe's accuracy budget (the CLI exits 1).
    """
    import copy
    import warnings

    import torch

    from edgeseal.converters import distill as dist
    from edgeseal.converters import prune as pr
    from edgeseal.converters.dp import dp_distill
    from edgeseal.converters.train import TrainConfig, fit
    from edgeseal.converters.zoo import count_params

    if recipe is None:
        recipe = CompressRecipe()
    elif not isinstance(recipe, CompressRecipe):
        recipe = load_recipe(recipe)
    profile = validate_recipe(recipe)
    if model is None or isinstance(model, (str, Path)):
        model = load_model(model, factory=recipe.model.factory, state_dict=recipe.model.state_dict)
    if not isinstance(model, torch.nn.Module):
        raise ConfigError(f"model must be a torch.nn.Module, a model file or None, got {type(model).__name__}")
    d = recipe.data
    train_xy = read_split(train if train is not None else d.train, "train", d)
    eval_xy = read_split(eval if eval is not None else d.eval, "eval", d)
    cal_x = read_split(calibration if calibration is not None else d.calibration, "calibration", d)[0]
    if cal_x is None:
        cal_x = train_xy[0] if train_xy[0] is not None else eval_xy[0]
    if cal_x is None:
        raise ConfigError("no data: give eval/calibration/train data ([data] in the recipe or the arguments)")
    for what, x in (("calibration", cal_x), ("train", train_xy[0]), ("eval", eval_xy[0])):
        if x is not None:
            _check_shape(model, x, what, recipe.model.input_shape)
    sample = eval_xy[0] if eval_xy[0] is not None else cal_x
    fmt = recipe.export.format.value
    budget = recipe.budget
    needs_training = (recipe.prune is not None or (recipe.distill is not None and recipe.distill.student is not None)
                      or recipe.dp is not None or recipe.adversarial is not None or recipe.defensive_prune is not None)
    if needs_training and (train_xy[0] is None or train_xy[1] is None):
        raise ConfigError("pruning, distillation, DP and adversarial fine-tuning train the model: give labelled train "
                          "data ([data] train)")
    if needs_training and (isinstance(model, torch.jit.ScriptModule) or type(model).__name__ == "Wrapped"):
        raise UnsupportedError(
            "pruning, distillation, DP and adversarial fine-tuning need the model's Python class; a TorchScript or "
            "torch.export file can only be exported and quantized. Use [model] factory + state_dict instead"
        )
    if isinstance(model, torch.jit.ScriptModule):
        model = _script_to_module(model, sample)
    cands: list[_Candidate] = []
    warn_list: list[str] = []
    teacher = model
    first = last_export = _export(model, sample, recipe)
    names = dict(first.layer_names)
    cands.append(_Candidate("original", first.model, _params(model), _accuracy(first.model, eval_xy), [], module=model))
    ref = None if cands[0].classification is None else 100 * cands[0].classification.accuracy
    current = model
    plan = None
    dp_result = None
    dp = recipe.dp
    if recipe.distill is not None and recipe.distill.student is not None:
        ds = recipe.distill
        torch.manual_seed(recipe.seed)
        student = resolve_callable(ds.student, "[distill] student")()
        if dp is not None:  # DP distillation of a new student (validated: no [prune] follows)
            current, dp_result = dp_distill(teacher, student, train_xy[0], _dp_config(recipe, show_progress),
                                            temperature=dp.temperature)
            name, note = "DP-distilled student", [dp_result.summary()]
        else:
            tc = TrainConfig(epochs=ds.epochs, lr=ds.lr, batch_size=ds.batch_size, seed=recipe.seed, device=recipe.device, show_progress=show_progress)
            current = dist.distill(teacher, student, *train_xy, dist.DistillConfig(temperature=ds.temperature, alpha=ds.alpha, train=tc))
            name, note = "distilled student", []
        last_export = _export(current, sample, recipe)
        names.update(last_export.layer_names)
        cands.append(_Candidate(name, last_export.model, count_params(current), _accuracy(last_export.model, eval_xy), note, module=current))
    dp_after_prune = dp is not None and dp_result is None  # DP-SGD is the training after pruning (or of the model)
    if recipe.prune is not None:
        p = recipe.prune
        current = copy.deepcopy(current)
        tc = TrainConfig(epochs=p.epochs, lr=p.lr, batch_size=p.batch_size, seed=recipe.seed, device=recipe.device, show_progress=show_progress)

        def fine_tune(m: Any, hook: Any = None) -> Any:
            if dp_after_prune:
                return m  # trained with DP-SGD below, once pruning is done
            if recipe.distill is not None and recipe.distill.student is None:
                dc = dist.DistillConfig(temperature=recipe.distill.temperature, alpha=recipe.distill.alpha, train=tc)
                return _distill_with_hook(teacher, m, train_xy, dc, hook)
            return fit(m, *train_xy, tc, after_step=hook, description="fine-tune")

        if p.method is PruneMethod.STRUCTURED:
            current, plan = pr.prune_structured(current, cal_x, pr.StructuredPruneConfig(ratio=p.ratio, importance=p.importance))
            if plan.removed_nothing:
                raise UnsupportedError(
                    f"structured pruning removed nothing: torch-pruning could not shrink {plan.untouched_summary()}. "
                    "It removes Conv/Linear output channels and keeps the classifier head; recurrent and attention "
                    "layers are left whole. Remove [prune] (or prune a model with Conv/Linear layers)",
                    reason="pruning removed nothing",
                )
            big = [lp for lp in plan.untouched if lp.params >= 0.05 * plan.params_before]
            if big:
                warn_list.append("structured pruning left these layers whole: " + ", ".join(
                    f"{lp.layer} ({lp.kind}, {lp.params:,} params = {lp.params / plan.params_before:.1%})" for lp in big))
            current = fine_tune(current)
            note = f"{plan.channels_removed:.0%} of channels removed ({plan.params_before:,} -> {plan.params_after:,} params)"
            note += "" if dp_after_prune else f", then fine-tuned {p.epochs} epochs"
        else:
            skipped = pr.unprunable_layers(current)
            total = count_params(current)
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", pr.SparsityWarning)
                # under DP, pruning happens once before DP-SGD (a gradual schedule would need non-private steps)
                cfg = pr.UnstructuredPruneConfig(amount=p.amount, scope=p.scope, gradual=p.gradual and not dp_after_prune)
                current = pr.prune_unstructured(current, cfg, fine_tune=fine_tune)
            warn_list += [str(w.message) for w in caught if issubclass(w.category, pr.SparsityWarning)]
            if skipped:
                warn_list.append("unstructured pruning masks Conv/Linear weights only; not pruned: " + ", ".join(
                    f"{lp.layer} ({lp.kind}, {lp.params:,} params = {lp.params / total:.1%})" for lp in skipped))
            note = f"{pr.sparsity(current):.0%} of Conv/Linear weights zero ({p.scope.value}, {'gradual' if cfg.gradual else 'one-shot'})"
        stage = "pruned + fine-tuned"
        if dp_after_prune:
            current, dp_result = _dp_train(recipe, teacher, current, train_xy, show_progress)
            note += f", then {dp_result.summary()}"
            stage = "pruned + DP-distilled" if dp.mode.value == "distill" else "pruned + DP fine-tuned"
        last_export = _export(current, sample, recipe)
        names.update(last_export.layer_names)
        cls = _accuracy(last_export.model, eval_xy)
        cands.append(_Candidate(stage, last_export.model, count_params(current), cls, [note], module=current))
    elif dp_after_prune:  # [dp] mode = "finetune" without [prune]: DP fine-tuning of the model itself
        current, dp_result = _dp_train(recipe, teacher, copy.deepcopy(current), train_xy, show_progress)
        last_export = _export(current, sample, recipe)
        names.update(last_export.layer_names)
        cands.append(_Candidate("DP fine-tuned", last_export.model, count_params(current),
                                _accuracy(last_export.model, eval_xy), [dp_result.summary()], module=current))
    rspec = recipe.robustness_spec()
    lo, hi = (None, None) if rspec is None else (rspec.lo, rspec.hi)
    defense = None
    if recipe.defensive_prune is not None:
        from edgeseal.converters.adversarial import DefensivePruneConfig, defensive_prune
        from edgeseal.converters.train import keep_zeros

        dps = recipe.defensive_prune
        tc = TrainConfig(epochs=dps.epochs, lr=dps.lr, batch_size=dps.batch_size, seed=recipe.seed, device=recipe.device,
                         show_progress=show_progress)
        dcfg = DefensivePruneConfig(ratio=dps.ratio, epsilon=dps.epsilon, steps=dps.steps, samples=dps.samples, lo=lo,
                                    hi=hi, seed=recipe.seed)
        ft = None if dps.epochs == 0 else (
            lambda m: fit(m, *train_xy, tc, after_step=keep_zeros(m), description="fine-tune (defensive pruning)"))
        current, defense = defensive_prune(copy.deepcopy(current), *train_xy, dcfg, fine_tune=ft)
        last_export = _export(current, sample, recipe)
        names.update(last_export.layer_names)
        cands.append(_Candidate("defensive pruned", last_export.model, count_params(current),
                                _accuracy(last_export.model, eval_xy),
                                [defense.summary() + (f", then fine-tuned {dps.epochs} epochs" if dps.epochs else "")],
                                module=current))
    if recipe.adversarial is not None:
        from edgeseal.converters.adversarial import AdversarialConfig, adversarial_finetune

        a = recipe.adversarial
        tc = TrainConfig(epochs=a.epochs, lr=a.lr, batch_size=a.batch_size, seed=recipe.seed, device=recipe.device,
                         show_progress=show_progress)
        acfg = AdversarialConfig(epsilon=a.epsilon, steps=a.steps, step_ratio=a.step_ratio, mix=a.mix, lo=lo, hi=hi, train=tc)
        current = adversarial_finetune(copy.deepcopy(current), *train_xy, acfg)
        last_export = _export(current, sample, recipe)
        names.update(last_export.layer_names)
        cands.append(_Candidate("adversarial fine-tuned", last_export.model, count_params(current),
                                _accuracy(last_export.model, eval_xy),
                                [f"PGD-{a.steps} adversarial fine-tuning at eps {a.epsilon:g}, {a.epochs} epochs, "
                                 f"{a.mix:.0%} of the loss on PGD examples"], module=current))
    creport = None
    if recipe.cluster is not None:
        if eval_xy[0] is None or eval_xy[1] is None:
            raise ConfigError("[cluster] picks centroids per layer under the accuracy budget: give labelled eval data")
        last_export, current, creport, cand = _cluster(last_export, current, recipe, cal_x, eval_xy, train_xy, ref,
                                                       sample, show_progress)
        names.update(last_export.layer_names)
        cands.append(cand)
    float_before_int8 = cands[-1]
    if ref is not None and float_before_int8.classification is not None and len(cands) > 1:
        drop = ref - 100 * float_before_int8.classification.accuracy
        if drop > budget + 1e-9:
            warn_list.append(
                f"{float_before_int8.name} alone drops {drop:.2f} points vs the original model, over the {budget:g}-point "
                "budget of the whole recipe; fine-tune longer, prune less, or raise max_drop")
    final_export = last_export
    model_bytes = final_export.model
    qreport = None
    if recipe.quantize is not None and recipe.quantize.mode is not QuantMode.NONE:
        pre_drop = 0.0 if ref is None or float_before_int8.classification is None else ref - 100 * float_before_int8.classification.accuracy
        searching = pre_drop <= budget + 1e-9  # no point keeping layers in float when the float model misses already
        model_bytes, qreport, notes = _quantize(final_export.model, fmt, recipe, cal_x, eval_xy, show_progress, ref, searching)
        if recipe.target.supported_ops:
            from edgeseal.converters.export import check_ops, onnx_ops, tflite_ops

            ops = tflite_ops(model_bytes) if fmt == "tflite" else onnx_ops(model_bytes)
            check_ops(ops, recipe.target.supported_ops, target=f"target {recipe.target.name!r}")
        label = "int4 weights" if recipe.quantize.bits == 4 else f"int8 {recipe.quantize.mode.value}"
        cands.append(_Candidate(label, model_bytes, None, _accuracy(model_bytes, eval_xy), notes, True,
                                module=current, attack_from=float_before_int8.name,
                                encoded=_encoded(model_bytes) if creport is not None else None))
        qs = recipe.quantize
        if qreport is not None and not qreport.met and qs.qat_epochs > 0:
            if train_xy[0] is None or train_xy[1] is None or type(current).__name__ == "Wrapped" or isinstance(current, torch.jit.ScriptModule):
                warn_list.append("quantization-aware fine-tuning needs labelled train data and the model's Python class; skipped")
            else:
                from edgeseal.converters.qat import QatConfig, qat_finetune

                tc = TrainConfig(epochs=qs.qat_epochs, lr=qs.qat_lr, seed=recipe.seed, device=recipe.device, show_progress=show_progress)
                qat_model = qat_finetune(copy.deepcopy(current), *train_xy, QatConfig(train=tc))
                qat_export = _export(qat_model, sample, recipe)
                names.update(qat_export.layer_names)
                qat_bytes, qat_report, qat_notes = _quantize(qat_export.model, fmt, recipe, cal_x, eval_xy, show_progress, ref, True)
                qat_notes = [f"after {qs.qat_epochs} epochs of quantization-aware fine-tuning"] + qat_notes
                cands.append(_Candidate(f"int8 {qs.mode.value} + QAT", qat_bytes, None, _accuracy(qat_bytes, eval_xy), qat_notes, True,
                                            module=qat_model, attack_from="the QAT float model"))
                if qat_report is not None and (qat_report.met or qat_report.chosen_step.drop < qreport.chosen_step.drop):
                    model_bytes, qreport, final_export, current = qat_bytes, qat_report, qat_export, qat_model
    if profile is not None:  # a target profile from edgeseal.targets checks format and ops
        from edgeseal.targets.ops import require_supported

        require_supported(model_bytes, recipe.target.name)
    chosen = next(c for c in reversed(cands) if c.model is model_bytes)
    extra = {"eval_xy": eval_xy, "dp_result": dp_result, "defense": defense,
             "calibration_is_train": calibration is None and d.calibration is None, "creport": creport}
    return _finish(recipe, cands, chosen, sample, names, ref, budget, plan, qreport, final_export, warn_list, current,
                   **extra)


def _finish(recipe: CompressRecipe, cands: list[_Candidate], chosen: _Candidate, sample: np.ndarray,
            names: dict[str, str], ref: float | None, budget: float, plan: Any, qreport: Any, final_export: Any,
            warn_list: list[str], current: Any, *, eval_xy: Any = (None, None), dp_result: Any = None,
            defense: Any = None, calibration_is_train: bool = False, creport: Any = None) -> CompressResult:
    """Measure every candidate side by side, read what stayed float off the final graph, and judge the budget
    (clean accuracy, and robust accuracy when the recipe requires one)."""
    from edgeseal.converters.float_ops import float_ops
    from edgeseal.converters.latency import time_side_by_side

    robustness = _robustness(cands, recipe.robustness_spec(), eval_xy)
    privacy = None if dp_result is None else _privacy(dp_result, recipe, calibration_is_train)
    if privacy is not None and privacy["not_covered"][0].startswith("the int8 calibration"):
        warn_list.append("[dp]: " + privacy["not_covered"][0])

    runs = recipe.latency_runs
    models = {c.name: c.model for c in cands}
    speed = time_side_by_side(models, sample[:1], baseline="original", rounds=max(5, runs // 10),
                              calls_per_round=min(10, runs), warmup=min(20, runs))
    fops = float_ops(chosen.model, sample, names=names)
    fids = _fidelities(cands, sample)
    for c in cands:
        if c.quantized and c is not chosen:  # the returned model's line is printed once, below the table
            c.notes.append(float_ops(c.model, sample, names=names).summary())
    stages = tuple(
        StageReport(c.name, recipe.export.format.value, len(c.model), len(zlib.compress(c.model, 9)), c.params, c.classification, speed.latency[c.name],
                    tuple(c.notes), speed.ratio[c.name], None if c.robust is None else tuple(c.robust),
                    fids.get(c.name), encoded_bytes=c.encoded)
        for c in cands
    )
    final_acc = None if chosen.classification is None else 100 * chosen.classification.accuracy
    drop = None if ref is None or final_acc is None else ref - final_acc
    met = None if drop is None else drop <= budget + 1e-9
    if chosen.quantized:
        float_in = next(c for c in reversed(cands) if not c.quantized)
        ratio = speed.ratio[chosen.name] / speed.ratio[float_in.name]
        # slower beyond the noise: every quartile of the per-round ratios below 1 (vs the original), else 5% slower
        consistently = speed.ratio_iqr[chosen.name][1] < 1.0 if float_in.name == speed.baseline else ratio < 0.95
        if ratio < 1.0 and consistently:
            warn_list.append(_int8_slower(ratio, float_in.name, fops, recipe))
        if len(chosen.model) >= len(float_in.model):
            warn_list.append(
                f"the int8 file ({len(chosen.model):,} bytes) is not smaller than {float_in.name} "
                f"({len(float_in.model):,} bytes): in a model this small the quantization parameters and "
                f"{fops.conversions} quantize/dequantize ops outweigh the 4x smaller weights")
        if recipe.quantize is not None and recipe.quantize.mode is QuantMode.DYNAMIC:
            convs = [o for o in fops.weighted_float() if o.op_type in ("Conv", "ConvTranspose")]
            if convs:
                warn_list.append(
                    f"dynamic int8 quantizes MatMul/Gemm only: {len(convs)} Conv layers stayed float "
                    f"({sum(o.params for o in convs) / max(1, fops.params):.1%} of parameters); use mode = 'static' for CNNs")
        rec = [o for o in fops.weighted_float() if o.op_type in ("GRU", "LSTM", "RNN")]
        if rec:
            warn_list.append(
                "recurrent layers stayed float (no int8 kernel for them here): "
                + ", ".join(f"{o.name} ({o.op_type}, {o.params / max(1, fops.params):.1%} of parameters)" for o in rec))
    verdict = _verdict(cands, chosen, ref, drop, budget, met, qreport)
    robust_req = _robust_requirement(recipe, chosen, robustness)
    if robust_req is not None:
        verdict += "; " + robust_req["verdict"]
        if robust_req["met"] is False:
            met = False
    if met is False:
        warn_list.append(verdict)
    report = CompressReport(stages, plan, qreport, final_export, tuple(warn_list), budget=budget, reference_accuracy=ref,
                            final_drop=drop, met=met, verdict=verdict, float_ops=fops, speed=speed, privacy=privacy,
                            robustness=robustness, robust_requirement=robust_req,
                            defense=None if defense is None else defense.to_dict(), clustering=creport)
    return CompressResult(chosen.model, stages[0].format, report, current)


def _fidelities(cands: list[_Candidate], x: np.ndarray) -> dict[str, Any]:
    """Each candidate's top-1 agreement / top-5 overlap / logit SQNR against the original on ``x``; {} when the
    outputs are not (samples, classes) scores (e.g. one value per sample)."""
    from edgeseal.converters.infer import runner_for
    from edgeseal.runtime.fidelity import fidelity

    ref = runner_for(cands[0].model).run_batched(x)
    if ref.ndim < 2 or ref.reshape(len(ref), -1).shape[1] < 2:
        return {}
    out = {}
    for c in cands:
        try:
            out[c.name] = fidelity(ref, ref if c is cands[0] else runner_for(c.model).run_batched(x))
        except ConfigError:  # a stage whose outputs changed shape: nothing to compare
            continue
    return out


def _robust_requirement(recipe: CompressRecipe, chosen: _Candidate, robustness: dict[str, Any] | None) -> dict[str, Any] | None:
    """``min_robust_accuracy`` at ``robust_epsilon`` checked on the returned model (None when not required)."""
    if recipe.min_robust_accuracy is None:
        return None
    need, eps = float(recipe.min_robust_accuracy), float(recipe.robust_epsilon)
    req = {"min_robust_accuracy": need, "epsilon": eps, "robust_accuracy": None, "met": None}
    if robustness is None or chosen.robust is None:
        req["verdict"] = (f"the robust-accuracy requirement ({need:g}% at eps {eps:g}) was not checked: it needs "
                          "labelled eval data and a model PGD can differentiate")
        return req
    got = 100 * chosen.robust[robustness["epsilons"].index(eps)]
    req.update(robust_accuracy=got, met=got + 1e-9 >= need)
    req["verdict"] = (f"{chosen.name} keeps {got:.2f}% robust accuracy under PGD at eps {eps:g}: "
                      + ("meets" if req["met"] else "MISSES") + f" the required {need:g}%"
                      + ("" if req["met"] else " (add [adversarial] fine-tuning, or lower min_robust_accuracy)"))
    return req


def _verdict(cands: list[_Candidate], chosen: _Candidate, ref: float | None, drop: float | None, budget: float,
             met: bool | None, qreport: Any) -> str:
    if drop is None:
        return f"no labelled eval data: the {budget:g}-point budget was not checked; returned {chosen.name}"
    if met:
        return (f"{chosen.name} drops {drop:.2f} points vs the original model ({ref:.2f}%): within the {budget:g}-point "
                "budget of the whole recipe")
    why = f"{chosen.name} has the smallest drop of the candidates tried"
    if qreport is not None:
        step = qreport.chosen_step
        kept = f"{len(step.excluded)} layers excluded from int8" if step.excluded else "every layer int8"
        why = (f"{chosen.name} attempt {qreport.chosen % len(qreport.steps) + 1} of {len(qreport.steps)} ({kept}) "
               f"has the smallest drop of the int8 attempts")
    floats = [c for c in cands if not c.quantized and c.classification is not None and c.name != "original"]
    extra = "".join(f"; {c.name} alone: {ref - 100 * c.classification.accuracy:.2f} points" for c in floats)
    return (f"no candidate met the {budget:g}-point budget vs the original model ({ref:.2f}%): kept {chosen.name} "
            f"with a {drop:.2f}-point drop because {why}{extra}")


def _cpu_flags() -> set[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith(("flags", "Features")):
            return set(line.split(":", 1)[1].split())
    return set()


def _int8_slower(ratio: float, float_name: str, fops: Any, recipe: CompressRecipe) -> str:
    """Why int8 can be slower than float on this machine, from facts about the model and the CPU, and what to try."""
    import platform

    reasons = []
    flags = _cpu_flags()
    machine = platform.machine()
    if machine in ("x86_64", "AMD64") and flags and not flags & {"avx512_vnni", "avx_vnni", "amx_int8"}:
        reasons.append("this CPU has no int8 dot-product instructions (no AVX512-VNNI / AVX-VNNI), so int8 "
                       "matrix kernels gain little over fp32 FMA")
    elif machine in ("aarch64", "arm64") and flags and "asimddp" not in flags:
        reasons.append("this CPU has no int8 dot-product instructions (no asimddp / SDOT)")
    if fops.macs and fops.macs < 5_000_000:
        reasons.append(f"the model is small ({fops.macs:,} MACs per sample), so per-op overhead outweighs the "
                       "arithmetic int8 saves")
    if fops.conversions:
        reasons.append(f"the graph has {fops.conversions} quantize/dequantize ops")
    if fops.float_ops:
        reasons.append(f"{len(fops.float_ops)} ops still compute in float between int8 ops")
    fmt = recipe.export.format.value
    suggestion = ("measure on the target device (`edgeseal verify --device ...`), where ARM int8 kernels usually win; "
                  "if speed on this CPU matters more than size, keep the float model")
    if fmt == "onnx" and recipe.quantize is not None and recipe.quantize.mode is QuantMode.STATIC:
        suggestion += "; for MatMul-heavy models try [quantize] mode = 'dynamic'"
    return (f"int8 is {1 / ratio:.2f}x slower than {float_name} on this machine (measured side by side): "
            + "; ".join(reasons or ["no single cause found"]) + f". Try: {suggestion}")


def _params(model: Any) -> int | None:
    try:
        return int(sum(p.numel() for p in model.parameters()))
    except Exception:
        return None


def _dp_config(recipe: CompressRecipe, show_progress: bool) -> Any:
    from edgeseal.converters.dp import DpConfig

    d = recipe.dp
    return DpConfig(epsilon=d.epsilon, delta=d.delta, max_grad_norm=d.max_grad_norm, epochs=d.epochs, lr=d.lr,
                    batch_size=d.batch_size, seed=recipe.seed, device=recipe.device, show_progress=show_progress)


def _dp_train(recipe: CompressRecipe, teacher: Any, model: Any, train_xy: Any, show_progress: bool) -> Any:
    """The [dp] stage on ``model`` (pruned, or the model itself): DP fine-tuning or DP distillation from ``teacher``."""
    from edgeseal.converters.dp import dp_distill, dp_finetune

    cfg = _dp_config(recipe, show_progress)
    if recipe.dp.mode.value == "distill":
        return dp_distill(teacher, model, train_xy[0], cfg, temperature=recipe.dp.temperature)
    return dp_finetune(model, *train_xy, cfg)


def _privacy(dp_result: Any, recipe: CompressRecipe, calibration_is_train: bool) -> dict[str, Any]:
    """The report's (and the manifest's) privacy section: what DP-SGD spent and exactly what it covers."""
    d = dp_result.to_dict()
    not_covered = list(d.pop("not_covered"))
    quantized = recipe.quantize is not None and recipe.quantize.mode is not QuantMode.NONE
    if quantized and calibration_is_train:
        not_covered.insert(0, "the int8 calibration of this model, which read activation ranges of the train records "
                              "(no separate [data] calibration was given): give public calibration data")
    return {"mechanism": "DP-SGD (Opacus, Poisson sampling, per-example clipping, Gaussian noise)", **d,
            "not_covered": not_covered}


def _robustness(cands: list[_Candidate], spec: Any, eval_xy: Any) -> dict[str, Any] | None:
    """Robust accuracy of every candidate's exported model under PGD; None without labelled eval data."""
    from edgeseal.converters.adversarial import pgd, robust_accuracy
    from edgeseal.converters.infer import runner_for

    x, y = eval_xy
    if spec is None or x is None or y is None:
        return None
    xs, ys = x[: spec.examples], y[: spec.examples]
    examples: dict[int, list[np.ndarray]] = {}  # id(module) -> PGD examples per epsilon
    stages: dict[str, Any] = {}
    for c in cands:
        if c.module is None:
            continue
        key = id(c.module)
        if key not in examples:
            try:
                examples[key] = [pgd(c.module, xs, ys, e, steps=spec.steps, step=spec.step_ratio * e, lo=spec.lo,
                                     hi=spec.hi, seed=0) for e in spec.epsilons]
            except Exception as exc:  # noqa: BLE001 - e.g. a torch.export graph without gradients
                c.notes.append(f"robust accuracy not measured: PGD needs gradients of the model ({str(exc).splitlines()[0]})")
                continue
        run = runner_for(c.model).run_batched
        c.robust = [robust_accuracy(run, xa, ys) for xa in examples[key]]
        stages[c.name] = {"accuracy": c.robust, "attacked": "transferred from " + c.attack_from if c.attack_from
                          else "white-box on this model"}
    return {"attack": f"PGD, L-inf, {spec.steps} steps of {spec.step_ratio:g} * eps, random start (seed 0), "
                      "cross-entropy", "epsilons": list(spec.epsilons), "examples": int(len(xs)),
            "input_range": None if spec.lo is None else [spec.lo, spec.hi], "stages": stages}


def _distill_with_hook(teacher: Any, student: Any, train_xy: Any, config: Any, hook: Any) -> Any:
    import torch

    from edgeseal.converters.distill import distillation_loss
    from edgeseal.converters.train import fit

    teacher = teacher.eval()

    def loss_fn(logits: Any, labels: Any, inputs: Any) -> Any:
        with torch.no_grad():
            t = teacher.to(inputs.device)(inputs)
        return distillation_loss(logits, t, labels, temperature=config.temperature, alpha=config.alpha)

    out = fit(student, *train_xy, config.train, loss_fn=loss_fn, after_step=hook, description="distill fine-tune")
    teacher.cpu()
    return out


def _quantize(float_model: bytes, fmt: str, recipe: CompressRecipe, cal_x: np.ndarray, eval_xy: Any, show_progress: bool,
              reference: float | None, search: bool):
    """int8 within the recipe's budget, measured against ``reference`` (the original model's accuracy);
    ``search=False`` only tries all-int8 (the float model already misses the budget)."""
    from edgeseal.converters import quantize as q
    from edgeseal.converters.infer import runner_for
    from edgeseal.converters.localize import quantize_within_budget

    qs = recipe.quantize
    x, y = eval_xy
    if qs.bits == 4:
        return _int4(float_model, recipe, cal_x, eval_xy, reference, search)
    if fmt == "tflite":
        from edgeseal.converters.localize import tflite_within_budget

        tcfg = q.TfliteInt8Config(samples=qs.samples)
        if x is None or y is None:
            return q.quantize_tflite_int8(float_model, cal_x, tcfg), None, ["no labelled eval data: accuracy budget not checked"]
        acc = lambda b: 100 * float((runner_for(b).run_batched(x).argmax(-1) == y).mean())  # noqa: E731
        out, report = tflite_within_budget(
            float_model, cal_x, tcfg, score=acc, max_drop=recipe.budget, probe=cal_x,
            metric="accuracy (points)", max_excluded=qs.max_excluded if search else 0, show_progress=show_progress,
            reference_score=reference,
        )
        return out, report, ["TFLite int8 (ai-edge-quantizer)"]
    notes: list[str] = []
    if qs.smooth_alpha is not None:
        from edgeseal.converters.smooth import SmoothConfig, smooth_onnx

        float_model, smoothed = smooth_onnx(q.preprocess_onnx(float_model), cal_x, SmoothConfig(alpha=qs.smooth_alpha))
        notes.append(f"smoothed {len(smoothed)} MatMuls (alpha {qs.smooth_alpha})")
    pre = qs.smooth_alpha is None
    activations = qs.activations or _profile_activations(recipe.target.name)
    if qs.mode is QuantMode.DYNAMIC:
        cfg: Any = q.OnnxDynamicConfig(per_channel=qs.per_channel, exclude_nodes=qs.exclude_nodes, preprocess=pre)
    else:
        cfg = q.OnnxStaticConfig(
            calibration=qs.calibration,
            percentile=qs.percentile,
            per_channel=qs.per_channel,
            activation_type=activations,
            symmetric_activations=qs.symmetric_activations,
            samples=qs.samples,
            exclude_nodes=qs.exclude_nodes,
            exclude_op_types=qs.exclude_op_types,
            preprocess=pre,
        )
    if x is None or y is None:
        out = q.quantize_onnx_dynamic(float_model, cfg) if qs.mode is QuantMode.DYNAMIC else q.quantize_onnx_static(float_model, cal_x, cfg)
        return out, None, notes + ["no labelled eval data: accuracy budget not checked"]
    score = lambda b: 100 * float((runner_for(b).run_batched(x).argmax(-1) == y).mean())  # noqa: E731
    out, report = quantize_within_budget(
        float_model,
        cfg,
        score=score,
        max_drop=recipe.budget,
        calibration=cal_x,
        probe=cal_x,
        metric="accuracy (points)",
        max_excluded=qs.max_excluded if search else 0,
        ranking=qs.ranking,
        show_progress=show_progress,
        reference_score=reference,
    )
    return out, report, notes


def _int4(float_model: bytes, recipe: CompressRecipe, cal_x: np.ndarray, eval_xy: Any, reference: float | None,
          search: bool):
    """int4 block-wise weight-only MatMuls (``converters.int4``) within the recipe's budget."""
    from edgeseal.converters.infer import runner_for
    from edgeseal.converters.int4 import Int4Config, int4_within_budget, quantize_onnx_int4
    from edgeseal.converters.quantize import as_feeds

    qs = recipe.quantize
    cfg = Int4Config(algorithm=qs.algorithm, block_size=qs.block_size, exclude_nodes=qs.exclude_nodes)
    x, y = eval_xy
    if x is None or y is None:
        return quantize_onnx_int4(float_model, cfg), None, ["no labelled eval data: accuracy budget not checked"]
    score = lambda b: 100 * float((runner_for(b).run_batched(x).argmax(-1) == y).mean())  # noqa: E731
    probe = as_feeds(float_model, cal_x, limit=min(qs.samples, 64))
    out, report = int4_within_budget(float_model, cfg, score=score, max_drop=recipe.budget, probe=probe,
                                     fallback=qs.fallback, max_fallback=qs.max_excluded if search else 0,
                                     reference_score=reference)
    return out, report, [report.summary()]


def _encoded(model: bytes) -> int:
    from edgeseal.converters.cluster import encoded_size

    return encoded_size(model)[0].total


def _cluster(export: Any, torch_model: Any, recipe: CompressRecipe, cal_x: np.ndarray, eval_xy: Any, train_xy: Any,
             reference: float | None, sample: np.ndarray, show_progress: bool):
    """Cluster the exported model's weights under the budget, then (``epochs`` > 0) fine-tune the centroids and
    export again. Returns (export, torch model, ClusterReport, candidate)."""
    import copy

    from edgeseal.converters import cluster as cl
    from edgeseal.converters.infer import runner_for

    x, y = eval_xy
    score = lambda b: 100 * float((runner_for(b).run_batched(x).argmax(-1) == y).mean())  # noqa: E731

    cfg = recipe.cluster.config(max_drop=recipe.budget, seed=recipe.seed)
    model, report, tensors = cl.cluster_onnx(export.model, cal_x, score, cfg, reference_score=reference)
    notes = [f"{len(report.layers)} weight tensors clustered; {len(report.steps)} allocations scored"]
    if cfg.epochs > 0 and train_xy[0] is not None and train_xy[1] is not None:
        before = report.score
        tuned, names = cl.finetune_centroids(copy.deepcopy(torch_model), export.model, tensors, train_xy, cfg,
                                             show_progress=show_progress)
        refit = _export(tuned, sample, recipe)
        if names:
            # layers not matched in torch (e.g. batch-norm folded) keep their ONNX-side clusters
            matched_inits = cl.weight_initializers(refit.model, min_params=cfg.min_params)
            untouched = {n: t.values for n, t in tensors.items() if n in matched_inits and
                         len(np.unique(_init(refit.model, n))) > (1 << max(cfg.bits))}
            tuned_model = cl.apply_clusters(refit.model, untouched) if untouched else refit.model
            tuned_score = score(tuned_model)
            if tuned_score >= before:
                export = dataclasses.replace(refit, model=tuned_model)
                model, torch_model = tuned_model, tuned
                report = dataclasses.replace(report, score=tuned_score, score_before_finetune=before, finetuned=names)
                notes.append(f"centroids fine-tuned {cfg.epochs} epochs in {len(names)} layers: {before:.2f}% -> "
                             f"{tuned_score:.2f}%")
            else:
                notes.append(f"centroid fine-tuning lowered accuracy ({before:.2f}% -> {tuned_score:.2f}%): not kept")
        else:
            notes.append("no torch weight equals an exported clustered weight (batch-norm folded?): centroids not "
                         "fine-tuned")
    else:
        export = dataclasses.replace(export, model=model)
    if export.model is not model:
        export = dataclasses.replace(export, model=model)
    size = cl.encoded_size(model)[0]
    notes.append(f"codebook-encoded: {size.tensor_bytes:,} B of weights + {size.graph_bytes:,} B graph (zlib) = "
                 f"{size.total:,} B (the ONNX file itself stays float32: {size.onnx_bytes:,} B)")
    cls = _accuracy(model, eval_xy)
    return export, torch_model, report, _Candidate("clustered", model, None, cls, notes, False, module=torch_model,
                                                   encoded=size.total)


def _init(model: bytes, name: str) -> np.ndarray:
    import onnx
    from onnx import numpy_helper

    return next(numpy_helper.to_array(i) for i in onnx.load_from_string(model).graph.initializer if i.name == name)


def _profile_activations(target: str) -> str:
    """The activation type the target's kernels run fast (its profile's [quantization]); uint8 for ``host``."""
    if target == "host":
        return "uint8"
    from edgeseal.targets import get_profile

    return get_profile(target).quantization.activations


# --------------------------------------------------------------------------- CLI


def add_parser(subparsers: Any) -> None:
    """Register ``edgeseal compress``."""
    p = subparsers.add_parser(
        "compress",
        help="prune / distill / quantize a PyTorch model and export it (ONNX or TFLite)",
        description="Run a TOML compress recipe on a model and write the compressed model plus a report.",
    )
    p.add_argument("model", nargs="?", help="TorchScript or torch.export file (omit to use [model] factory)")
    p.add_argument("--recipe", required=True, help="TOML recipe file")
    p.add_argument("--train", help=".npz with x, y for fine-tuning (overrides [data] train)")
    p.add_argument("--calibration", help=".npz with x for calibration (overrides [data] calibration)")
    p.add_argument("--eval", help=".npz with x, y for evaluation (overrides [data] eval)")
    p.add_argument("--max-drop", type=float,
                   help="accuracy budget of the whole recipe, in points vs the original model (overrides max_drop)")
    p.add_argument("-o", "--out", required=True, help="where to write the compressed model")
    p.add_argument("--report", help="where to write the JSON report (default: OUT + .report.json)")
    p.add_argument("--quiet", action="store_true", help="no progress bars and no table")
    p.add_argument("--cache-dir", help="stage cache: reuse an identical earlier run's model and report (same recipe, "
                                       "files, factory source and edgeseal code) instead of compressing again")
    p.set_defaults(func=_cli)


def _cli(args: argparse.Namespace) -> dict[str, Any]:
    """Write the model and the JSON report; exit 1 when no candidate met the budget (the model is still written).

    With ``--cache-dir`` the run is one stage of edgeseal's stage pipeline (:mod:`edgeseal.stages`): its
    key covers the recipe, the content of every file it names (model, weights, data), the source of a
    user's model factory and the edgeseal code; an identical earlier run's model and report come back
    byte for byte instead of compressing again."""
    from ..config import config_to_dict
    from ..stages import StageCache, Stages, content_inputs

    recipe = load_recipe(args.recipe)
    if args.max_drop is not None:
        recipe = dataclasses.replace(recipe, max_drop=args.max_drop)
    quiet = args.quiet or getattr(args, "json", False)
    status = (lambda line: None) if quiet else (lambda line: print(f"edgeseal compress: {line}", file=sys.stderr))

    def run() -> dict[str, bytes]:
        result = compress(args.model, recipe, train=args.train, calibration=args.calibration, eval=args.eval,
                          show_progress=not quiet)
        return {"model": result.model, "report.json": result.report.to_json().encode(),
                "report.txt": result.report.render().encode()}

    cached = False
    if args.cache_dir:  # the key's digests (code, recipe files, data) only when there is a cache
        stages = Stages(StageCache(Path(args.cache_dir)), status)
        inputs = {"recipe": content_inputs(config_to_dict(recipe)),
                  "files": content_inputs({"model": args.model, "train": args.train, "calibration": args.calibration,
                                           "eval": args.eval})}
        files = stages.run("compress", "compress", inputs, run, main="model")
        cached = stages.records[-1].cached
    else:
        files = run()
    report = json.loads(files["report.json"])
    met = report["budget"]["met"]
    out = Path(args.out)
    out.write_bytes(files["model"])
    report_path = Path(args.report) if args.report else out.with_name(out.name + ".report.json")
    report_path.write_bytes(files["report.json"])
    text = "" if args.quiet else files["report.txt"].decode() + "\n\n"
    if cached:
        text += f"(from the stage cache {args.cache_dir}: recipe, files and code unchanged since that run)\n"
    text += f"wrote {out} ({len(files['model']):,} bytes) and {report_path}"
    if met is False:
        text += "\nexit 1: the accuracy budget was not met (see BUDGET MISSED above)"
    return {"model": str(out), "report_path": str(report_path), "size_bytes": len(files["model"]),
            "met": met, "report": report, "cached": cached, "text": text, "exit_code": 1 if met is False else 0}


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry point (``python -m edgeseal.compress``) until the CLI wires ``add_parser``."""
    from ..cli.app import main as cli_main

    return cli_main(sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":
    sys.exit(main())
