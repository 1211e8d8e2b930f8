"""``edgeseal build release.toml``: one reproducible release step for several targets.

For every ``[[target]]`` of the recipe (see :mod:`edgeseal.release.config`) the build runs

    model (train or load, fp32 reference) -> compress (prune / distill / int8, exported in the
    target's format) -> seal (for the target's devices, the target's cipher) -> verify (on the
    target's device) -> audit (leakage and robustness of the sealed package vs fp32)

and writes one release folder: each target's sealed package, its signed verification and
audit reports, ``release.json`` (every file's SHA-256, every verdict) and ``index.html`` (a
self-contained summary with plots).

Every stage is cached by content: its key is the SHA-256 of the stage's settings, the hashes
of its inputs (data, weights, the model it compresses, the package it verifies) and the
edgeseal code. A re-run with nothing changed reuses every finished stage, so the packages and
reports — whose bytes include random nonces, timestamps and measured latencies — come back
byte for byte, and ``release.json`` and ``index.html`` are rebuilt identical. Change the budget
and only compression and what follows it run again; targets with the same format and int8
scheme share one compressed model.
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, ClassVar

import numpy as np

from ..compress.core import resolve_callable, compress, load_model, load_npz, manifest_summary
from .config import ReleaseConfig, TargetEntry, load_release
from ..report.base import Report
from ..report.signing import sha256_hex as _sha256
from ..stages import StageCache, StageRecord, Stages, arrays_digest as _arrays_digest, default_cache
from ..runtime.errors import ConfigError, EdgesealError

__all__ = ["StageCache", "StageRecord", "BuildResult", "build", "add_parser"]

SCHEMA = "edgeseal.release/1"


@dataclasses.dataclass
class BuildResult(Report):
    """What ``build`` did: the release folder, ``release`` (release.json) and this run's stage log."""

    kind: ClassVar[str] = "release"

    out: Path
    release: dict[str, Any]
    records: list[StageRecord]
    seconds: float

    @property
    def passed(self) -> bool:
        return bool(self.release["passed"])

    def to_dict(self) -> dict[str, Any]:
        return {"release": self.release, "log": self.log(), "out": str(self.out)}

    def html(self) -> str:
        from .html import render_html

        return render_html(self.release)

    def log(self) -> dict[str, Any]:
        return {"seconds": round(self.seconds, 2), "stages": [r.to_dict() for r in self.records],
                "ran": sum(not r.cached for r in self.records), "cached": sum(r.cached for r in self.records)}

    def text(self) -> str:
        rel = self.release
        lines = [f"edgeseal build: {rel['name']} v{rel['version']}: {'PASSED' if rel['passed'] else 'FAILED'}", ""]
        head = f"  {'target':<14}{'stage':<10}{'':<8}{'seconds':>9}  output sha256"
        lines += [head, "  " + "-" * (len(head) + 50)]
        for r in self.records:
            state = "FAILED" if r.error else ("cached" if r.cached else "ran")
            lines.append(f"  {r.target:<14}{r.stage:<10}{state:<8}{r.seconds:>9.2f}  "
                         f"{r.outputs.get(r.main, '')[:16]:<16}  {r.main}")
            if r.error:
                lines.append(f"      {r.error}")
        lines += ["", f"  {'target':<14}{'verdict':<9}{'size':>10}{'acc %':>8}{'device p50 ms':>15}  report sha256"]
        for name, t in rel["targets"].items():
            v = t.get("verification") or {}
            report = t["files"].get(f"{name}/verification.json", "")
            acc = "-" if v.get("device_accuracy") is None else f"{100 * v['device_accuracy']:.2f}"
            p50 = "-" if v.get("p50_ms") is None else f"{v['p50_ms']:.3f}"
            size = "-" if t.get("package") is None else f"{t['package']['bytes']:,}"
            lines.append(f"  {name:<14}{'ok' if t['passed'] else 'FAIL':<9}{size:>10}{acc:>8}{p50:>15}  {report[:16]}")
            lines += [f"      {c['name']}: {c['detail']}" for c in t["checks"] if not c["passed"]]
        cached = sum(r.cached for r in self.records)
        lines += ["", f"  {len(self.records)} stages: {len(self.records) - cached} ran, {cached} from the cache; "
                  f"{self.seconds:.1f} s", f"  release in {self.out}/ (index.html, release.json)"]
        return "\n".join(lines)


