"""The image-embedding option, with a tiny random-weight CLIPModel written by save_pretrained.

No image-embedding weights can be downloaded here, so the test builds a real transformers
CLIPModel (the class a real checkpoint loads into) at a tiny size with random weights, saves it to a
folder and loads it back through the same code path as a real local model. The embeddings are
meaningless, so the test checks the plumbing: unit vectors, the same frame gives the same vector,
and the embedding becomes a continuity component named in the report.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import CLIPConfig, CLIPModel

from reelforge_qa.calibration import CASES, build
from reelforge_qa.embeddings import ClipEmbedder
from reelforge_qa.film_checks import check_film
from reelforge_qa.synthetic import Shot, render_shot
from reelforge_shared.errors import PermanentError


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    config = CLIPConfig(
        text_config={
            "vocab_size": 99,
            "hidden_size": 32,
            "intermediate_size": 37,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
        },
        vision_config={
            "image_size": 32,
            "patch_size": 8,
            "hidden_size": 32,
            "intermediate_size": 37,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
        },
        projection_dim=16,
    )
    folder = tmp_path_factory.mktemp("tiny-clip")
    CLIPModel(config).save_pretrained(folder)
    return folder


def test_clip_embedder_gives_unit_vectors_per_frame(tiny_clip: Path) -> None:
    embedder = ClipEmbedder(tiny_clip)
    frames = render_shot(Shot(), 2) + render_shot(Shot(location="barn"), 1)
    vectors = embedder.embed([frames[0], frames[0], frames[2]])
    assert vectors.shape == (3, 16)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert float(vectors[0] @ vectors[1]) == pytest.approx(1.0, abs=1e-5)


def test_film_check_adds_the_embedding_to_continuity(tiny_clip: Path, tmp_path: Path) -> None:
    videos, film = build(CASES[0], tmp_path)
    report = check_film(videos, film=film, embedder=ClipEmbedder(tiny_clip))
    assert report.embedding_model == str(tiny_clip)
    hero = next(c for c in report.characters if c.name == "hero")
    # The embedding is of the subject's crops (the character), beside its colour, texture, shape and scale.
    assert all(set(p.components) == {"colour", "texture", "shape", "scale", "embedding"} for p in hero.pairs)
    assert all(p.score == min(p.components.values()) for p in hero.pairs)
    field = next(c for c in report.locations if c.name == "field")
    assert all("embedding" in p.components for p in field.pairs)


def test_clip_embedder_refuses_a_folder_without_a_model(tmp_path: Path) -> None:
    with pytest.raises(PermanentError, match="config.json"):
        ClipEmbedder(tmp_path)
