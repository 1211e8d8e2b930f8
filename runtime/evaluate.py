"""The device-side evaluation runner behind ``python -m edgeseal.runtime eval``.

Runs on the device with only the runtime installed (numpy, cryptography, one
backend; never torch). Opens a sealed model and a sealed evaluation set (an
``.npz`` sealed with manifest kind ``dataset``), runs every sample one at a
time, and returns one JSON-able dict: the outputs' SHA-256 digest, metrics
against the labels, latency p50/p95, load time and peak memory. The raw outputs
can be written to an ``.npz`` so the host can measure element-wise differences.

The metric functions here are plain numpy and are reused by the host side.
"""

from __future__ import annotations

import hashlib
import io
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from .errors import ConfigError, InvalidInput, UnsupportedError
from .metrics import classification_metrics  # the one implementation; re-exported here for its callers

__all__ = [
    "SCHEMA",
    "LABEL_KEYS",
    "evaluate",
    "split_dataset",
    "read_npz",
    "features_and_labels",
    "outputs_digest",
    "classification_metrics",
    "latency_summary",
    "peak_rss_mb",
    "quantize_input",
    "dequantize_outputs",
]

SCHEMA = "edgeseal.eval/1"
LABEL_KEYS = ("y", "labels", "label")  # "y": the layout edgeseal writes; the others are read too


def peak_rss_mb() -> float | None:
    """Peak resident memory of this process in MiB.

    Linux/Android: ``VmHWM`` from /proc/self/status, the high-water mark of this
    process image. ``getrusage``'s ``ru_maxrss`` is the fallback elsewhere; on
    Linux it would be wrong here, because it survives ``exec`` and so reports the
    parent's peak when a large host process (one with torch loaded) starts the runner.
    """
    try:
        with open("/proc/self/status", "rb") as status:
            for line in status:
                if line.startswith(b"VmHWM:"):
                    return round(int(line.split()[1]) / 1024, 2)  # kB
    except OSError:
        pass
    try:
        import resource
    except ImportError:  # pragma: no cover - Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    scale = 1.0 if sys.platform == "darwin" else 1024.0  # bytes on macOS, KiB elsewhere
    return round(peak * scale / 2**20, 2)


def outputs_digest(outputs: Mapping[str, np.ndarray]) -> str:
    """SHA-256 over every output in name order: name, dtype, shape, then the C-order bytes."""
    h = hashlib.sha256()
    for name in sorted(outputs):
        arr = np.ascontiguousarray(outputs[name])
        h.update(f"{name}\0{arr.dtype.str}\0{arr.shape}\0".encode())
        h.update(arr.tobytes())
    return h.hexdigest()


def latency_summary(seconds: list[float]) -> dict[str, float | int]:
    """The device evaluation's per-sample call times, summarized by the one harness's percentiles
    (``runtime.timing.latency``) plus min and max, in ms."""
    from .timing import latency

    if not seconds:
        return {"n": 0}
    lat = latency(seconds)
    ms = np.asarray(seconds) * 1000.0
    return {
        "n": lat.runs,
        "p50": round(lat.p50_ms, 4),
        "p95": round(lat.p95_ms, 4),
        "mean": round(lat.mean_ms, 4),
        "min": round(float(ms.min()), 4),
        "max": round(float(ms.max()), 4),
    }


def quantize_input(x: np.ndarray, spec: Any) -> np.ndarray:
    """Float data for an integer (fully quantized) input, with the input's own parameters (``quantio.quantize``)."""
    from .quantio import is_quantized, quantize

    if not is_quantized(spec):
        want = np.dtype(spec.dtype)
        raise InvalidInput(
            f"evaluation data {spec.name!r} is {x.dtype} but the model input is {want}; "
            f"save it as {want} (e.g. x.astype(np.{want.name}))"
        )
    return quantize(x, spec)


def dequantize_outputs(outputs: Mapping[str, np.ndarray], specs: tuple) -> dict[str, np.ndarray]:
    """Quantized integer outputs back to float32 with their own parameters (``quantio.dequantize``)."""
    from .quantio import dequantize, is_quantized

    by_name = {s.name: s for s in specs}
    out = {}
    for name, value in outputs.items():
        spec = by_name.get(name)
        if spec is not None and is_quantized(spec) and isinstance(value, np.ndarray) and np.issubdtype(value.dtype, np.integer):
            value = dequantize(value, spec)
        out[name] = value
    return out