# --------------------------------------------------------------------------- data, keys


def _load_data(cfg: ReleaseConfig) -> dict[str, Any]:
    """``{"train": (x, y), "calibration": x, "eval": (x, y), "test": (x, y)}`` from the recipe's [data]."""
    d = cfg.data
    if d.source is not None:
        got = resolve_callable(d.source, "[data] source")()
        if not isinstance(got, dict) or "train" not in got or "eval" not in got:
            raise ConfigError(f"[data] source {d.source} must return a dict with 'train' and 'eval' (x, y) pairs")
        splits = {k: got.get(k) for k in ("train", "calibration", "eval", "test")}
    else:
        splits = {}
        for role in ("train", "eval", "test"):
            path = cfg.path(getattr(d, role))
            splits[role] = None if path is None else load_npz(path, x_key=d.x_key, y_key=d.y_key)
        cal = cfg.path(d.calibration)
        splits["calibration"] = None if cal is None else load_npz(cal, x_key=d.x_key, need_y=False)[0]
    for role in ("train", "eval", "test"):
        if splits[role] is not None:
            x, y = splits[role]
            splits[role] = (np.asarray(x, np.float32), np.asarray(y, np.int64))
    splits["test"] = splits["test"] or splits["eval"]
    if splits["calibration"] is None:
        splits["calibration"] = splits["train"][0]
    return splits


def _ensure_key(cfg: ReleaseConfig, path: Path, generate: Callable[[], Any], what: str, why: str,
                status: Callable[[str], None]) -> None:
    """Create a missing private key (0600) when the recipe allows it."""
    from ..runtime.keys import write_private_key

    if path.is_file():
        return
    if not cfg.keys.create:
        raise ConfigError(f"{what} {path} does not exist (and [keys] create = false)")
    path.parent.mkdir(parents=True, exist_ok=True)
    write_private_key(path, generate())
    status(f"created {what.split(': ')[-1]} {path} ({why})")


@dataclasses.dataclass(frozen=True)
class _Keys:
    publisher: Path
    publisher_pub: Path
    fingerprint: str


def _keys(cfg: ReleaseConfig, status: Callable[[str], None]) -> _Keys:
    from ..runtime.keys import fingerprint, generate_publisher_key, load_private_key, public_pem

    path = cfg.path(cfg.keys.publisher) or cfg.path(cfg.keys.dir) / "publisher.pem"
    _ensure_key(cfg, path, generate_publisher_key, "publisher key", "keep it safe: it signs every package and report",
                status)
    key = load_private_key(path)
    pub = path.with_suffix(".pub")
    if not pub.is_file() or pub.read_bytes() != public_pem(key.public_key()):
        pub.write_bytes(public_pem(key.public_key()))
    return _Keys(path, pub, fingerprint(key.public_key()))


def _device_keys(cfg: ReleaseConfig, target: TargetEntry, status: Callable[[str], None]) -> tuple[Path, list[bytes]]:
    """The verifying device's private key file and every public key the package is sealed for (PEM)."""
    import glob

    from ..runtime.keys import generate_device_key, load_private_key, load_public_key, public_pem

    path = cfg.path(target.device_key) or cfg.path(cfg.keys.dir) / f"{target.name}-device.pem"
    _ensure_key(cfg, path, generate_device_key, f"[[target]] {target.name}: device key", "it verifies the target",
                status)
    pems = [public_pem(load_private_key(path).public_key())]
    for pattern in target.seal_for:
        matches = sorted(glob.glob(str(cfg.path(pattern))))
        if not matches:
            raise ConfigError(f"[[target]] {target.name}: seal_for {pattern!r} matches no file")
        pems += [public_pem(load_public_key(Path(m))) for m in matches]
    return path, sorted(set(pems))


