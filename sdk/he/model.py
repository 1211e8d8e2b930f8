"""The models HE can evaluate here: linear layers with square activations (``x -> x**2``), in NumPy.

``PolyMLP`` is the inspectable intermediate object: its plaintext ``forward`` is
the reference, ``cost()`` says how many ciphertext operations the encrypted
evaluation will do, and ``simplify()`` folds hidden units that pruning left dead
into the next layer's bias (a unit with no inputs is a constant; a unit with no
outputs does nothing), which removes their squares from the HE cost.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from edgeseal.runtime.errors import ConfigError, UnsupportedError

__all__ = ["PolyMLP", "HECost"]


@dataclass(frozen=True, kw_only=True)
class HECost:
    """Ciphertext operations of one encrypted evaluation, per packed ciphertext group (up to ``slots`` samples)."""

    plain_multiplications: int  # ciphertext x scalar, one per non-zero weight
    ciphertext_multiplications: int  # squares (with relinearization), one per hidden unit
    additions: int
    rotations: int  # feature-major packing needs none
    depth: int  # multiplicative levels (rescales) on the longest path

    def to_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


@dataclass(frozen=True, kw_only=True)
class PolyMLP:
    """``x -> W_L (... (W_2 (W_1 x + b_1)**2 + b_2)**2 ...) + b_L`` with ``W_l`` of shape (out, in)."""

    weights: tuple[np.ndarray, ...]
    biases: tuple[np.ndarray, ...]

    def __post_init__(self) -> None:
        w = tuple(np.asarray(a, np.float64) for a in self.weights)
        b = tuple(np.asarray(a, np.float64).reshape(-1) for a in self.biases)
        if not w or len(w) != len(b):
            raise ConfigError("PolyMLP needs one bias per weight matrix and at least one layer")
        for i, (wi, bi) in enumerate(zip(w, b)):
            if wi.ndim != 2 or bi.shape != (wi.shape[0],):
                raise ConfigError(f"layer {i}: weight must be (out, in) and bias (out,), got {wi.shape} and {bi.shape}")
            if i and wi.shape[1] != w[i - 1].shape[0]:
                raise ConfigError(f"layer {i} takes {wi.shape[1]} inputs but layer {i - 1} gives {w[i - 1].shape[0]}")
            if not (np.isfinite(wi).all() and np.isfinite(bi).all()):
                raise ConfigError(f"layer {i} has NaN or inf parameters")
        object.__setattr__(self, "weights", w)
        object.__setattr__(self, "biases", b)

    @property
    def n_inputs(self) -> int:
        return int(self.weights[0].shape[1])

    @property
    def n_outputs(self) -> int:
        return int(self.weights[-1].shape[0])

    @property
    def hidden(self) -> tuple[int, ...]:
        return tuple(int(w.shape[0]) for w in self.weights[:-1])

    @property
    def depth(self) -> int:
        """Multiplicative depth: one rescale per linear layer, one per square."""
        return 2 * len(self.weights) - 1

    def forward(self, x: np.ndarray) -> np.ndarray:
        h = np.asarray(x, np.float64)
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            h = h @ w.T + b
            if i < len(self.weights) - 1:
                h = h * h
        return h

    def sparsity(self) -> float:
        total = sum(w.size for w in self.weights)
        return float(sum(int((w == 0).sum()) for w in self.weights) / total)

    def cost(self) -> HECost:
        mults = sum(int(np.count_nonzero(w)) for w in self.weights)
        # additions: (non-zero terms - 1) per output unit, plus one bias addition per output unit
        adds = sum(max(int(np.count_nonzero(row)) - 1, 0) + 1 for w in self.weights for row in w)
        return HECost(plain_multiplications=mults, ciphertext_multiplications=sum(self.hidden), additions=adds,
                      rotations=0, depth=self.depth)

    def simplify(self) -> "PolyMLP":
        """The same function with dead hidden units folded away (exact: ``forward`` is unchanged)."""
        w, b = [a.copy() for a in self.weights], [a.copy() for a in self.biases]
        for i in range(len(w) - 1):
            no_in = ~w[i].any(axis=1)  # constant unit: its output is b**2
            no_out = ~w[i + 1].any(axis=0)  # unit nobody reads
            b[i + 1] = b[i + 1] + w[i + 1][:, no_in & ~no_out] @ (b[i][no_in & ~no_out] ** 2)
            keep = ~(no_in | no_out)
            if not keep.any():
                raise UnsupportedError(f"pruning removed every unit of hidden layer {i}; the model is a constant",
                                       reason="no live hidden unit")
            w[i], b[i] = w[i][keep], b[i][keep]
            w[i + 1] = w[i + 1][:, keep]
        return PolyMLP(weights=tuple(w), biases=tuple(b))

    @classmethod
    def from_torch(cls, module: Any) -> "PolyMLP":
        """From an ``nn.Sequential`` of ``Linear`` layers with a square activation between them
        (any module whose class is named ``Square``, e.g. :class:`edgeseal.he.train.Square`)."""
        layers = list(module.children()) if hasattr(module, "children") else []
        weights, biases, expect_linear = [], [], True
        for layer in layers:
            name = type(layer).__name__
            if name == "Linear" and expect_linear:
                weights.append(layer.weight.detach().cpu().double().numpy())
                b = layer.bias
                biases.append(np.zeros(weights[-1].shape[0]) if b is None else b.detach().cpu().double().numpy())
                expect_linear = False
            elif name == "Square" and not expect_linear:
                expect_linear = True
            else:
                raise UnsupportedError(
                    f"HE evaluation supports Linear layers with Square activations between them; got {name} at "
                    f"position {len(weights)} (polynomial activations only: CKKS has no comparisons)",
                    reason=f"layer {name}")
        if not weights or expect_linear:
            raise UnsupportedError("the model must start and end with a Linear layer", reason="layer order")
        return cls(weights=tuple(weights), biases=tuple(biases))

    @classmethod
    def linear(cls, weight: np.ndarray, bias: Sequence[float]) -> "PolyMLP":
        """A single linear layer, e.g. a classifier head over features the device computed."""
        return cls(weights=(np.asarray(weight),), biases=(np.asarray(bias),))
