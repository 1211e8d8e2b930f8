"""edgeseal.audit: does compression make a model leak more, or break more easily?

Measured on the artifacts that ship (the sealed int8 package run by
``edgeseal.runtime``), next to the fp32 reference:

- ``membership``   membership inference (loss/confidence thresholds, LiRA with reference models)
- ``robustness``   FGSM/PGD transferred from fp32 (``edgeseal.converters.adversarial``), and a black-box
                   attack through the runtime
- ``blackbox``     the Adversarial Robustness Toolbox's square / HopSkipJump / boundary attacks on any artifact
- ``user``         ``audit_artifacts``: your own files and data, any input shape, LiRA with your train_fn
- ``disagreement`` inputs near the data where int8 and fp32 disagree
- ``explain``      occlusion attributions, fp32 vs artifact, Spearman rank correlation
- ``mitigations``  DP-SGD training and adversarial fine-tuning after pruning (``edgeseal.converters.dp`` /
                   ``adversarial``; the compress recipe's [dp] / [adversarial] stages use the same code)
- ``report``       JSON + self-contained HTML with inline plots; ``gate`` thresholds

Importing this package does not import torch.
"""

from .artifacts import Artifact, OnnxArtifact, SealedArtifact, TFLiteArtifact, TorchArtifact
from .config import (
    AuditConfig,
    DisagreementConfig,
    ExplanationConfig,
    GateConfig,
    MembershipConfig,
    RobustnessConfig,
    Variant,
    VariantConfig,
    load_recipe,
)

__all__ = [
    "Artifact",
    "TorchArtifact",
    "OnnxArtifact",
    "TFLiteArtifact",
    "SealedArtifact",
    "AuditConfig",
    "MembershipConfig",
    "RobustnessConfig",
    "DisagreementConfig",
    "ExplanationConfig",
    "VariantConfig",
    "GateConfig",
    "Variant",
    "load_recipe",
]

from .cli import add_parser  # noqa: E402  (``edgeseal audit``; imports nothing heavy)
from .report import AuditReport  # noqa: E402  (the report model: JSON, text, HTML)

__all__ += ["add_parser", "AuditReport"]
