"""Device-side command line: ``python -m edgeseal.runtime {info,eval,classify}``.

This is what the verification harness runs on a device. It imports only the
runtime (numpy, cryptography, a backend) and always prints exactly one JSON
object on stdout, also for failures (``{"ok": false, "error": ..., "message": ...}``),
with the error's exit code.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from pathlib import Path
from typing import Any

from .errors import ConfigError, EdgesealError


def _info(args: argparse.Namespace) -> dict[str, Any]:
    from . import __version__
    from .backends import describe
    from .evaluate import peak_rss_mb

    return {
        "ok": True,
        "edgeseal_runtime": __version__,
        "machine": platform.machine(),
        "system": platform.system(),
        "python": platform.python_version(),
        "backends": describe(),
        "torch_imported": "torch" in sys.modules,
        "peak_rss_mb": peak_rss_mb(),
    }


def _key(args: argparse.Namespace) -> Any:
    from .keys import FileKey, Passphrase

    if args.key_file:
        return FileKey(Path(args.key_file))
    if args.passphrase_env:
        value = os.environ.get(args.passphrase_env)
        if not value:
            raise ConfigError(f"environment variable {args.passphrase_env} is not set or empty")
        return Passphrase(value)
    raise ConfigError("give the key that opens the packages: --key-file PATH or --passphrase-env VAR")


def _eval(args: argparse.Namespace) -> dict[str, Any]:
    from .evaluate import evaluate

    result = evaluate(
        args.model,
        args.data,
        key=_key(args),
        trusted=[Path(p) for p in args.trusted or ()],
        allow_unsigned=args.allow_unsigned,
        backend=args.backend,
        threads=args.threads,
        warmup=args.warmup,
        max_samples=args.max_samples,
        outputs_path=args.outputs,
    )
    return result


def _classify(args: argparse.Namespace) -> dict[str, Any]:
    from .loader import load
    from .preprocess import classify

    model = load(Path(args.model), key=_key(args), trusted=[Path(p) for p in args.trusted or ()],
                 allow_unsigned=args.allow_unsigned, backend=args.backend, threads=args.threads)
    with model:
        top = classify(model, Path(args.image), k=args.top)
    return {"ok": True, "model": model.manifest.name, "backend": model.backend, "image": args.image, "top": top}


def _add_open_options(p: argparse.ArgumentParser) -> None:
    """How a command opens its packages: passphrase, trusted publishers, backend (after --key-file)."""
    p.add_argument("--passphrase-env", metavar="VAR", help="open passphrase slots with the passphrase in VAR")
    p.add_argument("--trusted", action="append", metavar="PUB", help="trusted publisher public key PEM")
    p.add_argument("--allow-unsigned", action="store_true")
    p.add_argument("--backend", default="auto")
    p.add_argument("--threads", type=int)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m edgeseal.runtime", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("info", help="runtime version, machine and which backends work here")
    p.set_defaults(func=_info)
    p = sub.add_parser("eval", help="run a sealed model on a sealed evaluation set, print JSON")
    p.add_argument("--model", required=True, help="sealed model package (.eseal)")
    p.add_argument("--data", required=True, help="sealed evaluation set (.npz sealed with kind 'dataset')")
    p.add_argument("--key-file", help="device key PEM or raw key file that opens both packages")
    _add_open_options(p)
    p.add_argument("--warmup", type=int, default=2, help="untimed runs before measuring (default 2)")
    p.add_argument("--max-samples", type=int, help="evaluate only the first N samples")
    p.add_argument("--outputs", help="also write the raw outputs to this .npz")
    p.add_argument("--result", help="write the JSON here too (stdout always gets it)")
    p.set_defaults(func=_eval)
    p = sub.add_parser("classify", help="top-k classes of one image file with a sealed image classifier")
    p.add_argument("--model", required=True, help="sealed model package (.eseal) whose manifest has preprocessing")
    p.add_argument("--image", required=True, help="image file (JPEG, PNG, ...; needs Pillow)")
    p.add_argument("--top", type=int, default=5, help="how many classes to print (default 5)")
    p.add_argument("--key-file", help="device key PEM or raw key file that opens the package")
    _add_open_options(p)
    p.add_argument("--result", help="write the JSON here too (stdout always gets it)")
    p.set_defaults(func=_classify)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        result = args.func(args)
        code = 0
    except EdgesealError as exc:
        result = {"ok": False, "error": type(exc).__name__, "message": str(exc),
                  "reason": getattr(exc, "reason", None)}
        code = exc.exit_code
    except MemoryError:
        result = {"ok": False, "error": "MemoryError", "message": "the device ran out of memory"}
        code = 1
    except Exception as exc:  # a bug: still one JSON object, never a traceback
        result = {"ok": False, "error": "InternalError",
                  "message": f"a bug in the edgeseal runtime; please report it: {type(exc).__name__}: {exc}"}
        code = 70
    text = json.dumps(result, indent=2, sort_keys=True)
    try:
        if getattr(args, "result", None):
            Path(args.result).write_text(text + "\n")
        print(text, flush=True)
    except BrokenPipeError:  # stdout closed by its reader: nothing left to tell it
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except OSError as exc:
        print(json.dumps({"ok": False, "error": "ConfigError",
                          "message": f"cannot write the result to {args.result}: {exc.strerror}"}))
        return 2
    return code


if __name__ == "__main__":
    sys.exit(main())
