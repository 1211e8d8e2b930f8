import warnings
import zlib

import numpy as np
import pytest

from edgeseal.converters.export import export_onnx
from edgeseal.converters.prune import (
    GradualPruner,
    SparsityWarning,
    StructuredPruneConfig,
    UnstructuredPruneConfig,
    measure,
    plan_structured,
    prune_structured,
    prune_unstructured,
    sparsity,
)
from edgeseal.converters.train import TrainConfig, accuracy, fit, predict_logits
from edgeseal.converters.zoo import count_params
from edgeseal.runtime.errors import ConfigError


def test_plan_does_not_mutate(digits_model, digits):
    before = count_params(digits_model)
    plan = plan_structured(digits_model, digits.x_train, StructuredPruneConfig(ratio=0.5))
    assert count_params(digits_model) == before
    assert [(l.layer, l.before, l.after) for l in plan.layers] == [
        ("features.0", 32, 16), ("features.2", 64, 32), ("features.5", 128, 64), ("classifier.1", 256, 128)
    ]
    assert plan.channels_removed == pytest.approx(0.5)
    assert plan.params_before == 226_570 and plan.params_after < plan.params_before / 3
    assert plan.macs_after < plan.macs_before / 3
    assert "channels removed: 50.0%" in plan.summary()


def test_structured_prune_fine_tune_gains(digits_model, digits):
    base = accuracy(predict_logits(digits_model, digits.x_test), digits.y_test)
    s0, _ = measure(digits_model, digits.x_test, runs=100)
    pruned, plan = prune_structured(digits_model, digits.x_train, StructuredPruneConfig(ratio=0.5))
    pruned = fit(pruned, digits.x_train, digits.y_train, TrainConfig(epochs=8, show_progress=False))
    s1, onnx_bytes = measure(pruned, digits.x_test, runs=100)
    assert s1.params == plan.params_after and s1.macs == plan.macs_after
    assert s1.onnx_bytes < 0.35 * s0.onnx_bytes and s1.onnx_zlib_bytes < s0.onnx_zlib_bytes
    assert s1.latency.p50_ms < s0.latency.p50_ms
    assert accuracy(predict_logits(pruned, digits.x_test), digits.y_test) >= base - 0.02


def test_unstructured_warns_and_only_compression_shrinks(digits_model, digits):
    s0, _ = measure(digits_model, digits.x_test, runs=20)
    with pytest.warns(SparsityWarning, match="does not make ONNX Runtime or LiteRT faster"):
        model = prune_unstructured(
            digits_model,
            UnstructuredPruneConfig(amount=0.7, scope="global"),
            fine_tune=lambda m, hook: fit(m, digits.x_train, digits.y_train, TrainConfig(epochs=2, show_progress=False), after_step=hook),
        )
    assert sparsity(model) == pytest.approx(0.7, abs=0.005)
    s1, _ = measure(model, digits.x_test, runs=20)
    assert s1.onnx_bytes == pytest.approx(s0.onnx_bytes, rel=0.001)  # zeros are stored densely
    assert s1.onnx_zlib_bytes < 0.6 * s0.onnx_zlib_bytes
    assert s1.params == s0.params and s1.macs == s0.macs
    assert accuracy(predict_logits(model, digits.x_test), digits.y_test) > 0.9


def test_per_layer_scope(digits_model):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SparsityWarning)
        model = prune_unstructured(digits_model, UnstructuredPruneConfig(amount=0.5, scope="layer", gradual=False))
    for m in (model.features[0], model.features[2], model.classifier[1]):
        assert float((m.weight == 0).float().mean()) == pytest.approx(0.5, abs=0.01)


def test_gradual_schedule_is_cubic():
    g = GradualPruner(None, UnstructuredPruneConfig(amount=0.8))
    assert g.target(0, 100) == 0.0
    assert g.target(40, 100) == pytest.approx(0.8 * (1 - 0.5**3))
    assert g.target(80, 100) == pytest.approx(0.8) and g.target(100, 100) == pytest.approx(0.8)


def test_prune_config_validation():
    with pytest.raises(ConfigError, match="ratio"):
        StructuredPruneConfig(ratio=1.0)
    with pytest.raises(ConfigError, match="scope"):
        UnstructuredPruneConfig(scope="row")
    with pytest.raises(ConfigError, match="importance"):
        StructuredPruneConfig(importance="taylor")
