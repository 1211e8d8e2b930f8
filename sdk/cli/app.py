"""The ``edgeseal`` command line.

Exit codes: 0 ok; 1 a check failed (e.g. a release gate, a missed compress budget); 2 usage or
input error; 3 the package failed authentication; 4 refused by policy (rollback, expiry);
5 a device error (unreachable, not built, no runtime); 70 a bug in edgeseal. ``--json`` makes every command print one JSON object.
"""

from __future__ import annotations

import argparse
import getpass
import importlib
import json
import os
import re
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__
from ..runtime import errors
from ..runtime.format import DEFAULT_MAX_PLAINTEXT, DEFAULT_SCRYPT_BUDGET

# Feature modules that contribute sub-commands through ``add_parser(subparsers)``.
# They import torch and friends lazily, so listing them keeps ``edgeseal --help`` fast.
FEATURE_MODULES = (
    "edgeseal.release.demo",
    "edgeseal.compress.core",
    "edgeseal.verify.core",
    "edgeseal.cli.devices",
    "edgeseal.cli.targets",
    "edgeseal.audit",
    "edgeseal.search.core",
    "edgeseal.release.pipeline",
)

HINTS: dict[type, str] = {
    errors.UnsignedPackage: "the file carries no publisher signature; get a signed package, "
    "or pass --allow-unsigned if you really mean to run unsigned models",
    errors.UntrustedPublisher: "pass the publisher's public key with --trusted (edgeseal inspect shows who signed it)",
    errors.NoMatchingKey: "this package was sealed for other keys; `edgeseal inspect` lists its key slots",
    errors.InvalidPackage: "check: (1) is this the key the package was sealed for (`edgeseal inspect` lists the "
    "slots)? (2) was the file damaged or modified (compare its SHA-256 with the publisher's)? "
    "(3) is --trusted the right publisher key?",
    errors.RollbackRejected: "install a package with a newer model version",
    errors.PackageExpired: "ask the publisher for a fresh package",
}


def _hint(exc: errors.EdgesealError) -> str | None:
    for cls in type(exc).__mro__:
        if cls in HINTS:
            return HINTS[cls]
    return None


def _secret_from_env(name: str | None, what: str) -> str | None:
    if name is None:
        return None
    value = os.environ.get(name)
    if not value:
        raise errors.ConfigError(f"{what}: environment variable {name} is not set or empty")
    return value


def _passphrase(args: argparse.Namespace, env_attr: str, ask_attr: str, what: str, confirm: bool = False) -> str | None:
    value = _secret_from_env(getattr(args, env_attr, None), what)
    if value is None and getattr(args, ask_attr, False):
        value = getpass.getpass(f"{what}: ")
        if confirm and getpass.getpass(f"{what} (again): ") != value:
            raise errors.ConfigError(f"{what}: the two entries differ")
    return value


# --- keygen -----------------------------------------------------------------------------


def cmd_keygen(args: argparse.Namespace) -> dict[str, Any]:
    from ..runtime import keys

    out = Path(args.out)
    if out.parent and not out.parent.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
    if args.kind == "raw":
        raw = keys.RawKey.generate()
        path = out.with_suffix(".key") if not out.suffix else out
        keys.write_secret_file(path, keys.raw_key_text(raw), overwrite=args.force)
        return {"kind": "raw", "private": str(path), "fingerprint": raw.fingerprint,
                "text": f"raw 256-bit key written to {path} (mode 0600), fingerprint {raw.fingerprint}"}
    passphrase = _passphrase(args, "passphrase_env", "ask_passphrase", "passphrase for the new private key", True)
    key = keys.generate_publisher_key() if args.kind == "publisher" else keys.generate_device_key()
    private, public = out.with_suffix(".pem"), out.with_suffix(".pub")
    keys.write_private_key(private, key, passphrase, overwrite=args.force)
    keys.write_public_key(public, key.public_key(), overwrite=args.force)
    fp = keys.fingerprint(key)
    role = "publisher (Ed25519, signs packages)" if args.kind == "publisher" else "device (X25519, opens packages)"
    return {
        "kind": args.kind,
        "private": str(private),
        "public": str(public),
        "fingerprint": fp,
        "encrypted": bool(passphrase),
        "text": f"{role} key\n  private: {private} (mode 0600{', passphrase-protected' if passphrase else ''})\n"
        f"  public:  {public}\n  fingerprint: {fp}",
    }


