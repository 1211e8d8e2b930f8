"""Deep Compression on the digits CNN: prune -> cluster (k-means codebooks) -> entropy coding, measured in one run.

    python bench/cluster_digits.py        # writes bench/results/cluster_digits.{json,md}

Model: edgeseal's DigitsCNN (226k parameters) trained 15 epochs on scikit-learn's digits (seed 0).
Selection (cluster widths, budgets) on the validation split; accuracy reported on the held-out
test split (360 images). Sizes:

* ``onnx_bytes`` — the ONNX file as ONNX Runtime loads it (float32 weights, or int8 for QDQ);
* ``encoded_bytes`` — codebook records (``edgeseal.runtime.codebook``: bit-packed indices +
  codebooks, entropy-coded) + the graph with those weights marked external, zlib. NOT a sealed
  package: the package format does not carry codebook records yet (see the README section);
* ``sealed_zlib_bytes`` — the ONNX file itself in a real sealed package (``edgeseal.seal``,
  ``compression="zlib"``, one device key, signed);
* ``sealed_codebook_bytes`` — a real sealed package of content format ``onnx+codebook``
  (docs/format.md §11: ``converters.cluster.codebook_model``, then ``edgeseal.seal`` with zlib),
  for the variants whose weights a codebook holds.

Load: ``edgeseal.load`` of the sealed codebook package (verify, decrypt, decode the records in
memory, session) vs ``edgeseal.load`` of the sealed int8 ONNX package, interleaved, same process;
the loaded codebook model's outputs are checked bit for bit against the clustered ONNX model and
its test accuracy against the converter's own evaluation. The machine was shared with other jobs:
times are noisy, ratios of interleaved runs are the figure to read.
"""

from __future__ import annotations

import copy
import json
import platform
import time
import warnings
from pathlib import Path

import numpy as np

from _machine import cpu_name  # bench/_machine.py (the script's folder is on sys.path)

ROOT = Path(__file__).resolve().parents[1]
PRUNE = (0.8, 0.9)  # unstructured sparsities tried (global magnitude, gradual, 8 fine-tune epochs)
MAX_DROP = 1.0  # accuracy points on the validation split, for every clustering budget


