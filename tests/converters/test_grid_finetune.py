"""Grid fine-tuning: only the channel scales and biases move, the levels (what the codebook stores) stay bit for bit,
and the distillation error against the float teacher falls, measured by ONNX Runtime."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")

from edgeseal.converters import cluster as cl  # noqa: E402
from edgeseal.converters import grid_finetune as gf  # noqa: E402
from edgeseal.runtime.errors import ConfigError  # noqa: E402


@pytest.fixture(scope="module")
def gridded(digits):
    from edgeseal.converters.export import export_onnx
    from edgeseal.converters.zoo import train_digits_cnn

    torch.set_num_threads(2)
    model = train_digits_cnn(digits, channels=(8, 16, 16), hidden=32, epochs=4, seed=0, show_progress=False)
    fp32 = export_onnx(model, digits.x_val[:8]).model
    names = cl.grid_weights(fp32, min_params=64)
    inits = {i.name: onnx.numpy_helper.to_array(i) for i in onnx.load_from_string(fp32).graph.initializer}
    grids = {n: cl.grid_array(inits[n], 1.5, axis=axis) for n, (_, axis) in names.items()}  # coarse: room to recover
    return fp32, cl.grid_model(fp32, grids), grids


def _inits(model: bytes) -> dict[str, np.ndarray]:
    return {i.name: onnx.numpy_helper.to_array(i) for i in onnx.load_from_string(model).graph.initializer}


def test_the_torch_graph_computes_what_onnx_runtime_computes(gridded, digits) -> None:
    from edgeseal.converters.infer import runner_for

    _, model, grids = gridded
    scales, biases = gf.grid_parameters(model)
    assert len(scales) == len(grids) and set(biases)
    net = gf._Graph(model, set(scales), set(biases))
    x = digits.x_test[:32]
    with torch.no_grad():
        got = net(torch.as_tensor(x)).numpy()
    np.testing.assert_allclose(got, runner_for(model).run(x), rtol=1e-4, atol=1e-4)


def test_finetune_moves_only_scales_and_biases_and_lowers_the_error(gridded, digits) -> None:
    from edgeseal.converters.infer import runner_for

    fp32, model, grids = gridded
    x = digits.x_train[:256]
    cfg = gf.GridFinetuneConfig(steps=40, batch_size=32, lr=5e-3)
    tuned, report = gf.finetune_grid(model, fp32, x, cfg)
    assert gf.finetune_grid(model, fp32, x, cfg)[0] == tuned  # deterministic
    before, after = _inits(model), _inits(tuned)
    scales, biases = gf.grid_parameters(model)
    assert set(report.scales) == set(scales) and set(report.biases) == set(biases)
    changed = {n for n in before if not np.array_equal(before[n], after[n])}
    assert changed and changed <= set(scales) | set(biases)
    for n in grids:  # the levels are untouched: the codebook records do not change
        assert np.array_equal(before[n].view(np.uint32), after[n].view(np.uint32))
    assert cl.encoded_size(tuned, min_params=64)[2] == cl.encoded_size(model, min_params=64)[2]
    # the distillation error, measured independently with ONNX Runtime on held-out inputs, falls
    teacher = runner_for(fp32).run(digits.x_val)
    mse = {m: float(np.mean((runner_for(b).run(digits.x_val) - teacher) ** 2)) for m, b in (("before", model),
                                                                                             ("after", tuned))}
    assert mse["after"] < mse["before"] and report.loss_end < report.loss_start


def test_config_and_inputs_are_checked(gridded) -> None:
    fp32, _, _ = gridded
    for bad in ({"steps": 0}, {"batch_size": 0}, {"lr": 0}, {"threads": 0}):
        with pytest.raises(ConfigError, match="grid fine-tuning"):
            gf.GridFinetuneConfig(**bad)
    with pytest.raises(ConfigError, match="no gridded layers"):
        gf.finetune_grid(fp32, fp32, np.zeros((2, 1, 8, 8), np.float32))
