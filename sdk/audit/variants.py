"""Build the artifacts the audit compares: compressed and mitigated variants of the fp32 target,
exported with ``edgeseal.converters``, sealed with ``edgeseal.seal`` and opened again with
``edgeseal.runtime.load`` so every black-box attack runs on the package that ships.
"""

from __future__ import annotations

import copy
import zlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .artifacts import ArtifactBase, OnnxArtifact, SealedArtifact
from .config import Variant, VariantConfig
from .data import Dataset
from .training import TrainConfig, make_mlp

__all__ = ["BuiltVariant", "Sealer", "build_variant", "export_onnx_checked", "quantize_int8"]


@dataclass(kw_only=True)
class BuiltVariant:
    variant: Variant
    artifact: ArtifactBase
    module: Any  # the torch module it came from (for the record; attacks use ``artifact``)
    info: dict[str, Any] = field(default_factory=dict)


class Sealer:
    """Seals each artifact for one throw-away device key and opens it through the runtime."""

    def __init__(self, *, enabled: bool = True) -> None:
        self.enabled = enabled
        if enabled:
            from edgeseal.runtime.keys import generate_device_key, generate_publisher_key

            self._publisher = generate_publisher_key()
            self._device = generate_device_key()

    def artifact(self, onnx: bytes, *, name: str, kind: str, summary: dict[str, Any]) -> ArtifactBase:
        if not self.enabled:
            return OnnxArtifact(name=name, kind=kind, model=onnx,
                                metadata={"sealed": False, "deflated_bytes": len(zlib.compress(onnx, 9))})
        from edgeseal import seal

        package = seal(onnx, publisher=self._publisher, devices=[self._device.public_key()], name=name,
                       compression_summary=summary)
        return SealedArtifact(name=name, kind=kind, package=package, size_bytes=len(onnx),
                              load_options={"key": self._device, "trusted": [self._publisher.public_key()],
                                            "threads": 1},
                              metadata={"sealed": True, "package_bytes": len(package),
                                        "deflated_bytes": len(zlib.compress(onnx, 9))})


def export_onnx_checked(module, sample: np.ndarray) -> bytes:
    """fp32 ONNX with a dynamic batch axis, checked against torch on ``sample``.

    The audit exports dozens of small MLPs per run, so it uses torch's TorchScript
    exporter (~0.1 s each; the torch.export-based one in ``edgeseal.converters`` takes
    seconds) and falls back to ``converters.export.export_onnx`` when that fails.
    """
    import io
    import warnings

    import torch

    from edgeseal.runtime.errors import InternalError

    module.eval()
    x = np.asarray(sample[:32], np.float32)
    try:
        buf = io.BytesIO()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(module, (torch.from_numpy(x[:2]),), buf, input_names=["input"], output_names=["output"],
                              dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}}, opset_version=17,
                              dynamo=False)
        data = buf.getvalue()
    except Exception:  # noqa: BLE001 - any exporter failure: take the maintained path
        from edgeseal.converters.export import ExportConfig, export_onnx

        return export_onnx(module, sample, ExportConfig(check_samples=32, atol=1e-3)).model
    from edgeseal.converters.infer import OnnxRunner

    got = OnnxRunner(data, threads=None).run(x)
    with torch.no_grad():
        want = module(torch.from_numpy(x)).numpy()
    err = float(np.abs(got - want).max())
    if err > 1e-3:
        raise InternalError(f"exported ONNX differs from torch by {err:.3g}; please report")
    return data


def quantize_int8(onnx: bytes, calibration: np.ndarray, samples: int) -> bytes:
    from edgeseal.converters.quantize import OnnxStaticConfig, quantize_onnx_static

    return quantize_onnx_static(onnx, calibration, OnnxStaticConfig(samples=samples))


