"""The all-MiniLM-L6-v2 ONNX export: same vectors as sentence-transformers, served without torch."""

import asyncio
import os
import subprocess
import sys

import numpy as np
import pytest

os.environ["HF_HUB_OFFLINE"] = "1"

from checkout import ROOT  # noqa: E402

from reelvec.models import text  # noqa: E402
from services.transcriber.text_embedding import TextEmbedder  # noqa: E402

SENTENCES = [
    "A man is playing a guitar on stage.",
    "ok",
    "Street food tour in Bangkok at night\nfood travel",
    "Émojis 🎉, ünïcödé and 日本語のテキスト",
    "word " * 400,  # longer than 256 tokens: both sides truncate
]


@pytest.fixture(scope="module")
def embedder() -> TextEmbedder:
    model = TextEmbedder(text.export())
    asyncio.run(model.load())
    return model


def test_onnx_matches_sentence_transformers(embedder):
    from sentence_transformers import SentenceTransformer

    reference = SentenceTransformer(str(text.source_dir()), device="cpu").encode(SENTENCES)
    batched = asyncio.run(embedder.predict(SENTENCES))  # padded to the longest
    one_by_one = np.concatenate([embedder.embed([s]) for s in SENTENCES])
    for got in (batched, one_by_one):
        assert got.shape == (len(SENTENCES), 384)
        assert got.dtype == np.float32
        np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
        assert (got * reference).sum(1).min() > 0.9999


def test_similar_sentences_are_closer_than_unrelated(embedder):
    cat, kitten, tax, pasta, noodles = embedder.embed(
        [
            "A cat is sleeping on the sofa.",
            "A kitten naps on the couch.",
            "How to file your income tax return.",
            "Easy pasta recipe for dinner",
            "Quick noodle dish to cook tonight",
        ]
    )
    assert cat @ kitten > cat @ tax + 0.3
    assert pasta @ noodles > pasta @ tax + 0.3
    assert pasta @ noodles > pasta @ cat


def test_export_is_idempotent():
    first = text.export()
    stamp = (first / text.ONNX_NAME).stat().st_mtime_ns
    assert text.export() == first
    assert (first / text.ONNX_NAME).stat().st_mtime_ns == stamp


def test_serving_does_not_import_torch():
    probe = (
        "import asyncio, sys\n"
        "from services.transcriber import server\n"
        "from services.transcriber.text_embedding import TextEmbedder\n"
        "from reelvec.models import text_model_dir\n"
        "embedder = TextEmbedder(text_model_dir())\n"
        "asyncio.run(embedder.load())\n"
        "asyncio.run(embedder.predict(['hello']))\n"
        "print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))\n"
    )
    text.export()
    out = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"
