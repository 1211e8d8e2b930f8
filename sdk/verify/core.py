"""``edgeseal verify``: prove on the device that the sealed model answers like the reference.

Pushes the sealed model and a sealed evaluation set to a device over a transport
(``local``, ``ssh://``, ``qemu``, ``adb://``), runs ``python -m edgeseal.runtime eval``
there, fetches the outputs and compares them with the same package run on this host
and with a reference model (the fp32 model): accuracy / precision / recall / F1,
top-1 agreement, max / mean absolute error, latency, load time, peak memory. The
verdict is a release gate: it fails when the accuracy drop exceeds the budget.

The report is canonical JSON naming the package's SHA-256, with a detached Ed25519
signature by the publisher key (``report.json.sig``); ``edgeseal verify-report``
checks it.
"""

from __future__ import annotations

import json
import os
import tempfile
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar

import numpy as np

from ..runtime import evaluate as ev
from ..runtime.errors import ConfigError, EdgesealError, InvalidPackage, UnsupportedError
from ..runtime import errors as _errors
from ..runtime.fidelity import FidelityBudget, fidelity
from ..runtime.preprocess import manifest_labels
from ..report.base import Report
from ..report.signing import canonical_json as _canonical, sha256_hex as _sha256, sign_report, verify_report

__all__ = ["VerifyConfig", "VerificationReport", "verify", "sign_report", "verify_report", "add_parser"]

SCHEMA = "edgeseal.verify/1"
_MACHINE_ALIASES = {"arm64": "aarch64", "amd64": "x86_64", "x64": "x86_64"}


@dataclass(frozen=True, kw_only=True)
class VerifyConfig:
    """How to verify. ``key`` opens the packages (device key PEM or raw key file); it is pushed to
    the device for the run and removed with everything else afterwards."""

    device: str = "local"
    key: str | Path
    trusted: tuple[str | Path, ...] = ()
    publisher: str | Path | None = None
    publisher_passphrase: str | None = field(default=None, repr=False)
    reference: str | Path | None = None
    max_drop: float | None = None  # accuracy points the device may lose vs the reference (default 1.0)
    budget: float | None = None  # deprecated: the same as a fraction (0.01 = 1 point); use max_drop
    target: str | None = None
    max_samples: int | None = None
    warmup: int = 2
    threads: int | None = None
    timeout: float = 1800.0
    allow_unsigned: bool = False
    identity: str | None = None
    known_hosts: str | None = None
    fidelity: FidelityBudget | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "trusted", tuple(self.trusted))
        if self.fidelity is not None and not isinstance(self.fidelity, FidelityBudget):
            raise ConfigError("fidelity must be a FidelityBudget(min_agreement=..., min_sqnr_db=..., ...)")
        if self.fidelity is not None and not self.fidelity.empty and self.reference is None:
            raise ConfigError("a fidelity budget compares with the float model: give the reference (--reference fp32.onnx)")
        if self.budget is not None:
            if self.max_drop is not None:
                raise ConfigError("give max_drop (accuracy points) only; budget is its deprecated fraction form")
            if not isinstance(self.budget, (int, float)) or not 0.0 <= self.budget <= 1.0:
                raise ConfigError(f"budget is the deprecated fraction form of max_drop, in [0, 1]; got {self.budget!r}")
            import warnings

            warnings.warn(f"VerifyConfig(budget={self.budget}) is a fraction and deprecated; use "
                          f"max_drop={100 * self.budget:g} (accuracy points, as everywhere else)", DeprecationWarning,
                          stacklevel=3)
            object.__setattr__(self, "max_drop", 100.0 * self.budget)
        if self.max_drop is None:
            object.__setattr__(self, "max_drop", 1.0)
        if not isinstance(self.max_drop, (int, float)) or not 0.0 <= self.max_drop <= 100.0:
            raise ConfigError(f"max_drop is the largest accuracy drop allowed in points, in [0, 100]; got {self.max_drop!r}")
        object.__setattr__(self, "budget", self.max_drop / 100.0)
        if self.max_samples is not None and self.max_samples <= 0:
            raise ConfigError("max_samples must be a positive integer")
        if self.warmup < 0:
            raise ConfigError("warmup must be >= 0")
        if not Path(self.key).is_file():
            raise ConfigError(f"key file {self.key} does not exist (a device key PEM or raw key file)")
        for path in (*self.trusted, self.reference, self.publisher):
            if path is not None and not Path(path).is_file():
                raise ConfigError(f"file {path} does not exist")