# --------------------------------------------------------------------------- the stages


class _Build:
    def __init__(self, cfg: ReleaseConfig, cache: StageCache, status: Callable[[str], None], show_progress: bool):
        self.cfg, self.status, self.show_progress = cfg, status, show_progress
        self.stages = Stages(cache, status)  # .total: set once the targets are known, for the "(3/13)"
        self.code = self.stages.code
        self.records = self.stages.records

    def stage(self, target: str, name: str, inputs: dict[str, Any], run: Callable[[], dict[str, bytes]],
              main: str) -> dict[str, bytes]:
        return self.stages.run(target, name, inputs, run, main)

    # -- model: trained (or loaded) fp32 weights and the fp32 ONNX reference
    def model(self, data: dict[str, Any]) -> tuple[dict[str, bytes], Any]:
        import torch

        m = self.cfg.model
        weights = self.cfg.path(m.state_dict)
        if weights is not None and not weights.is_file():
            raise ConfigError(f"[model] state_dict {weights} does not exist")
        inputs = {"factory": m.factory, "input_shape": m.input_shape,
                  "weights": None if weights is None else _sha256(weights.read_bytes()),
                  "train": None if m.train is None else dataclasses.asdict(m.train),
                  "data": _arrays_digest(*data["train"]) if m.train is not None else None}

        def run() -> dict[str, bytes]:
            from ..converters.export import export_onnx
            from ..converters.train import TrainConfig, fit

            if m.train is None:
                module = load_model(None, factory=m.factory, state_dict=str(weights))
            else:
                torch.manual_seed(m.train.seed)
                module = resolve_callable(m.factory, "[model] factory")()
                tc = TrainConfig(epochs=m.train.epochs, lr=m.train.lr, batch_size=m.train.batch_size,
                                 seed=m.train.seed, show_progress=self.show_progress)
                module = fit(module, *data["train"], tc, description="train fp32 model")
            buf = io.BytesIO()
            torch.save(module.state_dict(), buf)
            fp32 = export_onnx(module.eval(), data["eval"][0][:64]).model
            return {"model.pt": buf.getvalue(), "fp32.onnx": fp32}

        files = self.stage("all", "model", inputs, run, main="fp32.onnx")
        module = resolve_callable(m.factory, "[model] factory")()
        module.load_state_dict(torch.load(io.BytesIO(files["model.pt"]), weights_only=True))
        return files, module.eval()

    # -- compress: the recipe's [compress] tables in the target's format and int8 scheme
    def compress(self, target: TargetEntry, model_files: dict[str, bytes], module: Any, data: dict[str, Any]) -> dict[str, bytes]:
        import copy

        from ..compress.recipe import recipe_from_dict
        from ..targets import get_profile

        profile = get_profile(target.name)
        tables = {k: dict(v) for k, v in self.cfg.compress.items()}
        if "quantize" in tables:
            tables["quantize"].setdefault("activations", profile.quantization.activations)
            tables["quantize"].setdefault("max_drop", self.cfg.budget.max_drop)
        tables["export"] = {**tables.get("export", {}), "format": profile.format.value}
        if m_shape := self.cfg.model.input_shape:
            tables["model"] = {"input_shape": list(m_shape)}
        seed = self.cfg.model.train.seed if self.cfg.model.train else 0
        # [budget] max_drop is the budget of the whole compress recipe (pruning and int8 together) vs fp32
        bud = self.cfg.budget
        recipe = recipe_from_dict({**tables, "seed": seed, "max_drop": bud.max_drop, **bud.robust_fields()})
        # The key holds what compression does, not the target's name: targets with the same
        # format and int8 scheme share one compressed model.
        inputs = {"recipe": tables, "seed": seed, "max_drop": bud.max_drop, "robust": bud.robust_fields(),
                  "model": _sha256(model_files["model.pt"]),
                  "data": [_arrays_digest(*data["train"]), _arrays_digest(data["calibration"]), _arrays_digest(*data["eval"])]}

        def run() -> dict[str, bytes]:
            result = compress(copy.deepcopy(module), recipe, train=data["train"], calibration=data["calibration"],
                              eval=data["eval"], show_progress=self.show_progress)
            return {f"model.{result.format}": result.model, "compress.json": result.report.to_json().encode()}

        return self.stage(target.name, "compress", inputs, run, main="model.")

    def seal(self, target: TargetEntry, model: bytes, fmt: str, keys: _Keys, device_pems: list[bytes],
             summary: dict[str, Any]) -> bytes:
        from ..seal import seal
        from ..targets import get_profile

        rel = self.cfg.release
        inputs = {"model": _sha256(model), "target": target.name, "cipher": str(get_profile(target.name).cipher),
                  "devices": [_sha256(p) for p in device_pems], "publisher": keys.fingerprint, "name": rel.name,
                  "version": rel.version, "expires_days": rel.expires_days, "summary": summary}

        def run() -> dict[str, bytes]:
            from ..runtime.keys import load_public_key

            expires = None if rel.expires_days is None else int(time.time()) + rel.expires_days * 86400
            package = seal(model, publisher=keys.publisher, devices=[load_public_key(p) for p in device_pems],
                           name=rel.name, version=rel.version, target=target.name, content_format=fmt,
                           expires=expires, compression_summary=summary)
            return {"package.eseal": package}

        return self.stage(target.name, "seal", inputs, run, main="package.eseal")["package.eseal"]

    def verify(self, target: TargetEntry, package: bytes, keys: _Keys, device_key: Path, fp32: bytes,
               data: dict[str, Any], progress: Any) -> dict[str, bytes]:
        from ..runtime.keys import fingerprint, load_private_key
        from ..verify.core import VerifyConfig, verify

        x, y = data["test"]
        inputs = {"package": _sha256(package), "device": target.device, "threads": target.threads,
                  "device_key": fingerprint(load_private_key(device_key).public_key()), "reference": _sha256(fp32),
                  "data": _arrays_digest(x, y), "budget": self.cfg.budget.max_drop}

        def run() -> dict[str, bytes]:
            with tempfile.TemporaryDirectory(prefix="edgeseal-build.") as tmp:
                tmp = Path(tmp)
                (tmp / f"{self.cfg.release.name}.eseal").write_bytes(package)
                (tmp / "fp32.onnx").write_bytes(fp32)
                np.savez(tmp / "test.npz", x=x, y=y)
                config = VerifyConfig(device=target.device, key=device_key, trusted=(keys.publisher_pub,),
                                      publisher=keys.publisher, reference=tmp / "fp32.onnx",
                                      max_drop=self.cfg.budget.max_drop, target=target.name,
                                      threads=target.threads)
                kwargs = {} if progress is None else {"progress": progress.update, "status": progress.status}
                report = verify(tmp / f"{self.cfg.release.name}.eseal", tmp / "test.npz", config, **kwargs)
                return {"verification.json": report.body(),
                        "verification.json.sig": (json.dumps(report.signature, indent=2) + "\n").encode()}

        return self.stage(target.name, "verify", inputs, run, main="verification.json")

    def audit(self, target: TargetEntry, package: bytes, keys: _Keys, device_key: Path, fp32: bytes,
              data: dict[str, Any]) -> dict[str, bytes]:
        spec = self.cfg.audit
        assert spec is not None
        inputs = {"package": _sha256(package), "reference": _sha256(fp32), "spec": dataclasses.asdict(spec),
                  "members": _arrays_digest(*data["train"]), "nonmembers": _arrays_digest(*data["test"])}

        def run() -> dict[str, bytes]:
            from ..audit.artifacts import OnnxArtifact, SealedArtifact
            from ..audit.gate import evaluate_gate
            from ..audit.user import UserAuditConfig, audit_artifacts
            from ..runtime.keys import FileKey
            from ..report.signing import sign_report

            ref = OnnxArtifact(name="fp32", kind="fp32", model=fp32)  # audit_artifacts handles image-shaped inputs
            art = SealedArtifact(name=target.name, kind="int8", package=package, size_bytes=len(package),
                                 load_options={"key": FileKey(device_key), "trusted": [keys.publisher_pub], "threads": 1})
            ucfg = UserAuditConfig(epsilons=spec.epsilons, lo=spec.lo, hi=spec.hi, queries=spec.queries,
                                   examples=spec.examples, radius=spec.radius,
                                   explanation_examples=spec.explanation_examples, seed=spec.seed)
            (xm, ym), (xn, yn) = data["train"], data["test"]
            report = audit_artifacts(ref, [art], x_members=xm, y_members=ym, x_nonmembers=xn, y_nonmembers=yn,
                                     config=ucfg)
            report["gate"] = evaluate_gate(report, spec.gate, gate_epsilon_index=spec.gate_epsilon_index)
            report["package_sha256"] = _sha256(package)
            body, signature = sign_report(report, keys.publisher)
            return {"audit.json": body, "audit.json.sig": (json.dumps(signature, indent=2) + "\n").encode()}

        return self.stage(target.name, "audit", inputs, run, main="audit.json")


