"""What every tiny random-weight model is built from: a tiny CLIP, VAE and image encoder, and the atomic save.

No machine here can download weights, so the demo and the tests use these. Each has the real
architecture of its family at a tiny width (the real diffusers classes, sizes after diffusers' own
fast tests): the same code runs as for the real model, the images are noise. A
``reelforge_model.json`` beside ``model_index.json`` marks them, and outputs say so.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from diffusers import AutoencoderKL
from safetensors.torch import save_file
from transformers import (
    CLIPImageProcessor,
    CLIPTextConfig,
    CLIPTextModel,
    CLIPTextModelWithProjection,
    CLIPTokenizer,
    CLIPVisionConfig,
    CLIPVisionModelWithProjection,
)

MARKER = "reelforge_model.json"
FORMAT = 2  # bump when a builder changes: the cache folder name carries it, so old builds are not reused


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


def tiny_clip(seed: int, hidden: int = 32, with_projection: bool = False) -> tuple:
    """A CLIP tokenizer (character-level vocabulary, no merges: nothing to download) and text encoder."""
    alphabet = list(_bytes_to_unicode().values())
    vocab = {c: i for i, c in enumerate(alphabet)} | {c + "</w>": len(alphabet) + i for i, c in enumerate(alphabet)}
    vocab |= {"<|startoftext|>": len(vocab), "<|endoftext|>": len(vocab) + 1}
    tokenizer = CLIPTokenizer(vocab=vocab, merges=[], model_max_length=77)
    torch.manual_seed(seed)
    config = CLIPTextConfig(
        vocab_size=len(vocab),
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=2,
        num_attention_heads=2,
        max_position_embeddings=77,
        projection_dim=32,
        bos_token_id=vocab["<|startoftext|>"],
        eos_token_id=vocab["<|endoftext|>"],
        pad_token_id=vocab["<|endoftext|>"],
    )
    return tokenizer, (CLIPTextModelWithProjection if with_projection else CLIPTextModel)(config)


def tiny_vae(seed: int, levels: int = 3) -> Any:
    """An SD VAE; three levels give the real 8x latent downscale."""
    torch.manual_seed(seed)
    channels = (16, 32, 32)[:levels]
    return AutoencoderKL(
        block_out_channels=channels,
        in_channels=3,
        out_channels=3,
        latent_channels=4,
        norm_num_groups=8,
        down_block_types=("DownEncoderBlock2D",) * levels,
        up_block_types=("UpDecoderBlock2D",) * levels,
        sample_size=128,
    )


# Every family's denoiser at one toy size: what differs between the families is their block types.
TOY_UNET = {"sample_size": 32, "in_channels": 4, "out_channels": 4, "block_out_channels": (32, 64), "layers_per_block": 1}
TOY_ATTENTION = {"cross_attention_dim": 32, "attention_head_dim": 8, "norm_num_groups": 8}


def save_atomically(pipe: Any, path: Path, marker: dict, seed: int, extra: Callable[[Path], object] | None = None) -> Path:
    """Write beside the target and rename, so concurrent workers never load a half-written model."""
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{path.name}-", dir=path.parent))
    pipe.save_pretrained(staging)
    if extra is not None:
        extra(staging)
    (staging / MARKER).write_text(json.dumps({"random_weights": True, "seed": seed} | marker))
    try:
        staging.rename(path)
    except OSError:  # another worker finished first; theirs is identical
        shutil.rmtree(staging, ignore_errors=True)
    return path


CLIP_IMAGE_SIZE = 224  # SVD resizes its conditioning image to 224x224 before the CLIP image encoder, whatever its config


def tiny_image_encoder(seed: int) -> tuple:
    """CLIPVisionModelWithProjection + CLIPImageProcessor; 32-pixel patches keep 224x224 at 49 tokens."""
    torch.manual_seed(seed)
    config = CLIPVisionConfig(
        hidden_size=32,
        projection_dim=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        image_size=CLIP_IMAGE_SIZE,
        intermediate_size=37,
        patch_size=32,
    )
    processor = CLIPImageProcessor(crop_size=CLIP_IMAGE_SIZE, size=CLIP_IMAGE_SIZE)
    return CLIPVisionModelWithProjection(config), processor


def save_tiny_ip_adapter(unet: Any, folder: Path, seed: int) -> None:
    """An IP-Adapter (the original, 4 image tokens) for ``unet``, in the layout ``load_ip_adapter`` reads.

    ``ip-adapter.safetensors`` holds ``image_proj.*`` (image embedding -> 4 cross-attention tokens)
    and ``ip_adapter.{k}.to_k_ip/to_v_ip`` for every cross-attention layer, numbered 1, 3, 5, ... in
    the UNet's processor order, as diffusers expects; the image encoder sits in ``image_encoder/``.
    """

    encoder, _ = tiny_image_encoder(seed)
    folder.mkdir(parents=True)
    encoder.save_pretrained(folder / "image_encoder")
    generator = torch.Generator().manual_seed(seed)
    cross, embed, tokens = unet.config.cross_attention_dim, encoder.config.projection_dim, 4
    tensors = {
        "image_proj.proj.weight": torch.randn(tokens * cross, embed, generator=generator) * 0.05,
        "image_proj.proj.bias": torch.zeros(tokens * cross),
        "image_proj.norm.weight": torch.ones(cross),
        "image_proj.norm.bias": torch.zeros(cross),
    }
    key = 1
    for name in unet.attn_processors:
        if name.endswith("attn1.processor"):
            continue
        module = unet.get_submodule(name.removesuffix(".processor"))
        hidden = module.to_k.out_features
        tensors[f"ip_adapter.{key}.to_k_ip.weight"] = torch.randn(hidden, cross, generator=generator) * 0.05
        tensors[f"ip_adapter.{key}.to_v_ip.weight"] = torch.randn(hidden, cross, generator=generator) * 0.05
        key += 2
    save_file(tensors, str(folder / "ip-adapter.safetensors"))


def model_marker(path: str) -> dict:
    marker = Path(path) / MARKER
    return json.loads(marker.read_text()) if marker.exists() else {}
