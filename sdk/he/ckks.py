"""CKKS with TenSEAL: the data owner's side (secret key) and the evaluator's side (public context only)."""

from __future__ import annotations

import json
import struct
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from edgeseal.runtime.errors import ConfigError, UnsupportedError

from .model import HECost, PolyMLP

__all__ = ["CkksParams", "DataOwner", "Evaluator", "EncryptedBatch", "EncryptedScores", "Evaluation"]


def _tenseal():
    try:
        import tenseal as ts
    except ImportError as e:  # pragma: no cover - depends on the install
        raise UnsupportedError("encrypted evaluation needs TenSEAL: pip install 'edgeseal[privacy]'",
                               reason=str(e)) from None
    return ts


# SEAL's 128-bit security bound on the total coefficient modulus (HomomorphicEncryption.org standard).
_MAX_BITS = {4096: 109, 8192: 218, 16384: 438, 32768: 881}


@dataclass(frozen=True, kw_only=True)
class CkksParams:
    """CKKS parameters. Each middle prime is one multiplicative level; the scale sets the precision
    (about ``scale_bits - 10`` bits after a few levels); the first prime bounds the result's magnitude
    (``|score| < 2**(first - scale_bits - 1)``). The default (N=8192, 50+3x30+50 bits) is 128-bit
    secure, has 3 levels (a 2-layer square MLP) and 4096 slots (samples per ciphertext)."""

    poly_modulus_degree: int = 8192
    coeff_mod_bit_sizes: tuple[int, ...] = (50, 30, 30, 30, 50)
    scale_bits: int = 30

    def __post_init__(self) -> None:
        object.__setattr__(self, "coeff_mod_bit_sizes", tuple(int(b) for b in self.coeff_mod_bit_sizes))
        n, bits = self.poly_modulus_degree, self.coeff_mod_bit_sizes
        if n not in _MAX_BITS:
            raise ConfigError(f"poly_modulus_degree must be one of {sorted(_MAX_BITS)}, got {n}")
        if len(bits) < 3:
            raise ConfigError("coeff_mod_bit_sizes needs at least 3 primes (first, one level, special)")
        if sum(bits) > _MAX_BITS[n]:
            raise ConfigError(f"coeff_mod_bit_sizes add up to {sum(bits)} bits; N={n} allows {_MAX_BITS[n]} for "
                              "128-bit security: use fewer or smaller primes, or a larger poly_modulus_degree")
        if not 20 <= self.scale_bits <= min(bits[1:-1]):
            raise ConfigError(f"scale_bits must be in [20, {min(bits[1:-1])}] (the middle primes), got {self.scale_bits}")

    @property
    def depth(self) -> int:
        return len(self.coeff_mod_bit_sizes) - 2

    @property
    def slots(self) -> int:
        return self.poly_modulus_degree // 2

    def to_dict(self) -> dict[str, Any]:
        return {"poly_modulus_degree": self.poly_modulus_degree, "coeff_mod_bit_sizes": list(self.coeff_mod_bit_sizes),
                "scale_bits": self.scale_bits, "depth": self.depth, "slots": self.slots}


_MAGIC = b"ESHE\x01"


def _pack(kind: str, header: dict[str, Any], chunks: tuple[tuple[bytes, ...], ...]) -> bytes:
    head = json.dumps({"kind": kind, **header, "sizes": [[len(c) for c in chunk] for chunk in chunks]},
                      separators=(",", ":")).encode()
    return b"".join([_MAGIC, struct.pack("<I", len(head)), head, *(c for chunk in chunks for c in chunk)])


