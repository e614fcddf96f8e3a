"""Tiny text-to-image models: Stable Diffusion 1.x/2.x, SDXL, SDXL-Turbo."""

from __future__ import annotations

from pathlib import Path

import torch
from diffusers import (
    DPMSolverMultistepScheduler,
    EulerAncestralDiscreteScheduler,
    EulerDiscreteScheduler,
    StableDiffusionPipeline,
    StableDiffusionXLPipeline,
    UNet2DConditionModel,
)

from reelforge_tiny.common import TOY_ATTENTION, TOY_UNET, save_atomically, save_tiny_ip_adapter, tiny_clip, tiny_vae


def build_tiny_sd(path: Path, seed: int = 0) -> Path:
    """Stable Diffusion 1.x/2.x: UNet, VAE, CLIP, DPM++, plus an IP-Adapter in ``ip_adapter/``."""
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
    scheduler = EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", steps_offset=1)
    return save_atomically(
        _tiny_sdxl_pipe(seed, scheduler), path, {"family": "sdxl", "default_width": 128, "default_steps": 20}, seed
    )


def build_tiny_sdxl_turbo(path: Path, seed: int = 0) -> Path:
    """SDXL-Turbo: the SDXL architecture, Euler ancestral with trailing spacing, few steps and no CFG."""
    scheduler = EulerAncestralDiscreteScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", timestep_spacing="trailing"
    )
    marker = {"family": "sdxl-turbo", "default_width": 128, "default_steps": 4, "default_guidance": 0.0}
    return save_atomically(_tiny_sdxl_pipe(seed, scheduler), path, marker, seed)
