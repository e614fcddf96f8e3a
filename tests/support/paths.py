"""The repository's folders, for tests that read its files (docs, examples, deploy artifacts, sources)."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
APFELBAUM = EXAMPLES / "apfelbaum" / "storyboard.yaml"