def _round(x: float | None, n: int = 6) -> float | None:
    return None if x is None else round(float(x), n)


# --- comparison --------------------------------------------------------------------------------


def _compare(a: dict[str, np.ndarray], b: dict[str, np.ndarray], *, top1: bool = True) -> dict[str, Any]:
    """Element-wise differences between two output sets (same names and shapes), per-sample cosine, and
    (for classifiers, ``top1``) the fraction of samples whose arg-max class agrees."""
    out: dict[str, Any] = {"outputs": {}}
    worst, total, count = 0.0, 0.0, 0
    agreement = None
    for name in sorted(a):
        if name not in b:
            continue
        x, y = np.asarray(a[name], dtype=np.float64), np.asarray(b[name], dtype=np.float64)
        if x.shape != y.shape:
            out["outputs"][name] = {"shape_mismatch": [list(x.shape), list(y.shape)]}
            continue
        diff = np.abs(x - y)
        entry = {"max_abs_error": float(diff.max()) if diff.size else 0.0,
                 "mean_abs_error": float(diff.mean()) if diff.size else 0.0,
                 "identical": bool(np.array_equal(a[name], b[name]))}
        if x.ndim >= 2 and x.shape[-1] > 1:
            if top1:
                top = float(np.mean(x.reshape(-1, x.shape[-1]).argmax(1) == y.reshape(-1, y.shape[-1]).argmax(1)))
                entry["top1_agreement"] = top
                agreement = top if agreement is None else min(agreement, top)
            flat_x, flat_y = x.reshape(len(x), -1), y.reshape(len(y), -1)
            norms = np.linalg.norm(flat_x, axis=1) * np.linalg.norm(flat_y, axis=1)
            cos = np.sum(flat_x * flat_y, axis=1) / np.where(norms == 0, 1, norms)
            entry["min_cosine"] = float(cos.min())
        out["outputs"][name] = entry
        worst = max(worst, entry["max_abs_error"])
        total += float(diff.sum())
        count += diff.size
    out["max_abs_error"] = worst
    out["mean_abs_error"] = total / count if count else 0.0
    out["top1_agreement"] = agreement
    cosines = [e["min_cosine"] for e in out["outputs"].values() if "min_cosine" in e]
    out["min_cosine"] = min(cosines) if cosines else None
    out["identical"] = all(e.get("identical", False) for e in out["outputs"].values())
    return out


def _run_host(session_run: Callable[[dict], dict], feeds: dict[str, np.ndarray], n: int,
              progress: Callable[[str, int, int], None], label: str) -> dict[str, np.ndarray]:
    chunks: dict[str, list[np.ndarray]] = {}
    for i in range(n):
        for name, value in session_run({k: v[i : i + 1] for k, v in feeds.items()}).items():
            chunks.setdefault(name, []).append(value)
        progress(label, i + 1, n)
    return {k: np.concatenate(v, axis=0) for k, v in chunks.items()}


def _reference_session(path: Path, threads: int | None):
    from ..runtime import backends
    from ..seal import detect_format

    data = path.read_bytes()
    fmt = detect_format(data, str(path))
    return backends.select(fmt).Session(data, threads)