# --------------------------------------------------------------------------- the build


def _check(name: str, passed: bool, detail: str) -> dict[str, Any]:
    return {"name": name, "passed": bool(passed), "detail": detail}


def build(config: ReleaseConfig | str | Path, *, out: str | Path | None = None, cache_dir: str | Path | None = None,
          use_cache: bool = True, targets: list[str] | None = None, status: Callable[[str], None] = print,
          show_progress: bool = False, verify_progress: Any = None) -> BuildResult:
    """Run the release recipe; write the release folder and return what happened."""
    from .html import write_html

    cfg = config if isinstance(config, ReleaseConfig) else load_release(config)
    chosen = [t for t in cfg.targets if targets is None or t.name in targets]
    if targets is not None and len(chosen) != len(set(targets)):
        missing = sorted(set(targets) - {t.name for t in cfg.targets})
        raise ConfigError(f"--target {', '.join(missing)} is not in the recipe; it has {[t.name for t in cfg.targets]}")
    out = Path(out) if out is not None else cfg.path(cfg.release.out)
    _check_out(out)
    unusable = _preflight_devices(chosen)  # a missing device fails its target now, not after minutes of compression
    for name, problem in unusable.items():
        status(f"[{name}] not built: {problem}")
    cache = StageCache(None if not use_cache else Path(cache_dir) if cache_dir else default_cache("build"))
    t0 = time.perf_counter()
    b = _Build(cfg, cache, status, show_progress)
    b.stages.total = 1 + len(chosen) * (4 if cfg.audit is not None else 3)
    keys = _keys(cfg, status)
    data = _load_data(cfg)
    model_files, module = b.model(data)
    fp32 = model_files["fp32.onnx"]
    written: dict[str, bytes] = {"publisher.pub": keys.publisher_pub.read_bytes()}
    kept, kept_keys = _kept_targets(out, cfg, chosen, fp32, keys, written, status)
    results: dict[str, Any] = {}
    for target in chosen:
        if target.name in unusable:
            results[target.name] = {"device": target.device, "stages": [], "passed": False,
                                    "checks": [_check("device", False, unusable[target.name])]}
            continue
        results[target.name] = _build_target(b, target, keys, model_files, module, data, written, verify_progress)
    results = {t.name: results.get(t.name) or kept[t.name] for t in cfg.targets if t.name in results or t.name in kept}
    release = {
        "schema": SCHEMA, "name": cfg.release.name, "version": cfg.release.version,
        "publisher": keys.fingerprint, "code": b.code,
        "passed": all(e["passed"] for e in results.values()),
        "budget": {"max_drop_points": cfg.budget.max_drop},
        "fp32": {"onnx_bytes": len(fp32), "sha256": _sha256(fp32)},
        "targets": results,
        "stage_keys": {**kept_keys, **{f"{r.target}/{r.stage}": r.key for r in b.records}},
    }
    for name, e in results.items():
        e["files"] = {p: _sha256(d) for p, d in sorted(written.items()) if p.startswith(f"{name}/")}
    _write_release(out, written, release, write_html)
    result = BuildResult(out, release, b.records, time.perf_counter() - t0)
    (out / "build-log.json").write_text(json.dumps(result.log(), indent=2) + "\n")
    return result


