"""Today's video models at their published architectures with random weights, built in memory (no download).

A random-weight model of the real architecture costs what the real model costs (design brief, "Models
and weights"), so its timings are the real model's; its pictures are noise, so image comparisons
between speed levers measure numerical drift, not visual quality.

Each family gives the denoiser (the transformer), the VAE, the text encoder's architecture (timed on its
own: the denoiser reads a stand-in of the encoder's output of the real shape), the model's native clip,
and the transformer's published parameter count, which a test checks against the configuration built on
PyTorch's meta device. ``scale="tiny"`` shrinks widths and depths, keeping every code path, so the
benchmark's CPU path runs in the tests.

Sources of the configurations: Wan2.2-TI2V-5B from the Wan team's ``wan/configs/wan_ti2v_5B.py``
(dim 3072, ffn 14336, 24 heads, 30 layers, VAE stride 4x16x16, 48 latent channels, UMT5-XXL text);
LTX-2 from diffusers' ``LTX2VideoTransformer3DModel`` / ``AutoencoderKLLTX2Video`` defaults, which are the
released 19B model's (48 layers, 32 heads x 128 video and 32 x 64 audio, Gemma 3 12B text);
HunyuanVideo 1.5 720p text-to-video from diffusers' ``scripts/convert_hunyuan_video1_5_to_diffusers.py``
(54 layers, 16 heads x 128, Qwen2.5-VL-7B and ByT5 text, SigLIP image embeddings).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import torch

from reelforge_tiny.ltx2 import ONE_BLOCK_VAE

Scale = Literal["full", "tiny"]


@dataclass(frozen=True, slots=True)
class Clip:
    """A model's native clip: what one segment of that model is at 720p."""

    width: int
    height: int
    frames: int
    fps: int
    steps: int
    guidance: float

    @property
    def seconds(self) -> float:
        return self.frames / self.fps


