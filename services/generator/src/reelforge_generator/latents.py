"""Seed families and shared latents: what keeps a segment's frames, cast and location coherent.

Every frame of a segment starts from the same *segment latent*, a fixed mix of the location's
noise, each character's noise and the segment's own noise (the GPU brief: one seed series per
character and per location). Frames then vary by a small angle toward a slowly moving random walk,
so consecutive frames move rather than jump. Each frame's latent depends only on the seeds and its
index, so a resumed segment renders exactly the frames it lacks.
"""

from __future__ import annotations

import math

import torch

FRAMES_PER_ANCHOR = 8  # the random walk turns every 8 frames (~2.7 s at 3 fps)


def _noise(seed: int, shape: tuple[int, ...]) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed % 2**63), dtype=torch.float32)


def _slerp(a: torch.Tensor, b: torch.Tensor, t: float) -> torch.Tensor:
    cos = torch.clamp((a * b).sum() / (a.norm() * b.norm()), -1.0, 1.0)
    omega = torch.arccos(cos)
    if omega.abs() < 1e-4:
        return (1 - t) * a + t * b
    return (torch.sin((1 - t) * omega) * a + torch.sin(t * omega) * b) / torch.sin(omega)


def segment_latent(seed: int, character_seeds: list[int], location_seed: int | None, shape: tuple[int, ...]) -> torch.Tensor:
    """Unit-variance mix: the location carries the scene, characters the cast, the segment its shot."""
    parts = [(_noise(seed, shape), 1.0)]
    parts += [(_noise(s, shape), 0.6 / math.sqrt(len(character_seeds))) for s in character_seeds]
    if location_seed is not None:
        parts.append((_noise(location_seed, shape), 0.8))
    total = sum((part * weight for part, weight in parts), torch.zeros(shape))
    return total / math.sqrt(sum(weight**2 for _, weight in parts))


def frame_latents(
    seed: int, character_seeds: list[int], location_seed: int | None, shape: tuple[int, ...], frames: list[int], motion: float
) -> torch.Tensor:
    """Latents of the given frame indices, shape ``(len(frames), *shape)``."""
    base = segment_latent(seed, character_seeds, location_seed, shape)
    walk_seed = seed * 1_000_003 + 17
    out = []
    for i in frames:
        k, t = divmod(i, FRAMES_PER_ANCHOR)
        walk = _slerp(_noise(walk_seed + k, shape), _noise(walk_seed + k + 1, shape), t / FRAMES_PER_ANCHOR)
        out.append(math.cos(motion) * base + math.sin(motion) * walk)
    return torch.stack(out)


def frame_generators(seed: int, frames: list[int]) -> list[torch.Generator]:
    """One CPU generator per frame (or clip) for the noise a pipeline draws itself: ancestral schedulers'
    per-step noise, SVD's noise on its conditioning image, img2img's start. Per frame, so a frame's
    image does not depend on the batch it is in; on the CPU, so it does not depend on the device."""
    return [torch.Generator().manual_seed((seed * 1_000_033 + 7_919 * (i + 1)) % 2**63) for i in frames]