# --- seal -------------------------------------------------------------------------------


_DURATION = re.compile(r"^(\d+)([smhdw])$")


def _parse_expiry(text: str | None) -> Any:
    import datetime as dt

    if text is None:
        return None
    m = _DURATION.match(text)
    if m:
        unit = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}[m.group(2)]
        return dt.timedelta(seconds=int(m.group(1)) * unit)
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        raise errors.ConfigError(f"--expires {text!r}: give a duration like 30d/12h or an ISO date") from None
    return when if when.tzinfo else when.replace(tzinfo=dt.timezone.utc)


def cmd_seal(args: argparse.Namespace) -> dict[str, Any]:
    from ..mask import MaskConfig
    from ..runtime.keys import FileKey, RawKey
    from ..seal import seal

    mask = MaskConfig.from_cli(columns=args.mask_columns or (), pixels=args.mask_pixels or (), drop=args.drop or (),
                               fill=args.mask_fill)
    if not mask.empty and not args.dataset:
        raise errors.ConfigError("--mask-columns/--mask-pixels/--drop apply to data sets: add --dataset")

    raw_keys = []
    for path in args.raw_key or ():
        secret = FileKey(Path(path)).load()
        if not isinstance(secret, RawKey):
            raise errors.ConfigError(f"{path} is not a raw key file (edgeseal keygen raw)")
        raw_keys.append(secret)
    started = time.perf_counter()
    source: Any = Path(args.model)
    if args.codebook:  # the model's clustered weights as codebook records: content format onnx+codebook
        if args.dataset or args.format not in (None, "onnx+codebook"):
            raise errors.ConfigError("--codebook encodes an ONNX model's weights; drop --dataset / --format")
        from edgeseal.converters.cluster import codebook_model

        try:
            source = codebook_model(source.read_bytes())
        except OSError as exc:
            raise errors.ConfigError(f"cannot read {args.model}: {exc.strerror}") from None
    package = seal(
        source,
        publisher=None if args.unsigned else args.publisher,
        publisher_passphrase=_secret_from_env(args.publisher_passphrase_env, "publisher key passphrase"),
        devices=[Path(d) for d in args.device or ()],
        passphrase=_passphrase(args, "passphrase_env", "ask_passphrase", "package passphrase", True),
        raw_keys=raw_keys,
        unsigned=args.unsigned,
        name=args.name or (Path(args.model).stem if args.codebook else None),
        version=args.version,
        expires=_parse_expiry(args.expires),
        cipher=args.cipher,
        compression=args.compression,
        digest=args.digest,
        target=args.target,
        content_format=args.format,
        kind="dataset" if args.dataset else "model",
        mask=None if mask.empty else mask,
        compression_summary=_compress_summary(args.compress_report),
        out=Path(args.out),
    )
    import hashlib

    digest = hashlib.sha256(package).hexdigest()
    return {
        "package": args.out,
        "size": len(package),
        "sha256": digest,
        "seconds": round(time.perf_counter() - started, 3),
        "kind": "dataset" if args.dataset else "model",
        "text": f"sealed {'data set ' if args.dataset else ''}{args.model} -> {args.out} ({len(package):,} bytes, "
                f"sha256 {digest[:16]}…)" + ("; masked before sealing (edgeseal inspect shows what)"
                                            if not mask.empty else ""),
    }


