"""Optional image embeddings for continuity: a CLIP-style model loaded from a local folder.

``REELFORGE_QA_EMBEDDING_MODEL`` names a folder written by ``save_pretrained`` of a transformers
``CLIPModel`` (for example openai/clip-vit-base-patch32 copied onto the machine). Nothing is
downloaded: the path must exist. Frames are prepared the way CLIP's image processor does it
(shortest side to the model's size, bicubic, centre crop, CLIP's mean and standard deviation,
or those of the folder's ``preprocessor_config.json``); doing it here keeps QA independent of
which image-processor backends the installed transformers ships.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from reelforge_shared.errors import PermanentError

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)  # OpenAI CLIP's training statistics
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


class ClipEmbedder:
    """Unit-length image embeddings from a local ``CLIPModel``; load once, embed many."""

    def __init__(self, path: str | Path, device: str = "cpu") -> None:
        folder = Path(path).expanduser()
        if not (folder / "config.json").is_file():
            raise PermanentError(f"embedding model {str(path)!r}: no config.json there (save_pretrained writes one)")
        import torch
        from transformers import CLIPModel

        self._torch = torch
        # transformers types .to() on PreTrainedModel as a decorator that wants the model as argument.
        self.model = CLIPModel.from_pretrained(str(folder)).to(device).eval()  # type: ignore[arg-type]
        self.device = device
        self.name = str(path)
        self.size = int(self.model.config.vision_config.image_size)
        preprocessing = folder / "preprocessor_config.json"
        config = json.loads(preprocessing.read_text()) if preprocessing.is_file() else {}
        self.mean = np.array(config.get("image_mean", CLIP_MEAN), np.float32)
        self.std = np.array(config.get("image_std", CLIP_STD), np.float32)

    def _prepare(self, bgr: np.ndarray) -> np.ndarray:
        h, w = bgr.shape[:2]
        scale = self.size / min(h, w)
        size = (max(self.size, round(w * scale)), max(self.size, round(h * scale)))
        resized = cv2.resize(bgr, size, interpolation=cv2.INTER_CUBIC)
        top, left = (resized.shape[0] - self.size) // 2, (resized.shape[1] - self.size) // 2
        rgb = resized[top : top + self.size, left : left + self.size, ::-1].astype(np.float32) / 255.0
        return ((rgb - self.mean) / self.std).transpose(2, 0, 1)

    def embed(self, bgr_frames: list[np.ndarray]) -> np.ndarray:
        torch = self._torch
        batch = torch.from_numpy(np.stack([self._prepare(f) for f in bgr_frames])).to(self.device)
        with torch.inference_mode():
            out = self.model.get_image_features(pixel_values=batch)
        features = out if isinstance(out, torch.Tensor) else out.pooler_output  # transformers 5 returns an output object
        vectors = features.float().cpu().numpy()
        return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