def main() -> None:
    import torch

    import edgeseal
    from edgeseal.converters import cluster as cl
    from edgeseal.converters import prune as pr
    from edgeseal.converters.export import export_onnx
    from edgeseal.converters.infer import runner_for
    from edgeseal.converters.quantize import OnnxStaticConfig, quantize_onnx_static
    from edgeseal.converters.train import TrainConfig, fit
    from edgeseal.converters.zoo import load_digits_split, train_digits_cnn
    from edgeseal.runtime import codebook

    torch.set_num_threads(2)
    warnings.simplefilter("ignore")
    t_start = time.time()
    d = load_digits_split(seed=0)
    teacher = train_digits_cnn(d, epochs=15, seed=0, show_progress=False)
    fp32 = export_onnx(teacher, d.x_val[:8]).model

    def acc(model: bytes, x: np.ndarray, y: np.ndarray) -> float:
        return 100 * float((runner_for(model).run_batched(x).argmax(-1) == y).mean())

    val = lambda m: acc(m, d.x_val, d.y_val)  # noqa: E731
    test = lambda m: acc(m, d.x_test, d.y_test)  # noqa: E731
    ref_val, ref_test = val(fp32), test(fp32)
    publisher, device = edgeseal.generate_publisher_key(), edgeseal.generate_device_key()

    def seal(model: bytes) -> bytes:
        return edgeseal.seal(model, publisher=publisher, devices=[device.public_key()], compression="zlib",
                             now=1_700_000_000.0)

    def sealed(model: bytes) -> int:
        return len(seal(model))

    def sealed_codebook(model: bytes) -> int | None:
        try:
            return len(seal(cl.codebook_model(model)))
        except edgeseal.UnsupportedError:  # nothing a codebook holds (no clustered tensor)
            return None

    models: dict[str, bytes] = {}

    def describe(name: str, model: bytes, how: str, report=None, extra: dict | None = None) -> dict:
        models[name] = model
        size, graph, records = cl.encoded_size(model)
        tensors = cl.clustered_tensors(model)
        codings = {}
        entropy_bytes = 0.0
        for c in codebook.Coding:
            codings[c.name.lower()] = size.graph_bytes + len(codebook.encode_tensors(
                {n: a for n, (a, _) in tensors.items()}, groups={n: g for n, (_, g) in tensors.items()}, coding=c))
        for n, (a, g) in tensors.items():
            enc = codebook.encode(a, groups=g)
            idx = codebook.unpack_indices(enc.packed, enc.size, enc.bits)
            entropy_bytes += codebook.order0_entropy_bits(idx) * enc.size / 8 + enc.codebooks.size * enc.dtype.itemsize
        out = {
            "how": how, "onnx_bytes": len(model), "encoded_bytes": size.total, "encoded": size.to_dict(),
            "encoded_by_coding": codings,
            "order0_entropy_bound_bytes": round(size.graph_bytes + entropy_bytes),
            "sealed_zlib_bytes": sealed(model), "sealed_codebook_bytes": sealed_codebook(model),
            "val_accuracy": val(model), "test_accuracy": test(model),
            "test_drop_points": ref_test - test(model),
            "ratio_vs_fp32_onnx": len(fp32) / size.total,
        }
        if report is not None:
            out["clustering"] = report.to_dict()
        out.update(extra or {})
        print(f"{name:<28} onnx {len(model):>9,}  encoded {size.total:>8,}  x{len(fp32) / size.total:6.1f}  "
              f"test {out['test_accuracy']:.2f} (drop {out['test_drop_points']:.2f})", flush=True)
        return out

    variants = {"fp32": describe("fp32", fp32, "DigitsCNN, 15 epochs, torch.export ONNX")}
    variants["int8_static"] = describe("int8_static", quantize_onnx_static(fp32, d.x_train, OnnxStaticConfig()),
                                       "ONNX Runtime static QDQ int8 (per-channel weights, MinMax)")

    def clustered(model_t, exported: bytes, epochs: int) -> tuple[bytes, object, object]:
        cfg = cl.ClusterConfig(max_drop=MAX_DROP, epochs=epochs, lr=1e-3, seed=0)
        model, report, tensors = cl.cluster_onnx(exported, d.x_train, val, cfg, reference_score=ref_val)
        if epochs:
            tuned, names = cl.finetune_centroids(copy.deepcopy(model_t), exported, tensors, (d.x_train, d.y_train), cfg)
            after = export_onnx(tuned, d.x_val[:8]).model
            import dataclasses

            report = dataclasses.replace(report, score=val(after), score_before_finetune=report.score, finetuned=names)
            model = after
        return model, report, tensors

    t0 = time.time()
    c_model, c_report, _ = clustered(teacher, fp32, 3)
    variants["cluster"] = describe("cluster", c_model, f"k-means per layer (widths 1..8 bits picked within {MAX_DROP} "
                                   "point on val), centroids fine-tuned 3 epochs", c_report,
                                   {"seconds": round(time.time() - t0, 1)})
    best = None
    for amount in PRUNE:
        t0 = time.time()
        pruned_t = copy.deepcopy(teacher)
        tc = TrainConfig(epochs=8, lr=1e-3, batch_size=64, seed=0, show_progress=False)
        pruned_t = pr.prune_unstructured(pruned_t, pr.UnstructuredPruneConfig(amount=amount),
                                         fine_tune=lambda m, hook: fit(m, d.x_train, d.y_train, tc, after_step=hook))
        pruned = export_onnx(pruned_t, d.x_val[:8]).model
        name = f"prune{int(amount * 100)}"
        variants[name] = describe(name, pruned, f"unstructured {amount:.0%} (global magnitude, gradual, 8 epochs)")
        pc_model, pc_report, _ = clustered(pruned_t, pruned, 3)
        variants[name + "_cluster"] = describe(
            name + "_cluster", pc_model, f"{name} + k-means (zeros kept as their own centroid) + 3 epochs centroid "
            "fine-tuning", pc_report, {"seconds": round(time.time() - t0, 1)})
        q = quantize_onnx_static(pc_model, d.x_train, OnnxStaticConfig())
        variants[name + "_cluster_int8"] = describe(name + "_cluster_int8", q, f"{name}_cluster + static QDQ int8 "
                                                    "(int8 codebooks per channel)")
        ok = variants[name + "_cluster"]["test_drop_points"] <= 1.0
        if ok and (best is None or variants[name + "_cluster"]["encoded_bytes"] < variants[best]["encoded_bytes"]):
            best = name + "_cluster"

    # load: the sealed codebook package vs the sealed int8 ONNX package, both through edgeseal.load, interleaved
    chosen = best or "cluster"
    cb_package = seal(cl.codebook_model(models[chosen]))
    int8_package = seal(models["int8_static"])
    trusted = [publisher.public_key()]
    loaded = edgeseal.load(cb_package, key=device, trusted=trusted)
    try:
        runs = runner_for(models[chosen]).run_batched(d.x_test)
        got = np.concatenate([loaded.run(d.x_test[i:i + 1])[loaded.outputs[0].name] for i in range(len(d.x_test))])
        want = np.concatenate([runner_for(models[chosen]).run(d.x_test[i:i + 1]) for i in range(len(d.x_test))])
        identical = got.tobytes() == want.tobytes()
        sealed_acc = 100 * float((got.argmax(-1) == d.y_test).mean())
    finally:
        loaded.close()
    del runs
    from edgeseal.runtime.timing import interleaved

    def load(package: bytes) -> None:
        m = edgeseal.load(package, key=device, trusted=trusted, threads=1)
        m.run(d.x_test[:1])
        m.close()

    # the one harness: turns in a rotating order, 8 rounds x 5 loads each
    speed = interleaved({"codebook": lambda: load(cb_package), "int8": lambda: load(int8_package)}, baseline="int8",
                        rounds=8, calls_per_round=5, warmup=3, settle=0)
    load_res = {"variant": chosen, "codebook_package_bytes": len(cb_package), "int8_package_bytes": len(int8_package),
                "codebook_ms_median": speed.latency["codebook"].p50_ms,
                "int8_ms_median": speed.latency["int8"].p50_ms,
                "ratio_median": speed.ratios_to("codebook")["int8"],  # codebook time / int8 time, per round
                "runs": speed.latency["int8"].runs,
                "outputs_bit_identical_to_clustered_onnx": identical,
                "sealed_test_accuracy": sealed_acc, "converter_test_accuracy": variants[chosen]["test_accuracy"],
                "what": "edgeseal.load (signature, decryption, codebook decoding, session) + one run, codebook package "
                        "vs plain int8 ONNX package, interleaved"}
    res = {
        "reference": {"val_accuracy": ref_val, "test_accuracy": ref_test, "fp32_onnx_bytes": len(fp32)},
        "variants": variants, "best_within_1_point": best, "load": load_res,
        "goal": goal(variants, len(fp32)),
        "machine": {"cpu": cpu_name(), "python": platform.python_version(), "shared": True,
                    "note": "2 cores shared with other jobs while this ran"},
        "wall_s": round(time.time() - t_start, 1),
    }
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "cluster_digits.json").write_text(json.dumps(res, indent=2, default=float))
    (out / "cluster_digits.md").write_text(render(res))
    print(render(res))


