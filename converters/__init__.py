"""edgeseal.converters: export, quantize, prune and distill PyTorch models for on-device runtimes.

The explicit layer under the ``edgeseal.compress`` recipe. Modules:

- ``export``    torch -> ONNX (torch.export-based) and torch -> TFLite (litert-torch), checked against torch
- ``quantize``  ONNX static/dynamic int8 (ONNX Runtime's tool), TFLite full int8 (ai-edge-quantizer)
- ``qat``       quantization-aware fine-tuning (fake-quant weights/activations) for when PTQ misses the budget
- ``smooth``    SmoothQuant-style migration of activation outliers into weights (an ONNX graph pass)
- ``localize``  per-layer int8 error, and keeping the worst layers in float until an accuracy budget holds
- ``cluster``   k-means weight sharing (Deep Compression) under an accuracy budget, centroid fine-tuning,
                the onnx+codebook payload (``codebook_model``) and its size (``encoded_size``)
- ``int4``      block-wise int4 weight-only MatMuls (ONNX Runtime's MatMulNBitsQuantizer) with a budget loop
- ``prune``     structured channel pruning (torch-pruning) and unstructured magnitude pruning
- ``distill``   teacher -> student training with soft targets
- ``text``      all-MiniLM-L6-v2 sentence embedder: load, export, embed, cosine fidelity
- ``train``     device-aware fine-tuning loops; ``zoo`` real data (digits) and reference models
- ``infer``     host-side runners: the runtime's backend sessions + its float<->int8 adapter (the one way to run)
- ``latency``   model files timed side by side by the one harness (``edgeseal.runtime.timing``)
- ``metrics``   accuracy/F1 (``edgeseal.runtime.metrics``) and single-call latency
- ``probe``     graph probes that need ORT/LiteRT directly (intermediate tensors, per-run weights, graph reading)

Importing this package does not import torch; each function imports what it needs.
"""

from .common import Device, resolve_device

__all__ = ["Device", "resolve_device"]
