"""Tiny LTX-2: video and sound from one prompt (the video transformer with its audio branch, both VAEs, the vocoder).

Every part is the real diffusers or transformers class at a toy width, sizes after diffusers' own
LTX-2 tests: the audio-video transformer, the LTX-2 video VAE, the audio VAE (mel spectrograms),
the vocoder (mel -> waveform), the text connectors and a Gemma 3 text encoder. diffusers' tests
download a tiny Gemma; here the Gemma 3 is built from a config and its tokenizer with the
``tokenizers`` library (one token per character, so two prompts that differ anywhere get different
inputs). The vocoder's upsampling equals the mel hop, so its 16 kHz waveform lasts as long as the video.

The image-to-video variant is the same weights under ``LTX2ImageToVideoPipeline`` (diffusers reads
the pipeline class from ``model_index.json``): the same builder, another class name.
"""

from __future__ import annotations

from pathlib import Path

import torch
from diffusers import (
    AutoencoderKLLTX2Audio,
    AutoencoderKLLTX2Video,
    FlowMatchEulerDiscreteScheduler,
    LTX2ImageToVideoPipeline,
    LTX2Pipeline,
    LTX2VideoTransformer3DModel,
)
from diffusers.pipelines.ltx2 import LTX2TextConnectors
from diffusers.pipelines.ltx2.vocoder import LTX2Vocoder
from tokenizers import Tokenizer, models, pre_tokenizers, processors
from transformers import Gemma3Config, Gemma3ForConditionalGeneration, PreTrainedTokenizerFast

from reelforge_tiny.common import save_atomically

MAX_SEQUENCE_LENGTH = 1024  # LTX-2's prompt length (the pipeline's max_sequence_length)
SAMPLE_RATE = 16_000  # the audio VAE's and (its upsampling = the mel hop) the vocoder's
MEL_HOP = 160
MEL_BINS, MEL_CHANNELS = 8, 2  # the audio VAE's output: the vocoder reads both channels' mel bins
TEXT_WIDTH, TEXT_LAYERS = 32, 2  # Gemma's; LTX-2 stacks the embeddings and every layer's hidden states


# The LTX-2 video VAE shrunk to one block each way (the benchmark's tiny scale reuses it).
ONE_BLOCK_VAE: dict = dict(
    block_out_channels=(8,),
    decoder_block_out_channels=(8,),
    layers_per_block=(1,),
    decoder_layers_per_block=(1, 1),
    spatio_temporal_scaling=(True,),
    decoder_spatio_temporal_scaling=(True,),
    decoder_inject_noise=(False, False),
    downsample_type=("spatial",),
    upsample_residual=(False,),
    upsample_factor=(1,),
)


def tiny_gemma_tokenizer(max_length: int = MAX_SEQUENCE_LENGTH) -> PreTrainedTokenizerFast:
    """A Gemma-style tokenizer (pad 0, end 1, begin 2 prepended) over printable ASCII, one token per character."""
    vocab = {"<pad>": 0, "<eos>": 1, "<bos>": 2, "<unk>": 3} | {chr(c): 4 + i for i, c in enumerate(range(33, 127))}
    tokenizer = Tokenizer(models.WordPiece(vocab, unk_token="<unk>", max_input_chars_per_word=10_000))  # noqa: S106 - a token
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Whitespace(), pre_tokenizers.Split("", "isolated")])
    tokenizer.post_processor = processors.TemplateProcessing(single="<bos> $A", special_tokens=[("<bos>", 2)])
    specials = {"pad_token": "<pad>", "eos_token": "<eos>", "bos_token": "<bos>", "unk_token": "<unk>"}  # tokens, not secrets
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, model_max_length=max_length, padding_side="left", **specials)


def tiny_gemma3(vocab_size: int, seed: int) -> Gemma3ForConditionalGeneration:
    """Gemma 3 (text and a tiny SigLIP tower, as the class needs one) at width 32; LTX-2 reads every layer's hidden states."""
    torch.manual_seed(seed)
    config = Gemma3Config(
        text_config={
            "vocab_size": vocab_size,
            "hidden_size": TEXT_WIDTH,
            "intermediate_size": 2 * TEXT_WIDTH,
            "num_hidden_layers": TEXT_LAYERS,
            "num_attention_heads": 2,
            "num_key_value_heads": 1,
            "head_dim": 16,
            "max_position_embeddings": MAX_SEQUENCE_LENGTH,
            "sliding_window": 64,
            "pad_token_id": 0,
            "eos_token_id": 1,
            "bos_token_id": 2,
        },
        vision_config={
            "hidden_size": 16,
            "intermediate_size": 32,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "image_size": 32,
            "patch_size": 8,
        },
        mm_tokens_per_image=4,
        boi_token_index=vocab_size,
        eoi_token_index=vocab_size + 1,
        image_token_index=vocab_size + 2,
    )
    return Gemma3ForConditionalGeneration(config)


