"""edgeseal.he: evaluate a small compressed model on an encrypted evaluation set (CKKS, TenSEAL).

Two parties, two objects:

- :class:`DataOwner` (holds the secret key): makes the CKKS context, hands out
  the *public* context (no secret key), encrypts the evaluation set and
  decrypts the scores.
- :class:`Evaluator` (edgeseal, or whoever runs the model): built from the
  public context bytes only; evaluates a :class:`PolyMLP` (linear layers with
  square activations) on the ciphertexts and returns encrypted scores.

Samples are packed feature-major: ciphertext ``i`` holds feature ``i`` of up to
``slots`` samples, so a linear layer is only ciphertext x scalar products and
additions (no rotations, no Galois keys) and a pruned (zero) weight costs
nothing. The evaluator sees the model and ciphertexts; it never sees the data
or the scores. See docs/he.md for what this protects and where it stops.

Importing this package does not import TenSEAL or torch.
"""

from .ckks import CkksParams, DataOwner, EncryptedBatch, EncryptedScores, Evaluation, Evaluator
from .model import HECost, PolyMLP

__all__ = ["CkksParams", "DataOwner", "Evaluator", "EncryptedBatch", "EncryptedScores", "Evaluation", "PolyMLP",
           "HECost"]