def _build_target(b: _Build, target: TargetEntry, keys: _Keys, model_files: dict[str, bytes], module: Any,
                  data: dict[str, Any], written: dict[str, bytes], verify_progress: Any) -> dict[str, Any]:
    """compress -> seal -> verify -> audit for one target; a failure is recorded, not raised."""
    from ..runtime.format import Package
    from ..targets.ops import require_supported

    cfg, fp32 = b.cfg, model_files["fp32.onnx"]
    entry: dict[str, Any] = {"device": target.device, "checks": [], "stages": []}
    try:
        device_key, pems = _device_keys(cfg, target, b.status)
        comp = b.compress(target, model_files, module, data)
        model_name = next(n for n in comp if n.startswith("model."))
        model, fmt = comp[model_name], model_name.split(".", 1)[1]
        creport = json.loads(comp["compress.json"])
        require_supported(model, target.name)
        entry["stages"] = [{"stage": s["stage"], "size_bytes": s["size_bytes"], "zlib_bytes": s["zlib_bytes"],
                            "params": s["params"], "p50_ms": s["latency"]["p50_ms"],
                            "eval_accuracy": (s["classification"] or {}).get("accuracy")} for s in creport["stages"]]
        first, last = creport["stages"][0], creport["stages"][-1]
        drop = 100 * ((first["classification"] or {}).get("accuracy", 0) - (last["classification"] or {}).get("accuracy", 0))
        entry["checks"].append(_check("compression budget", drop <= cfg.budget.max_drop + 1e-9,
                                      f"eval accuracy drop {drop:.2f} points vs fp32, budget {cfg.budget.max_drop}"))
        robust = creport["budget"].get("robust")
        if robust is not None:  # [budget] min_robust_accuracy: checked by compress on the returned model
            entry["checks"].append(_check("robust accuracy budget", robust["met"] is True, robust["verdict"]))
        if creport.get("privacy"):
            p = creport["privacy"]
            entry["privacy"] = {"epsilon": p["epsilon"], "delta": p["delta"], "mode": p["mode"], "covers": p["covers"],
                                "not_covered": p["not_covered"]}
        summary = manifest_summary(creport)  # stages, sizes, accuracy; (epsilon, delta) and robust accuracy when measured
        package = b.seal(target, model, fmt, keys, pems, summary)
        entry["package"] = {"bytes": len(package), "sha256": _sha256(package), "format": fmt, "devices": len(pems),
                            "cipher": Package.parse(package).manifest.payload.cipher.value}
        written[f"{target.name}/{cfg.release.name}.eseal"] = package
        written[f"{target.name}/compress.json"] = comp["compress.json"]
        ver = b.verify(target, package, keys, device_key, fp32, data, verify_progress)
        vrep = json.loads(ver["verification.json"])
        written[f"{target.name}/verification.json"] = ver["verification.json"]
        written[f"{target.name}/verification.json.sig"] = ver["verification.json.sig"]
        entry["verification"] = _verification_summary(vrep)
        entry["checks"].append(_check("verified on the device", vrep["passed"],
                                      "; ".join(c["detail"] for c in vrep["checks"] if c["gate"] and not c["passed"])
                                      or f"{vrep['device']['url']} ({vrep['device']['machine']}): all gating checks passed"))
        if cfg.audit is not None:
            aud = b.audit(target, package, keys, device_key, fp32, data)
            arep = json.loads(aud["audit.json"])
            written[f"{target.name}/audit.json"] = aud["audit.json"]
            written[f"{target.name}/audit.json.sig"] = aud["audit.json.sig"]
            entry["audit"] = _audit_summary(arep, target.name)
            gate = arep["gate"]
            entry["checks"].append(_check("audit gate", gate["passed"], "; ".join(
                f"{v['check']} {v['value']:.3f} vs limit {v['limit']}" for v in gate["violations"])
                or f"{len(gate['checks'])} limits checked, none exceeded"))
    except EdgesealError as exc:
        entry["checks"].append(_check("build", False, f"{type(exc).__name__}: {exc}"))
        b.status(f"[{target.name}] FAILED: {exc}")
    entry["passed"] = all(c["passed"] for c in entry["checks"])
    return entry


