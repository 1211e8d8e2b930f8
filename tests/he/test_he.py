"""Encrypted evaluation (CKKS, TenSEAL): the evaluator never holds the secret key, scores decrypt to the
plaintext model's within CKKS precision, and pruning removes exactly the multiplications of zero weights."""

import numpy as np
import pytest

from edgeseal.he import CkksParams, DataOwner, Evaluator, PolyMLP
from edgeseal.runtime.errors import ConfigError, UnsupportedError

ts = pytest.importorskip("tenseal")
torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def digits():
    from edgeseal.audit.data import load_dataset, member_split

    ds = load_dataset("digits")
    split = member_split(len(ds.y), seed=0)
    return ds.x[split.members], ds.y[split.members], ds.x[split.nonmembers], ds.y[split.nonmembers]


@pytest.fixture(scope="module")
def models(digits):
    from edgeseal.he.train import prune_square_mlp, train_square_mlp

    torch.set_num_threads(1)
    xtr, ytr, _, _ = digits
    net = train_square_mlp(xtr, ytr, hidden=(8,), epochs=15, seed=0)
    pruned = prune_square_mlp(net, xtr, ytr, amount=0.8, finetune_epochs=8, seed=0)
    return net, pruned


@pytest.fixture(scope="module")
def owner():
    return DataOwner()


def test_poly_mlp_matches_torch_and_simplify_is_exact(models, digits):
    net, pruned = models
    x = digits[2][:50]
    m = PolyMLP.from_torch(net)
    with torch.no_grad():
        np.testing.assert_allclose(m.forward(x), net(torch.from_numpy(x)).double().numpy(), rtol=1e-5, atol=1e-5)
    assert m.hidden == (8,) and m.depth == 3
    p = PolyMLP.from_torch(pruned)
    assert p.sparsity() == pytest.approx(0.8, abs=0.01)
    # kill two hidden units by hand (no inputs / no outputs): simplify folds them and keeps the function
    w1, w2 = p.weights[0].copy(), p.weights[1].copy()
    w1[0] = 0.0
    w2[:, 1] = 0.0
    dead = PolyMLP(weights=(w1, w2), biases=p.biases)
    s = dead.simplify()
    assert s.hidden == (6,)
    np.testing.assert_allclose(s.forward(x), dead.forward(x), atol=1e-9)
    c = s.cost()
    assert c.plain_multiplications == sum(int(np.count_nonzero(w)) for w in s.weights)
    assert c.ciphertext_multiplications == 6 and c.rotations == 0
    with pytest.raises(UnsupportedError, match="Square"):
        PolyMLP.from_torch(torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2)))


def test_the_evaluator_never_holds_the_secret_key(owner):
    public = owner.public_context()
    ev = Evaluator(public)
    assert ev.holds_secret_key is False
    assert ts.context_from(public).is_private() is False
    batch = owner.encrypt(np.array([[0.5, -1.0], [2.0, 0.25]]))
    model = PolyMLP.linear(np.array([[1.0, 2.0], [-1.0, 0.5]]), [0.1, -0.2])
    scores = ev.evaluate(model, batch).scores
    for blob in scores.chunks[0]:  # what the evaluator holds cannot be decrypted with what it has
        with pytest.raises(ValueError, match="secret"):
            ts.ckks_vector_from(ts.context_from(public), blob).decrypt()
    np.testing.assert_allclose(owner.decrypt(scores), model.forward([[0.5, -1.0], [2.0, 0.25]]), atol=1e-3)
    with pytest.raises(ConfigError, match="secret key"):
        Evaluator(owner._ctx.serialize(save_secret_key=True))


def test_encrypted_scores_equal_plaintext_within_ckks_precision(models, digits, owner):
    net, pruned = models
    x, y = digits[2][:40], digits[3][:40]
    ev = Evaluator(owner.public_context())
    batch = owner.encrypt(x)
    assert len(batch.chunks) == 1 and len(batch.chunks[0]) == 64 and batch.nbytes > 64 * 50_000
    results = {}
    for name, torch_model in (("unpruned", net), ("pruned", pruned)):
        m = PolyMLP.from_torch(torch_model).simplify()
        out = ev.evaluate(m, batch)
        got, ref = owner.decrypt(out.scores), m.forward(x)
        scale = np.abs(ref).max()
        assert np.abs(got - ref).max() < 2e-3 * max(scale, 1.0)  # CKKS with 30-bit scale: ~1e-4 relative
        margin = np.sort(ref, axis=1)[:, -1] - np.sort(ref, axis=1)[:, -2]
        clear = margin > 2 * np.abs(got - ref).max()
        assert (got.argmax(1) == ref.argmax(1))[clear].all()
        assert (got.argmax(1) == y).mean() == pytest.approx((ref.argmax(1) == y).mean(), abs=1 / 40 * (~clear).sum())
        if name == "unpruned":
            assert (ref.argmax(1) == y).mean() > 0.6
        # the operations performed are counted while evaluating; they equal the model's non-zero weights
        assert out.performed == m.cost()
        results[name] = out.performed
    assert results["pruned"].plain_multiplications < 0.3 * results["unpruned"].plain_multiplications


