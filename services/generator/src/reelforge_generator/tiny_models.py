"""Tiny random-weight models, written with save_pretrained and loaded back like any real model.

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

import torch

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
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

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


def tiny_vae(seed: int, levels: int = 3) -> object:
    """An SD VAE; three levels give the real 8x latent downscale."""
    from diffusers import AutoencoderKL

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


def build_tiny_sd(path: Path, seed: int = 0) -> Path:
    """Stable Diffusion 1.x/2.x: UNet, VAE, CLIP, DPM++, plus an IP-Adapter in ``ip_adapter/``."""
    from diffusers import DPMSolverMultistepScheduler, StableDiffusionPipeline, UNet2DConditionModel

    from reelforge_generator.tiny_video import save_tiny_ip_adapter

    tokenizer, text_encoder = tiny_clip(seed)
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        **TOY_UNET,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        **TOY_ATTENTION,
    )
    pipe = StableDiffusionPipeline(
        vae=tiny_vae(seed),
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=DPMSolverMultistepScheduler(steps_offset=1),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    marker = {
        "family": "sd",
        "default_width": 128,
        "default_steps": 20,
        "ip_adapter": {"subfolder": "ip_adapter", "weight_name": "ip-adapter.safetensors"},
    }
    return save_atomically(
        pipe, path, marker, seed, extra=lambda staging: save_tiny_ip_adapter(unet, staging / "ip_adapter", seed)
    )


def _tiny_sdxl_pipe(seed: int, scheduler: object) -> object:
    from diffusers import StableDiffusionXLPipeline, UNet2DConditionModel

    tokenizer, text_encoder = tiny_clip(seed)
    tokenizer_2, text_encoder_2 = tiny_clip(seed + 1, with_projection=True)
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        **TOY_UNET,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        attention_head_dim=(4, 8),
        use_linear_projection=True,
        addition_embed_type="text_time",
        addition_time_embed_dim=8,
        transformer_layers_per_block=(1, 2),
        # SDXL conditions on six size/crop numbers (8 dims each) plus the second encoder's pooled 32-dim projection.
        projection_class_embeddings_input_dim=6 * 8 + 32,
        cross_attention_dim=64,  # both encoders' hidden states, concatenated (32 + 32)
        norm_num_groups=8,
    )
    return StableDiffusionXLPipeline(
        vae=tiny_vae(seed),
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        text_encoder_2=text_encoder_2,
        tokenizer_2=tokenizer_2,
        unet=unet,
        scheduler=scheduler,
        force_zeros_for_empty_prompt=True,
    )


def build_tiny_sdxl(path: Path, seed: int = 0) -> Path:
    """SDXL: two text encoders (the second with a projection), size/crop conditioning, Euler."""
    from diffusers import EulerDiscreteScheduler

    scheduler = EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", steps_offset=1)
    return save_atomically(
        _tiny_sdxl_pipe(seed, scheduler), path, {"family": "sdxl", "default_width": 128, "default_steps": 20}, seed
    )


def build_tiny_sdxl_turbo(path: Path, seed: int = 0) -> Path:
    """SDXL-Turbo: the SDXL architecture, Euler ancestral with trailing spacing, few steps and no CFG."""
    from diffusers import EulerAncestralDiscreteScheduler

    scheduler = EulerAncestralDiscreteScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", timestep_spacing="trailing"
    )
    marker = {"family": "sdxl-turbo", "default_width": 128, "default_steps": 4, "default_guidance": 0.0}
    return save_atomically(_tiny_sdxl_pipe(seed, scheduler), path, marker, seed)


def save_atomically(pipe: object, path: Path, marker: dict, seed: int, extra: Callable[[Path], object] | None = None) -> Path:
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


def _builders() -> dict[str, Callable[[Path], Path]]:
    from reelforge_generator import tiny_video

    return {
        "reelforge/tiny-sd": build_tiny_sd,
        "reelforge/tiny-sdxl": build_tiny_sdxl,
        "reelforge/tiny-sdxl-turbo": build_tiny_sdxl_turbo,
        "reelforge/tiny-zeroscope": tiny_video.build_tiny_zeroscope,
        "reelforge/tiny-animatediff": tiny_video.build_tiny_animatediff,
        "reelforge/tiny-svd": tiny_video.build_tiny_svd,
    }


TINY_MODELS = (
    "reelforge/tiny-sd",
    "reelforge/tiny-sdxl",
    "reelforge/tiny-sdxl-turbo",
    "reelforge/tiny-zeroscope",
    "reelforge/tiny-animatediff",
    "reelforge/tiny-svd",
)


def resolve_model(name: str, cache_dir: Path) -> str:
    """A built-in tiny model's local path (built on first use), or ``name`` unchanged."""
    if name not in TINY_MODELS:
        return name
    path = cache_dir.expanduser() / f"{name.replace('/', '--')}-v{FORMAT}"
    if not (path / MARKER).exists():
        _builders()[name](path)
    return str(path)


def model_marker(path: str) -> dict:
    marker = Path(path) / MARKER
    return json.loads(marker.read_text()) if marker.exists() else {}
