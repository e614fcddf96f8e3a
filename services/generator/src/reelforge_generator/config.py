from typing import Literal

from pydantic import Field

from reelforge_shared.settings import CommonSettings

TINY_SD = "reelforge/tiny-sd"


class GeneratorSettings(CommonSettings):
    model: str = Field(
        TINY_SD,
        description=f"Hugging Face id (warm cache) or local path; {TINY_SD} is the built-in tiny random-weight test model",
    )
    model_cache_dir: str = Field("~/.cache/reelforge/models", description="where built-in test models are written")
    steps: int | None = Field(None, ge=1, le=200, description="denoising steps (default 30; 20 for the tiny test model)")
    guidance_scale: float = Field(7.5, ge=0, description="classifier-free guidance scale")
    generation_width: int | None = Field(
        None, ge=64, le=4096, description="render width; height follows the output's aspect (default 1024; 128 for the tiny model)"
    )
    batch_size: int = Field(8, ge=1, le=256, description="frames per UNet call")
    motion: float = Field(0.35, ge=0, le=1.5708, description="radians of per-frame latent variation around the segment's shared latent")
    device: str = Field("auto", description="torch device: auto, cpu, cuda, cuda:1 ...")
    dtype: Literal["auto", "float32", "float16", "bfloat16"] = Field("auto", description="weights dtype (auto: fp16 on CUDA, fp32 on CPU)")