def _compress_summary(path: str | None) -> dict[str, Any] | None:
    """``--compress-report``: the manifest's compression summary from ``edgeseal compress``'s JSON report
    (stages, sizes, accuracy; (epsilon, delta) and its scope, robust accuracy when the recipe measured them)."""
    if path is None:
        return None
    import json

    from ..compress.core import manifest_summary

    try:
        report = json.loads(Path(path).read_text(encoding="utf-8"))
        return manifest_summary(report)
    except OSError as exc:
        raise errors.ConfigError(f"cannot read --compress-report {path}: {exc.strerror}") from None
    except (ValueError, KeyError, TypeError, IndexError):
        raise errors.ConfigError(f"--compress-report {path} is not an edgeseal compress report (the .report.json "
                                 "that edgeseal compress writes next to the model)") from None


def _publisher_required(args: argparse.Namespace) -> None:
    if not args.unsigned and not args.publisher:
        raise errors.ConfigError("--publisher KEY.pem is required to sign (or --unsigned)")


# --- inspect ----------------------------------------------------------------------------


def cmd_inspect(args: argparse.Namespace) -> dict[str, Any]:
    """Show what the file says. With --trusted, the signature must verify: otherwise exit 3 (README)."""
    from ..runtime import inspect

    info = inspect(Path(args.package), trusted=[Path(t) for t in args.trusted or ()])
    m = info.manifest
    lines = [
        f"{_safe(args.package)}: {info.size:,} bytes, format v{info.format_version}",
        f"  {m.kind.value}: {_safe(repr(m.name))} version {m.model_version} ({_safe(m.content_format)}), "
        f"target {_safe(m.target or '-')}",
        f"  created {_utc(m.created_at)}, expires {_utc(m.expires_at) if m.expires_at else 'never'}, "
        f"by {_safe(m.producer)}",
        f"  payload: {m.payload.cipher.value}, {m.payload.codec.value}, {m.payload.original_size:,} bytes "
        f"in {m.payload.chunk_size // 1024} KiB chunks",
    ]
    lines += [f"  input  {_safe(s.describe())}" for s in m.inputs]
    lines += [f"  output {_safe(s.describe())}" for s in m.outputs]
    if m.metadata.get("masking"):
        lines.append(f"  masked before sealing: {_safe(m.metadata['masking'])}")
    privacy = m.compression.get("privacy") if isinstance(m.compression, dict) else None
    if isinstance(privacy, dict) and "epsilon" in privacy:
        lines.append(f"  differential privacy: epsilon {_safe(str(privacy['epsilon']))}, delta "
                     f"{_safe(str(privacy.get('delta')))} ({_safe(str(privacy.get('mode')))}); covers "
                     f"{_safe(str(privacy.get('covers')))}")
    lines += [f"  slot   {_safe(s)}" for s in info.slots]
    lines.append(f"  signed by {info.publisher or '-'}: signature {info.signature}")
    result = {**info.to_dict(), "text": "\n".join(lines)}
    if args.trusted and info.signature != "verified":
        why = {"unsigned": "the package is not signed", "untrusted": "it is signed by a publisher not among --trusted",
               "invalid": "the signature does not verify (the file was damaged or modified)"}[info.signature]
        result["stderr"] = f"edgeseal: error: signature check failed: {why}"
        result["exit_code"] = errors.InvalidPackage.exit_code
    return result


def _utc(ts: int) -> str:
    """A Unix time as UTC text; times beyond what the platform's calendar holds are shown as the number."""
    try:
        return time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(ts))
    except (OverflowError, OSError, ValueError):
        return f"{ts} (Unix seconds, beyond the calendar)"


# C0 and C1 controls, DEL, and the Unicode bidirectional/format controls a terminal would act on.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff]")


def _safe(text: object, *, lines: bool = False) -> str:
    """Text from a file or a user, made safe to print on a terminal: controls become \\xNN / \\uNNNN escapes
    (with ``lines``, newlines are kept: for edgeseal's own multi-line messages)."""
    def escape(m: re.Match) -> str:
        c = ord(m.group())
        if lines and c == 0x0A:
            return "\n"
        return f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}"

    return _UNSAFE.sub(escape, str(text))


