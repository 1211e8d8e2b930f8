"""Encrypted evaluation of digits classifiers with CKKS (TenSEAL): accuracy vs plaintext, ms and KB per
sample, and what pruning does to the HE cost. Writes bench/results/he_eval.{json,md}.

    .venv/bin/python bench/he_eval.py            # full: the whole digits test split (899 samples), 3 repeats
    .venv/bin/python bench/he_eval.py --quick    # 200 samples, 1 repeat

Models (trained here on the digits member split, seed 0): a linear head (softmax regression, depth 1), a
64-32-10 MLP with square activations (depth 3), unpruned and pruned with torch.nn.utils.prune (global L1,
unstructured, 50/80/90 %, fine-tuned under the mask), dead hidden units folded by PolyMLP.simplify; and the
split pattern: a 64-32-10 ReLU MLP whose 32 features the owner computes in the clear, only its head under HE.
The data owner encrypts the test split feature-major (4096 samples per ciphertext at N=8192); the evaluator
holds only the public context. Evaluations of the candidates are interleaved per repeat; medians reported.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
RESULTS = ROOT / "bench" / "results"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--out", default=str(RESULTS))
    args = p.parse_args(argv)

    import tenseal
    import torch
    from sklearn.linear_model import LogisticRegression

    from _machine import cpu_name
    from edgeseal.audit.data import load_dataset, member_split
    from edgeseal.he import CkksParams, DataOwner, Evaluator, PolyMLP
    from edgeseal.he.train import prune_square_mlp, train_square_mlp

    torch.set_num_threads(1)
    ds = load_dataset("digits")
    split = member_split(len(ds.y), seed=0)
    xtr, ytr = ds.x[split.members], ds.y[split.members]
    xte, yte = ds.x[split.nonmembers], ds.y[split.nonmembers]
    if args.quick:
        xte, yte = xte[:200], yte[:200]
    repeats = 1 if args.quick else 3

    clf = LogisticRegression(max_iter=500).fit(xtr, ytr)
    net = train_square_mlp(xtr, ytr, hidden=(32,), epochs=60, seed=0)
    models = {"linear head": PolyMLP.linear(clf.coef_, clf.intercept_),
              "mlp (unpruned)": PolyMLP.from_torch(net)}
    for amount in (0.5, 0.8, 0.9):
        pruned = prune_square_mlp(net, xtr, ytr, amount=amount, finetune_epochs=20, seed=0)
        models[f"mlp pruned {int(amount * 100)}%"] = PolyMLP.from_torch(pruned).simplify()

    # The split pattern: the data owner's device computes features with a ReLU network in the clear
    # (its own data, on its own device, e.g. in the sealed runtime); only the classifier head runs under HE.
    relu = torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10))
    torch.manual_seed(0)
    _fit_relu(relu, xtr, ytr)
    with torch.no_grad():
        feat_te = relu[1](relu[0](torch.from_numpy(xte))).double().numpy()
    head = PolyMLP.linear(relu[2].weight.detach().double().numpy(), relu[2].bias.detach().double().numpy())

    params = CkksParams()
    owner = DataOwner(params)
    t0 = time.perf_counter()
    public = owner.public_context()
    evaluator = Evaluator(public)
    assert not evaluator.holds_secret_key
    t_ctx = time.perf_counter() - t0
    t0 = time.perf_counter()
    batch = owner.encrypt(xte)
    t_enc = time.perf_counter() - t0
    n = len(yte)

    t0 = time.perf_counter()
    feat_batch = owner.encrypt(feat_te)
    t_enc_feat = time.perf_counter() - t0
    models["head over 32 device features"] = head
    inputs = {name: (feat_batch, feat_te) if name.startswith("head over") else (batch, xte) for name in models}

    times: dict[str, list[float]] = {k: [] for k in models}
    evals = {}
    for _ in range(repeats):  # interleaved: machine noise hits every candidate alike
        for name, m in models.items():
            e = evaluator.evaluate(m, inputs[name][0])
            times[name].append(e.seconds)
            evals[name] = e
    rows = []
    for name, m in models.items():
        e = evals[name]
        t0 = time.perf_counter()
        got = owner.decrypt(e.scores)
        t_dec = time.perf_counter() - t0
        ref = m.forward(inputs[name][1])
        sec = statistics.median(times[name])
        rows.append({
            "model": name, "hidden": list(m.hidden), "depth": m.depth, "sparsity": round(m.sparsity(), 4),
            "plaintext_accuracy": float((ref.argmax(1) == yte).mean()),
            "encrypted_accuracy": float((got.argmax(1) == yte).mean()),
            "top1_agreement": float((got.argmax(1) == ref.argmax(1)).mean()),
            "max_abs_error": float(np.abs(got - ref).max()), "max_abs_score": float(np.abs(ref).max()),
            "operations": e.performed.to_dict(), "operations_predicted": m.cost().to_dict(),
            "evaluate_s": round(sec, 4), "evaluate_s_all": [round(t, 4) for t in times[name]],
            "evaluate_ms_per_sample": round(1000 * sec / n, 4),
            "evaluate_ms_per_sample_full_packing": round(1000 * sec / params.slots, 4),
            "decrypt_ms_per_sample": round(1000 * t_dec / n, 4),
            "scores_kb_per_sample": round(e.scores.nbytes / n / 1024, 3),
            "input_kb_per_sample": round(inputs[name][0].nbytes / n / 1024, 3),
        })
    base = next(r for r in rows if r["model"] == "mlp (unpruned)")
    for r in rows:
        r["time_vs_unpruned_mlp"] = round(r["evaluate_s"] / base["evaluate_s"], 3)
        r["multiplications_vs_unpruned_mlp"] = round(
            r["operations"]["plain_multiplications"] / base["operations"]["plain_multiplications"], 3)
    ct_bytes = len(batch.chunks[0][0])
    result = {
        "bench": "he_eval", "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"cpu": cpu_name(), "python": platform.python_version(), "tenseal": tenseal.__version__,
                    "note": "2 cores shared with other jobs while measuring: absolute times are noisy, ratios "
                            "(interleaved runs, medians) are the figure to read"},
        "params": params.to_dict(), "samples": n, "repeats": repeats,
        "public_context_kb": round(len(public) / 1024, 1),
        "context_and_keys_s": round(t_ctx, 3),
        "encrypt_ms_per_sample": round(1000 * t_enc / n, 4),
        "input_kb_per_sample": round(batch.nbytes / n / 1024, 3),
        "input_ciphertext_kb": round(ct_bytes / 1024, 1),
        "input_kb_per_sample_full_packing": round(ct_bytes * batch.n_features / params.slots / 1024, 3),
        "device_features": {"network": "Linear(64, 32) -> ReLU on the owner's device, in the clear; "
                                       "Linear(32, 10) head under HE",
                            "encrypt_ms_per_sample": round(1000 * t_enc_feat / n, 4),
                            "input_kb_per_sample": round(feat_batch.nbytes / n / 1024, 3)},
        "models": rows,
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = "he_eval_quick" if args.quick else "he_eval"
    (out / f"{stem}.json").write_text(json.dumps(result, indent=1))
    (out / f"{stem}.md").write_text(markdown(result))
    print(markdown(result))
    return 0


def _fit_relu(model, x: np.ndarray, y: np.ndarray, epochs: int = 60) -> None:
    import torch

    g = torch.Generator().manual_seed(0)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3, weight_decay=1e-4)
    for _ in range(epochs):
        perm = torch.randperm(len(yt), generator=g)
        for i in range(0, len(yt), 64):
            idx = perm[i : i + 64]
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(xt[idx]), yt[idx]).backward()
            opt.step()
    model.eval()


def markdown(r: dict) -> str:
    p = r["params"]
    lines = [f"# Encrypted evaluation (CKKS, TenSEAL {r['machine']['tenseal']}) on digits",
             "",
             f"{r['samples']} test samples, CKKS N={p['poly_modulus_degree']}, primes {p['coeff_mod_bit_sizes']} bits, "
             f"scale 2^{p['scale_bits']} ({p['depth']} levels, {p['slots']} slots), 128-bit security. "
             f"{r['machine']['cpu']}; {r['machine']['note']}. "
             f"Evaluate times: median of {r['repeats']} interleaved runs.",
             "",
             f"- data owner: encrypt {r['encrypt_ms_per_sample']:.2f} ms/sample; encrypted input "
             f"{r['input_kb_per_sample']:.1f} KB/sample here ({r['input_ciphertext_kb']:.0f} KB per ciphertext, "
             f"one per feature; {r['input_kb_per_sample_full_packing']:.2f} KB/sample when all {p['slots']} slots "
             "are used)",
             f"- split pattern (last row): the owner's device computes 32 ReLU features in the clear; "
             f"only the Linear(32, 10) head runs under HE (encrypt {r['device_features']['encrypt_ms_per_sample']:.2f} "
             f"ms/sample, input {r['device_features']['input_kb_per_sample']:.1f} KB/sample here)",
             f"- public context sent to the evaluator (public + relinearization keys, no secret key): "
             f"{r['public_context_kb']:.0f} KB",
             "",
             "| model | hidden | sparsity | plain acc | encrypted acc | top-1 agree | max abs err (max score) | "
             "ct x scalar mults | squares | evaluate s | ms/sample (here / full packing) | vs unpruned | "
             "scores KB/sample | "
             "decrypt ms/sample |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for m in r["models"]:
        o = m["operations"]
        lines.append(f"| {m['model']} | {m['hidden'] or '–'} | {100 * m['sparsity']:.0f}% | "
                     f"{100 * m['plaintext_accuracy']:.2f}% | {100 * m['encrypted_accuracy']:.2f}% | "
                     f"{100 * m['top1_agreement']:.2f}% | {m['max_abs_error']:.4f} ({m['max_abs_score']:.1f}) | "
                     f"{o['plain_multiplications']} | {o['ciphertext_multiplications']} | "
                     f"{m['evaluate_s']:.2f} | {m['evaluate_ms_per_sample']:.2f} / "
                     f"{m['evaluate_ms_per_sample_full_packing']:.2f} | {m['time_vs_unpruned_mlp']:.2f}x | "
                     f"{m['scores_kb_per_sample']:.2f} | {m['decrypt_ms_per_sample']:.2f} |")
    lines += ["", "The evaluation time is per ciphertext group (up to "
              f"{p['slots']} samples), so ms/sample falls with the batch: 'full packing' divides by {p['slots']}. "
              "Rotations: 0 for every model (feature-major packing). Operation counts are counted while "
              "evaluating and equal PolyMLP.cost() (non-zero weights; one square per live hidden unit).", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
