"""Import each named module first, alone, in a process of its own: ``python import_alone.py PACKAGE MODULE...``.

Prints a JSON object {module: last line of its error} for the modules that failed (``{}``: all imported).

A fresh interpreter per module costs the third-party imports again each time (pydantic, nats, minio: about half a
second of CPU each, 20 s for the shared library on two cores). Here one process imports the third-party modules
that PACKAGE's modules use, none of PACKAGE's own, and forks a child per module: the child imports that module
first, as a fresh worker would, so an import cycle inside PACKAGE shows as it would there.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import traceback


def _third_party(package: str, modules: list[str]) -> list[str]:
    """What importing every module loads that is not PACKAGE's own (found in a child, so this process stays clean)."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        for module in modules:
            try:
                importlib.import_module(module)
            except Exception:  # noqa: BLE001, S112 - its own child reports it below
                continue
        names = [n for n in sys.modules if n.split(".")[0] != package and n != "__main__"]
        with os.fdopen(write, "w") as out:
            json.dump(names, out)
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as got:
        names = json.load(got)
    os.waitpid(pid, 0)
    return names


def _alone(module: str) -> str:
    """'' when ``module`` imports first in a child of this process, else the last line of its error."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        error = ""
        try:
            importlib.import_module(module)
        except BaseException:  # noqa: BLE001 - any failure is the answer
            error = traceback.format_exc().strip().splitlines()[-1]
        with os.fdopen(write, "w") as out:
            out.write(error)
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as got:
        error = got.read()
    _, status = os.waitpid(pid, 0)
    return error or ("" if status == 0 else f"child exited with status {status}")


def main(package: str, modules: list[str]) -> dict[str, str]:
    for name in _third_party(package, modules):
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001, S112 - a submodule that will not import on its own: the child imports it
            continue
    mine = sorted(n for n in sys.modules if n.split(".")[0] == package)
    if mine:
        raise SystemExit(f"importing the third-party modules loaded {package}'s own: {mine[:5]}")
    return {module: error for module in modules if (error := _alone(module))}


if __name__ == "__main__":
    sys.stdout.write(json.dumps(main(sys.argv[1], sys.argv[2:])))