def _components(seed: int) -> dict:
    tokenizer = tiny_gemma_tokenizer()
    text_encoder = tiny_gemma3(len(tokenizer), seed)
    torch.manual_seed(seed)
    transformer = LTX2VideoTransformer3DModel(
        in_channels=4,
        out_channels=4,
        patch_size=1,
        patch_size_t=1,
        num_attention_heads=2,
        attention_head_dim=8,
        cross_attention_dim=16,
        audio_in_channels=4,
        audio_out_channels=4,
        audio_num_attention_heads=2,
        audio_attention_head_dim=4,
        audio_cross_attention_dim=8,
        num_layers=2,
        qk_norm="rms_norm_across_heads",
        caption_channels=TEXT_WIDTH,
        rope_double_precision=False,
        rope_type="split",
    )
    torch.manual_seed(seed)
    connectors = LTX2TextConnectors(
        caption_channels=TEXT_WIDTH,
        text_proj_in_factor=TEXT_LAYERS + 1,
        video_connector_num_attention_heads=4,
        video_connector_attention_head_dim=8,
        video_connector_num_layers=1,
        video_connector_num_learnable_registers=None,
        audio_connector_num_attention_heads=4,
        audio_connector_attention_head_dim=8,
        audio_connector_num_layers=1,
        audio_connector_num_learnable_registers=None,
        connector_rope_base_seq_len=32,
        rope_theta=10000.0,
        rope_double_precision=False,
        causal_temporal_positioning=False,
        rope_type="split",
    )
    torch.manual_seed(seed)
    vae = AutoencoderKLLTX2Video(
        in_channels=3,
        out_channels=3,
        latent_channels=4,
        **ONE_BLOCK_VAE,
        timestep_conditioning=False,
        patch_size=1,
        patch_size_t=1,
        encoder_causal=True,
        decoder_causal=False,
    )
    torch.manual_seed(seed)
    audio_vae = AutoencoderKLLTX2Audio(
        base_channels=4,
        output_channels=MEL_CHANNELS,
        ch_mult=(1,),
        num_res_blocks=1,
        attn_resolutions=None,
        in_channels=2,
        resolution=32,
        latent_channels=2,
        norm_type="pixel",
        causality_axis="height",
        dropout=0.0,
        mid_block_add_attention=False,
        sample_rate=SAMPLE_RATE,
        mel_hop_length=MEL_HOP,
        is_causal=True,
        mel_bins=MEL_BINS,
    )
    torch.manual_seed(seed)
    vocoder = LTX2Vocoder(
        in_channels=MEL_CHANNELS * MEL_BINS,
        hidden_channels=32,
        out_channels=2,
        upsample_kernel_sizes=[8, 10, 16],
        upsample_factors=[4, 5, 8],  # 160 = the mel hop: one mel frame, 10 ms of 16 kHz sound
        resnet_kernel_sizes=[3],
        resnet_dilations=[[1, 3, 5]],
        leaky_relu_negative_slope=0.1,
        output_sampling_rate=SAMPLE_RATE,
    )
    return {
        "transformer": transformer,
        "vae": vae,
        "audio_vae": audio_vae,
        "scheduler": FlowMatchEulerDiscreteScheduler(),
        "text_encoder": text_encoder,
        "tokenizer": tokenizer,
        "connectors": connectors,
        "vocoder": vocoder,
    }


MARKER = {
    "family": "ltx2",
    "default_width": 32,
    "default_steps": 2,
    "default_guidance": 1.0,  # one pass per step: CFG doubles the work of a model that renders noise anyway
    "clip_frames": 121,  # LTX-2's 5 s at 24 fps; a tiny clip is still one call
    "max_sequence_length": MAX_SEQUENCE_LENGTH,
    "keyframe_model": "reelforge/tiny-sd",
    # The pipeline's extra guidance passes (audio CFG, spatio-temporal, modality) are off: one pass per step.
    "audio_guidance_scale": 1.0,
    "stg_scale": 0.0,
    "audio_stg_scale": 0.0,
    "modality_scale": 1.0,
    "audio_modality_scale": 1.0,
    "spatio_temporal_guidance_blocks": None,
}


def build_tiny_ltx2(path: Path, seed: int = 0) -> Path:
    """LTX-2 text-to-video with sound."""
    return save_atomically(LTX2Pipeline(**_components(seed)), path, MARKER, seed)


def build_tiny_ltx2_i2v(path: Path, seed: int = 0) -> Path:
    """LTX-2 image-to-video with sound: the text-to-video model's weights under the image-to-video pipeline."""
    return save_atomically(LTX2ImageToVideoPipeline(**_components(seed)), path, MARKER, seed)
