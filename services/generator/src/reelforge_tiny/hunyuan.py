"""Tiny HunyuanVideo 1.5 (text-to-video and image-to-video): a flow-matching video transformer, its VAE, and two text encoders.

The prompt is read by a Qwen2.5-VL text model through a chat template (a system message, then the
prompt as the user's turn); quoted text in the prompt is also read byte by byte by a ByT5 encoder,
for lettering. Both tokenizers are built here, nothing is downloaded: the Qwen one is one token
per character (``tokenizers``) with Qwen's chat markers and template, ByT5's needs no vocabulary
file. Sizes after diffusers' own HunyuanVideo 1.5 tests.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from diffusers import (
    AutoencoderKLHunyuanVideo15,
    FlowMatchEulerDiscreteScheduler,
    HunyuanVideo15ImageToVideoPipeline,
    HunyuanVideo15Pipeline,
    HunyuanVideo15Transformer3DModel,
)
from diffusers.guiders import ClassifierFreeGuidance
from diffusers.pipelines.hunyuan_video1_5.pipeline_hunyuan_video1_5 import format_text_input
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import (
    ByT5Tokenizer,
    PreTrainedTokenizerFast,
    Qwen2_5_VLTextConfig,
    Qwen2_5_VLTextModel,
    SiglipImageProcessor,
    SiglipVisionConfig,
    SiglipVisionModel,
    T5Config,
    T5EncoderModel,
)

from reelforge_shared.text_encoders import FAMILIES
from reelforge_tiny.common import save_atomically

# Qwen2's chat template, as HunyuanVideo15Pipeline applies it (system message, user turn, the assistant's opening).
CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
MARKERS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
TEMPLATE_TOKENS = next(f.text_encoder.special_tokens for f in FAMILIES if "HunyuanVideo15Pipeline" in f.pipelines)


def tiny_qwen_tokenizer() -> PreTrainedTokenizerFast:
    """A Qwen-style tokenizer (pad ``<|endoftext|>``, chat markers) over printable ASCII, one token per character."""
    vocab = {"<unk>": 0} | {chr(c): 1 + i for i, c in enumerate(range(33, 127))}
    tokenizer = Tokenizer(models.WordPiece(vocab, unk_token="<unk>", max_input_chars_per_word=10_000))  # noqa: S106 - a token
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Whitespace(), pre_tokenizers.Split("", "isolated")])
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, unk_token="<unk>", pad_token="<|endoftext|>")  # noqa: S106
    fast.add_special_tokens({"additional_special_tokens": MARKERS[1:]})
    fast.chat_template = CHAT_TEMPLATE
    return fast


def prompt_budget(pipe: Any) -> int:
    """Prompt tokens the pipeline reads whole: its window after the cropped start, less the template around the prompt."""
    template = format_text_input(["x"], pipe.system_message)
    ids = pipe.tokenizer.apply_chat_template(template, add_generation_prompt=True, tokenize=True, return_dict=True)
    return pipe.tokenizer_max_length + pipe.prompt_template_encode_start_idx - (len(ids["input_ids"][0]) - 1)


def _parts(seed: int, task_type: str, target_size: int) -> dict[str, Any]:
    """What both HunyuanVideo 1.5 pipelines are made of: the transformer, its VAE (4x space, 2x time), Qwen2.5-VL, ByT5."""
    torch.manual_seed(seed)
    transformer = HunyuanVideo15Transformer3DModel(
        in_channels=9,  # the noisy latent (4), a conditioning latent (4) and its mask (1), zeros for text-to-video
        out_channels=4,
        num_attention_heads=2,
        attention_head_dim=8,
        num_layers=1,
        num_refiner_layers=1,
        mlp_ratio=2.0,
        patch_size=1,
        patch_size_t=1,
        text_embed_dim=16,
        text_embed_2_dim=32,
        image_embed_dim=12,
        rope_axes_dim=(2, 2, 4),
        target_size=target_size,  # image-to-video renders at this area (the image's aspect); text-to-video by default
        task_type=task_type,
    )
    torch.manual_seed(seed)
    vae = AutoencoderKLHunyuanVideo15(
        in_channels=3,
        out_channels=3,
        latent_channels=4,
        block_out_channels=(16, 16),
        layers_per_block=1,
        spatial_compression_ratio=4,
        temporal_compression_ratio=2,
        downsample_match_channel=False,
        upsample_match_channel=False,
    )
    tokenizer = tiny_qwen_tokenizer()
    torch.manual_seed(seed)
    qwen = Qwen2_5_VLTextConfig(
        vocab_size=len(tokenizer),
        hidden_size=16,
        intermediate_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        rope_parameters={"mrope_section": [1, 1, 2], "rope_type": "default", "rope_theta": 1000000.0},
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.get_vocab()["<|im_start|>"],
        eos_token_id=tokenizer.get_vocab()["<|im_end|>"],
    )
    text_encoder = Qwen2_5_VLTextModel(qwen)
    tokenizer_2 = ByT5Tokenizer()
    torch.manual_seed(seed)
    t5 = T5Config(
        vocab_size=len(tokenizer_2), d_model=32, d_kv=8, d_ff=37, num_layers=2, num_heads=4, relative_attention_num_buckets=8
    )
    return {
        "text_encoder": text_encoder,
        "tokenizer": tokenizer,
        "transformer": transformer,
        "vae": vae,
        "scheduler": FlowMatchEulerDiscreteScheduler(shift=7.0),
        "text_encoder_2": T5EncoderModel(t5),
        "tokenizer_2": tokenizer_2,
        "guider": ClassifierFreeGuidance(guidance_scale=6.0),
    }


def _save(pipe: Any, path: Path, seed: int, extra: dict) -> Path:
    marker = {
        "family": "hunyuanvideo15",
        "default_width": 128,
        "default_steps": 4,
        "clip_frames": 5,
        # What the gateway compares (the prompt's own tokens and the family's allowance for the template) for this
        # tokenizer, whose characters make the system message longer than Qwen's words do.
        "max_sequence_length": prompt_budget(pipe) + TEMPLATE_TOKENS,
    }
    return save_atomically(pipe, path, marker | extra, seed)


def build_tiny_hunyuanvideo15(path: Path, seed: int = 0) -> Path:
    """HunyuanVideo15Pipeline: text-to-video."""
    return _save(HunyuanVideo15Pipeline(**_parts(seed, "t2v", target_size=16)), path, seed, {})


def build_tiny_hunyuanvideo15_i2v(path: Path, seed: int = 0) -> Path:
    """HunyuanVideo15ImageToVideoPipeline: the same parts and a SigLIP image encoder; it renders at the area of a
    ``target_size`` square (96: 72x128 at 16:9), in the image's aspect."""
    parts = _parts(seed, "i2v", target_size=96)
    torch.manual_seed(seed)
    size = 32
    config = SiglipVisionConfig(
        hidden_size=parts["transformer"].config.image_embed_dim,
        intermediate_size=24,
        num_hidden_layers=2,
        num_attention_heads=2,
        image_size=size,
        patch_size=8,
    )
    processor = SiglipImageProcessor(size={"height": size, "width": size})
    pipe = HunyuanVideo15ImageToVideoPipeline(**parts, image_encoder=SiglipVisionModel(config), feature_extractor=processor)
    return _save(pipe, path, seed, {"keyframe_model": "reelforge/tiny-sd"})