@dataclass
class VerificationReport(Report):
    """The result of one verification: ``data`` is the JSON form, ``text()`` the table."""

    kind: ClassVar[str] = "verify"

    data: dict[str, Any]
    signature: dict[str, str] | None = None

    @property
    def passed(self) -> bool:
        return bool(self.data["passed"])

    def to_dict(self) -> dict[str, Any]:
        return self.data

    def body(self) -> bytes:
        return _canonical(self.data)

    def write(self, path: str | Path) -> Path:
        """Write the canonical JSON report and, when signed, ``PATH.sig`` next to it."""
        path = Path(path)
        path.write_bytes(self.body())
        if self.signature is not None:
            Path(f"{path}.sig").write_text(json.dumps(self.signature, indent=2) + "\n")
        return path

    def text(self) -> str:
        d = self.data
        dev, pkg = d["device"], d["package"]
        lines = [
            f"edgeseal verify: {'PASSED' if d['passed'] else 'FAILED'}",
            f"  package   {pkg['file']}  sha256 {pkg['sha256']}",
            f"            {pkg['name']} v{pkg['model_version']}  target {pkg['target'] or '-'}  "
            f"publisher {pkg['publisher'] or '-'}",
            f"  device    {dev['url']}  ({dev['machine']}, {dev['system']}, python {dev['python']}, "
            f"{dev['backend']} {dev['backend_version']})",
            f"  data      {d['data']['n_samples']} samples  sha256 {d['data']['sha256'][:16]}...",
            "",
        ]
        rows = [("", "device", "host (same package)", "reference")]
        m = d["metrics"]
        for key in ("accuracy", "precision_macro", "recall_macro", "f1_macro"):
            if m.get("device"):
                rows.append((key, *(f"{m[k][key]:.4f}" if m.get(k) else "-" for k in ("device", "host", "reference"))))
        width = [max(len(r[i]) for r in rows) for i in range(4)]
        if len(rows) > 1:
            lines += ["  " + "  ".join(c.ljust(width[i]) for i, c in enumerate(r)) for r in rows] + [""]
        for label, key in (("device vs host", "device_vs_host"), ("device vs reference", "device_vs_reference")):
            c = d["comparison"].get(key)
            if c:
                top = "" if c["top1_agreement"] is None else f"top-1 agreement {c['top1_agreement']:.4f}  "
                cos = "" if c.get("min_cosine") is None else f"  min cosine {c['min_cosine']:.6f}"
                lines.append(f"  {label:<20} {top}max abs err {c['max_abs_error']:.6g}  "
                             f"mean abs err {c['mean_abs_error']:.6g}{cos}{'  (bit-identical)' if c['identical'] else ''}")
        if d.get("fidelity"):
            f = d["fidelity"]
            sq = "identical" if f["sqnr_db"] is None else f"{f['sqnr_db']:.1f} dB"
            lines.append(f"  fidelity (device vs reference, no labels needed): top-1 agreement {f['top1_agreement']:.4f}  "
                         f"top-5 overlap {f['top5_overlap']:.4f}  logit SQNR {sq}  mean cosine {f['mean_cosine']:.5f}")
        lat = d["latency_ms"]
        lines += [
            f"  latency   p50 {lat.get('p50', 0):.3f} ms  p95 {lat.get('p95', 0):.3f} ms  (batch 1, n={lat.get('n')})",
            f"  load      {d['load_seconds']:.3f} s   peak memory {d['peak_rss_mb']} MiB"
            + (f" (budget {d['profile']['memory_budget_mb']} MiB)" if d.get("profile") else ""),
            "",
        ]
        for check in d["checks"]:
            mark = "ok  " if check["passed"] else ("FAIL" if check["gate"] else "warn")
            lines.append(f"  [{mark}] {check['name']}: {check['detail']}")
        if self.signature:
            lines.append(f"  signed by publisher {self.signature['publisher']}")
        else:
            lines.append("  report NOT signed (no --publisher key given)")
        return "\n".join(lines)


def _device_error(result: dict[str, Any], url: str) -> EdgesealError:
    cls = getattr(_errors, str(result.get("error")), None)
    message = f"on the device {url}: {result.get('message')}"
    if isinstance(cls, type) and issubclass(cls, EdgesealError):
        if cls is UnsupportedError:
            return UnsupportedError(message, reason=result.get("reason"))
        if issubclass(cls, InvalidPackage):
            return cls(message)
        return cls(message)
    return _errors.InternalError(message)


