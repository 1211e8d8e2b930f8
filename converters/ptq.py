"""edgeseal's static int8 ONNX recipe for convolutional networks: graph clean-up, bias correction, compaction.

    >>> int8, report = quantize_onnx_corrected(fp32, calibration)
    >>> print(report.summary())

Steps, each its own module so they can be used alone:

1. ONNX Runtime's ``quant_pre_process`` (shape inference, graph optimisation);
2. ``graph_passes.fold_pad_into_conv`` — explicit zero Pads become Conv ``pads`` so every
   Conv fuses to an int8 kernel;
3. ``equalize.equalize_onnx`` — cross-layer equalization of Conv pairs joined by ReLU or nothing
   (exact; ReLU6 pairs are left alone);
4. optionally ``adaround.adaround_onnx`` — AdaRound (Nagel et al., ICML 2020): each Conv/Gemm
   weight's rounding up or down is learned on the calibration data so the layer's output stays
   closest to float, with the mean shift left folded into the bias; the weights are left on the
   int8 grid so step 5 reproduces those integers exactly;
5. static QDQ int8 with ONNX Runtime's tool (``OnnxStaticConfig``: per-channel symmetric int8
   weights, uint8 activations by default);
6. without AdaRound, ``bias_correction.correct_bias`` — the per-channel output-mean shift that
   int8 weights cause, folded into the float biases, then quantized again;
7. ``graph_passes.float_graph_outputs`` — the logits are not re-quantized to 8 bits (the last
   Gemm still runs as int8 ``QGemm``, with a float output);
8. ``graph_passes.strip_debug_info`` and ``drop_zero_weight_zero_points`` — the exporter's
   stack traces and all-zero weight zero points go; the function does not change.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from .adaround import AdaRoundConfig, AdaRoundReport, adaround_onnx
from .bias_correction import BiasCorrectionReport, correct_bias
from .equalize import EqualizeReport, equalize_onnx
from .graph_passes import drop_zero_weight_zero_points, float_graph_outputs, fold_pad_into_conv, strip_debug_info
from .quantize import CalibrationData, OnnxStaticConfig, preprocess_onnx, quantize_onnx_static

__all__ = ["PtqReport", "quantize_onnx_corrected"]


@dataclasses.dataclass(frozen=True)
class PtqReport:
    """What each step of the recipe did."""

    pads_folded: int
    equalization: EqualizeReport
    bias_correction: BiasCorrectionReport | None
    zero_points_dropped: int
    size_bytes: int
    adaround: AdaRoundReport | None = None
    float_outputs: int = 0  # graph outputs whose Q/DQ pair was removed (logits kept float)

    def to_dict(self) -> dict[str, Any]:
        return {
            "pads_folded": self.pads_folded,
            "equalization": self.equalization.to_dict(),
            "bias_correction": None if self.bias_correction is None else self.bias_correction.to_dict(),
            "zero_points_dropped": self.zero_points_dropped,
            "size_bytes": self.size_bytes,
            "adaround": None if self.adaround is None else self.adaround.to_dict(),
            "float_outputs": self.float_outputs,
        }

    def summary(self) -> str:
        lines = [f"folded {self.pads_folded} Pad(s) into Conv pads", self.equalization.summary()]
        if self.adaround is not None:
            lines.append(self.adaround.summary())
        if self.bias_correction is not None:
            lines.append(self.bias_correction.summary())
        if self.float_outputs:
            lines.append(f"kept {self.float_outputs} graph output(s) float (no 8-bit re-quantization of the logits)")
        lines.append(f"dropped {self.zero_points_dropped} all-zero weight zero points; {self.size_bytes:,} bytes")
        return "\n".join(lines)


def quantize_onnx_corrected(model: bytes, calibration: CalibrationData, config: OnnxStaticConfig | None = None,
                            *, adaround: AdaRoundConfig | None = None, bias_correction: bool = True,
                            bias_samples: int = 64, bias_rounds: int = 1,
                            float_outputs: bool = True) -> tuple[bytes, PtqReport]:
    """Static int8 of a convolutional ONNX model with edgeseal's recipe (see the module doc).

    ``adaround`` (a config) learns the weights' rounding first; it brings its own per-layer bias
    correction, so ``bias_correction`` (the statistical pass, step 6) then does not run: with the
    float weights already on the int8 grid it would see no weight error to correct.
    ``float_outputs`` removes the Q/DQ pair on the graph outputs (step 7).
    """
    config = config or OnnxStaticConfig()
    if config.preprocess:
        model = preprocess_onnx(model)
        config = config.replace(preprocess=False)
    model, pads = fold_pad_into_conv(model)
    model, eq = equalize_onnx(model)
    ar = None
    if adaround is not None:
        model, ar = adaround_onnx(model, calibration, adaround)
        bias_correction = False

    def quantize(m: bytes) -> bytes:
        return quantize_onnx_static(m, calibration, config)

    bc = None
    if bias_correction:
        _, bc = correct_bias(model, calibration, quantize=quantize, samples=bias_samples, rounds=bias_rounds)
        int8 = bc.quantized
    else:
        int8 = quantize(model)
    n_float = 0
    if float_outputs:
        int8, n_float = float_graph_outputs(int8)
    int8, dropped = drop_zero_weight_zero_points(strip_debug_info(int8))
    return int8, PtqReport(pads, eq, bc, dropped, len(int8), ar, n_float)
