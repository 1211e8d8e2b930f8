"""Privacy and robustness remedies on digits, measured: ``python bench/privacy_robustness.py``.

Part A — the remedies against what pruning does (digits CNN, 8x8 images, input (1, 8, 8)):
fp32 vs pruned vs pruned + DP fine-tuned vs pruned + adversarial fine-tuned. For each seed the
members (half of the 1,797 records, split by the seed) train a deliberately overfitted fp32
CNN; each variant is exported to ONNX and measured on that file: clean accuracy on the
non-members, robust accuracy under PGD (white-box on the variant's own torch module, evaluated
on its ONNX file) at two epsilons, and LiRA (online, fixed variance) AUC and TPR at 0.1 % FPR
with reference models trained like fp32 on balanced random halves of all records.

Part B — DP accuracy at epsilon in {1, 4, 8} for DP fine-tuning and DP distillation vs DP
from scratch. A "public" 30 % of the records (labelled) pretrains the model for DP fine-tuning
and trains the (non-private) teacher for DP distillation; the private records (the rest but
the test set) are then used with DP-SGD only: fine-tuning on their labels, or distillation on
their inputs alone (the teacher's soft labels). Epsilon covers the private records only.

Writes bench/results/privacy_robustness.{json,md}. Runs on the CPU with one torch thread.
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import time
import warnings
from pathlib import Path

import numpy as np

from edgeseal.audit import membership as MI
from edgeseal.audit.artifacts import OnnxArtifact
from edgeseal.audit.variants import export_onnx_checked
from edgeseal.converters.adversarial import AdversarialConfig, adversarial_finetune, pgd, robust_accuracy
from edgeseal.converters.dp import DpConfig, dp_distill, dp_finetune
from edgeseal.converters.prune import UnstructuredPruneConfig, prune_unstructured, sparsity
from edgeseal.converters.train import TrainConfig, fit, predict_logits
from edgeseal.converters.zoo import DigitsCNN

OUT = Path(__file__).parent / "results"
CHANNELS, HIDDEN = (16, 32, 64), 128


def _digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    d = load_digits()
    return (d.images.astype(np.float32) / 16.0)[:, None], d.target.astype(np.int64)


def _cnn(seed: int):
    import torch

    torch.manual_seed(seed)
    return DigitsCNN(CHANNELS, HIDDEN)


def _tc(epochs: int, seed: int, lr: float = 1e-3) -> TrainConfig:
    return TrainConfig(epochs=epochs, lr=lr, batch_size=32, seed=seed, device="cpu", show_progress=False)


def _stats(v: list[float]) -> dict[str, float]:
    a = np.asarray(v, np.float64)
    return {"mean": float(a.mean()), "std": float(a.std(ddof=1)) if len(a) > 1 else 0.0, "n": len(a),
            "values": [round(float(x), 6) for x in a]}


# --------------------------------------------------------------------------- part A


def part_a(x_all, y_all, args) -> dict:
    eps_list = (0.05, 0.1)
    order = np.random.default_rng(777).permutation(len(y_all))
    pool, public = order[: args.pool], order[args.pool :]
    x, y = x_all[pool], y_all[pool]
    x_pub, y_pub = x_all[public], y_all[public]
    pool_n = len(y)

    def train_fn(xt, yt, seed):
        m = fit(_cnn(seed), xt, yt, _tc(args.epochs, seed))
        return lambda z: predict_logits(m, z, device="cpu").astype(np.float64)

    t0 = time.perf_counter()
    refs = MI.train_reference_models(x, y, count=args.shadows, seed=12345, train_fn=train_fn)
    shadow_s = time.perf_counter() - t0
    per_seed = []
    for seed in args.seeds:
        rng = np.random.default_rng(seed)
        members = rng.permutation(pool_n)[: pool_n // 2]
        is_member = np.zeros(pool_n, bool)
        is_member[members] = True
        xm, ym = x[is_member], y[is_member]
        xn, yn = x[~is_member], y[~is_member]
        fp32 = fit(_cnn(seed), xm, ym, _tc(args.epochs, seed))
        one_shot = UnstructuredPruneConfig(amount=args.prune_amount, gradual=False)
        variants = {"fp32": fp32}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # SparsityWarning
            variants["pruned"] = prune_unstructured(
                copy.deepcopy(fp32), one_shot,
                fine_tune=lambda m, _h: fit(m, xm, ym, _tc(args.finetune_epochs, seed + 1)))
            pruned_bare = prune_unstructured(copy.deepcopy(fp32), one_shot)
        dp_model, dp = dp_finetune(copy.deepcopy(pruned_bare), xm, ym,
                                   DpConfig(epsilon=args.dp_epsilon, epochs=args.finetune_epochs, lr=1e-3,
                                            batch_size=64, seed=seed + 2, device="cpu", show_progress=False))
        variants["pruned + DP fine-tuned"] = dp_model
        adv = AdversarialConfig(epsilon=args.adv_epsilon, steps=7, lo=0.0, hi=1.0,
                                train=_tc(args.finetune_epochs, seed + 3))
        variants["pruned + adversarial fine-tuned"] = adversarial_finetune(copy.deepcopy(pruned_bare), xm, ym, adv)
        # the remedy with a guarantee about the members: the model never saw them before DP fine-tuning
        pub = fit(_cnn(seed + 4), x_pub, y_pub, _tc(args.epochs, seed + 4))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pub_pruned = prune_unstructured(pub, one_shot)
        variants["public-pretrained, pruned + DP fine-tuned"], dp_pub = dp_finetune(
            pub_pruned, xm, ym, DpConfig(epsilon=args.dp_epsilon, epochs=args.finetune_epochs, lr=1e-3, batch_size=64,
                                         seed=seed + 5, device="cpu", show_progress=False))
        row = {"seed": seed, "n_members": int(is_member.sum()), "n_nonmembers": int((~is_member).sum()),
               "dp": dp.to_dict(), "dp_public_pretrained": dp_pub.to_dict(), "variants": {}}
        rob_idx = np.random.default_rng(seed + 99).permutation(len(yn))[: args.robust_examples]
        for name, module in variants.items():
            onnx = export_onnx_checked(module, xm[:64])
            art = OnnxArtifact(name=name, kind=name, model=onnx)
            logits = art.predict(x)
            lira = MI.evaluate_scores("lira", MI.attack_scores("lira", logits, y, refs), is_member)
            robust = {}
            for e in eps_list:
                xa = pgd(module, xn[rob_idx], yn[rob_idx], e, steps=20, step=e / 8, lo=0.0, hi=1.0, seed=seed)
                robust[str(e)] = robust_accuracy(art.predict, xa, yn[rob_idx])
            row["variants"][name] = {
                "clean_accuracy": float((logits[~is_member].argmax(1) == yn).mean()),
                "train_accuracy": float((logits[is_member].argmax(1) == ym).mean()),
                "robust_accuracy": robust, "lira_auc": lira.auc, "lira_tpr_at_0.1pct_fpr": lira.tpr_at_01pct_fpr,
                "sparsity": sparsity(module), "onnx_bytes": len(onnx)}
        per_seed.append(row)
        print(f"part A seed {seed}: " + "; ".join(
            f"{n}: acc {v['clean_accuracy']:.3f} rob {v['robust_accuracy']} auc {v['lira_auc']:.3f}"
            for n, v in row["variants"].items()), flush=True)
    names = list(per_seed[0]["variants"])
    summary = {}
    for n in names:
        vs = [r["variants"][n] for r in per_seed]
        summary[n] = {"clean_accuracy": _stats([v["clean_accuracy"] for v in vs]),
                      "train_accuracy": _stats([v["train_accuracy"] for v in vs]),
                      "robust_accuracy": {str(e): _stats([v["robust_accuracy"][str(e)] for v in vs]) for e in eps_list},
                      "lira_auc": _stats([v["lira_auc"] for v in vs]),
                      "lira_tpr_at_0.1pct_fpr": _stats([v["lira_tpr_at_0.1pct_fpr"] for v in vs]),
                      "sparsity": _stats([v["sparsity"] for v in vs])}
    return {"setup": {"model": f"DigitsCNN(channels={CHANNELS}, hidden={HIDDEN}), input (1, 8, 8)",
                      "fp32": f"Adam lr 1e-3, batch 32, {args.epochs} epochs on the members (overfits on purpose)",
                      "pruned": f"global L1 unstructured {args.prune_amount:.0%} one-shot, then {args.finetune_epochs} "
                                "epochs fine-tuning with the masks kept",
                      "pruned + DP fine-tuned": f"same pruning, then DP-SGD fine-tuning on the members, target epsilon "
                                                f"{args.dp_epsilon}, {args.finetune_epochs} epochs; epsilon covers the "
                                                "fine-tuning only: the fp32 weights the pruned model keeps were "
                                                "trained on the same members without DP",
                      "pruned + adversarial fine-tuned": f"same pruning, then {args.finetune_epochs} epochs PGD-7 "
                                                         f"adversarial fine-tuning at eps {args.adv_epsilon}",
                      "public-pretrained, pruned + DP fine-tuned": f"a CNN trained ({args.epochs} epochs) on the "
                                                                   f"{len(public)} digits outside the pool (public), "
                                                                   "pruned the same way, then DP fine-tuned on the "
                                                                   f"members (target epsilon {args.dp_epsilon}): the only "
                                                                   "variant whose epsilon covers every use of the members",
                      "pool": f"{pool_n} of the 1797 digits (fixed seed 777), members = half of the pool split by the "
                              "seed, non-members = the other half (test set of clean and robust accuracy); the other "
                              f"{len(public)} digits are public",
                      "robust_accuracy": f"PGD-20 (step eps/8, random start), white-box on each variant's torch "
                                         f"module, evaluated on its ONNX file, {args.robust_examples} non-members, "
                                         "inputs clipped to [0, 1]",
                      "lira": f"online LiRA, fixed variance, {args.shadows} reference models (fp32 recipe) on balanced "
                              f"random halves of the {pool_n} pool records ({shadow_s:.0f} s to train); TPR at 0.1% "
                              "FPR has an FPR resolution of "
                              f"1/{pool_n - pool_n // 2}",
                      "epsilons": list(eps_list), "seeds": list(args.seeds)},
            "seeds": per_seed, "summary": summary}


# --------------------------------------------------------------------------- part B


def part_b(x, y, args) -> dict:
    rows = []
    for seed in args.seeds:
        rng = np.random.default_rng(1000 + seed)
        order = rng.permutation(len(y))
        n_test, n_public = int(0.2 * len(y)), int(0.3 * len(y))
        test, public, private = order[:n_test], order[n_test : n_test + n_public], order[n_test + n_public :]
        xt, yt = x[test], y[test]

        def acc(m):
            return float((predict_logits(m, xt, device="cpu").argmax(1) == yt).mean())

        public_model = fit(_cnn(seed), x[public], y[public], _tc(args.epochs // 2, seed))
        row = {"seed": seed, "n_public": int(len(public)), "n_private": int(len(private)), "n_test": int(len(test)),
               "public_only_accuracy": acc(public_model),
               "non_private_on_all_accuracy": acc(fit(_cnn(seed), x[np.r_[public, private]], y[np.r_[public, private]],
                                                     _tc(args.epochs // 2, seed))),
               "dp": {}}
        for eps in args.dp_epsilons:
            cfg = DpConfig(epsilon=eps, epochs=args.dp_epochs, lr=args.dp_lr, batch_size=64, max_grad_norm=1.0,
                           seed=seed, device="cpu", show_progress=False)
            scratch, r_s = dp_finetune(_cnn(seed + 50), x[private], y[private], cfg, from_scratch=True)
            tuned, r_f = dp_finetune(copy.deepcopy(public_model), x[private], y[private],
                                     DpConfig(**{**cfg.__dict__, "lr": args.dp_lr / 3}))
            student, r_d = dp_distill(public_model, _cnn(seed + 60), x[private], cfg, temperature=1.0)
            row["dp"][str(eps)] = {"scratch": {"accuracy": acc(scratch), "epsilon": r_s.epsilon},
                                   "finetune": {"accuracy": acc(tuned), "epsilon": r_f.epsilon},
                                   "distill": {"accuracy": acc(student), "epsilon": r_d.epsilon},
                                   "delta": r_s.delta, "noise_multiplier": r_s.noise_multiplier}
            print(f"part B seed {seed} eps {eps}: " + ", ".join(
                f"{k} {v['accuracy']:.3f}" for k, v in row["dp"][str(eps)].items() if isinstance(v, dict)), flush=True)
        rows.append(row)
    summary = {"public_only_accuracy": _stats([r["public_only_accuracy"] for r in rows]),
               "non_private_on_all_accuracy": _stats([r["non_private_on_all_accuracy"] for r in rows]),
               "dp": {str(e): {m: _stats([r["dp"][str(e)][m]["accuracy"] for r in rows])
                               for m in ("scratch", "finetune", "distill")} for e in args.dp_epsilons}}
    return {"setup": {"split": "per seed: 20% test, 30% public (labelled, non-private), 50% private",
                      "scratch": "DP-SGD from a random initialisation on the private records (labels)",
                      "finetune": "model pretrained on the public records, then DP-SGD fine-tuning on the private "
                                  "records (labels), lr / 3",
                      "distill": "teacher = the public model (non-private); a fresh student learns its soft labels "
                                 "(T = 1) of the private inputs with DP-SGD; private labels unused (T = 4, the "
                                 "non-private default, left the student at chance under DP-SGD in a trial run)",
                      "dp_sgd": f"{args.dp_epochs} epochs, lr {args.dp_lr}, expected batch 64 (Poisson), clip 1.0, "
                                "delta = 1 / (10 * private records), RDP accountant (Opacus)",
                      "epsilon_covers": "the private records only; not the public records (pretraining / teacher)",
                      "seeds": list(args.seeds)},
            "seeds": rows, "summary": summary}


# --------------------------------------------------------------------------- report


def _pm(s: dict, scale: float = 100.0, digits: int = 1) -> str:
    return f"{scale * s['mean']:.{digits}f} ± {scale * s['std']:.{digits}f}"


def render(result: dict) -> str:
    a, b = result["part_a"], result["part_b"]
    eps = a["setup"]["epsilons"]
    lines = ["# Privacy and robustness remedies on digits", "",
             f"Produced by `bench/privacy_robustness.py` ({result['elapsed_s']:.0f} s, {result['machine']}); "
             "the machine was shared with other jobs (times are not a benchmark). Mean ± std over seeds "
             f"{a['setup']['seeds']}.", "",
             "## A. fp32 vs pruned vs the remedies", "",
             "| variant | clean acc % | train acc % | robust acc % @ eps " + " | robust acc % @ eps ".join(map(str, eps))
             + " | LiRA AUC | LiRA TPR @ 0.1% FPR % |",
             "|---|---|---|" + "---|" * len(eps) + "---|---|"]
    for n, s in a["summary"].items():
        lines.append(f"| {n} | {_pm(s['clean_accuracy'])} | {_pm(s['train_accuracy'])} | "
                     + " | ".join(_pm(s["robust_accuracy"][str(e)]) for e in eps)
                     + f" | {_pm(s['lira_auc'], 1, 3)} | {_pm(s['lira_tpr_at_0.1pct_fpr'])} |")
    lines += ["", "Setup:"] + [f"- {k}: {v}" for k, v in a["setup"].items() if isinstance(v, str)]
    dp_eps = [r["dp"]["epsilon"] for r in a["seeds"]]
    lines += [f"- spent epsilon of the DP fine-tuning per seed: {', '.join(f'{e:.2f}' for e in dp_eps)}", "",
              "## B. DP accuracy: DP fine-tuning and DP distillation vs DP from scratch", "",
              f"Non-private references: public-only model {_pm(b['summary']['public_only_accuracy'])} %, "
              f"non-private on public + private {_pm(b['summary']['non_private_on_all_accuracy'])} %.", "",
              "| epsilon | DP from scratch % | DP fine-tuning % | DP distillation % |", "|---|---|---|---|"]
    for e, s in b["summary"]["dp"].items():
        lines.append(f"| {e} | {_pm(s['scratch'])} | {_pm(s['finetune'])} | {_pm(s['distill'])} |")
    lines += ["", "Setup:"] + [f"- {k}: {v}" for k, v in b["setup"].items() if isinstance(v, str)]
    lines += ["", "## Findings", ""] + [f"- {f}" for f in result["findings"]]
    return "\n".join(lines) + "\n"


def findings(result: dict) -> list[str]:
    """Sentences computed from the numbers (nothing here is typed in by hand)."""
    s = result["part_a"]["summary"]
    eps = result["part_a"]["setup"]["epsilons"]
    out = []
    base = s["pruned"]
    for n in ("pruned + DP fine-tuned", "pruned + adversarial fine-tuned", "public-pretrained, pruned + DP fine-tuned"):
        v = s[n]
        d_auc = v["lira_auc"]["mean"] - base["lira_auc"]["mean"]
        d_tpr = v["lira_tpr_at_0.1pct_fpr"]["mean"] - base["lira_tpr_at_0.1pct_fpr"]["mean"]
        d_rob = v["robust_accuracy"][str(eps[-1])]["mean"] - base["robust_accuracy"][str(eps[-1])]["mean"]
        d_acc = v["clean_accuracy"]["mean"] - base["clean_accuracy"]["mean"]
        noise = max(v["lira_auc"]["std"], base["lira_auc"]["std"])
        leak = ("lower" if d_auc < -noise else "higher" if d_auc > noise else "unchanged within the seeds' spread")
        out.append(f"{n} vs pruned: LiRA AUC {d_auc:+.3f} (leakage {leak}), TPR @ 0.1% FPR {100 * d_tpr:+.1f} points, "
                   f"robust accuracy @ eps {eps[-1]} {100 * d_rob:+.1f} points, clean accuracy {100 * d_acc:+.1f} points")
    p, f = s["pruned"], s["fp32"]
    out.append(f"pruning itself vs fp32: LiRA AUC {p['lira_auc']['mean'] - f['lira_auc']['mean']:+.3f}, robust accuracy "
               f"@ eps {eps[-1]} {100 * (p['robust_accuracy'][str(eps[-1])]['mean'] - f['robust_accuracy'][str(eps[-1])]['mean']):+.1f} points")
    out.append("DP fine-tuning's epsilon covers the fine-tuning only: the pruned model keeps fp32 weights trained on the "
               "same members without DP, so its leakage is not bounded by epsilon (see the LiRA column)")
    b = result["part_b"]["summary"]["dp"]
    public_only = result["part_b"]["summary"]["public_only_accuracy"]["mean"]
    for e, m in b.items():
        best = max(m, key=lambda k: m[k]["mean"])
        out.append(f"epsilon {e}: best is DP {best} ({100 * m[best]['mean']:.1f} %), DP from scratch "
                   f"{100 * m['scratch']['mean']:.1f} %; DP fine-tuning is {100 * (m['finetune']['mean'] - public_only):+.1f} "
                   "points over the public-only model it starts from (most of its accuracy is the public pretraining's)")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--shadows", type=int, default=8, help="LiRA reference models (even)")
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--finetune-epochs", type=int, default=5)
    ap.add_argument("--prune-amount", type=float, default=0.5)
    ap.add_argument("--dp-epsilon", type=float, default=4.0)
    ap.add_argument("--adv-epsilon", type=float, default=0.1)
    ap.add_argument("--robust-examples", type=int, default=300)
    ap.add_argument("--pool", type=int, default=600, help="records in the membership pool (the rest is public)")
    ap.add_argument("--dp-epsilons", type=float, nargs="+", default=[1.0, 4.0, 8.0])
    ap.add_argument("--dp-epochs", type=int, default=15)
    ap.add_argument("--dp-lr", type=float, default=3e-3)
    ap.add_argument("--out", default=str(OUT / "privacy_robustness"))
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    started = time.perf_counter()
    x, y = _digits()
    result = {"part_a": part_a(x, y, args), "part_b": part_b(x, y, args)}
    result.update(elapsed_s=time.perf_counter() - started, machine=f"{platform.machine()}, {platform.python_version()}, "
                  f"torch {torch.__version__}, 1 torch thread", args=vars(args))
    result["findings"] = findings(result)
    Path(args.out + ".json").write_text(json.dumps(result, indent=2) + "\n")
    Path(args.out + ".md").write_text(render(result))
    print(render(result))


if __name__ == "__main__":
    main()