def _unpack(data: bytes, kind: str) -> tuple[dict[str, Any], tuple[tuple[bytes, ...], ...]]:
    what = "encrypted batch" if kind == "batch" else "encrypted scores"
    data = bytes(data)
    try:
        if data[:5] != _MAGIC:
            raise ValueError("bad magic")
        (n,) = struct.unpack_from("<I", data, 5)
        head = json.loads(data[9 : 9 + n])
        if head.get("kind") != kind:
            raise ValueError(f"holds {head.get('kind')!r}")
        pos, chunks = 9 + n, []
        for sizes in head["sizes"]:
            chunk = []
            for size in sizes:
                if size <= 0 or pos + size > len(data):
                    raise ValueError("truncated")
                chunk.append(data[pos : pos + size])
                pos += size
            chunks.append(tuple(chunk))
        if pos != len(data):
            raise ValueError("trailing bytes")
    except (ValueError, KeyError, TypeError, struct.error) as exc:
        raise ConfigError(f"this is not an edgeseal {what} file ({exc}); write it with .to_bytes()") from None
    return head, tuple(chunks)


@dataclass(frozen=True, kw_only=True)
class EncryptedBatch:
    """An encrypted evaluation set: ``chunks[c][i]`` is feature ``i`` of the samples of chunk ``c``."""

    chunks: tuple[tuple[bytes, ...], ...]
    n_samples: int
    n_features: int
    depth: int  # levels the owner's parameters give

    @property
    def nbytes(self) -> int:
        return sum(len(c) for chunk in self.chunks for c in chunk)

    def to_bytes(self) -> bytes:
        """One file to send to the evaluator: a small JSON header, then the ciphertexts."""
        return _pack("batch", {"n_samples": self.n_samples, "n_features": self.n_features, "depth": self.depth},
                     self.chunks)

    @classmethod
    def from_bytes(cls, data: bytes) -> "EncryptedBatch":
        head, chunks = _unpack(data, "batch")
        return cls(chunks=chunks, n_samples=int(head["n_samples"]), n_features=int(head["n_features"]),
                   depth=int(head["depth"]))


@dataclass(frozen=True, kw_only=True)
class EncryptedScores:
    """``chunks[c][k]`` is class score ``k`` of the samples of chunk ``c``; only the data owner can read them."""

    chunks: tuple[tuple[bytes, ...], ...]
    n_samples: int
    n_outputs: int

    @property
    def nbytes(self) -> int:
        return sum(len(c) for chunk in self.chunks for c in chunk)

    def to_bytes(self) -> bytes:
        return _pack("scores", {"n_samples": self.n_samples, "n_outputs": self.n_outputs}, self.chunks)

    @classmethod
    def from_bytes(cls, data: bytes) -> "EncryptedScores":
        head, chunks = _unpack(data, "scores")
        return cls(chunks=chunks, n_samples=int(head["n_samples"]), n_outputs=int(head["n_outputs"]))


@dataclass(frozen=True, kw_only=True)
class Evaluation:
    scores: EncryptedScores
    seconds: float
    performed: HECost  # operations counted while evaluating (not computed from the model)


class DataOwner:
    """Holds the CKKS secret key. Gives away only :meth:`public_context` and ciphertexts."""

    def __init__(self, params: CkksParams = CkksParams()) -> None:
        ts = _tenseal()
        self.params = params
        self._ctx = ts.context(ts.SCHEME_TYPE.CKKS, poly_modulus_degree=params.poly_modulus_degree,
                               coeff_mod_bit_sizes=list(params.coeff_mod_bit_sizes))
        self._ctx.global_scale = 2.0 ** params.scale_bits

    def public_context(self) -> bytes:
        """The context without the secret key (public and relinearization keys): what the evaluator gets."""
        ts = _tenseal()
        pub = ts.context_from(self._ctx.serialize(save_secret_key=False))
        if pub.is_private():  # pragma: no cover - TenSEAL contract
            raise UnsupportedError("TenSEAL kept the secret key in the public context", reason="secret key leaked")
        return pub.serialize()

    def encrypt(self, x: np.ndarray) -> EncryptedBatch:
        """Encrypt ``x`` (n, features), feature-major, ``slots`` samples per ciphertext."""
        ts = _tenseal()
        x = np.asarray(x, np.float64)
        if x.ndim != 2 or x.shape[0] == 0:
            raise ConfigError(f"encrypt takes a non-empty (samples, features) array, got shape {x.shape}")
        if not np.isfinite(x).all():
            raise ConfigError("the evaluation set has NaN or inf values; clean it before encrypting")
        s = self.params.slots
        chunks = tuple(tuple(ts.ckks_vector(self._ctx, x[i : i + s, j].tolist()).serialize()
                             for j in range(x.shape[1])) for i in range(0, x.shape[0], s))
        return EncryptedBatch(chunks=chunks, n_samples=int(x.shape[0]), n_features=int(x.shape[1]),
                              depth=self.params.depth)

    def decrypt(self, scores: EncryptedScores) -> np.ndarray:
        ts = _tenseal()
        parts = []
        for chunk in scores.chunks:
            cols = [ts.ckks_vector_from(self._ctx, c).decrypt() for c in chunk]
            parts.append(np.stack([np.asarray(c, np.float64) for c in cols], axis=1))
        out = np.concatenate(parts, axis=0)
        if out.shape != (scores.n_samples, scores.n_outputs):
            raise ConfigError(f"these scores hold {out.shape} values, not ({scores.n_samples}, {scores.n_outputs}); "
                              "were they made for this data owner's batch?")
        return out


