"""Tiny Wan 2.x (text-to-video and image-to-video): a flow-matching video transformer, the Wan VAE, a UMT5 text encoder.

The tokenizer is built here with the ``tokenizers`` library (nothing to download): one token per
character, so two prompts that differ anywhere get different inputs. Sizes after diffusers' own
Wan tests.
"""

from __future__ import annotations

from pathlib import Path

import torch
from diffusers import AutoencoderKLWan, UniPCMultistepScheduler, WanImageToVideoPipeline, WanPipeline, WanTransformer3DModel
from tokenizers import Tokenizer, models, pre_tokenizers, processors
from transformers import (
    CLIPImageProcessor,
    CLIPVisionConfig,
    CLIPVisionModel,
    PreTrainedTokenizerFast,
    UMT5Config,
    UMT5EncoderModel,
)

from reelforge_tiny.common import save_atomically

MAX_SEQUENCE_LENGTH = 512  # Wan 2.x's UMT5 prompt length


def tiny_t5_tokenizer(max_length: int = MAX_SEQUENCE_LENGTH) -> PreTrainedTokenizerFast:
    """A T5-style tokenizer (pad 0, end-of-sequence 1) over printable ASCII, one token per character."""
    vocab = {"<pad>": 0, "</s>": 1, "<unk>": 2} | {chr(c): 3 + i for i, c in enumerate(range(33, 127))}
    tokenizer = Tokenizer(models.WordPiece(vocab, unk_token="<unk>", max_input_chars_per_word=10_000))  # noqa: S106 - a token
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Whitespace(), pre_tokenizers.Split("", "isolated")])
    tokenizer.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    specials = {"pad_token": "<pad>", "eos_token": "</s>", "unk_token": "<unk>"}  # tokens, not secrets
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, model_max_length=max_length, **specials)


def _text_encoder(tokenizer: PreTrainedTokenizerFast, seed: int) -> UMT5EncoderModel:
    torch.manual_seed(seed)
    config = UMT5Config(
        vocab_size=len(tokenizer),
        d_model=32,
        d_kv=8,
        d_ff=32,
        num_layers=2,
        num_heads=4,
        relative_attention_num_buckets=8,
        pad_token_id=0,
        eos_token_id=1,
        decoder_start_token_id=0,
    )
    return UMT5EncoderModel(config)


def _vae(seed: int) -> AutoencoderKLWan:
    torch.manual_seed(seed)
    return AutoencoderKLWan(
        base_dim=3, z_dim=16, dim_mult=[1, 1, 1, 1], num_res_blocks=1, temperal_downsample=[False, True, True]
    )


def _transformer(seed: int, **extra: object) -> WanTransformer3DModel:
    torch.manual_seed(seed)
    return WanTransformer3DModel(
        **{
            "patch_size": (1, 2, 2),
            "num_attention_heads": 2,
            "attention_head_dim": 12,
            "in_channels": 16,
            "out_channels": 16,
            "text_dim": 32,
            "freq_dim": 256,
            "ffn_dim": 32,
            "num_layers": 2,
            "cross_attn_norm": True,
            "qk_norm": "rms_norm_across_heads",
            "rope_max_seq_len": 32,
            **extra,
        }
    )


def _scheduler() -> UniPCMultistepScheduler:
    return UniPCMultistepScheduler(flow_shift=3.0, prediction_type="flow_prediction", use_flow_sigmas=True)


DEFAULTS = {"family": "wan", "default_width": 128, "default_steps": 4, "default_guidance": 5.0, "clip_frames": 5}


def build_tiny_wan(path: Path, seed: int = 0) -> Path:
    """Wan 2.x text-to-video: WanTransformer3DModel, AutoencoderKLWan, UMT5, UniPC with flow sigmas."""
    tokenizer = tiny_t5_tokenizer()
    pipe = WanPipeline(
        tokenizer=tokenizer,
        text_encoder=_text_encoder(tokenizer, seed),
        vae=_vae(seed),
        transformer=_transformer(seed),
        scheduler=_scheduler(),
    )
    return save_atomically(pipe, path, DEFAULTS | {"max_sequence_length": MAX_SEQUENCE_LENGTH}, seed)


def build_tiny_wan_i2v(path: Path, seed: int = 0) -> Path:
    """Wan 2.1 image-to-video: the text-to-video parts, a CLIP image encoder, and a transformer that also reads
    the conditioning image's latents (16 channels) and mask (4) beside the noise (16)."""
    tokenizer = tiny_t5_tokenizer()
    torch.manual_seed(seed)
    config = CLIPVisionConfig(
        hidden_size=16, intermediate_size=32, num_hidden_layers=2, num_attention_heads=2, image_size=32, patch_size=8
    )
    image_encoder = CLIPVisionModel(config)
    pipe = WanImageToVideoPipeline(
        tokenizer=tokenizer,
        text_encoder=_text_encoder(tokenizer, seed),
        vae=_vae(seed),
        transformer=_transformer(seed, in_channels=36, image_dim=config.hidden_size),
        scheduler=_scheduler(),
        image_encoder=image_encoder,
        image_processor=CLIPImageProcessor(crop_size=config.image_size, size=config.image_size),
    )
    marker = DEFAULTS | {"max_sequence_length": MAX_SEQUENCE_LENGTH, "keyframe_model": "reelforge/tiny-sd"}
    return save_atomically(pipe, path, marker, seed)