# --- run --------------------------------------------------------------------------------


def _key_from_args(args: argparse.Namespace) -> Any:
    from ..runtime.keys import FileKey, Passphrase

    phrase = _passphrase(args, "passphrase_env", "ask_passphrase", "package passphrase")
    if phrase is not None:
        return Passphrase(phrase)
    if not args.key:
        raise errors.ConfigError("give the key that opens the package: --key DEVICE.pem (or a raw .key file), "
                                 "or --passphrase-env VAR")
    return FileKey(Path(args.key), _secret_from_env(args.key_passphrase_env, "device key passphrase"))


def _load_inputs(paths: list[str]) -> Any:
    if len(paths) == 1 and paths[0].endswith(".npz"):
        return _read_array(paths[0], lambda z: {name: z[name] for name in z.files})
    arrays = [_read_array(p, lambda a: a) for p in paths]
    return arrays[0] if len(arrays) == 1 else arrays


def _read_array(path: str, take: Any) -> Any:
    """np.load ``path`` (no pickles) and apply ``take``; any failure is a ConfigError naming the file."""
    try:
        loaded = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise errors.ConfigError(f"input file {_safe(path)} does not exist") from None
    except IsADirectoryError:
        raise errors.ConfigError(f"input {_safe(path)} is a directory; give a .npy or .npz file") from None
    except MemoryError:
        raise
    except Exception as exc:  # np.load raises OSError, ValueError, EOFError, zipfile.BadZipFile, ...
        raise errors.ConfigError(f"cannot read input {_safe(path)} as .npy/.npz ({type(exc).__name__}: "
                                 f"{_safe(str(exc)[:200])}); write it with numpy.save or numpy.savez") from None
    try:
        if hasattr(loaded, "files"):
            with loaded:
                return take(loaded)
        return take(loaded)
    except MemoryError:
        raise
    except Exception as exc:  # a damaged member of an .npz shows up only when it is read
        raise errors.ConfigError(f"cannot read input {_safe(path)}: a member is damaged ({type(exc).__name__}: "
                                 f"{_safe(str(exc)[:200])})") from None


def _jsonable(value: Any) -> Any:
    """An output as JSON values: arrays as nested lists, sequences as lists, maps with string keys."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return value.item() if isinstance(value, np.generic) else value


def _kind(value: Any) -> str:
    if isinstance(value, np.ndarray):
        return f"{value.dtype}{list(value.shape)}"
    return "None" if value is None else f"{type(value).__name__} of {len(value)}"


def cmd_run(args: argparse.Namespace) -> dict[str, Any]:
    from ..runtime import load

    model = load(
        Path(args.package),
        key=_key_from_args(args),
        trusted=[Path(t) for t in args.trusted or ()],
        allow_unsigned=args.allow_unsigned,
        min_version=args.min_version,
        threads=args.threads,
        max_plaintext=args.max_plaintext,
        scrypt_budget=args.scrypt_budget,
        raw=args.raw,  # full-integer models: float in/out with their own scales unless --raw
    )
    if args.image:
        return _run_image(model, args)
    if not args.input:
        raise errors.ConfigError("give the model's inputs with --input FILE.npz|.npy, or a photo with --image FILE")
    with model:
        inputs = _load_inputs(args.input)
        started = time.perf_counter()
        outputs = model.run(inputs)
        seconds = time.perf_counter() - started
    result: dict[str, Any] = {
        "model": model.manifest.name,
        "version": model.manifest.model_version,
        "backend": model.backend,
        "publisher": model.publisher,
        "load_seconds": round(model.load_seconds, 4),
        "run_seconds": round(seconds, 4),
    }
    if args.output:
        not_arrays = sorted(k for k, v in outputs.items() if not isinstance(v, np.ndarray))
        if not_arrays:
            raise errors.ConfigError(f"outputs {not_arrays} are sequences, maps or empty optionals, which an .npz "
                                     "cannot hold; leave out -o to print them (--json for JSON)")
        np.savez(args.output, **outputs)
        result["output"] = args.output
        shown = "\n".join(f"  {_safe(k)}: {v.dtype}{list(v.shape)}" for k, v in outputs.items())
        result["text"] = (f"ran {_safe(model.manifest.name)} on {model.backend}; outputs written to "
                          f"{_safe(args.output)}\n{shown}")
    else:
        result["outputs"] = {k: _jsonable(v) for k, v in outputs.items()}
        with np.printoptions(precision=5, suppress=True, threshold=200):
            result["text"] = "\n".join(f"{_safe(k)} {_kind(v)}:\n{_safe(v)}" for k, v in outputs.items())
    return result


def _run_image(model: Any, args: argparse.Namespace) -> dict[str, Any]:
    """``run --image``: the manifest's preprocessing, then the top-k classes (with names when sealed in)."""
    from ..runtime.preprocess import classify

    with model:
        started = time.perf_counter()
        top = classify(model, Path(args.image), k=args.top)
        seconds = time.perf_counter() - started
    lines = [f"{model.manifest.name} on {args.image} ({model.backend}):"]
    for i, row in enumerate(top, 1):
        lines.append(f"  {i}. {row.get('label', 'class ' + str(row['class']))} (class {row['class']}): "
                     f"{row['probability']:.1%}")
    return {"model": model.manifest.name, "backend": model.backend, "image": args.image, "top": top,
            "load_seconds": round(model.load_seconds, 4), "run_seconds": round(seconds, 4), "text": "\n".join(lines)}


