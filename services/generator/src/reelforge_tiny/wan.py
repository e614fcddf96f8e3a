"""Tiny Wan 2.x (text-to-video): a flow-matching video transformer, the Wan VAE and a UMT5 text encoder.

The tokenizer is built here with the ``tokenizers`` library (nothing to download): one token per
character, so two prompts that differ anywhere get different inputs. Sizes after diffusers' own
Wan tests.
"""

from __future__ import annotations

from pathlib import Path

import torch
from diffusers import AutoencoderKLWan, UniPCMultistepScheduler, WanPipeline, WanTransformer3DModel
from tokenizers import Tokenizer, models, pre_tokenizers, processors
from transformers import PreTrainedTokenizerFast, UMT5Config, UMT5EncoderModel

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


def build_tiny_wan(path: Path, seed: int = 0) -> Path:
    """Wan 2.x text-to-video: WanTransformer3DModel, AutoencoderKLWan, UMT5, UniPC with flow sigmas."""
    tokenizer = tiny_t5_tokenizer()
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
    text_encoder = UMT5EncoderModel(config)
    torch.manual_seed(seed)
    vae = AutoencoderKLWan(base_dim=3, z_dim=16, dim_mult=[1, 1, 1, 1], num_res_blocks=1, temperal_downsample=[False, True, True])
    torch.manual_seed(seed)
    transformer = WanTransformer3DModel(
        patch_size=(1, 2, 2),
        num_attention_heads=2,
        attention_head_dim=12,
        in_channels=16,
        out_channels=16,
        text_dim=32,
        freq_dim=256,
        ffn_dim=32,
        num_layers=2,
        cross_attn_norm=True,
        qk_norm="rms_norm_across_heads",
        rope_max_seq_len=32,
    )
    scheduler = UniPCMultistepScheduler(flow_shift=3.0, prediction_type="flow_prediction", use_flow_sigmas=True)
    pipe = WanPipeline(tokenizer=tokenizer, text_encoder=text_encoder, vae=vae, transformer=transformer, scheduler=scheduler)
    marker = {
        "family": "wan",
        "default_width": 128,
        "default_steps": 4,
        "default_guidance": 5.0,
        "clip_frames": 5,
        "max_sequence_length": MAX_SEQUENCE_LENGTH,
    }
    return save_atomically(pipe, path, marker, seed)