def verify(model: str | Path, data: str | Path, config: VerifyConfig, *,
           progress: Callable[[str, int, int], None] = lambda s, i, n: None,
           status: Callable[[str], None] = lambda s: None) -> VerificationReport:
    """Run the whole verification and return the (signed, when a publisher key is given) report."""
    from ..seal import seal as seal_package
    from ..runtime import inspect, load, open_payload
    from ..runtime.format import Kind
    from ..runtime.keys import FileKey, resolve_secret
    from ..targets import get_profile
    from ..targets.transports import DeviceError, open_transport

    model, data = Path(model), Path(data)
    for path, what in ((model, "sealed model"), (data, "evaluation data")):
        if not path.is_file():
            raise ConfigError(f"{what} {path} does not exist")
    package_bytes = model.read_bytes()
    info = inspect(package_bytes, trusted=[Path(p) for p in config.trusted])
    manifest = info.manifest
    if manifest.kind is not Kind.MODEL:
        raise ConfigError(f"{model} holds a {manifest.kind.value}, not a model")
    if config.target and manifest.target and config.target != manifest.target:
        raise UnsupportedError(
            f"{model} was sealed for target {manifest.target!r}, not {config.target!r}; reseal it for "
            f"{config.target} (edgeseal seal --target {config.target})", reason="target mismatch")
    profile = get_profile(config.target or manifest.target) if (config.target or manifest.target) else None
    key = FileKey(Path(config.key))
    trusted = [Path(p) for p in config.trusted]

    # -- the evaluation set: sealed as it is, or seal the plain .npz for the device's key --
    raw = data.read_bytes()
    if raw[:4] == b"PK\x03\x04":
        if config.publisher is None:
            raise ConfigError("the evaluation data is a plain .npz: give --publisher to seal it for the device "
                              "(the test data is sensitive too), or pass an already sealed data set")
        secret = resolve_secret(key)
        kwargs: dict[str, Any] = {}
        if isinstance(secret, bytes):
            kwargs["raw_keys"] = [secret]
        elif isinstance(secret, str):
            kwargs["passphrase"] = secret
        else:
            kwargs["devices"] = [secret.public_key()]
        status("sealing the evaluation set for the device")
        sealed_data = seal_package(raw, publisher=config.publisher, publisher_passphrase=config.publisher_passphrase,
                                    kind="dataset", content_format="npz", name=data.stem, **kwargs)
    else:
        sealed_data = raw

    # -- host side: the same package, and the reference model --
    status("running the package on this host")
    dmanifest, plain = open_payload(sealed_data, key=key, trusted=trusted, allow_unsigned=config.allow_unsigned)
    try:
        if dmanifest.kind is not Kind.DATASET:
            raise ConfigError(f"{data} holds a {dmanifest.kind.value}, not a dataset")
        arrays = ev.read_npz(plain.freeze(), f"the data set in {data}")
    finally:
        plain.wipe()
    host_model = load(package_bytes, key=key, trusted=trusted, allow_unsigned=config.allow_unsigned,
                      threads=config.threads, raw=True)  # as the device's evaluation opens it (runtime.evaluate)
    try:
        feeds, labels = ev.split_dataset(arrays, host_model.inputs)
        n = len(next(iter(feeds.values())))
        if config.max_samples:
            n = min(n, config.max_samples)
            labels = None if labels is None else labels[:n]
        host_out = _run_host(host_model.run, feeds, n, progress, "host")
        metric_output = host_model.outputs[0].name
        output_specs = host_model.outputs
    finally:
        host_model.close()
    ref_out = None
    if config.reference is not None:
        status("running the reference model on this host")
        session = _reference_session(Path(config.reference), config.threads)
        try:
            try:  # the reference takes the data as stored (float for a fully quantized package)
                ref_feeds, _ = ev.split_dataset(arrays, session.inputs)
            except _errors.InvalidInput as exc:
                raise ConfigError(f"reference model {config.reference}: {exc}") from None
            ref_out = _run_host(session.run, ref_feeds, n, progress, "reference")
            if set(ref_out) != set(host_out) and len(ref_out) == len(host_out) == 1:
                ref_out = {next(iter(host_out)): next(iter(ref_out.values()))}
        finally:
            session.close()

    # -- the device --
    options: dict[str, Any] = {}
    if config.device.startswith("ssh:"):
        options = {"identity": config.identity, "known_hosts": config.known_hosts}
    transport = open_transport(config.device, **options)
    status(f"connecting to {config.device}")
    try:
        transport.open()
        device_info = transport.runtime_info()
        machine = _MACHINE_ALIASES.get(device_info.get("machine", ""), device_info.get("machine", ""))
        if profile is not None and machine != profile.arch:
            raise UnsupportedError(
                f"{model.name} is sealed for target {profile.name!r} ({profile.arch}) but {config.device} is "
                f"{machine}; verify it on an {profile.arch} device"
                + (" (e.g. --device qemu)" if profile.arch == "aarch64" else "")
                + f" or reseal the model for a {machine} target", reason="target mismatch")
        backend_name = "onnxruntime" if manifest.content_format.startswith("onnx") else "litert"
        backend_state = device_info.get("backends", {}).get(backend_name)
        if backend_state != "ok":
            raise DeviceError(f"{config.device}: the device's runtime cannot run {manifest.content_format} models "
                              f"({backend_name}: {backend_state}); install edgeseal[{'onnx' if backend_name == 'onnxruntime' else 'tflite'}] there",
                              reason="no backend")
        status(f"pushing the package and data to {config.device}")
        with tempfile.TemporaryDirectory(prefix="edgeseal-verify-") as tmp:
            tmpdir = Path(tmp)
            (tmpdir / "data.eseal").write_bytes(sealed_data)
            remote_model = transport.push(model, "model.eseal")
            remote_data = transport.push(tmpdir / "data.eseal", "data.eseal")
            remote_key = transport.push(Path(config.key), "device.key")
            argv = ["eval", "--model", remote_model, "--data", remote_data, "--key-file", remote_key,
                    "--outputs", transport.remote_path("outputs.npz"), "--warmup", str(config.warmup)]
            for i, pub in enumerate(trusted):
                argv += ["--trusted", transport.push(pub, f"trusted{i}.pub")]
            if config.allow_unsigned:
                argv.append("--allow-unsigned")
            if config.max_samples:
                argv += ["--max-samples", str(config.max_samples)]
            if config.threads:
                argv += ["--threads", str(config.threads)]
        status(f"running the evaluation on {config.device}")
        started = time.perf_counter()
        result = transport.run(transport.runtime_command(*argv), timeout=config.timeout)
        device_seconds = time.perf_counter() - started
        dev_json = result.json()
        if dev_json is None:
            err = result.stderr.decode(errors="replace").strip().splitlines()[-3:]
            raise DeviceError(f"{config.device}: the device runner failed (exit {result.returncode}): "
                              f"{' | '.join(err)[:400]}", reason="runner")
        if not dev_json.get("ok"):
            raise _device_error(dev_json, config.device)
        dev_out = ev.read_npz(transport.fetch(transport.remote_path("outputs.npz")), f"{config.device}'s outputs.npz")
    finally:
        transport.close()

    # -- compare and judge (integer outputs of fully quantized models in real units) --
    host_digest = ev.outputs_digest(host_out)  # over the raw outputs, as the device computes it
    host_out = ev.dequantize_outputs(host_out, output_specs)
    dev_out = ev.dequantize_outputs(dev_out, output_specs)
    host_metrics = ev.classification_metrics(host_out[metric_output], labels) if labels is not None else None
    ref_metrics = None
    if ref_out is not None and labels is not None:
        ref_metrics = ev.classification_metrics(ref_out[metric_output] if metric_output in ref_out
                                                else next(iter(ref_out.values())), labels)
    dev_metrics = dev_json.get("metrics")
    baseline = ref_metrics or host_metrics
    checks: list[dict[str, Any]] = []
    drop = None
    if dev_metrics and baseline:
        drop = baseline["accuracy"] - dev_metrics["accuracy"]
        versus = "reference" if ref_metrics else "host run of the same package"
        checks.append({"name": "accuracy budget", "gate": True, "passed": 100 * drop <= config.max_drop + 1e-9,
                       "detail": f"accuracy {100 * dev_metrics['accuracy']:.2f}% on the device vs "
                                 f"{100 * baseline['accuracy']:.2f}% ({versus}): drop {100 * drop:+.2f} points, "
                                 f"budget {config.max_drop:g} points"})

    # classes to agree on: labels in the data, or class names in the package (an image classifier's crops)
    classifier = labels is not None or manifest_labels(manifest) is not None
    vs_host = _compare(dev_out, host_out, top1=classifier)
    vs_ref = _compare(dev_out, ref_out, top1=classifier) if ref_out is not None else None
    checks.append({"name": "outputs complete", "gate": True,
                   "passed": set(dev_out) == set(host_out) and all(dev_out[k].shape == host_out[k].shape for k in dev_out),
                   "detail": f"{len(dev_out)} output(s) of {n} samples fetched from the device"})
    if vs_host["top1_agreement"] is not None:
        checks.append({"name": "top-1 agreement with host", "gate": False,
                       "passed": vs_host["top1_agreement"] >= 1.0 - config.budget,
                       "detail": f"{vs_host['top1_agreement']:.4f} of samples get the same class on device and host"})
    if profile is not None and dev_json.get("peak_rss_mb") is not None:
        emulated = config.device.startswith("qemu")
        checks.append({"name": "memory budget", "gate": not emulated,
                       "passed": dev_json["peak_rss_mb"] <= profile.memory_budget_mb,
                       "detail": f"peak RSS {dev_json['peak_rss_mb']} MiB vs budget {profile.memory_budget_mb} MiB"
                                 + (" (emulated: includes QEMU's own memory, not gating)" if emulated else "")})
    fid = None
    if ref_out is not None:
        ref_logits = ref_out.get(metric_output, next(iter(ref_out.values())))
        dev_logits = dev_out.get(metric_output)
        if dev_logits is not None and ref_logits.shape == dev_logits.shape and ref_logits.ndim == 2 and ref_logits.shape[1] > 1:
            fid = fidelity(ref_logits, dev_logits)
    fbudget = config.fidelity
    if (fbudget is None or fbudget.empty) and labels is None and fid is not None:
        fbudget = FidelityBudget(min_agreement=1.0 - config.budget)  # no labels: the reference's answers are the truth
    if fbudget is not None and not fbudget.empty:
        if fid is None:
            raise ConfigError("the fidelity budget needs a classifier-shaped output (samples, classes) from both the "
                              "package and the reference; this model's outputs are not")
        fails = fbudget.check(fid)
        checks.append({"name": "fidelity budget", "gate": True, "passed": not fails,
                       "detail": f"device vs reference: {fid.summary()}"
                                 + (f"; below budget: {'; '.join(fails)}" if fails else f"; budget {fbudget.to_dict()}")})
    if not dev_metrics:
        checks.append({"name": "accuracy budget", "gate": False, "passed": True,
                       "detail": "no labels in the data set: accuracy not measured"
                                 + ("; gated on fidelity to the reference instead" if fid is not None and fbudget else
                                    "; give --reference to gate on fidelity to the float model")})
    passed = all(c["passed"] for c in checks if c["gate"])

    publisher_fp = info.publisher
    report = {
        "schema": SCHEMA,
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "passed": passed,
        "budget": config.budget,  # fraction, kept for readers of schema 1; max_drop_points is the same in points
        "max_drop_points": config.max_drop,
        "accuracy_drop": _round(drop),
        "accuracy_drop_points": None if drop is None else _round(100 * drop),
        "package": {"file": model.name, "sha256": _sha256(package_bytes), "name": manifest.name,
                    "model_version": manifest.model_version, "target": manifest.target,
                    "content_format": manifest.content_format, "publisher": publisher_fp},
        "data": {"sha256": _sha256(sealed_data), "n_samples": n, "labels": labels is not None},
        "reference": None if config.reference is None else {
            "file": Path(config.reference).name, "sha256": _sha256(Path(config.reference).read_bytes())},
        "profile": None if profile is None else {"name": profile.name, "arch": profile.arch,
                                                 "runtime": profile.runtime.value,
                                                 "memory_budget_mb": profile.memory_budget_mb},
        "device": {"url": config.device, **{k: dev_json["device"][k] for k in
                   ("machine", "system", "platform", "python", "backend", "backend_version")},
                   "edgeseal_runtime": dev_json["device"]["edgeseal_runtime"]},
        "metrics": {"device": dev_metrics, "host": host_metrics, "reference": ref_metrics, "output": metric_output},
        "fidelity": None if fid is None else {**fid.to_dict(), "budget": None if fbudget is None else fbudget.to_dict()},
        "comparison": {"device_vs_host": vs_host, "device_vs_reference": vs_ref,
                       "outputs_sha256": {"device": dev_json["outputs_sha256"], "host": host_digest}},
        "latency_ms": dev_json["latency_ms"],
        "load_seconds": dev_json["load_seconds"],
        "peak_rss_mb": dev_json["peak_rss_mb"],
        "device_seconds": round(device_seconds, 3),
        "checks": checks,
    }
    signature = None
    if config.publisher is not None:
        report = json.loads(_canonical(report))  # exactly what gets signed and written
        _, signature = sign_report(report, config.publisher, config.publisher_passphrase)
    return VerificationReport(report, signature)


