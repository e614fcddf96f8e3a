"""Where a segment's time goes: text encoder, UNet (attention, convolutions, matmuls, the rest), VAE, host gaps.

Stage times are synchronised wall clock (text encoding once per segment, one UNet call of a batch
with both CFG branches, one VAE decode of the batch). Inside the UNet call, torch.profiler sums
each ATen operator's own device time (CPU time on a machine without CUDA) by kind; what the wall
clock holds beyond the device's busy time is host gap (Python, launches, synchronisation).
"""

from __future__ import annotations

import time

import torch

from reelforge_generator.prompts import encode_prompt
from reelforge_shared.events import RenderSpec

KINDS = (  # first match wins, on the ATen operator's name
    ("attention", ("scaled_dot_product", "attention", "_flash", "_efficient", "_cudnn_attention")),
    ("convolution", ("conv",)),
    ("matmul", ("mm", "matmul", "linear", "baddbmm", "bmm")),
    ("normalisation", ("norm",)),
)


def _kind(name: str) -> str:
    for kind, needles in KINDS:
        if any(n in name for n in needles):
            return kind
    return "other (elementwise, copies)"


def _timed(device: str, fn: object, repeat: int = 2) -> tuple[float, object]:
    """Seconds of the last of ``repeat`` calls (the first pays allocation and kernel selection)."""
    out, seconds = None, 0.0
    for _ in range(repeat):
        if device.startswith("cuda"):
            torch.cuda.synchronize(device)
        began = time.perf_counter()
        out = fn()
        if device.startswith("cuda"):
            torch.cuda.synchronize(device)
        seconds = time.perf_counter() - began
    return seconds, out


@torch.inference_mode()
def profile_segment(pipe: object, spec: RenderSpec, width: int, height: int, batch: int, steps: int, guidance: float) -> dict:
    """Per-frame and per-segment seconds by stage, and the UNet call's time by operator kind."""
    unet = getattr(pipe.unet, "_orig_mod", pipe.unet)  # the eager module: the profile names its operators
    device, dtype = str(pipe._execution_device), unet.dtype
    text_s, conditioning = _timed(device, lambda: encode_prompt(pipe, spec, guidance)[0])
    cfg = 2 if guidance > 1 else 1
    embeds = torch.cat(
        [conditioning.get("negative_prompt_embeds", conditioning["prompt_embeds"])] * (cfg - 1) + [conditioning["prompt_embeds"]]
    )
    embeds = embeds.repeat_interleave(batch, dim=0)
    f = pipe.vae_scale_factor
    latents = torch.randn(batch * cfg, unet.config.in_channels, height // f, width // f, device=device, dtype=dtype)
    latents = (
        latents.to(memory_format=torch.channels_last)
        if unet.conv_in.weight.is_contiguous(memory_format=torch.channels_last)
        else latents
    )
    timestep = torch.tensor(500, device=device)
    unet_s, _ = _timed(device, lambda: unet(latents, timestep, encoder_hidden_states=embeds, return_dict=False))
    decoded = latents[:batch] / pipe.vae.config.scaling_factor
    vae_s, _ = _timed(device, lambda: pipe.vae.decode(decoded, return_dict=False))
    activities = [torch.profiler.ProfilerActivity.CPU]
    if device.startswith("cuda"):
        activities.append(torch.profiler.ProfilerActivity.CUDA)
    with torch.profiler.profile(activities=activities) as prof:
        wall, _ = _timed(device, lambda: unet(latents, timestep, encoder_hidden_states=embeds, return_dict=False), repeat=1)
    by_kind: dict[str, float] = {}
    for event in prof.key_averages():
        if not event.key.startswith("aten::"):
            continue
        us = event.self_device_time_total if device.startswith("cuda") else event.self_cpu_time_total
        by_kind[_kind(event.key)] = by_kind.get(_kind(event.key), 0.0) + us / 1e6
    busy = sum(by_kind.values())
    by_kind["host gaps (wall minus device busy)"] = max(0.0, wall - busy) if device.startswith("cuda") else 0.0
    unet_frame = unet_s * steps / batch
    return {
        "width": width,
        "height": height,
        "batch": batch,
        "steps": steps,
        "text_encoder_s_per_segment": round(text_s, 4),
        "unet_s_per_frame": round(unet_frame, 4),
        "vae_decode_s_per_frame": round(vae_s / batch, 4),
        "unet_call_s": round(unet_s, 4),
        "unet_call_by_kind_s": {k: round(v, 4) for k, v in sorted(by_kind.items(), key=lambda kv: -kv[1])},
        "unet_call_share": {k: round(v / max(wall, busy, 1e-9), 3) for k, v in by_kind.items()},
        "profiled_call_wall_s": round(wall, 4),
    }
