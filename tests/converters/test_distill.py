import copy

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from edgeseal.converters.distill import DistillConfig, distill, distillation_loss  # noqa: E402
from edgeseal.converters.train import TrainConfig, accuracy, predict_logits  # noqa: E402
from edgeseal.converters.zoo import DigitsCNN, count_params  # noqa: E402
from edgeseal.runtime.errors import ConfigError  # noqa: E402


def test_loss_terms():
    torch.manual_seed(0)
    s, t = torch.randn(8, 10), torch.randn(8, 10)
    y = torch.randint(0, 10, (8,))
    ce = torch.nn.functional.cross_entropy(s, y)
    assert distillation_loss(s, t, y, temperature=4.0, alpha=0.0) == pytest.approx(float(ce), rel=1e-6)
    assert float(distillation_loss(s, s, y, temperature=4.0, alpha=1.0)) == pytest.approx(0.0, abs=1e-6)
    p_t = torch.softmax(t / 2, -1)
    kl = float((p_t * (p_t.log() - torch.log_softmax(s / 2, -1))).sum(-1).mean()) * 4
    assert float(distillation_loss(s, t, y, temperature=2.0, alpha=1.0)) == pytest.approx(kl, rel=1e-5)


def test_distill_trains_a_small_student(digits_model, digits):
    torch.manual_seed(0)
    student = DigitsCNN(channels=(8, 16, 32), hidden=64)
    assert count_params(student) * 4 <= count_params(digits_model)
    out = distill(digits_model, student, digits.x_train, digits.y_train,
                  DistillConfig(train=TrainConfig(epochs=4, lr=3e-3, show_progress=False)))
    assert accuracy(predict_logits(out, digits.x_test), digits.y_test) > 0.85
    assert all(p.requires_grad for p in digits_model.parameters())  # teacher restored


def test_distilled_student_beats_the_same_student_alone(digits):
    """The bench's recipe (bench/digits_compress.py), first two seeds, scored on the validation split.

    Shorter schedules or smaller transfer sets do not show the gain (it needs 12 epochs on 4 x the data).
    """
    import dataclasses

    from edgeseal.converters.distill import ensemble
    from edgeseal.converters.train import fit
    from edgeseal.converters.zoo import augment_digits, train_digits_cnn

    x_t, y_t = augment_digits(digits.x_train, digits.y_train, copies=3, seed=0)
    nets = [train_digits_cnn(dataclasses.replace(digits, x_train=x_t, y_train=y_t), epochs=8, seed=s, show_progress=False)
            for s in range(3)]
    teacher = ensemble(nets)
    xs, ys = augment_digits(digits.x_train, digits.y_train, copies=3, seed=1)
    alone, taught = [], []
    for seed in range(2):
        torch.manual_seed(seed)
        student = DigitsCNN(channels=(8, 16, 32), hidden=64)
        assert count_params(student) * 4 <= count_params(nets[0])
        cfg = TrainConfig(epochs=12, lr=2e-3, seed=seed, show_progress=False)
        alone.append(accuracy(predict_logits(fit(copy.deepcopy(student), xs, ys, cfg), digits.x_val), digits.y_val))
        out = distill(teacher, copy.deepcopy(student), xs, ys, DistillConfig(temperature=4.0, alpha=0.9, train=cfg))
        taught.append(accuracy(predict_logits(out, digits.x_val), digits.y_val))
    assert np.mean(taught) >= np.mean(alone), (alone, taught)


def test_distill_config_validation():
    with pytest.raises(ConfigError, match="temperature"):
        DistillConfig(temperature=0)
    with pytest.raises(ConfigError, match="alpha"):
        DistillConfig(alpha=1.5)
    with pytest.raises(ConfigError, match="device"):
        TrainConfig(device="tpu")


def test_augmented_transfer_set(digits):
    from edgeseal.converters.zoo import augment_digits

    x, y = augment_digits(digits.x_train[:50], digits.y_train[:50], copies=2, noise=0.05, seed=1)
    assert x.shape == (150, 1, 8, 8) and x.dtype == np.float32
    assert np.array_equal(x[:50], digits.x_train[:50]) and np.array_equal(y, np.tile(digits.y_train[:50], 3))
    shifted, _ = augment_digits(digits.x_train[:50], digits.y_train[:50], copies=2, noise=0.0, seed=1)
    assert np.std(x[50:] - shifted[50:]) == pytest.approx(0.05, rel=0.1)  # same shifts, plus the noise
    assert set(np.unique(shifted[50:] * 16).round(4)) <= set(np.arange(17.0))  # pure shifts stay on the grid
    assert not np.array_equal(shifted[50:100], shifted[:50])  # something moved


def test_qat_leaves_weights_on_the_int8_grid(digits_model, digits):
    from edgeseal.converters.qat import QatConfig, qat_finetune

    base = accuracy(predict_logits(digits_model, digits.x_test), digits.y_test)
    model = qat_finetune(digits_model, digits.x_train, digits.y_train,
                         QatConfig(train=TrainConfig(epochs=1, lr=1e-4, show_progress=False)))
    w = model.features[2].weight.detach()
    scale = w.abs().amax(dim=(1, 2, 3), keepdim=True) / 127.0
    steps = (w / scale).numpy()
    assert np.abs(steps - np.round(steps)).max() < 1e-3  # every weight is an int8 step of its channel
    assert not any(m._forward_hooks for m in model.modules())  # hooks removed: a plain float module again
    assert accuracy(predict_logits(model, digits.x_test), digits.y_test) >= base - 0.02
    with pytest.raises(ConfigError, match="momentum"):
        QatConfig(momentum=1.0)