def build_variant(variant: Variant, fp32, ds: Dataset, members: np.ndarray, *, opts: VariantConfig,
                  train: TrainConfig, epsilons: tuple[float, ...], sealer: Sealer, seed: int,
                  fp32_onnx: bytes) -> BuiltVariant:
    """Build one variant of the fp32 target trained on ``members`` (indices into ``ds``)."""
    from edgeseal.converters.prune import sparsity

    from .mitigations import adversarial_finetune, dp_sgd_train

    variant = Variant(variant)
    xm, ym = ds.x[members], ds.y[members]
    calib = xm[: opts.calibration_samples]
    info: dict[str, Any] = {}
    if variant is Variant.INT8:
        module = fp32
        onnx = quantize_int8(fp32_onnx, calib, opts.calibration_samples)
        info.update(scheme="ONNX static QDQ int8, per-channel symmetric weights, uint8 activations, minmax",
                    calibration="members", calibration_samples=int(len(calib)))
    elif variant in (Variant.PRUNED, Variant.PRUNED_ADVFT):
        import warnings

        from edgeseal.converters.prune import UnstructuredPruneConfig, prune_unstructured
        from edgeseal.converters.train import TrainConfig as FitConfig
        from edgeseal.converters.train import fit

        eps = epsilons[opts.adv_epsilon_index]

        def fine_tune(model, _hook):  # masks stay attached: pruned weights stay zero
            fit(model, xm, ym, FitConfig(epochs=opts.prune_finetune_epochs, lr=train.lr, batch_size=train.batch_size,
                                         seed=seed + 11, device="cpu", show_progress=False))
            if variant is Variant.PRUNED_ADVFT:
                adversarial_finetune(model, xm, ym, eps=eps, epochs=opts.adv_epochs, batch_size=train.batch_size,
                                     lr=train.lr, lo=ds.lo, hi=ds.hi, seed=seed + 13)
            return model

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # SparsityWarning: the report shows raw and deflated sizes itself
            module = prune_unstructured(copy.deepcopy(fp32), UnstructuredPruneConfig(amount=opts.prune_amount,
                                                                                     gradual=False),
                                        fine_tune=fine_tune)
        info.update(method="edgeseal.converters.prune.prune_unstructured: global L1, one shot, then fine-tune "
                           "with the masks kept", amount=opts.prune_amount, finetune_epochs=opts.prune_finetune_epochs)
        if variant is Variant.PRUNED_ADVFT:
            info.update(adversarial_epsilon=eps, adversarial_epochs=opts.adv_epochs, adversarial_attack="PGD-7")
        info["sparsity"] = sparsity(module)
        onnx = export_onnx_checked(module, calib)
    elif variant is Variant.DISTILLED:
        from edgeseal.converters.distill import DistillConfig, distill
        from edgeseal.converters.train import TrainConfig as FitConfig

        student = make_mlp(ds.n_features, ds.n_classes, opts.student_hidden, seed=seed + 17)
        cfg = DistillConfig(temperature=opts.distill_temperature, alpha=opts.distill_alpha,
                            train=FitConfig(epochs=opts.distill_epochs, lr=train.lr, batch_size=train.batch_size,
                                            seed=seed + 19, device="cpu", show_progress=False))
        module = distill(fp32, student, xm, ym, cfg)
        info.update(method="edgeseal.converters.distill.distill", student_hidden=list(opts.student_hidden),
                    temperature=opts.distill_temperature, alpha=opts.distill_alpha, epochs=opts.distill_epochs,
                    transfer_set="members")
        onnx = export_onnx_checked(module, calib)
    elif variant is Variant.DP_SGD:
        module = make_mlp(ds.n_features, ds.n_classes, train.hidden, seed=seed + 23)
        delta = opts.dp_delta if opts.dp_delta is not None else 1.0 / (10 * len(members))
        module, dp = dp_sgd_train(module, xm, ym, epsilon=opts.dp_epsilon, delta=delta, epochs=opts.dp_epochs,
                                  max_grad_norm=opts.dp_max_grad_norm, lr=opts.dp_lr,
                                  batch_size=train.batch_size, seed=seed + 29)
        info.update(dp.to_dict())
        # Shipped as fp32 ONNX: any later step is post-processing and keeps (epsilon, delta). An int8
        # calibration on the members would leak their activation ranges outside the DP accounting.
        info.update(init="random (data-independent): epsilon covers all use of the members")
        onnx = export_onnx_checked(module, calib)
    else:  # pragma: no cover - enum is exhaustive
        raise AssertionError(variant)
    art = sealer.artifact(onnx, name=variant.value, kind=variant.value, summary={"audit_variant": variant.value})
    art.metadata.update(info)
    return BuiltVariant(variant=variant, artifact=art, module=module, info=info)