# --- parser -----------------------------------------------------------------------------


def _add_key_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--key", help="device private key PEM or raw .key file that opens the package")
    p.add_argument("--key-passphrase-env", metavar="VAR", help="env var holding the device key file's passphrase")
    p.add_argument("--passphrase-env", metavar="VAR", help="open a passphrase slot with the passphrase in VAR")
    p.add_argument("--ask-passphrase", action="store_true", help="prompt for the package passphrase")
    p.add_argument("--trusted", action="append", metavar="PUB", help="trusted publisher public key (repeatable)")
    p.add_argument("--allow-unsigned", action="store_true", help="accept packages with no publisher signature")
    p.add_argument("--min-version", type=int, help="refuse model versions below this (rollback protection)")
    p.add_argument("--max-plaintext", type=int, default=DEFAULT_MAX_PLAINTEXT, metavar="BYTES",
                   help=f"refuse models larger than this in memory (default {DEFAULT_MAX_PLAINTEXT})")
    p.add_argument("--scrypt-budget", type=int, default=DEFAULT_SCRYPT_BUDGET, metavar="WORK",
                   help=f"scrypt work N*r*p one load may spend on passphrase slots (default {DEFAULT_SCRYPT_BUDGET})")


class UsageError(Exception):
    """A command line argparse refuses: ``main`` prints it (as JSON under --json) and exits 2."""

    def __init__(self, usage: str, prog: str, message: str) -> None:
        super().__init__(f"{prog}: {message}")
        self.usage, self.prog, self.reason = usage, prog, message