class Evaluator:
    """Runs a :class:`PolyMLP` on ciphertexts with the public context only: it cannot decrypt anything."""

    def __init__(self, public_context: bytes) -> None:
        ts = _tenseal()
        self._ctx = ts.context_from(bytes(public_context))
        if self._ctx.is_private():
            raise ConfigError("the evaluator was given a context that holds the secret key; the data owner must "
                              "send DataOwner.public_context() instead")

    @property
    def holds_secret_key(self) -> bool:
        return self._ctx.is_private()

    def evaluate(self, model: PolyMLP, batch: EncryptedBatch) -> Evaluation:
        ts = _tenseal()
        if model.n_inputs != batch.n_features:
            raise ConfigError(f"the model takes {model.n_inputs} features, the encrypted set has {batch.n_features}")
        if model.depth > batch.depth:
            raise ConfigError(f"the model needs {model.depth} multiplicative levels, the data owner's parameters give "
                              f"{batch.depth}: the owner must add middle primes to coeff_mod_bit_sizes (or prune a "
                              "layer away)")
        counts = {"plain": 0, "square": 0, "add": 0}
        started = time.perf_counter()
        out_chunks = []
        for chunk in batch.chunks:
            h = [ts.ckks_vector_from(self._ctx, ct) for ct in chunk]
            for layer, (w, b) in enumerate(zip(model.weights, model.biases)):
                h = [self._unit(h, row, float(bias), counts) for row, bias in zip(w, b)]
                if layer < len(model.weights) - 1:
                    h = [v.square() for v in h]
                    counts["square"] += len(h)
            out_chunks.append(tuple(v.serialize() for v in h))
        seconds = time.perf_counter() - started
        performed = HECost(plain_multiplications=counts["plain"] // len(batch.chunks),
                           ciphertext_multiplications=counts["square"] // len(batch.chunks),
                           additions=counts["add"] // len(batch.chunks), rotations=0, depth=model.depth)
        return Evaluation(scores=EncryptedScores(chunks=tuple(out_chunks), n_samples=batch.n_samples,
                                                 n_outputs=model.n_outputs),
                          seconds=seconds, performed=performed)

    def _unit(self, h: list, row: np.ndarray, bias: float, counts: dict[str, int]):
        acc = None
        for v, wv in zip(h, row):
            if wv == 0.0:  # a pruned weight costs nothing
                continue
            term = v * float(wv)
            counts["plain"] += 1
            if acc is None:
                acc = term
            else:
                acc = acc + term
                counts["add"] += 1
        if acc is None:  # every weight pruned: the unit is the constant bias (simplify() folds hidden ones away)
            return _tenseal().ckks_vector(self._ctx, [bias] * h[0].size())
        counts["add"] += 1
        return acc + bias