@dataclass(frozen=True, slots=True)
class VideoFamily:
    name: str
    title: str
    clip: Clip
    spatial: int  # VAE downscale in height and width
    temporal: int  # VAE downscale in time (first frame kept: latent frames = (frames - 1) // temporal + 1)
    published_params: float  # the transformer's parameter count as published
    transformer: Callable[[Scale], torch.nn.Module]
    vae: Callable[[Scale], torch.nn.Module]
    text_encoder: Callable[[Scale], tuple[torch.nn.Module, int]]  # the encoder and its prompt length in tokens
    inputs: Callable[[torch.nn.Module, Clip, int, torch.device, torch.dtype], dict[str, Any]]  # one forward's kwargs
    latents_of: Callable[[torch.Tensor, Clip, torch.nn.Module], torch.Tensor] = field(default=lambda out, clip, t: out)

    def latent_shape(self, clip: Clip, channels: int) -> tuple[int, int, int, int]:
        return (channels, (clip.frames - 1) // self.temporal + 1, clip.height // self.spatial, clip.width // self.spatial)


def _pick(scale: Scale, full: dict, tiny: dict) -> dict:
    return full if scale == "full" else full | tiny


# --- Wan 2.2 TI2V 5B -------------------------------------------------------------------------------------------------

WAN22_TRANSFORMER = dict(
    patch_size=(1, 2, 2),
    num_attention_heads=24,
    attention_head_dim=128,
    in_channels=48,
    out_channels=48,
    text_dim=4096,
    freq_dim=256,
    ffn_dim=14336,
    num_layers=30,
    cross_attn_norm=True,
    qk_norm="rms_norm_across_heads",
    eps=1e-6,
    rope_max_seq_len=1024,
)
WAN22_VAE = dict(
    base_dim=160,
    decoder_base_dim=256,
    z_dim=48,
    dim_mult=[1, 2, 4, 4],
    num_res_blocks=2,
    temperal_downsample=[False, True, True],
    is_residual=True,
    in_channels=12,
    out_channels=12,
    patch_size=2,
    scale_factor_temporal=4,
    scale_factor_spatial=16,
    latents_mean=[0.0] * 48,
    latents_std=[1.0] * 48,
)
UMT5_XXL = dict(d_model=4096, d_kv=64, d_ff=10240, num_layers=24, num_heads=64, vocab_size=256384)


def _wan_transformer(scale: Scale) -> torch.nn.Module:
    from diffusers import WanTransformer3DModel

    tiny = dict(num_attention_heads=2, attention_head_dim=16, text_dim=64, ffn_dim=64, num_layers=2, rope_max_seq_len=64)
    return WanTransformer3DModel(**_pick(scale, WAN22_TRANSFORMER, tiny))


def _wan_vae(scale: Scale) -> torch.nn.Module:
    from diffusers import AutoencoderKLWan

    return AutoencoderKLWan(**_pick(scale, WAN22_VAE, dict(base_dim=8, decoder_base_dim=8, num_res_blocks=1)))


def _umt5(scale: Scale) -> tuple[torch.nn.Module, int]:
    from transformers import UMT5Config, UMT5EncoderModel

    tiny = dict(d_model=64, d_kv=16, d_ff=64, num_layers=1, num_heads=4, vocab_size=512)
    config = _pick(scale, UMT5_XXL, tiny)
    return UMT5EncoderModel(UMT5Config(**config, relative_attention_num_buckets=32, pad_token_id=0, eos_token_id=1)), 512


def _wan_inputs(model: torch.nn.Module, clip: Clip, batch: int, device: torch.device, dtype: torch.dtype) -> dict[str, Any]:
    shape = WAN22.latent_shape(clip, model.config.in_channels)
    return {
        "hidden_states": torch.randn(batch, *shape, device=device, dtype=dtype),
        "timestep": torch.full((batch,), 500.0, device=device),
        "encoder_hidden_states": torch.randn(batch, 512, model.config.text_dim, device=device, dtype=dtype),
        "return_dict": False,
    }


WAN22 = VideoFamily(
    name="wan2.2-ti2v-5b",
    title="Wan2.2-TI2V-5B",
    clip=Clip(width=1280, height=704, frames=121, fps=24, steps=50, guidance=5.0),
    spatial=16,
    temporal=4,
    published_params=5.0e9,
    transformer=_wan_transformer,
    vae=_wan_vae,
    text_encoder=_umt5,
    inputs=_wan_inputs,
)

# --- LTX-2 (19B, video and audio) ------------------------------------------------------------------------------------

GEMMA3_12B = dict(
    hidden_size=3840,
    intermediate_size=15360,
    num_hidden_layers=48,
    num_attention_heads=16,
    num_key_value_heads=8,
    head_dim=256,
    vocab_size=262208,
)
LTX2_AUDIO_TOKENS_PER_SECOND = 25  # 16 kHz, hop 160, audio VAE downscale 4


def _ltx2_transformer(scale: Scale) -> torch.nn.Module:
    from diffusers import LTX2VideoTransformer3DModel

    tiny = dict(
        in_channels=16,
        out_channels=16,
        num_attention_heads=2,
        attention_head_dim=16,
        cross_attention_dim=32,
        caption_channels=32,
        audio_in_channels=8,
        audio_out_channels=8,
        audio_num_attention_heads=2,
        audio_attention_head_dim=8,
        audio_cross_attention_dim=16,
        num_layers=2,
    )
    return LTX2VideoTransformer3DModel(**({} if scale == "full" else tiny))


def _ltx2_vae(scale: Scale) -> torch.nn.Module:
    from diffusers import AutoencoderKLLTX2Video

    tiny = ONE_BLOCK_VAE | {"latent_channels": 16}
    return AutoencoderKLLTX2Video(**({} if scale == "full" else tiny))


def _gemma3(scale: Scale) -> tuple[torch.nn.Module, int]:
    from transformers import Gemma3TextConfig, Gemma3TextModel

    tiny = dict(
        hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1, head_dim=16
    )
    config = _pick(scale, GEMMA3_12B, tiny | {"vocab_size": 512})
    return Gemma3TextModel(Gemma3TextConfig(**config)), 1024


def _ltx2_inputs(model: torch.nn.Module, clip: Clip, batch: int, device: torch.device, dtype: torch.dtype) -> dict[str, Any]:
    config = model.config
    channels, frames, height, width = LTX2.latent_shape(clip, config.in_channels)
    audio_frames = round(clip.seconds * LTX2_AUDIO_TOKENS_PER_SECOND)
    return {
        "hidden_states": torch.randn(batch, frames * height * width, channels, device=device, dtype=dtype),
        "audio_hidden_states": torch.randn(batch, audio_frames, config.audio_in_channels, device=device, dtype=dtype),
        "encoder_hidden_states": torch.randn(batch, 1024, config.caption_channels, device=device, dtype=dtype),
        "audio_encoder_hidden_states": torch.randn(batch, 1024, config.caption_channels, device=device, dtype=dtype),
        "timestep": torch.full((batch,), 500.0, device=device),
        "num_frames": frames,
        "height": height,
        "width": width,
        "fps": float(clip.fps),
        "audio_num_frames": audio_frames,
        "return_dict": False,
    }


def _ltx2_latents(out: torch.Tensor, clip: Clip, model: torch.nn.Module) -> torch.Tensor:
    """LTX-2 works on packed tokens (frames x height x width, channels): back to the VAE's 5-D latents."""
    channels, frames, height, width = LTX2.latent_shape(clip, model.config.out_channels)
    return out.reshape(out.shape[0], frames, height, width, channels).permute(0, 4, 1, 2, 3)


LTX2 = VideoFamily(
    name="ltx-2",
    title="LTX-2 (19B, video + audio)",
    clip=Clip(width=1280, height=704, frames=121, fps=24, steps=40, guidance=4.0),
    spatial=32,
    temporal=8,
    published_params=19.0e9,
    transformer=_ltx2_transformer,
    vae=_ltx2_vae,
    text_encoder=_gemma3,
    inputs=_ltx2_inputs,
    latents_of=_ltx2_latents,
)

# --- HunyuanVideo 1.5, 720p text-to-video ----------------------------------------------------------------------------

HUNYUAN15_720P = dict(
    in_channels=65,
    out_channels=32,
    num_attention_heads=16,
    attention_head_dim=128,
    num_layers=54,
    num_refiner_layers=2,
    mlp_ratio=4.0,
    patch_size=1,
    patch_size_t=1,
    qk_norm="rms_norm",
    text_embed_dim=3584,
    text_embed_2_dim=1472,
    image_embed_dim=1152,
    rope_theta=256.0,
    rope_axes_dim=(16, 56, 56),
    use_meanflow=False,
    target_size=960,
    task_type="t2v",
)
QWEN25_7B = dict(hidden_size=3584, intermediate_size=18944, num_hidden_layers=28, num_attention_heads=28, num_key_value_heads=4)


def _hunyuan_transformer(scale: Scale) -> torch.nn.Module:
    from diffusers import HunyuanVideo15Transformer3DModel

    tiny = dict(
        in_channels=9,
        out_channels=4,
        num_attention_heads=2,
        attention_head_dim=16,
        num_layers=2,
        num_refiner_layers=1,
        text_embed_dim=32,
        text_embed_2_dim=16,
        image_embed_dim=16,
        rope_axes_dim=(4, 6, 6),
    )
    return HunyuanVideo15Transformer3DModel(**_pick(scale, HUNYUAN15_720P, tiny))


def _hunyuan_vae(scale: Scale) -> torch.nn.Module:
    from diffusers import AutoencoderKLHunyuanVideo15

    tiny = dict(latent_channels=4, block_out_channels=(8, 8, 8, 8, 8), layers_per_block=1)
    return AutoencoderKLHunyuanVideo15(**({} if scale == "full" else tiny))


def _qwen25(scale: Scale) -> tuple[torch.nn.Module, int]:
    from transformers import Qwen2Config, Qwen2Model

    tiny = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1)
    config = _pick(scale, QWEN25_7B | {"vocab_size": 152064}, tiny | {"vocab_size": 512})
    return Qwen2Model(Qwen2Config(**config)), 1000


