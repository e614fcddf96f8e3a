"""The five services in one process, against configured servers or embedded ones."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from reelforge_shared.bus import bootstrap
from reelforge_shared.embedded import ACCESS_KEY, SECRET_KEY, EmbeddedServer, embedded_servers, free_port
from reelforge_shared.errors import StartupFailed
from reelforge_shared.service import Service, run_services
from reelforge_shared.settings import CommonSettings

SERVICE_MODULES = {
    "gateway": "reelforge_gateway.service",
    "generator": "reelforge_generator.service",
    "encoder": "reelforge_encoder.service",
    "qa": "reelforge_qa.service",
    "uploader": "reelforge_uploader.service",
}


def service_module(name: str) -> ModuleType:
    if name not in SERVICE_MODULES:
        raise KeyError(f"unknown service {name!r}; one of: {', '.join(SERVICE_MODULES)}")
    return importlib.import_module(SERVICE_MODULES[name])


def env_name(setting: str, info: Any) -> str:
    """The environment variable of a setting: its alias where it has one (REELFORGE_GATEWAY_PORT), else the prefixed name."""
    return info.validation_alias.upper() if isinstance(info.validation_alias, str) else f"REELFORGE_{setting.upper()}"


def settings_table() -> str:
    """Markdown table of every setting of every service (common ones once).

    A setting several services read (REELFORGE_MODEL: the generator renders with it, the gateway checks
    prompts against it) is one row naming them all, described by the first that gives it a default.
    """
    readers: dict[str, list[str]] = {}
    infos: dict[str, Any] = {}
    for name in SERVICE_MODULES:
        for setting, info in service_module(name).Settings.model_fields.items():
            readers.setdefault(setting, []).append(name)
            if setting not in infos or (infos[setting].default is None and info.default is not None):
                infos[setting] = info
    rows = ["| variable | used by | default | meaning |", "| --- | --- | --- | --- |"]
    for setting, info in infos.items():
        default = info.default.get_secret_value() if hasattr(info.default, "get_secret_value") else info.default
        shown = "unset" if default is None else f"`{default}`"
        used_by = "all" if setting in CommonSettings.model_fields else ", ".join(readers[setting])
        rows.append(f"| `{env_name(setting, info)}` | {used_by} | {shown} | {info.description} |")
    return "\n".join(rows)


def build_service(name: str, overrides: dict[str, Any]) -> Service:
    module = service_module(name)
    return module.build(module.Settings(**overrides))


@dataclass
class Stack:
    settings: CommonSettings
    services: list[Service]
    servers: dict[str, EmbeddedServer] = field(default_factory=dict)
    gateway_url: str | None = None
    task: asyncio.Task | None = None

    def check_alive(self) -> None:
        """Raise the error of a service that stopped (the stack runs only while all do)."""
        if self.task is not None and self.task.done():
            self.task.result()
            raise RuntimeError("the services stopped")

    async def wait_ready(self, task: asyncio.Task, timeout: float = 600) -> None:
        """Until every service is READY (a model may be loading); raises if the stack died meanwhile."""
        deadline = asyncio.get_running_loop().time() + timeout
        while not all(s.health.ok for s in self.services):
            if task.done():
                task.result()
                raise RuntimeError("services stopped before they were ready")
            if failed := [s for s in self.services if s.health.state == "SETUP_FAILED"]:
                raise StartupFailed(f"{failed[0].name} setup failed: {failed[0].health.detail}")
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError("services not ready in time")
            await asyncio.sleep(0.1)


@contextlib.asynccontextmanager
async def local_stack(
    state_dir: Path,
    names: list[str] | None = None,
    gateway_port: int | None = None,
    per_service: dict[str, dict[str, Any]] | None = None,
    **overrides: Any,
) -> AsyncIterator[Stack]:
    """Start embedded NATS/S3 where none is configured, then the services; stop all on exit.

    ``per_service`` adds settings to one service only: its own NATS user and S3 identity, say.
    """
    base = CommonSettings(**overrides)
    with embedded_servers(state_dir, nats=not base.nats_url, s3=not base.s3_endpoint) as servers:
        if "nats" in servers:
            overrides["nats_url"] = servers["nats"].url
        if "s3" in servers:
            overrides |= {"s3_endpoint": servers["s3"].url, "s3_access_key": ACCESS_KEY, "s3_secret_key": SECRET_KEY}
        if servers:  # local mode: the built-in test model is the demo's default (a deployment must name a real one)
            overrides.setdefault("allow_test_model", True)
            overrides.setdefault("default_text_to_video_model", "reelforge/tiny-zeroscope")  # the video API guide's endpoints too
            overrides.setdefault("default_image_to_video_model", "reelforge/tiny-svd")
        names = names or list(SERVICE_MODULES)
        own = per_service or {}
        gateway: dict[str, Any] = {"port": gateway_port if gateway_port is not None else free_port()}

        def configured(name: str) -> Any:
            """The service's settings as given (its environment, ``overrides``, ``per_service``), before local defaults."""
            return service_module(name).Settings(**overrides | own.get(name, {}))

        if "gateway" in names and not configured("gateway").api_tokens:
            gateway["api_auth"] = "off"  # local mode keeps working without tokens
        encoder: dict[str, Any] = {}
        if "encoder" in names and configured("encoder").piece_cache_dir is None:
            encoder["piece_cache_dir"] = state_dir / "pieces"  # the next run in this state folder finds the pieces kept
        mine = {"gateway": gateway, "encoder": encoder}
        services = [build_service(n, overrides | mine.get(n, {}) | own.get(n, {})) for n in names]
        gateway_url = f"http://127.0.0.1:{gateway['port']}" if "gateway" in names else None
        stack = Stack(CommonSettings(**overrides), services, servers, gateway_url)
        await bootstrap(stack.settings)  # local mode: one identity makes the stream and buckets, as bootstrap does
        stop = asyncio.Event()
        task = stack.task = asyncio.create_task(run_services(services, stop))
        try:
            await stack.wait_ready(task)
            yield stack
        finally:
            stop.set()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(task, timeout=60)