def _preflight_devices(chosen: list[TargetEntry]) -> dict[str, str]:
    """Targets whose device cannot be used (not built, no client, unreachable) -> why; checked before any work,
    so the build spends no time compressing for them. The other targets build as usual."""
    from ..runtime.errors import DeviceError
    from ..targets.transports import preflight

    problems = {}
    for target in chosen:
        try:
            preflight(target.device)
        except DeviceError as exc:
            problems[target.name] = f"DeviceError: {exc}"
    return problems


def _kept_targets(out: Path, cfg: ReleaseConfig, chosen: list[TargetEntry], fp32: bytes, keys: _Keys,
                  written: dict[str, bytes], status: Callable[[str], None]) -> tuple[dict[str, Any], dict[str, str]]:
    """A partial build (``--target``) keeps the other targets of the release already in ``out``.

    Their entries and files are carried over when that release was built from the same fp32 model
    and publisher key (files checked against their recorded SHA-256); otherwise the partial build
    refuses, since mixing them would make one release of two different models.
    """
    names = {t.name for t in chosen}
    old_path = out / "release.json"
    if names == {t.name for t in cfg.targets} or not old_path.is_file():
        return {}, {}
    old = json.loads(old_path.read_text())
    others = [t.name for t in cfg.targets if t.name not in names and t.name in old.get("targets", {})]
    if not others:
        return {}, {}
    if old.get("fp32", {}).get("sha256") != _sha256(fp32) or old.get("publisher") != keys.fingerprint:
        raise ConfigError(
            f"{out} holds targets {', '.join(others)} built from another fp32 model or publisher key; a partial build "
            "would mix two models in one release: build every target (no --target), or give another --out")
    kept: dict[str, Any] = {}
    for name in others:
        entry = old["targets"][name]
        for rel, digest in entry.get("files", {}).items():
            path = out / rel
            data = path.read_bytes() if path.is_file() else b""
            if _sha256(data) != digest:
                raise ConfigError(f"{path} is missing or changed since the release was built; build every target "
                                  "(no --target) to write the release again")
            written[rel] = data
        kept[name] = entry
    status(f"keeping {', '.join(others)} from the release in {out} (same fp32 model and publisher)")
    keys_kept = {k: v for k, v in old.get("stage_keys", {}).items() if k.split("/", 1)[0] in kept}
    return kept, keys_kept


