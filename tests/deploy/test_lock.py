"""The images' hashed lock files (deploy/docker/requirements/<service>.txt, written by `make lock`) hold every
dependency every pyproject asks for, at a version it allows, each with its sha256; the Dockerfile installs
them with --require-hashes. Read from the files alone: no network, no resolver.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from support.paths import ROOT

LOCKS = ROOT / "deploy" / "docker" / "requirements"
SERVICES = ["gateway", "generator", "encoder", "qa", "uploader"]
# The images' Python and platform (python:3.11.13-slim-bookworm, x86_64): the markers `make lock` resolved for.
IMAGE = {"python_version": "3.11", "python_full_version": "3.11.13", "sys_platform": "linux", "platform_system": "Linux"}
IMAGE |= {"platform_machine": "x86_64", "os_name": "posix", "implementation_name": "cpython", "extra": ""}
OWN = {"reelforge", "reelforge-shared", *(f"reelforge-{s}" for s in SERVICES)}
OUTSIDE_THE_LOCK = {"torch"}  # its own step in the Dockerfile (ARG TORCH; CPU and CUDA wheels differ)


def pyproject(path: Path) -> dict:
    return tomllib.loads(path.read_text())["project"]


def wanted(service: str, root: Path = ROOT) -> list[Requirement]:
    """What the service's image installs: its own dependencies, reelforge-shared's with the extras it asks
    for, the CLI's own (pyproject.toml, without the services) and deploy/docker/requirements/image.in."""
    own = [Requirement(r) for r in pyproject(root / "services" / service / "pyproject.toml")["dependencies"]]
    shared = pyproject(root / "shared" / "pyproject.toml")
    extras = set().union(*(r.extras for r in own if canonicalize_name(r.name) == "reelforge-shared"))
    reqs = own + [Requirement(r) for r in shared["dependencies"]]
    reqs += [Requirement(r) for extra in sorted(extras) for r in shared["optional-dependencies"][extra]]
    reqs += [Requirement(r) for r in pyproject(root / "pyproject.toml")["dependencies"]]
    image = (root / LOCKS.relative_to(ROOT) / "image.in").read_text().splitlines()
    reqs += [Requirement(line) for line in image if line.strip() and not line.startswith("#")]
    return [r for r in reqs if canonicalize_name(r.name) not in OWN and (r.marker is None or r.marker.evaluate(IMAGE))]


def locked(lock: Path) -> dict[str, tuple[Version, list[str]]]:
    """name -> (version, hashes) from a lock file uv wrote with --generate-hashes."""
    pins: dict[str, tuple[Version, list[str]]] = {}
    for block in re.split(r"\n(?=[A-Za-z0-9])", lock.read_text()):
        head = re.match(r"([A-Za-z0-9._-]+)==([^\s;\\]+)", block)
        if head:
            pins[canonicalize_name(head[1])] = (Version(head[2]), re.findall(r"--hash=sha256:([0-9a-f]{64})", block))
    return pins


def lock_problems(service: str, root: Path = ROOT) -> list[str]:
    """Each way the service's lock disagrees with the pyprojects, one line each; none when it matches."""
    lock = root / LOCKS.relative_to(ROOT) / f"{service}.txt"
    pins, problems = locked(lock), []
    if "make lock" not in lock.read_text().splitlines()[1]:
        problems.append(f"{lock.name}: not written by `make lock`")
    problems += [f"{lock.name}: {name}=={version} has no hash" for name, (version, hashes) in pins.items() if not hashes]
    problems += [f"{lock.name}: {name} installs from its own step" for name in sorted((OWN | OUTSIDE_THE_LOCK) & set(pins))]
    for requirement in wanted(service, root):
        name = canonicalize_name(requirement.name)
        if name in OUTSIDE_THE_LOCK:
            continue
        if name not in pins:
            problems.append(f"{lock.name}: {requirement} is missing")
        elif not requirement.specifier.contains(pins[name][0], prereleases=True):
            problems.append(f"{lock.name}: has {name}=={pins[name][0]}, a pyproject asks for {requirement}")
    return problems


@pytest.mark.parametrize("service", SERVICES)
def test_every_dependency_of_every_pyproject_is_in_the_lock_with_hashes(service: str) -> None:
    assert lock_problems(service) == [], "run `make lock`"


def test_the_dockerfile_installs_the_lock_with_hashes_and_pins_torch_as_the_generator_does() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "COPY deploy/docker/requirements/${SERVICE}.txt /src/requirements.txt" in dockerfile
    assert re.search(r"pip install [^\n]*--require-hashes --no-deps -r /src/requirements\.txt", dockerfile)
    [torch] = re.findall(r"^ARG TORCH=(\S+)$", dockerfile, re.M)
    generator = [Requirement(r) for r in pyproject(ROOT / "services" / "generator" / "pyproject.toml")["dependencies"]]
    assert str(next(r for r in generator if r.name == "torch")) == torch
    assert {p.stem for p in LOCKS.glob("*.txt")} == set(SERVICES)


def test_a_pyproject_change_the_lock_does_not_follow_is_named(tmp_path: Path) -> None:
    """A copy of the tree whose uploader asks for a new package and a newer httpx than its lock holds."""
    for name in ("pyproject.toml", "shared/pyproject.toml", "services/uploader/pyproject.toml"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text((ROOT / name).read_text())
    (tmp_path / LOCKS.relative_to(ROOT)).mkdir(parents=True)
    for name in ("image.in", "uploader.txt"):
        (tmp_path / LOCKS.relative_to(ROOT) / name).write_text((LOCKS / name).read_text())
    assert lock_problems("uploader", tmp_path) == []
    httpx = locked(LOCKS / "uploader.txt")["httpx"][0]
    service = tmp_path / "services" / "uploader" / "pyproject.toml"
    text = service.read_text().replace(
        'dependencies = ["reelforge-shared",', f'dependencies = ["reelforge-shared", "left-pad>=1", "httpx>{httpx}",'
    )
    service.write_text(text)
    assert lock_problems("uploader", tmp_path) == [
        "uploader.txt: left-pad>=1 is missing",
        f"uploader.txt: has httpx=={httpx}, a pyproject asks for httpx>{httpx}",
    ]