def test_batches_larger_than_the_slots_are_chunked_and_depth_is_checked():
    small = DataOwner(CkksParams(poly_modulus_degree=4096, coeff_mod_bit_sizes=(40, 24, 40), scale_bits=24))
    x = np.random.default_rng(0).uniform(-1, 1, size=(2050, 3))
    batch = small.encrypt(x)
    assert len(batch.chunks) == 2 and batch.n_samples == 2050 and batch.depth == 1
    ev = Evaluator(small.public_context())
    head = PolyMLP.linear(np.array([[0.5, -1.0, 2.0]]), [0.25])
    got = small.decrypt(ev.evaluate(head, batch).scores)
    np.testing.assert_allclose(got, head.forward(x), atol=5e-3)
    two = PolyMLP(weights=(np.ones((2, 3)), np.ones((1, 2))), biases=(np.zeros(2), np.zeros(1)))
    with pytest.raises(ConfigError, match="levels"):
        ev.evaluate(two, batch)
    with pytest.raises(ConfigError, match="features"):
        ev.evaluate(PolyMLP.linear(np.ones((1, 4)), [0.0]), batch)


def test_ckks_params_are_validated():
    with pytest.raises(ConfigError, match="128-bit"):
        CkksParams(poly_modulus_degree=8192, coeff_mod_bit_sizes=(60, 40, 40, 40, 60), scale_bits=40)
    with pytest.raises(ConfigError, match="poly_modulus_degree"):
        CkksParams(poly_modulus_degree=1000)
    assert CkksParams().depth == 3 and CkksParams().slots == 4096


_EVALUATOR = """
import sys, numpy as np, tenseal as ts
from pathlib import Path
from edgeseal.he import EncryptedBatch, Evaluator, PolyMLP
d = Path(sys.argv[1])
public = (d / "public.ctx").read_bytes()
ev = Evaluator(public)
batch = EncryptedBatch.from_bytes((d / "batch.bin").read_bytes())
model = PolyMLP.linear(np.load(d / "w.npy"), np.load(d / "b.npy"))
scores = ev.evaluate(model, batch).scores
(d / "scores.bin").write_bytes(scores.to_bytes())
try:
    ts.ckks_vector_from(ts.context_from(public), scores.chunks[0][0]).decrypt()
    print("DECRYPTED")
except ValueError as e:
    print("cannot decrypt:", e)
"""


def test_evaluator_in_another_process_gets_only_bytes_and_returns_scores_only_the_owner_reads(owner, tmp_path):
    import subprocess
    import sys

    from edgeseal.he import EncryptedBatch, EncryptedScores

    x = np.random.default_rng(3).normal(size=(25, 6))
    w, b = np.random.default_rng(4).normal(size=(3, 6)), np.array([0.5, -0.5, 0.0])
    batch = owner.encrypt(x)
    (tmp_path / "public.ctx").write_bytes(owner.public_context())
    (tmp_path / "batch.bin").write_bytes(batch.to_bytes())
    np.save(tmp_path / "w.npy", w)
    np.save(tmp_path / "b.npy", b)
    assert EncryptedBatch.from_bytes(batch.to_bytes()) == batch
    proc = subprocess.run([sys.executable, "-c", _EVALUATOR, str(tmp_path)], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "cannot decrypt" in proc.stdout and "secret" in proc.stdout and "DECRYPTED" not in proc.stdout
    scores = EncryptedScores.from_bytes((tmp_path / "scores.bin").read_bytes())
    np.testing.assert_allclose(owner.decrypt(scores), x @ w.T + b, atol=1e-3)
    with pytest.raises(ConfigError, match="not an edgeseal encrypted batch"):
        EncryptedBatch.from_bytes((tmp_path / "scores.bin").read_bytes())
    with pytest.raises(ConfigError, match="truncated"):
        EncryptedScores.from_bytes((tmp_path / "scores.bin").read_bytes()[:-10])