def _check_out(out: Path) -> None:
    """The release folder belongs to the build: empty, new, or an earlier release (replaced whole)."""
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / "release.json").is_file())):
        raise ConfigError(f"{out} exists and is not an edgeseal release folder (no release.json); "
                          "choose another --out or [release] out")


def _write_release(out: Path, written: dict[str, bytes], release: dict[str, Any], write_html: Any) -> None:
    """Replace the release folder: nothing from an earlier release (a dropped target, a stale report) stays;
    a partial build has already read the targets it keeps into ``written``."""
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    for rel, data in written.items():
        path = out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    (out / "release.json").write_text(json.dumps(release, indent=2, sort_keys=True) + "\n")
    write_html(release, out / "index.html")


def _verification_summary(v: dict[str, Any]) -> dict[str, Any]:
    m = v["metrics"]
    dev = (m.get("device") or {})
    ref = (m.get("reference") or {})
    vs_host, vs_ref = v["comparison"].get("device_vs_host") or {}, v["comparison"].get("device_vs_reference") or {}
    return {"passed": v["passed"], "device": v["device"]["url"], "machine": v["device"]["machine"],
            "backend": f"{v['device']['backend']} {v['device']['backend_version']}",
            "device_accuracy": dev.get("accuracy"), "reference_accuracy": ref.get("accuracy"),
            "agreement_with_host": vs_host.get("top1_agreement"), "identical_to_host": vs_host.get("identical"),
            "agreement_with_fp32": vs_ref.get("top1_agreement"), "p50_ms": v["latency_ms"].get("p50"),
            "p95_ms": v["latency_ms"].get("p95"), "load_seconds": v["load_seconds"], "peak_rss_mb": v["peak_rss_mb"],
            "n_samples": v["data"]["n_samples"], "fidelity": v.get("fidelity")}


