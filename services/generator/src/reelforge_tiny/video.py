"""Tiny random-weight video families: text-to-video (zeroscope), AnimateDiff, SVD.

The real diffusers classes at toy width (sizes after diffusers' own fast tests), saved with
save_pretrained beside a ``reelforge_model.json`` marker; see :mod:`reelforge_tiny.common`.
"""

from __future__ import annotations

from pathlib import Path

import torch
from diffusers import (
    AnimateDiffPipeline,
    AutoencoderKLTemporalDecoder,
    DDIMScheduler,
    DPMSolverMultistepScheduler,
    EulerDiscreteScheduler,
    MotionAdapter,
    StableVideoDiffusionPipeline,
    TextToVideoSDPipeline,
    UNet2DConditionModel,
    UNet3DConditionModel,
    UNetSpatioTemporalConditionModel,
)

from reelforge_tiny.common import TOY_ATTENTION, TOY_UNET, save_atomically, tiny_clip, tiny_image_encoder, tiny_vae


def build_tiny_zeroscope(path: Path, seed: int = 0) -> Path:
    """Text-to-video (ModelScope / zeroscope): UNet3DConditionModel, one denoising per clip of frames."""
    tokenizer, text_encoder = tiny_clip(seed)
    torch.manual_seed(seed)
    unet = UNet3DConditionModel(
        **TOY_UNET,
        down_block_types=("CrossAttnDownBlock3D", "DownBlock3D"),
        up_block_types=("UpBlock3D", "CrossAttnUpBlock3D"),
        **TOY_ATTENTION,
    )
    pipe = TextToVideoSDPipeline(
        vae=tiny_vae(seed),
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=DPMSolverMultistepScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012),
    )
    marker = {"family": "zeroscope", "default_width": 128, "default_steps": 10, "default_guidance": 9.0, "clip_frames": 8}
    return save_atomically(pipe, path, marker, seed)


def build_tiny_animatediff(path: Path, seed: int = 0) -> Path:
    """AnimateDiff: an SD UNet plus a MotionAdapter (temporal attention), one denoising per clip."""
    tokenizer, text_encoder = tiny_clip(seed)
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        **TOY_UNET,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        **TOY_ATTENTION,
    )
    torch.manual_seed(seed)
    adapter = MotionAdapter(
        block_out_channels=(32, 64),
        motion_layers_per_block=1,
        motion_norm_num_groups=8,
        motion_num_attention_heads=2,
        motion_max_seq_length=32,
    )
    pipe = AnimateDiffPipeline(
        vae=tiny_vae(seed),
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        motion_adapter=adapter,
        scheduler=DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="linear", clip_sample=False, steps_offset=1),
    )
    marker = {"family": "animatediff", "default_width": 128, "default_steps": 10, "clip_frames": 8}
    return save_atomically(pipe, path, marker, seed)


def build_tiny_svd(path: Path, seed: int = 0) -> Path:
    """Stable Video Diffusion: image-to-video from one conditioning image (no text encoder)."""
    torch.manual_seed(seed)
    unet = UNetSpatioTemporalConditionModel(
        **{**TOY_UNET, "in_channels": 8},  # SVD denoises the noisy latent beside the conditioning image's latent
        down_block_types=("CrossAttnDownBlockSpatioTemporal", "DownBlockSpatioTemporal"),
        up_block_types=("UpBlockSpatioTemporal", "CrossAttnUpBlockSpatioTemporal"),
        cross_attention_dim=32,
        num_attention_heads=4,
        projection_class_embeddings_input_dim=3 * 32,  # fps, motion bucket and noise level, 32 dims each
        addition_time_embed_dim=32,
    )
    torch.manual_seed(seed)
    vae = AutoencoderKLTemporalDecoder(  # group norms of 32: channels are multiples of 32; three levels give 8x
        block_out_channels=(32, 32, 32),
        in_channels=3,
        out_channels=3,
        latent_channels=4,
        down_block_types=("DownEncoderBlock2D",) * 3,
    )
    encoder, processor = tiny_image_encoder(seed)
    scheduler = EulerDiscreteScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        interpolation_type="linear",
        prediction_type="v_prediction",
        sigma_max=700.0,
        sigma_min=0.002,
        steps_offset=1,
        timestep_spacing="leading",
        timestep_type="continuous",
        use_karras_sigmas=True,
    )
    pipe = StableVideoDiffusionPipeline(
        vae=vae, image_encoder=encoder, unet=unet, scheduler=scheduler, feature_extractor=processor
    )
    marker = {"family": "svd", "default_width": 128, "default_steps": 10, "clip_frames": 8, "keyframe_model": "reelforge/tiny-sd"}
    return save_atomically(pipe, path, marker, seed)
