"""Tiny real models for the targets/verify tests: a digits CNN, fp32 and int8 ONNX.

Built in code from scikit-learn's digits (no downloads); cached per test session.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def digits_split() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    x = (d.images / 16.0).astype(np.float32)[:, None, :, :]
    y = d.target.astype(np.int64)
    return train_test_split(x, y, test_size=0.2, random_state=0, stratify=y)


def _train(x: np.ndarray, y: np.ndarray):
    import torch
    from torch import nn

    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(16 * 2 * 2, 32), nn.ReLU(), nn.Linear(32, 10),
    )
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    for _ in range(40):
        for i in range(0, len(xt), 128):
            opt.zero_grad()
            nn.functional.cross_entropy(model(xt[i : i + 128]), yt[i : i + 128]).backward()
            opt.step()
    return model.eval()


def _prune(model, fraction: float):
    """Deliberately over-prune: zero the smallest ``fraction`` of every weight matrix (a copy)."""
    import copy

    import torch

    model = copy.deepcopy(model)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() > 1:
                thr = p.abs().flatten().kthvalue(int(p.numel() * fraction)).values
                p[p.abs() <= thr] = 0.0
    return model


def _export(model, path: Path) -> None:
    import torch

    torch.onnx.export(
        model, (torch.zeros(1, 1, 8, 8),), str(path), input_names=["image"], output_names=["logits"],
        dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}}, dynamo=False, opset_version=17,
    )


def _quantize(fp32: Path, out: Path, calib: np.ndarray) -> None:
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.it = iter([{"image": calib[i : i + 1]} for i in range(len(calib))])

        def get_next(self):
            return next(self.it, None)

    quantize_static(
        str(fp32), str(out), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
    )


def build_digits(directory: Path, *, prune: float = 0.8) -> dict[str, Path]:
    """Digits CNN as ONNX: ``fp32``, ``int8`` (QDQ, per-channel), ``pruned_int8`` (``prune`` of every
    weight matrix zeroed, then int8) and the test split as ``data`` .npz (``image``, ``labels``)."""
    directory.mkdir(parents=True, exist_ok=True)
    xtr, xte, ytr, yte = digits_split()
    model = _train(xtr, ytr)
    out = {k: directory / f"digits_{k}.onnx" for k in ("fp32", "int8", "pruned_fp32", "pruned_int8")}
    _export(model, out["fp32"])
    _quantize(out["fp32"], out["int8"], xtr[:200])
    _export(_prune(model, prune), out["pruned_fp32"])
    _quantize(out["pruned_fp32"], out["pruned_int8"], xtr[:200])
    out["data"] = directory / "digits_test.npz"
    np.savez(out["data"], image=xte, labels=yte)
    return out