def _audit_summary(a: dict[str, Any], name: str) -> dict[str, Any]:
    s = a["datasets"]["data"]["summary"]
    arts = s["artifacts"]
    rob = s["robustness"]
    return {"passed": a["gate"]["passed"],
            "mia_auc": {atk: {"fp32": arts["fp32"]["mia"][atk]["auc"]["mean"], "package": arts[name]["mia"][atk]["auc"]["mean"]}
                        for atk in arts[name]["mia"]},
            "accuracy": {"fp32": arts["fp32"]["accuracy"]["mean"], "package": arts[name]["accuracy"]["mean"]},
            "epsilons": rob["epsilons"],
            "robust_accuracy": {n: {atk: c[atk]["mean"] for atk in c} for n, c in rob["curves"].items()},
            "disagreement_rate": s["disagreement"].get(name, {}).get("rate", {}).get("mean")}


# --------------------------------------------------------------------------- CLI


def _cmd_build(args: argparse.Namespace) -> dict[str, Any]:
    from ..progress import Progress

    with Progress(quiet=args.json) as sink:
        result = build(args.recipe, out=args.out, cache_dir=args.cache_dir, use_cache=not args.no_cache,
                       targets=args.target, status=sink.status, show_progress=not args.json,
                       verify_progress=None if args.json else sink)
    return {"release": result.release, "log": result.log(), "out": str(result.out),
            "exit_code": 0 if result.passed else 1, "text": result.text()}


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "build", help="compress, seal, verify and audit a model for every target of a release recipe",
        description="Run a release recipe (TOML): for each target compress -> export -> seal -> verify on the "
                    "target's device -> audit, and write a release folder with the packages, signed reports, "
                    "release.json and index.html. Finished stages are reused from a content-hashed cache.")
    p.add_argument("recipe", help="release recipe, e.g. examples/digits/release.toml")
    p.add_argument("--out", help="release folder (default: [release] out, relative to the recipe)")
    p.add_argument("--target", action="append", help="build only this target (repeatable)")
    p.add_argument("--cache-dir", help="stage cache (default: ~/.cache/edgeseal/build or $EDGESEAL_CACHE_DIR/build)")
    p.add_argument("--no-cache", action="store_true", help="run every stage, read and write no cache")
    p.set_defaults(func=_cmd_build)