def goal(variants: dict, fp32_bytes: int) -> dict:
    """The >= 20x at <= 1 point goal, judged on real sealed packages (plain ONNX + zlib, or onnx+codebook)."""
    within = {n: v for n, v in variants.items() if v["test_drop_points"] <= 1.0}

    def smallest(v: dict) -> tuple[int, str]:
        options = [(v["sealed_zlib_bytes"], "onnx")]
        if v.get("sealed_codebook_bytes"):
            options.append((v["sealed_codebook_bytes"], "onnx+codebook"))
        return min(options)

    best = min(within, key=lambda n: smallest(within[n])[0])
    size, fmt = smallest(within[best])
    return {"ratio": 20, "max_drop_points": 1.0, "best_sealed": best, "best_sealed_format": fmt,
            "best_sealed_bytes": size, "best_sealed_ratio": fp32_bytes / size, "met_by_sealed_package": fp32_bytes / size >= 20,
            "note": "sealed = a real edgeseal package (signed, one X25519 device slot, zlib before encryption) of the "
                    "ONNX file (content format onnx) or of its codebook container (onnx+codebook)"}


def render(res: dict) -> str:
    ref = res["reference"]
    lines = [
        "# Digits CNN: prune + cluster + entropy coding",
        "",
        f"fp32 ONNX: {ref['fp32_onnx_bytes']:,} bytes, test accuracy {ref['test_accuracy']:.2f} % "
        f"(val {ref['val_accuracy']:.2f} %). Widths chosen on val within {MAX_DROP:g} point; drops on test.",
        "",
        "| variant | ONNX bytes | sealed onnx (zlib) | fp32 / sealed onnx | sealed onnx+codebook | fp32 / sealed codebook | "
        "test acc % | drop (points) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, v in res["variants"].items():
        cbb = v.get("sealed_codebook_bytes")
        cb_cells = f"{cbb:,} | {ref['fp32_onnx_bytes'] / cbb:.1f}" if cbb else "- | -"
        lines.append(f"| {name} | {v['onnx_bytes']:,} | {v['sealed_zlib_bytes']:,} | "
                     f"{ref['fp32_onnx_bytes'] / v['sealed_zlib_bytes']:.1f} | {cb_cells} | "
                     f"{v['test_accuracy']:.2f} | {v['test_drop_points']:.2f} |")
    lines += ["", "Entropy coding of the index streams: codebook records + zlib graph, unsealed (`auto` keeps the "
              "smallest coding per tensor; the order-0 bound is what an ideal symbol-by-symbol coder — Huffman, ANS — "
              "could reach at best):", "",
              "| variant | packed | zlib packed | zlib bytes | xz bytes | auto | order-0 entropy bound |",
              "|---|---:|---:|---:|---:|---:|---:|"]
    for name, v in res["variants"].items():
        c = v["encoded_by_coding"]
        lines.append(f"| {name} | {c['packed']:,} | {c['zlib_packed']:,} | {c['zlib_bytes']:,} | {c['lzma_bytes']:,} | "
                     f"{v['encoded_bytes']:,} | {v['order0_entropy_bound_bytes']:,} |")
    lines += ["", "Per layer (chosen widths):", ""]
    for name, v in res["variants"].items():
        if "clustering" in v:
            layers = ", ".join(f"{x['node']} {x['bits']} bits/{x['centroids']} centroids ({x['zeros']:.0%} zero, "
                               f"{x['weight_sqnr_db']:.1f} dB)" for x in v["clustering"]["layers"])
            lines.append(f"- {name}: {layers}")
    ld = res["load"]
    g = res["goal"]
    lines += ["", f"Load ({ld['variant']}; {ld['what']}): codebook package ({ld['codebook_package_bytes']:,} B) "
              f"{ld['codebook_ms_median']:.2f} ms vs int8 package ({ld['int8_package_bytes']:,} B) "
              f"{ld['int8_ms_median']:.2f} ms median; per-round ratio median {ld['ratio_median']:.2f} over {ld['runs']} loads each. "
              f"Outputs of the loaded codebook package bit-identical to the clustered ONNX model: "
              f"{ld['outputs_bit_identical_to_clustered_onnx']}; its test accuracy {ld['sealed_test_accuracy']:.2f} % "
              f"(converter's evaluation {ld['converter_test_accuracy']:.2f} %).",
              "", f"Goal >= {g['ratio']}x smaller than the fp32 ONNX file at <= {g['max_drop_points']:g} point (test): "
              f"{'MET' if g['met_by_sealed_package'] else 'NOT met'} — {g['best_sealed']} as {g['best_sealed_format']}: "
              f"{g['best_sealed_bytes']:,} B, {g['best_sealed_ratio']:.1f}x. {g['note']}.",
              "", f"Machine: {res['machine']['cpu']}, {res['machine']['note']}. Wall {res['wall_s']} s."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    import sys

    if sys.argv[1:] == ["--render"]:  # re-derive the goal and the tables from the recorded measurements
        path = ROOT / "bench" / "results" / "cluster_digits.json"
        res = json.loads(path.read_text())
        res["goal"] = goal(res["variants"], res["reference"]["fp32_onnx_bytes"])
        path.write_text(json.dumps(res, indent=2, default=float))
        (path.with_suffix(".md")).write_text(render(res))
        print(render(res))
    else:
        main()
