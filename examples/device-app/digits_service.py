"""A digit-recognition service for the Raspberry Pi: HTTP on loopback, a sealed int8 model, the runtime only.

    python digits_service.py --model digits.eseal --key device.pem --trusted publisher.pub --port 8080

It imports the standard library, numpy and ``edgeseal.runtime`` (numpy + cryptography + ONNX Runtime,
``pip install edgeseal[onnx]``) and nothing else: never torch. The model is verified against the
trusted publisher key and decrypted in memory when the service starts; it never touches the disk.

Endpoints (JSON replies):

* ``POST /predict`` — images of 8x8 pixel intensities 0..16 (scikit-learn's digits scale), either as
  JSON ``{"image": [[...8 rows of 8...]]}`` or ``{"images": [...]}`` (at most 64), or as raw bytes
  (``Content-Type: application/octet-stream``, 64 bytes per image, row-major). Answers
  ``{"digits": [7, ...], "confidence": [0.98, ...]}``.
* ``POST /classify`` — one photo as the request body (JPEG, PNG, ...; ``Content-Type: image/*``), for
  an image classifier sealed with its preprocessing in the manifest (``examples/efficientnet``):
  the service applies that preprocessing (resize, crop, mean/std, layout; needs Pillow) and answers
  ``{"top": [{"class": 285, "label": "Egyptian Mau", "probability": 0.77}, ...]}`` (``?top=K``, default 5).
* ``GET /health`` — model name and version, backend, requests served, errors, resident memory, and
  ``torch_loaded`` (whether ``torch`` is in ``sys.modules``: it must be false).

It listens on a loopback address only (127.0.0.1 or ::1): a model service on a device is reached
through a local socket or an SSH tunnel, not exposed to the network. ``--port 0`` picks a free port;
the first line on stdout says which (``listening on http://127.0.0.1:PORT``). SIGTERM or SIGINT stop
it cleanly (exit 0). Startup failures exit with the runtime's error codes (2 config, 3 invalid package,
4 policy).
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import signal
import socket
import sys
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np

from edgeseal.runtime import EdgesealError, load

MAX_BATCH = 64
MAX_BODY = 1 << 20
SIDE = 8


class BadRequest(Exception):
    """The client sent something the service cannot read; the message says what and how to fix it."""


def read_images(body: bytes, content_type: str) -> np.ndarray:
    """Images (N, 8, 8) as float32 intensities 0..16 from a JSON or raw-bytes request body."""
    if content_type.split(";")[0].strip() == "application/octet-stream":
        if not body or len(body) % (SIDE * SIDE):
            raise BadRequest(f"raw body must be a multiple of {SIDE * SIDE} bytes (one byte per pixel), "
                             f"got {len(body)}")
        images = np.frombuffer(body, dtype=np.uint8).reshape(-1, SIDE, SIDE).astype(np.float32)
    else:
        try:
            doc = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            raise BadRequest('body is not JSON; send {"image": [[...]]} or raw bytes as application/octet-stream') from None
        if not isinstance(doc, dict) or ("image" in doc) == ("images" in doc):
            raise BadRequest('send exactly one of {"image": 8x8} or {"images": [8x8, ...]}')
        items = [doc["image"]] if "image" in doc else doc["images"]
        try:
            images = np.asarray(items, dtype=np.float32)
        except (ValueError, TypeError):
            raise BadRequest("images must be arrays of numbers") from None
        if images.ndim != 3 or images.shape[1:] != (SIDE, SIDE):
            raise BadRequest(f"each image must be {SIDE}x{SIDE} pixels; got shape {list(images.shape[1:])}")
    if not 1 <= len(images) <= MAX_BATCH:
        raise BadRequest(f"send 1 to {MAX_BATCH} images per request, not {len(images)}")
    if not np.all(np.isfinite(images)) or images.min() < 0 or images.max() > 16:
        raise BadRequest("pixel intensities must be within 0..16 (scikit-learn digits scale)")
    return images


def rss_bytes() -> tuple[int, int]:
    """(current, peak) resident set size of this process, from /proc (Linux)."""
    values = {}
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                name, amount, _unit = line.split()
                values[name[:-1]] = int(amount) * 1024
    return values.get("VmRSS", 0), values.get("VmHWM", 0)


def third_party_modules() -> list[str]:
    """Top-level packages loaded in this process that are not in the standard library."""
    names = {name.split(".")[0] for name in list(sys.modules) if not name.startswith("_")}
    return sorted(names - set(sys.stdlib_module_names))


class DigitsService:
    """The model and the counters; ``predict`` is safe to call from many threads at once."""

    def __init__(self, model) -> None:
        self.model = model
        self.input = model.inputs[0].name
        self.started = time.time()
        self._lock = threading.Lock()
        self.served = 0
        self.errors = 0

    def predict(self, images: np.ndarray) -> dict:
        x = (images / 16.0).astype(np.float32)[:, None, :, :]
        logits = next(iter(self.model.run({self.input: x}).values()))
        z = logits - logits.max(axis=1, keepdims=True)
        probs = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
        return {"digits": logits.argmax(axis=1).tolist(),
                "confidence": [round(float(p), 4) for p in probs.max(axis=1)]}

    def classify(self, body: bytes, k: int = 5) -> dict:
        """Top-k classes of one encoded photo, with the preprocessing the sealed model carries."""
        from edgeseal.runtime.preprocess import ImagePreprocess, classify, open_image

        ImagePreprocess.from_manifest(self.model.manifest)  # a ConfigError naming the model when it has none
        try:
            image = open_image(body)
        except EdgesealError as exc:
            raise BadRequest(f"{exc}; send JPEG or PNG bytes") from None
        return {"top": classify(self.model, image, k=k)}

    def count(self, ok: bool) -> None:
        with self._lock:
            if ok:
                self.served += 1
            else:
                self.errors += 1

    def health(self) -> dict:
        rss, peak = rss_bytes()
        m = self.model.manifest
        return {
            "status": "ok", "model": m.name, "model_version": m.model_version, "backend": self.model.backend,
            "publisher": self.model.publisher, "requests_served": self.served, "errors": self.errors,
            "rss_bytes": rss, "peak_rss_bytes": peak, "uptime_s": round(time.time() - self.started, 1),
            "torch_loaded": "torch" in sys.modules,
            "heavy_modules_loaded": sorted(n for n in ("torch", "onnx", "edgeseal.converters") if n in sys.modules),
            "third_party_modules": third_party_modules(),
        }


def make_handler(service: DigitsService) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive: one connection serves many requests
        # Headers and body go out in two writes; with Nagle on, the body waits for the client's delayed
        # ACK (~40 ms on Linux) on every keep-alive request. TCP_NODELAY sends it at once.
        disable_nagle_algorithm = True
        server_version = "edgeseal-digits/1"

        def log_message(self, format: str, *args) -> None:  # noqa: A002 - stdlib signature
            pass  # no per-request log lines: a Pi's SD card is not a log sink

        def reply(self, status: HTTPStatus, doc: dict) -> None:
            body = json.dumps(doc).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:  # noqa: N802 - stdlib name
            if self.path == "/health":
                self.reply(HTTPStatus.OK, service.health())
            else:
                self.reply(HTTPStatus.NOT_FOUND, {"error": f"no such endpoint {self.path}; use POST /predict "
                                                            "or GET /health"})

        def do_POST(self) -> None:  # noqa: N802 - stdlib name
            path, _, query = self.path.partition("?")
            if path not in ("/predict", "/classify"):
                self.reply(HTTPStatus.NOT_FOUND, {"error": f"no such endpoint {self.path}; use POST /predict "
                                                            "or POST /classify"})
                return
            try:
                length = int(self.headers.get("Content-Length", "-1"))
            except ValueError:
                length = -1
            if not 0 < length <= MAX_BODY:
                service.count(False)
                self.close_connection = True  # the body, if any, was not read
                self.reply(HTTPStatus.REQUEST_ENTITY_TOO_LARGE if length > MAX_BODY else HTTPStatus.LENGTH_REQUIRED,
                           {"error": f"send a body of 1..{MAX_BODY} bytes with a Content-Length header"})
                return
            body = self.rfile.read(length)
            try:
                if path == "/classify":
                    params = dict(p.partition("=")[::2] for p in query.split("&") if p)
                    try:
                        k = int(params.get("top", "5"))
                    except ValueError:
                        raise BadRequest(f"top={params['top']!r} is not a number; use ?top=5") from None
                    if not 1 <= k <= 100:
                        raise BadRequest(f"top={k} must be between 1 and 100")
                    result = service.classify(body, k)
                else:
                    result = service.predict(read_images(body, self.headers.get("Content-Type", "application/json")))
            except BadRequest as exc:
                service.count(False)
                self.reply(HTTPStatus.BAD_REQUEST, {"error": str(exc)})
                return
            except EdgesealError as exc:  # e.g. input validation in the runtime
                service.count(False)
                self.reply(HTTPStatus.BAD_REQUEST, {"error": str(exc)})
                return
            service.count(True)
            self.reply(HTTPStatus.OK, result)

    return Handler


def loopback_only(host: str) -> str:
    try:
        if ipaddress.ip_address(host).is_loopback:
            return host
    except ValueError:
        pass
    raise argparse.ArgumentTypeError(f"{host!r} is not a loopback address; this service listens on 127.0.0.1 or ::1 "
                                     "only (reach it from elsewhere through an SSH tunnel)")


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128  # listen backlog: the default 5 drops SYNs when many clients connect at once


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, help="sealed package (digits.eseal)")
    ap.add_argument("--key", required=True, help="this device's X25519 private key (PEM)")
    ap.add_argument("--trusted", required=True, action="append", help="trusted publisher public key (PEM); repeatable")
    ap.add_argument("--min-version", type=int, default=None, help="refuse models below this version (rollback)")
    ap.add_argument("--host", type=loopback_only, default="127.0.0.1", help="loopback address (default 127.0.0.1)")
    ap.add_argument("--port", type=int, default=8080, help="TCP port; 0 picks a free one")
    ap.add_argument("--threads", type=int, default=1, help="ONNX Runtime threads per request (default 1)")
    args = ap.parse_args(argv)

    try:
        model = load(args.model, key=args.key, trusted=args.trusted, min_version=args.min_version,
                     threads=args.threads)
    except EdgesealError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    service = DigitsService(model)
    family = socket.AF_INET6 if ":" in args.host else socket.AF_INET
    try:
        server = type("Server", (Server,), {"address_family": family})((args.host, args.port), make_handler(service))
    except OSError as exc:
        model.close()
        print(f"error: cannot listen on {args.host}:{args.port}: {exc.strerror}; choose another --port", file=sys.stderr)
        return 2
    host, port = server.server_address[:2]
    stop = threading.Event()

    def shutdown(signum: int, frame) -> None:
        stop.set()
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, shutdown)
    signal.signal(signal.SIGINT, shutdown)
    url_host = f"[{host}]" if ":" in host else host
    print(f"listening on http://{url_host}:{port} model={model.manifest.name} v{model.manifest.model_version} "
          f"backend={model.backend} pid={os.getpid()}", flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
        model.close()
    print(f"stopped after {service.served} requests, {service.errors} errors", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
