import numpy as np
import pytest

from edgeseal.audit.artifacts import Artifact, SealedArtifact, TFLiteArtifact, TorchArtifact
from edgeseal.runtime.errors import ConfigError, InvalidPackage


def test_every_adapter_answers_like_the_torch_reference(digits_linear, digits_artifacts):
    ds, split, _ = digits_linear
    x = ds.x[split.nonmembers][:300]
    ref = digits_artifacts["fp32"].predict(x)
    assert ref.shape == (300, 10) and ref.dtype == np.float64
    np.testing.assert_allclose(digits_artifacts["fp32_onnx"].predict(x), ref, atol=1e-4)
    q, s = digits_artifacts["int8"].predict(x), digits_artifacts["int8_sealed"].predict(x)
    np.testing.assert_array_equal(q, s)  # the sealed package runs the very same int8 model
    assert 0 < np.abs(q - ref).max() < 0.5  # quantized: close, not equal
    assert np.mean(q.argmax(1) == ref.argmax(1)) > 0.97
    for a in digits_artifacts.values():
        if not isinstance(a, bytes):
            assert isinstance(a, Artifact)


def test_sealed_artifact_is_really_sealed(digits_artifacts):
    art = digits_artifacts["int8_sealed"]
    assert isinstance(art, SealedArtifact) and art.metadata["sealed"] is True
    assert art.package[:8] != digits_artifacts["int8_bytes"][:8]
    assert digits_artifacts["int8_bytes"] not in art.package  # ciphertext, not the model
    assert art.size_bytes == len(digits_artifacts["int8_bytes"])
    assert art.metadata["package_bytes"] == len(art.package) > art.size_bytes
    with pytest.raises(InvalidPackage):  # a different publisher is not trusted
        from edgeseal.runtime.keys import generate_publisher_key

        SealedArtifact(name="x", kind="int8", package=art.package,
                       load_options={**art.load_options, "trusted": [generate_publisher_key().public_key()]})


def test_queries_are_counted_and_batches_split(digits_linear, digits_artifacts):
    ds, split, lin = digits_linear
    art = TorchArtifact(name="fp32", kind="fp32", module=lin, batch_limit=7)
    out = art.predict(ds.x[:20])
    assert art.queries == 20 and out.shape == (20, 10)
    np.testing.assert_allclose(out, digits_artifacts["fp32"].predict(ds.x[:20]), atol=1e-6)
    with pytest.raises(ConfigError, match="batch-first"):
        art.predict(ds.x[0])


def test_tflite_adapter_resizes_the_batch(digits_linear):
    litert_torch = pytest.importorskip("litert_torch")
    import torch

    ds, _, lin = digits_linear
    tfl = litert_torch.convert(lin, (torch.zeros(1, 64),)).model_content()
    art = TFLiteArtifact(name="tflite", kind="fp32", model=tfl)
    for n in (1, 33, 5):
        np.testing.assert_allclose(art.predict(ds.x[:n]), TorchArtifact(name="t", kind="fp32", module=lin).predict(ds.x[:n]),
                                   atol=1e-4)
    assert art.queries == 39 and art.size_bytes == len(tfl)
