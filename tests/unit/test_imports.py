"""Every module of the shared library imports on its own, first, in a fresh interpreter.

An import cycle only breaks when the cycle is entered from one particular module; the test suite imports modules
in whatever order its files do, so a cycle can hide there and surface in a worker that imports that module first.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from support.paths import ROOT

SHARED = ROOT / "shared" / "src"


def _modules() -> list[str]:
    names = []
    for path in sorted((SHARED / "reelforge_shared").rglob("*.py")):
        parts = path.relative_to(SHARED).with_suffix("").parts
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def _imported_alone(package: str, modules: list[str], path: Path) -> dict[str, str]:
    """{module: error} of the modules that fail to import first, each in a process of its own (support/import_alone.py)."""
    script = Path(__file__).parents[1] / "support" / "import_alone.py"
    env = os.environ | {"PYTHONPATH": os.pathsep.join([str(path), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, str(script), package, *modules], capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_every_shared_module_imports_first() -> None:
    modules = _modules()
    assert "reelforge_shared.shots" in modules
    assert _imported_alone("reelforge_shared", modules, SHARED) == {}


def test_a_cycle_entered_from_one_module_is_found(tmp_path: Path) -> None:
    package = tmp_path / "cyclic"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from cyclic.b import B\n\nA = 1\n")
    (package / "b.py").write_text("from cyclic.a import A\n\nB = 2\n")  # entered from b: a imports b half-made
    (package / "c.py").write_text("import json\n\nC = json.dumps(3)\n")
    found = _imported_alone("cyclic", ["cyclic", "cyclic.a", "cyclic.b", "cyclic.c"], tmp_path)
    assert set(found) == {"cyclic.a", "cyclic.b"}
    assert "partially initialized module" in found["cyclic.a"]