def split_dataset(arrays: Mapping[str, np.ndarray], input_specs: tuple) -> tuple[dict[str, np.ndarray], np.ndarray | None]:
    """Map the data set's arrays onto the model's inputs; the rest may be labels.

    Arrays named like the inputs are used as such; a one-input model also takes a
    data set with a single non-label array of any name. Every array must have the
    same number of samples (axis 0) and each sample the input's shape and dtype.
    """
    labels = next((np.asarray(arrays[k]) for k in LABEL_KEYS if k in arrays), None)
    features = {k: v for k, v in arrays.items() if k not in LABEL_KEYS}
    input_specs = tuple(s for s in input_specs if not s.optional or s.name in features)  # optional: fed if present
    names = [s.name for s in input_specs]
    if all(n in features for n in names):
        feeds = {n: features[n] for n in names}
    elif len(names) == 1 and len(features) == 1:
        feeds = {names[0]: next(iter(features.values()))}
    else:
        missing = [n for n in names if n not in features]
        raise InvalidInput(
            f"evaluation data has arrays {sorted(features)} but the model needs inputs {names} "
            f"(missing {missing}); save the .npz with one array per input name plus 'labels'"
        )
    counts = {n: len(a) for n, a in feeds.items()}
    if labels is not None:
        counts["labels"] = len(labels)
    if len(set(counts.values())) != 1:
        raise InvalidInput(f"evaluation data arrays disagree on the number of samples: {counts}")
    for spec in input_specs:
        arr = feeds[spec.name]
        want = spec.numpy_dtype
        if want is None or spec.dtype == "string":
            continue  # not a NumPy-typed tensor: the runtime checks it when it runs
        if arr.dtype != want and np.issubdtype(arr.dtype, np.floating) and spec.quant is not None:
            arr = feeds[spec.name] = quantize_input(arr, spec)  # float data, fully quantized model
        if arr.dtype != want:
            raise InvalidInput(
                f"evaluation data {spec.name!r} is {arr.dtype} but the model input is {want}; "
                f"save it as {want} (e.g. x.astype(np.{want.name}))"
            )
        sample = tuple(spec.shape[1:]) if spec.shape else ()
        got = arr.shape[1:]
        if spec.shape is not None and (len(sample) != len(got) or any(
                isinstance(d, int) and d >= 0 and d != g for d, g in zip(sample, got))):
            raise InvalidInput(
                f"evaluation data {spec.name!r} has samples of shape {tuple(got)} but the model input "
                f"{spec.name!r} takes (batch, {', '.join(map(str, sample))}); reshape the data"
            )
    return feeds, labels


def read_npz(source: bytes | bytearray | memoryview | str | os.PathLike, what: str = "the data set") -> dict[str, np.ndarray]:
    """The arrays of an ``.npz`` (bytes or a path), never unpickling anything: the one reader for every
    data file edgeseal takes. ConfigError naming ``what`` when it is missing, not an .npz, or empty."""
    try:
        if isinstance(source, (bytes, bytearray, memoryview)):
            source = io.BytesIO(bytes(source))
        loaded = np.load(source, allow_pickle=False)
        if not hasattr(loaded, "files"):
            raise ValueError("it holds a single .npy array, not named arrays")
        with loaded as npz:
            arrays = {k: npz[k] for k in npz.files}
    except FileNotFoundError:
        raise ConfigError(f"{what} {source} does not exist; check the path") from None
    except IsADirectoryError:
        raise ConfigError(f"{what} {source} is a directory; give an .npz file") from None
    except MemoryError:
        raise
    except Exception as exc:  # zipfile / npy format errors, pickled objects refused: a user file problem
        raise ConfigError(f"{what} is not a readable .npz without pickled objects ({type(exc).__name__}: {exc}); "
                          "save it with numpy.savez") from None
    if not arrays:
        raise ConfigError(f"{what} holds no arrays")
    return arrays


