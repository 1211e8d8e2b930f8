import numpy as np
import pytest


@pytest.fixture(scope="session")
def digits_linear():
    """A softmax-regression digits model as a torch Linear (weights from scikit-learn: fast, deterministic)."""
    import torch
    from sklearn.linear_model import LogisticRegression

    from edgeseal.audit.data import load_dataset, member_split

    ds = load_dataset("digits")
    split = member_split(len(ds.y), seed=0)
    clf = LogisticRegression(max_iter=300, C=1.0).fit(ds.x[split.members], ds.y[split.members])
    lin = torch.nn.Linear(64, 10)
    with torch.no_grad():
        lin.weight.copy_(torch.from_numpy(clf.coef_.astype(np.float32)))
        lin.bias.copy_(torch.from_numpy(clf.intercept_.astype(np.float32)))
    lin.eval()
    return ds, split, lin


@pytest.fixture(scope="session")
def digits_artifacts(digits_linear):
    """fp32 torch reference + its real int8 ONNX (ORT static QDQ) as plain and sealed artifacts."""
    from edgeseal.audit.artifacts import OnnxArtifact, TorchArtifact
    from edgeseal.audit.variants import Sealer, export_onnx_checked, quantize_int8

    ds, split, lin = digits_linear
    onnx = export_onnx_checked(lin, ds.x[split.members][:64])
    int8 = quantize_int8(onnx, ds.x[split.members], 256)
    sealer = Sealer()
    return {
        "onnx_bytes": onnx,
        "int8_bytes": int8,
        "fp32": TorchArtifact(name="fp32", kind="fp32", module=lin),
        "fp32_onnx": OnnxArtifact(name="fp32-onnx", kind="fp32", model=onnx),
        "int8": OnnxArtifact(name="int8", kind="int8", model=int8),
        "int8_sealed": sealer.artifact(int8, name="int8", kind="int8", summary={"test": True}),
    }


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    """Tiny models: intra-op threads only cost time (and a lot of it on a loaded CI machine)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