class _Parser(argparse.ArgumentParser):
    """argparse, except that a usage error reaches ``main`` instead of exiting: under ``--json`` it is
    printed as one JSON object like every other error. Sub-command parsers inherit this class."""

    def error(self, message: str):  # type: ignore[override]
        raise UsageError(self.format_usage(), self.prog, message)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="edgeseal", description="Compress, seal, run and verify on-device models.")
    parser.add_argument("--version", action="version", version=f"edgeseal {__version__}")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("keygen", help="create a publisher (Ed25519), device (X25519) or raw key")
    p.add_argument("kind", choices=["publisher", "device", "raw"])
    p.add_argument("--out", "-o", required=True, help="path stem: writes STEM.pem (0600) and STEM.pub")
    p.add_argument("--passphrase-env", metavar="VAR", help="protect the private key with the passphrase in VAR")
    p.add_argument("--ask-passphrase", action="store_true", help="prompt for a passphrase for the private key")
    p.add_argument("--force", action="store_true", help="overwrite existing files")
    p.set_defaults(func=cmd_keygen)

    p = sub.add_parser("seal", help="encrypt, bind and sign a model for devices")
    p.add_argument("model", help="ONNX or TFLite model file (or .npz dataset)")
    p.add_argument("--out", "-o", required=True, help="sealed package to write (.eseal)")
    p.add_argument("--publisher", help="publisher private key PEM that signs the package")
    p.add_argument("--publisher-passphrase-env", metavar="VAR", help="env var with the publisher key's passphrase")
    p.add_argument("--unsigned", action="store_true", help="do not sign (runtimes refuse it unless told otherwise)")
    p.add_argument("--device", action="append", metavar="PUB", help="device public key to seal for (repeatable)")
    p.add_argument("--raw-key", action="append", metavar="KEY", help="raw key file to seal for (repeatable)")
    p.add_argument("--passphrase-env", metavar="VAR", help="also seal for the passphrase in VAR")
    p.add_argument("--ask-passphrase", action="store_true", help="also seal for a passphrase typed at a prompt")
    p.add_argument("--name", help="model name in the manifest (default: file name)")
    p.add_argument("--version", type=int, default=1, help="model version, for rollback protection (default 1)")
    p.add_argument("--expires", help="expiry: a duration (30d, 12h) or an ISO date")
    p.add_argument("--cipher", default="auto", choices=["auto", "aes-256-gcm", "chacha20-poly1305"])
    p.add_argument("--compression", default="none", choices=["none", "zlib"])
    p.add_argument("--digest", choices=["blake3", "sha-256", "blake2b-256"],
                   help="per-chunk digest (default blake3; sha-256 or blake2b-256 for readers that predate "
                        "BLAKE3, docs/COMPATIBILITY.md)")
    p.add_argument("--target", help="target profile name (sets the cipher when --cipher auto)")
    p.add_argument("--format", choices=["onnx", "onnx+codebook", "tflite", "npz"], help="content format (default: detected)")
    p.add_argument("--codebook", action="store_true",
                   help="store the ONNX model's clustered weights as codebook records (content format onnx+codebook, "
                        "docs/format.md §11; needs edgeseal[compress]); the JVM reader refuses such packages")
    p.add_argument("--compress-report", metavar="REPORT.json",
                   help="edgeseal compress's report: its summary (stages, accuracy, DP epsilon/delta and scope, robust "
                        "accuracy) goes into the manifest")
    g = p.add_argument_group("data sets (an .npz of input arrays and 'labels', e.g. for edgeseal verify --data)")
    g.add_argument("--dataset", action="store_true", help="seal an .npz data set (manifest kind 'dataset')")
    g.add_argument("--mask-columns", action="append", metavar="ARRAY:COLS",
                   help="blank these feature columns of ARRAY before sealing, e.g. x:0,3,5-7 (repeatable)")
    g.add_argument("--mask-pixels", action="append", metavar="ARRAY:MASK.npy",
                   help="blank the pixels where MASK.npy (bool, one sample's shape) is True (repeatable)")
    g.add_argument("--drop", action="append", metavar="ARRAY", help="leave this array out of the sealed set")
    g.add_argument("--mask-fill", default="0", metavar="VALUE|mean",
                   help="value of masked entries: a number (default 0) or 'mean' (each feature's mean)")
    p.set_defaults(func=cmd_seal, check=_publisher_required)

    p = sub.add_parser("inspect", help="show a package's manifest, key slots and signature (no key needed)")
    p.add_argument("package")
    p.add_argument("--trusted", action="append", metavar="PUB", help="check the signature against this key")
    p.set_defaults(func=cmd_inspect)

    p = sub.add_parser("run", help="run a sealed model on .npy/.npz inputs, or a sealed image classifier on a photo")
    p.add_argument("package")
    p.add_argument("--input", "-i", action="append", help=".npz (named) or .npy (in input order)")
    p.add_argument("--image", help="a photo (JPEG, PNG, ...): apply the manifest's preprocessing, print the top classes")
    p.add_argument("--top", type=int, default=5, help="with --image: how many classes to print (default 5)")
    p.add_argument("--output", "-o", help="write outputs to this .npz (default: print them)")
    p.add_argument("--raw", action="store_true",
                   help="full-integer (int8) models: feed and return their integer tensors as they are "
                        "(default: float in, float out, converted with the model's own scales)")
    p.add_argument("--threads", type=int, help="intra-op threads for the backend")
    _add_key_options(p)
    p.set_defaults(func=cmd_run)

    for module_name in FEATURE_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name:  # feature not part of this build
                continue
            raise
        add_parser = getattr(module, "add_parser", None)
        if add_parser is not None:  # a package may exist before its command does
            add_parser(sub)
    return parser


