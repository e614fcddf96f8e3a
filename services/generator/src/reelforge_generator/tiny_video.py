"""Tiny random-weight video families and image encoders: text-to-video, AnimateDiff, SVD, IP-Adapter.

The real diffusers classes at toy width (sizes after diffusers' own fast tests), saved with
save_pretrained beside a ``reelforge_model.json`` marker; see :mod:`reelforge_generator.tiny_models`.
"""

from __future__ import annotations

from pathlib import Path

import torch

from reelforge_generator.tiny_models import TOY_ATTENTION, TOY_UNET, save_atomically, tiny_clip, tiny_vae

CLIP_IMAGE_SIZE = 224  # SVD resizes its conditioning image to 224x224 before the CLIP image encoder, whatever its config


def tiny_image_encoder(seed: int) -> tuple:
    """CLIPVisionModelWithProjection + CLIPImageProcessor; 32-pixel patches keep 224x224 at 49 tokens."""
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModelWithProjection

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


def save_tiny_ip_adapter(unet: object, folder: Path, seed: int) -> None:
    """An IP-Adapter (the original, 4 image tokens) for ``unet``, in the layout ``load_ip_adapter`` reads.

    ``ip-adapter.safetensors`` holds ``image_proj.*`` (image embedding -> 4 cross-attention tokens)
    and ``ip_adapter.{k}.to_k_ip/to_v_ip`` for every cross-attention layer, numbered 1, 3, 5, ... in
    the UNet's processor order, as diffusers expects; the image encoder sits in ``image_encoder/``.
    """
    from safetensors.torch import save_file

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


def build_tiny_zeroscope(path: Path, seed: int = 0) -> Path:
    """Text-to-video (ModelScope / zeroscope): UNet3DConditionModel, one denoising per clip of frames."""
    from diffusers import DPMSolverMultistepScheduler, TextToVideoSDPipeline, UNet3DConditionModel

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
    from diffusers import AnimateDiffPipeline, DDIMScheduler, MotionAdapter, UNet2DConditionModel

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
    from diffusers import (
        AutoencoderKLTemporalDecoder,
        EulerDiscreteScheduler,
        StableVideoDiffusionPipeline,
        UNetSpatioTemporalConditionModel,
    )

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
