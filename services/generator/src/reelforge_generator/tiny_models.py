"""Tiny random-weight models, written with save_pretrained and loaded back like any real model.

No machine here can download weights, so the demo and the tests use these. They have the real
architecture of their family at a tiny width: the same diffusers code runs, the images are noise.
A ``reelforge_model.json`` beside ``model_index.json`` marks them, and outputs say so.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import torch

MARKER = "reelforge_model.json"


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP byte-level alphabet: every byte maps to a printable character."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    codes, extra = printable[:], 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            codes.append(256 + extra)
            extra += 1
    return dict(zip(printable, map(chr, codes), strict=True))


def _tiny_clip(seed: int) -> tuple:
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    # A character-level vocabulary (no merges): a real CLIP tokenizer, without downloading one.
    alphabet = list(_bytes_to_unicode().values())
    vocab = {c: i for i, c in enumerate(alphabet)} | {c + "</w>": len(alphabet) + i for i, c in enumerate(alphabet)}
    vocab |= {"<|startoftext|>": len(vocab), "<|endoftext|>": len(vocab) + 1}
    tokenizer = CLIPTokenizer(vocab=vocab, merges=[], model_max_length=77)
    torch.manual_seed(seed)
    config = CLIPTextConfig(
        vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
        max_position_embeddings=77, projection_dim=32, bos_token_id=vocab["<|startoftext|>"],
        eos_token_id=vocab["<|endoftext|>"], pad_token_id=vocab["<|endoftext|>"],
    )
    return tokenizer, CLIPTextModel(config)


def build_tiny_sd(path: Path, seed: int = 0) -> Path:
    """A Stable Diffusion pipeline (UNet, VAE, CLIP, DPM++) at toy width, seeded."""
    from diffusers import AutoencoderKL, DPMSolverMultistepScheduler, StableDiffusionPipeline, UNet2DConditionModel

    tokenizer, text_encoder = _tiny_clip(seed)
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        sample_size=32, in_channels=4, out_channels=4, block_out_channels=(32, 64), layers_per_block=1,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32, attention_head_dim=8, norm_num_groups=8,
    )
    vae = AutoencoderKL(
        block_out_channels=(16, 32, 32), in_channels=3, out_channels=3, latent_channels=4, norm_num_groups=8,
        down_block_types=("DownEncoderBlock2D",) * 3, up_block_types=("UpDecoderBlock2D",) * 3, sample_size=128,
    )
    pipe = StableDiffusionPipeline(
        vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet, scheduler=DPMSolverMultistepScheduler(steps_offset=1),
        safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )
    return _save_atomically(pipe, path, {"family": "tiny-sd", "random_weights": True, "seed": seed, "default_width": 128, "default_steps": 20})


def _save_atomically(pipe: object, path: Path, marker: dict) -> Path:
    """Write beside the target and rename, so concurrent workers never load a half-written model."""
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{path.name}-", dir=path.parent))
    pipe.save_pretrained(staging)
    (staging / MARKER).write_text(json.dumps(marker))
    try:
        staging.rename(path)
    except OSError:  # another worker finished first; theirs is identical
        shutil.rmtree(staging, ignore_errors=True)
    return path


BUILDERS = {"reelforge/tiny-sd": build_tiny_sd}


def resolve_model(name: str, cache_dir: Path) -> str:
    """A built-in tiny model's local path (built on first use), or ``name`` unchanged."""
    if name not in BUILDERS:
        return name
    path = cache_dir.expanduser() / name.replace("/", "--")
    if not (path / MARKER).exists():
        BUILDERS[name](path)
    return str(path)


def model_marker(path: str) -> dict:
    marker = Path(path) / MARKER
    return json.loads(marker.read_text()) if marker.exists() else {}
