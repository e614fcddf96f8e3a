"""Stable Diffusion 2.1 with random weights, built in memory: the benchmark's model when no weights are present.

The arithmetic, and so the time, is that of the real model (design brief, "Models and weights").
The UNet and VAE configs are copied from ``bench/sd21_anchor.py`` of the Reelforge design notes
(which took them from stabilityai/stable-diffusion-2-1's ``config.json`` files). The text encoder
is a one-layer CLIP of the real width (1024): prompt encoding runs once per segment and is not
what is timed; the tokenizer is the tiny models' character-level one.
"""

from __future__ import annotations

import torch
from diffusers import AutoencoderKL, DPMSolverMultistepScheduler, StableDiffusionPipeline, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel

from reelforge_tiny.common import tiny_clip

SD21_UNET = dict(
    act_fn="silu",
    attention_head_dim=[5, 10, 20, 20],
    block_out_channels=[320, 640, 1280, 1280],
    center_input_sample=False,
    cross_attention_dim=1024,
    down_block_types=["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
    downsample_padding=1,
    dual_cross_attention=False,
    flip_sin_to_cos=True,
    freq_shift=0,
    in_channels=4,
    layers_per_block=2,
    mid_block_scale_factor=1,
    norm_eps=1e-5,
    norm_num_groups=32,
    only_cross_attention=False,
    out_channels=4,
    sample_size=96,
    up_block_types=["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
    upcast_attention=True,
    use_linear_projection=True,
)
SD21_VAE = dict(
    act_fn="silu",
    block_out_channels=[128, 256, 512, 512],
    down_block_types=["DownEncoderBlock2D"] * 4,
    in_channels=3,
    latent_channels=4,
    layers_per_block=2,
    norm_num_groups=32,
    out_channels=3,
    sample_size=768,
    up_block_types=["UpDecoderBlock2D"] * 4,
)
SD21_SCHEDULER = dict(  # DPM++ 2M as the specification sets it, on SD 2.1's v-prediction noise schedule
    beta_start=0.00085,
    beta_end=0.012,
    beta_schedule="scaled_linear",
    prediction_type="v_prediction",
    num_train_timesteps=1000,
    steps_offset=1,
)
MARKER = {"family": "sd21-random", "random_weights": True, "default_width": 1024, "default_steps": 30}


def build_sd21(seed: int = 0) -> object:
    """A StableDiffusionPipeline of SD 2.1's architecture, random weights, fp32 on the host."""
    tokenizer, _ = tiny_clip(seed)
    torch.manual_seed(seed)
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=len(tokenizer),
            hidden_size=1024,
            intermediate_size=4096,
            num_hidden_layers=1,
            num_attention_heads=16,
            max_position_embeddings=77,
            projection_dim=1024,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
    )
    unet = UNet2DConditionModel(**SD21_UNET)
    vae = AutoencoderKL(**SD21_VAE)
    return StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=DPMSolverMultistepScheduler(**SD21_SCHEDULER),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