def _hunyuan_inputs(model: torch.nn.Module, clip: Clip, batch: int, device: torch.device, dtype: torch.dtype) -> dict[str, Any]:
    config = model.config
    shape = HUNYUAN15.latent_shape(clip, config.in_channels)
    text, byt5, image = 1000, 256, 729  # Qwen prompt window, ByT5 glyph tokens, SigLIP patches (zeros for text-to-video)
    return {
        "hidden_states": torch.randn(batch, *shape, device=device, dtype=dtype),
        "timestep": torch.full((batch,), 500.0, device=device),
        "encoder_hidden_states": torch.randn(batch, text, config.text_embed_dim, device=device, dtype=dtype),
        "encoder_attention_mask": torch.ones(batch, text, device=device, dtype=torch.bool),
        "encoder_hidden_states_2": torch.randn(batch, byt5, config.text_embed_2_dim, device=device, dtype=dtype),
        "encoder_attention_mask_2": torch.ones(batch, byt5, device=device, dtype=torch.bool),
        "image_embeds": torch.zeros(batch, image, config.image_embed_dim, device=device, dtype=dtype),
        "return_dict": False,
    }


HUNYUAN15 = VideoFamily(
    name="hunyuanvideo-1.5",
    title="HunyuanVideo 1.5 (720p text-to-video)",
    clip=Clip(width=1280, height=720, frames=121, fps=24, steps=50, guidance=6.0),
    spatial=16,
    temporal=4,
    published_params=8.3e9,
    transformer=_hunyuan_transformer,
    vae=_hunyuan_vae,
    text_encoder=_qwen25,
    inputs=_hunyuan_inputs,
)

FAMILIES: dict[str, VideoFamily] = {f.name: f for f in (WAN22, LTX2, HUNYUAN15)}
TINY_CLIP = Clip(width=64, height=64, frames=5, fps=8, steps=3, guidance=5.0)


def parameters_on_meta(build: Callable[[Scale], torch.nn.Module | tuple[torch.nn.Module, int]]) -> int:
    """Parameters of the full-size module, counted without allocating it (PyTorch's meta device)."""
    with torch.device("meta"):
        module = build("full")
    if isinstance(module, tuple):
        module = module[0]
    return sum(p.numel() for p in module.parameters())