def features_and_labels(arrays: Mapping[str, np.ndarray], what: str = "the data set", *, x_key: str | None = None,
                        y_key: str | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """The input array and the labels (or None) of a one-input data set, by edgeseal's one layout:
    ``x`` (inputs) and ``y`` (integer labels). Also read: labels as ``labels`` / ``label``, the input as
    the one other array of any name (``x``, then ``input``, when there are several). ``x_key`` /
    ``y_key`` name them explicitly."""
    if y_key is not None and y_key not in arrays:
        raise ConfigError(f"{what} has no labels {y_key!r} (it has {sorted(arrays)})")
    label_key = y_key if y_key is not None else next((k for k in LABEL_KEYS if k in arrays), None)
    if x_key is not None:
        if x_key not in arrays:
            raise ConfigError(f"{what} has no array {x_key!r} (it has {sorted(arrays)})")
        feature_key = x_key
    else:
        features = [k for k in arrays if k != label_key and k not in LABEL_KEYS]
        named = [k for k in ("x", "input") if k in features]
        if len(features) == 1:
            feature_key = features[0]
        elif named:
            feature_key = named[0]
        else:
            raise ConfigError(f"{what} has arrays {sorted(arrays)}: save the inputs as 'x' and the labels as 'y' "
                              "(numpy.savez(path, x=inputs, y=labels)), or name them with x_key / y_key")
    x = np.asarray(arrays[feature_key])
    y = None if label_key is None else np.asarray(arrays[label_key])
    if y is not None and len(y) != len(x):
        raise ConfigError(f"{what}: {len(x)} inputs ({feature_key!r}) but {len(y)} labels ({label_key!r})")
    return x, y


def _sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _backend_version(name: str) -> str:
    try:
        if name == "onnxruntime":
            import onnxruntime

            return onnxruntime.__version__
        from importlib.metadata import version

        return version("ai-edge-litert")
    except Exception:  # noqa: BLE001 - informative only
        return "unknown"


def evaluate(
    model: str | Path,
    data: str | Path,
    *,
    key: Any,
    trusted: Any = (),
    allow_unsigned: bool = False,
    backend: str = "auto",
    threads: int | None = None,
    warmup: int = 2,
    max_samples: int | None = None,
    outputs_path: str | Path | None = None,
    progress: Any = None,
) -> dict[str, Any]:
    """Open ``model`` and the sealed data set ``data``, run every sample, return the result dict."""
    from . import __version__, load, open_payload
    from .format import Kind

    started = time.perf_counter()
    # raw: the evaluation maps float data onto integer inputs and dequantizes outputs itself (split_dataset,
    # dequantize_outputs), the same on the device and on the host, so their outputs compare bit for bit
    sealed = load(model, key=key, trusted=trusted, allow_unsigned=allow_unsigned, backend=backend, threads=threads,
                  raw=True)
    try:
        manifest, plain = open_payload(data, key=key, trusted=trusted, allow_unsigned=allow_unsigned)
        try:
            if manifest.kind is not Kind.DATASET:
                raise ConfigError(
                    f"--data package {manifest.name!r} holds a {manifest.kind.value}, not a dataset; "
                    "seal the evaluation .npz with kind='dataset'"
                )
            arrays = read_npz(plain.freeze(), "evaluation data")
        finally:
            plain.wipe()
        feeds, labels = split_dataset(arrays, sealed.inputs)
        n = len(next(iter(feeds.values())))
        if max_samples is not None:
            n = min(n, max_samples)
            labels = None if labels is None else labels[:n]
        if n == 0:
            raise InvalidInput("evaluation data holds no samples")
        for i in range(min(warmup, n)):
            sealed.run({k: v[i : i + 1] for k, v in feeds.items()})
        seconds: list[float] = []
        chunks: dict[str, list[np.ndarray]] = {}
        for i in range(n):
            batch = {k: v[i : i + 1] for k, v in feeds.items()}
            t0 = time.perf_counter()
            out = sealed.run(batch)
            seconds.append(time.perf_counter() - t0)
            for name, value in out.items():
                if not isinstance(value, np.ndarray):
                    raise UnsupportedError(
                        f"output {name!r} is a {type(value).__name__} (a sequence, map or empty optional); "
                        "evaluation compares array outputs only: evaluate a model whose outputs are tensors"
                    )
                chunks.setdefault(name, []).append(value)
            if progress is not None:
                progress(i + 1, n)
        outputs = {k: np.concatenate(v, axis=0) for k, v in chunks.items()}
        first = sealed.outputs[0].name if sealed.outputs else sorted(outputs)[0]
        result: dict[str, Any] = {
            "schema": SCHEMA,
            "ok": True,
            "device": {
                "machine": platform.machine(),
                "system": platform.system(),
                "platform": platform.platform(),
                "python": platform.python_version(),
                "edgeseal_runtime": __version__,
                "backend": sealed.backend,
                "backend_version": _backend_version(sealed.backend),
                "threads": threads,
            },
            "package": {
                "name": sealed.manifest.name,
                "sha256": _sha256_file(model),
                "model_version": sealed.manifest.model_version,
                "target": sealed.manifest.target,
                "publisher": sealed.publisher,
            },
            "data": {"name": manifest.name, "sha256": _sha256_file(data), "n_samples": n,
                     "labels": labels is not None},
            "outputs": {
                k: {"shape": list(v.shape), "dtype": v.dtype.str, "sha256": outputs_digest({k: v})}
                for k, v in sorted(outputs.items())
            },
            "outputs_sha256": outputs_digest(outputs),
            "metrics": classification_metrics(outputs[first], labels) if labels is not None else None,
            "metrics_output": first if labels is not None else None,
            "latency_ms": latency_summary(seconds),
            "load_seconds": round(sealed.load_seconds, 6),
            "wall_seconds": None,
            "peak_rss_mb": None,
        }
        if outputs_path is not None:
            np.savez(outputs_path, **outputs)
    finally:
        sealed.close()
    result["wall_seconds"] = round(time.perf_counter() - started, 4)
    result["peak_rss_mb"] = peak_rss_mb()
    return result
