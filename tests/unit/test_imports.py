"""Every module of the shared library imports on its own, first, in a fresh interpreter.

An import cycle only breaks when the cycle is entered from one particular module; the test suite imports modules
in whatever order its files do, so a cycle can hide there and surface in a worker that imports that module first.
"""

from __future__ import annotations

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

from support.paths import ROOT

SHARED = ROOT / "shared" / "src"


def _modules() -> list[str]:
    names = []
    for path in sorted((SHARED / "reelforge_shared").rglob("*.py")):
        parts = path.relative_to(SHARED).with_suffix("").parts
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def _import_alone(module: str) -> tuple[str, str]:
    done = subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True, text=True, timeout=120)
    return module, done.stderr.strip().splitlines()[-1] if done.returncode else ""


def test_every_shared_module_imports_first() -> None:
    modules = _modules()
    assert "reelforge_shared.shots" in modules
    with ThreadPoolExecutor(max_workers=4) as pool:
        failures = {module: error for module, error in pool.map(_import_alone, modules) if error}
    assert failures == {}