# --- CLI -----------------------------------------------------------------------------------------


def max_drop_from_args(args) -> float:
    """--max-drop in points; the old --budget fraction still works, with a warning on stderr."""
    if args.budget is None:
        return 1.0 if args.max_drop is None else args.max_drop
    if args.max_drop is not None:
        raise ConfigError("give --max-drop (accuracy points) only; --budget is its deprecated fraction form")
    if not 0.0 <= args.budget <= 1.0:
        raise ConfigError(f"--budget {args.budget} is a fraction in [0, 1] (deprecated); use --max-drop POINTS")
    print(f"edgeseal verify: warning: --budget {args.budget:g} is a fraction and deprecated; it means "
          f"--max-drop {100 * args.budget:g} (accuracy points, the unit every other command uses)", file=sys.stderr)
    return 100.0 * args.budget


def cmd_verify(args) -> dict[str, Any]:
    config = VerifyConfig(
        device=args.device, key=args.key, trusted=tuple(args.trusted or ()), publisher=args.publisher,
        publisher_passphrase=os.environ.get(args.publisher_passphrase_env) if args.publisher_passphrase_env else None,
        reference=args.reference, max_drop=max_drop_from_args(args), target=args.target, max_samples=args.max_samples,
        warmup=args.warmup, threads=args.threads, allow_unsigned=args.allow_unsigned, identity=args.identity,
        known_hosts=args.known_hosts, timeout=args.timeout,
        fidelity=FidelityBudget(min_agreement=args.min_agreement, min_top5_overlap=args.min_top5_overlap,
                                min_sqnr_db=args.min_sqnr, min_cosine=args.min_cosine),
    )
    from ..progress import Progress

    with Progress(quiet=args.json) as sink:
        report = verify(args.model, args.data, config, progress=sink.update, status=sink.status)
    out = Path(args.report) if args.report else None
    if out is not None:
        report.write(out)
    result = dict(report.to_dict())
    result["report_file"] = None if out is None else str(out)
    result["signature"] = report.signature
    result["text"] = report.text() + (f"\n  report written to {out}" + (f" (+ {out}.sig)" if report.signature else "")
                                      if out else "")
    result["exit_code"] = 0 if report.passed else 1
    if not report.passed:
        failed = [c for c in report.data["checks"] if c["gate"] and not c["passed"]]
        result["text"] += "\n\nedgeseal verify: release gate FAILED: " + "; ".join(c["detail"] for c in failed)
    return result