def _emit(result: Any, as_json: bool) -> None:
    if isinstance(result, dict):
        text = result.pop("text", None)
        if as_json:
            print(json.dumps(result, indent=2, default=str))
        elif text:
            print(text)
        return
    if result is not None:
        print(result)


def main(argv: list[str] | None = None) -> int:
    """Run one command. Never a traceback: an edgeseal error prints its message and hint and exits with its
    code; a closed stdout (``| head``) exits 141 quietly; anything else is a bug: one line, exit 70
    (EDGESEAL_TRACEBACK=1 prints the traceback too)."""
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        args = parser.parse_args(argv)
    except UsageError as exc:
        if "--json" in argv:
            print(json.dumps({"ok": False, "error": "UsageError", "message": str(exc), "hint": exc.usage.strip()},
                             indent=2))
        else:
            sys.stderr.write(exc.usage)
            print(f"{exc.prog}: error: {exc.reason}", file=sys.stderr)  # argparse's own form
        return 2
    if not args.command:
        parser.print_help()
        return 2
    try:
        return _run(args)
    except BrokenPipeError:
        return _stdout_closed()
    except KeyboardInterrupt:
        print("edgeseal: interrupted", file=sys.stderr)
        return 130
    except MemoryError:
        print("edgeseal: error: out of memory; free memory or lower the limits (--max-plaintext)", file=sys.stderr)
        return errors.InternalError.exit_code
    except Exception as exc:  # a bug in edgeseal: one line, never a traceback
        if os.environ.get("EDGESEAL_TRACEBACK"):
            import traceback

            traceback.print_exc()
        print(f"edgeseal: internal error (a bug in edgeseal {__version__}; please report it): "
              f"{type(exc).__name__}: {_safe(str(exc)[:300])}", file=sys.stderr)
        return errors.InternalError.exit_code


def _run(args: argparse.Namespace) -> int:
    try:
        if getattr(args, "check", None):
            args.check(args)
        result = args.func(args)
    except errors.EdgesealError as exc:
        hint = _hint(exc)
        if args.json:
            print(json.dumps({"ok": False, "error": type(exc).__name__, "message": str(exc), "hint": hint}, indent=2))
        else:
            print(f"edgeseal: error: {_safe(exc, lines=True)}", file=sys.stderr)
            if hint:
                print(f"  what to check: {hint}", file=sys.stderr)
        return exc.exit_code
    if isinstance(result, int):
        return result
    code = result.pop("exit_code", 0) if isinstance(result, dict) else 0
    failure = result.pop("stderr", None) if isinstance(result, dict) else None
    _emit(result, args.json)
    if failure and not args.json:
        print(failure, file=sys.stderr)
    sys.stdout.flush()  # a closed pipe shows up here, inside main's handler
    return code


def _stdout_closed() -> int:
    """The reader of stdout went away (``edgeseal inspect x | head -1``): stop quietly, exit 128 + SIGPIPE."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so the interpreter's final flush does not fail again
    except (OSError, ValueError):
        pass
    return 141


if __name__ == "__main__":
    sys.exit(main())
