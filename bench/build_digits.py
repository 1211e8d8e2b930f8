"""`edgeseal build examples/digits/release.toml` twice, as a user runs it: cold, then unchanged.

    python bench/build_digits.py [--recipe examples/digits/release.toml]

The first run starts from an empty stage cache (a fresh temporary folder); the second run
reuses it. Records each run's wall time and stage log, the SHA-256 of every file of the
release folder after each run (they must be identical except build-log.json, which is the
run's own timings), and each target's verdict and figures. Needs the emulated Pi for rpi4 /
rpi5 (`edgeseal device create qemu-rpi`, root). Writes bench/results/build_digits.{json,md,html}.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _hashes(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _run(recipe: Path, cache: Path, out: Path) -> dict:
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "edgeseal", "--json", "build", str(recipe), "--cache-dir", str(cache),
                           "--out", str(out)], capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode not in (0, 1):
        raise SystemExit(f"edgeseal build failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    result = json.loads(proc.stdout)
    return {"exit_code": proc.returncode, "wall_s": round(wall, 1), "log": result["log"], "release": result["release"],
            "hashes": _hashes(out)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--recipe", default=str(ROOT / "examples/digits/release.toml"))
    ap.add_argument("--results", default=str(ROOT / "bench/results"))
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="edgeseal-bench-build.") as tmp:
        cache, out = Path(tmp) / "cache", Path(tmp) / "release"
        cold = _run(Path(args.recipe), cache, out)
        html = (out / "index.html").read_bytes()
        warm = _run(Path(args.recipe), cache, out)
    same = sorted(p for p in cold["hashes"] if cold["hashes"][p] == warm["hashes"].get(p))
    differ = sorted(p for p in set(cold["hashes"]) | set(warm["hashes"]) if cold["hashes"].get(p) != warm["hashes"].get(p))
    rel = warm["release"]
    res = {
        "measured": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "recipe": str(Path(args.recipe).relative_to(ROOT)) if Path(args.recipe).is_relative_to(ROOT) else args.recipe,
        "runs": {name: {k: r[k] for k in ("exit_code", "wall_s", "log")} for name, r in (("cold", cold), ("warm", warm))},
        "identical_files": same, "different_files": differ,
        "hashes": cold["hashes"],
        "release": rel,
    }
    results = Path(args.results)
    results.mkdir(parents=True, exist_ok=True)
    (results / "build_digits.json").write_text(json.dumps(res, indent=2) + "\n")
    (results / "build_digits.html").write_bytes(html)
    lines = [f"# build_digits: `edgeseal build {res['recipe']}`, cold then unchanged",
             "", f"Measured {res['measured']} with `bench/build_digits.py` on the 2-core build machine.",
             "", "| run | wall s | stages ran | from cache | exit |", "|---|---:|---:|---:|---:|"]
    for name in ("cold", "warm"):
        r = res["runs"][name]
        lines.append(f"| {name} | {r['wall_s']} | {r['log']['ran']} | {r['log']['cached']} | {r['exit_code']} |")
    lines += ["", "Stages:", "", "| target | stage | cold: from cache | cold: seconds | warm: from cache | warm: seconds "
              "| output sha256 |", "|---|---|---|---:|---|---:|---|"]
    for a, b in zip(cold["log"]["stages"], warm["log"]["stages"]):
        lines.append(f"| {a['target']} | {a['stage']} | {a['cached']} | {a['seconds']} | {b['cached']} | {b['seconds']} | "
                     f"`{a['outputs'].get(a['main'], '')[:16]}` {a['main']} |")
    lines += ["", f"Release files identical after the second run: {len(same)} of {len(cold['hashes'])}; "
              f"different: {', '.join(differ) or 'none'} (build-log.json holds the run's own timings).", "",
              "| file | sha256 (both runs) |", "|---|---|"]
    lines += [f"| {p} | `{cold['hashes'][p][:32]}…` |" for p in same]
    lines += ["", "Targets:", "", "| target | device | machine | runtime | package bytes | cipher | device acc | "
              "fp32 acc | agreement w/ host | p50 ms | load s | peak MiB | MIA AUC (loss) fp32 → package | verdict |",
              "|---|---|---|---|---:|---|---:|---:|---:|---:|---:|---:|---|---|"]
    for name, t in rel["targets"].items():
        v, p, a = t.get("verification") or {}, t.get("package") or {}, t.get("audit") or {}
        mia = a.get("mia_auc", {}).get("loss", {})
        lines.append(f"| {name} | {t['device']} | {v.get('machine')} | {v.get('backend')} | {p.get('bytes', 0):,} | "
                     f"{p.get('cipher')} | {v.get('device_accuracy', 0):.4f} | {v.get('reference_accuracy', 0):.4f} | "
                     f"{v.get('agreement_with_host')} | {v.get('p50_ms', 0):.3f} | {v.get('load_seconds', 0):.3f} | "
                     f"{v.get('peak_rss_mb')} | {mia.get('fp32', 0):.3f} → {mia.get('package', 0):.3f} | "
                     f"{'ok' if t['passed'] else 'FAIL'} |")
    lines += ["", "Latency and memory on `qemu://` devices are those of QEMU's TCG emulation on x86, not of a Pi.",
              "The summary page of this release: `build_digits.html`."]
    (results / "build_digits.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