def cmd_verify_report(args) -> dict[str, Any]:
    """Check the signature of any signed report (verification, audit, release); say what it vouches for."""
    report = verify_report(args.report, [Path(p) for p in args.trusted or ()], args.signature)
    sig = report.pop("_signature")
    head = f"report {args.report}: signature valid (publisher {sig['publisher']})"
    if isinstance(report.get("package"), dict) and "device" in report:  # edgeseal verify
        kind, passed, package = "verification", report["passed"], report["package"]["sha256"]
        where = f"  device {report['device']['url']} ({report['device']['machine']})"
    elif isinstance(report.get("gate"), dict):  # edgeseal audit / the audit stage of edgeseal build
        kind, passed, package = "audit", report["gate"].get("passed"), report.get("package_sha256")
        where = f"  audit gate: {len(report['gate'].get('checks', []))} limits checked"
    else:
        kind, passed, package = "report", report.get("passed"), report.get("package_sha256")
        where = ""
    verdict = {True: "PASSED", False: "FAILED", None: "no verdict"}[passed if passed in (True, False) else None]
    text = head + f"\n  {kind}: package sha256 {package or '-'}  verdict {verdict}" + (f"\n{where}" if where else "")
    return {"ok": True, "signature_valid": True, "kind": kind, "publisher": sig["publisher"], "passed": passed,
            "package_sha256": package, "text": text}


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("verify", help="run a sealed model on a device and compare it with the reference "
                                             "(a release gate: non-zero exit when the accuracy drop exceeds the budget)")
    p.add_argument("model", help="sealed model package (.eseal)")
    p.add_argument("--device", default="local",
                   help="local (default) | ssh://user@host[:port] | qemu://qemu-rpi | qemu://qemu-rpi5 | adb://SERIAL "
                        "(an emulated device may be given by its bare name, e.g. qemu-rpi5)")
    p.add_argument("--data", required=True, help="evaluation set: .npz (input arrays + 'labels') or a sealed data set")
    p.add_argument("--key", required=True, help="device key PEM or raw key file that opens the packages")
    p.add_argument("--trusted", action="append", metavar="PUB", help="trusted publisher public key (repeatable)")
    p.add_argument("--publisher", help="publisher private key: seals the data for the device and signs the report")
    p.add_argument("--publisher-passphrase-env", metavar="VAR", help="env var with the publisher key's passphrase")
    p.add_argument("--reference", help="reference model (the fp32 ONNX/TFLite) to compare against")
    p.add_argument("--max-drop", type=float, metavar="POINTS",
                   help="largest accuracy drop allowed, in accuracy points vs the reference (default 1.0)")
    p.add_argument("--budget", type=float, metavar="FRACTION",
                   help="deprecated: the same as a fraction (0.01 = --max-drop 1); warns")
    p.add_argument("--target", help="target profile the package must be for (default: the package's own)")
    p.add_argument("--report", help="write the JSON report here (and its signature to REPORT.sig)")
    p.add_argument("--max-samples", type=int, help="evaluate only the first N samples")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--threads", type=int)
    p.add_argument("--timeout", type=float, default=1800.0, help="seconds the device run may take")
    p.add_argument("--allow-unsigned", action="store_true")
    p.add_argument("--identity", help="ssh: private key file for the device login")
    p.add_argument("--known-hosts", help="ssh: known_hosts file holding the device's host key")
    g = p.add_argument_group("fidelity budget (classifiers, against --reference; no labels needed)")
    g.add_argument("--min-agreement", type=float, help="least top-1 agreement with the reference (0..1); without "
                   "labels and without any --min-* the gate is agreement >= 1 - max-drop/100")
    g.add_argument("--min-top5-overlap", type=float, help="least mean top-5 overlap with the reference (0..1)")
    g.add_argument("--min-sqnr", type=float, help="least logit SQNR against the reference, dB")
    g.add_argument("--min-cosine", type=float, help="least mean per-sample logit cosine with the reference")
    p.set_defaults(func=cmd_verify)

    p = subparsers.add_parser("verify-report", help="check the signature of a verification report")
    p.add_argument("report", help="report JSON written by edgeseal verify --report")
    p.add_argument("--trusted", action="append", metavar="PUB", required=True, help="publisher public key")
    p.add_argument("--signature", help="signature file (default REPORT.sig)")
    p.set_defaults(func=cmd_verify_report)
