"""The AsyncAPI 3 (3.1.0) document of the bus, generated from the event models (``reelforge asyncapi``).

One channel per subject (``{prefix}.job.completed``; ``prefix`` is a channel parameter, default
``reelforge``), one ``send`` operation per channel (Reelforge publishes it; downstream services
subscribe with a JetStream consumer filtered on the address), one message per event whose payload
is the model's JSON Schema under ``components/schemas``. Each message carries an example built from
its fields' examples (the tests parse each back through its model). Dead letters are documented on
``{prefix}.dead.{service}``.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from reelforge_shared.events import ALL_EVENTS, DeadLetter, Event
from reelforge_shared.flow import SERVICES, STAGED_FAILURES

_REF = "#/components/schemas/{model}"
_PREFIX = {"description": "REELFORGE_SUBJECT_PREFIX of the installation", "default": "reelforge", "examples": ["reelforge"]}


def _name(cls: type[BaseModel]) -> str:
    return cls.__name__[0].lower() + cls.__name__[1:]


def example(schema: dict[str, Any], schemas: dict[str, Any]) -> Any:
    """A value for ``schema`` made of its fields' examples (defaults where a field has none)."""
    if "$ref" in schema:
        return example(schemas[schema["$ref"].rsplit("/", 1)[-1]], schemas)
    if "examples" in schema:
        return schema["examples"][0]
    if "properties" in schema:
        return {name: example(prop, schemas) for name, prop in schema["properties"].items()}
    return schema.get("default")


def _discriminators(node: Any) -> None:
    """AsyncAPI's Schema Object names a union's discriminator by its property (a string); pydantic writes OpenAPI's
    ``{"propertyName": ..., "mapping": ...}`` (the rendition kinds of ``rendition.requested``)."""
    if isinstance(node, dict):
        if isinstance(node.get("discriminator"), dict):
            node["discriminator"] = node["discriminator"]["propertyName"]
        for value in node.values():
            _discriminators(value)
    elif isinstance(node, list):
        for value in node:
            _discriminators(value)


def asyncapi_document(nats_url: str = "nats://127.0.0.1:4222") -> dict[str, Any]:
    models: list[type[BaseModel]] = [*ALL_EVENTS, DeadLetter]
    _, top = models_json_schema([(m, "serialization") for m in models], ref_template=_REF)
    schemas = top["$defs"]
    _discriminators(schemas)
    host = nats_url.split("://", 1)[-1]
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    for cls in models:
        name = cls.__name__
        is_event = issubclass(cls, Event)
        address = "{prefix}." + (cls.subject if is_event else "dead.{service}")  # type: ignore[attr-defined]
        parameters: dict[str, Any] = {"prefix": _PREFIX}
        if cls in STAGED_FAILURES:  # each stage publishes its own failures: segment.failed.encoder
            address += ".{stage}"
            parameters["stage"] = {
                "description": "service that gave up (the event's stage); only that service may publish here",
                "enum": list(SERVICES),
                "examples": ["encoder"],
            }
        if not is_event:
            parameters["service"] = {
                "description": "service that dead-lettered the message",
                "enum": list(SERVICES),
                "examples": ["encoder"],
            }
        doc = (cls.__doc__ or name).strip().splitlines()[0]
        messages[name] = {
            "name": name,
            "title": name,
            "summary": doc,
            "contentType": "application/json",
            "payload": {"$ref": _REF.format(model=name)},
            "examples": [{"name": f"{_name(cls)}Example", "payload": example(schemas[name], schemas)}],
        }
        if is_event:
            messages[name]["headers"] = {
                "type": "object",
                "properties": {
                    "Nats-Msg-Id": {
                        "type": "string",
                        "description": "de-duplication id: a repeat inside the duplicate window is dropped",
                        "examples": [f"{cls.subject}:j-5f1c2e7a9b"],  # type: ignore[attr-defined]
                    }
                },
            }
        channel = _name(cls)
        channels[channel] = {
            "address": address,
            "title": name,
            "description": doc,
            "parameters": parameters,
            "messages": {name: {"$ref": f"#/components/messages/{name}"}},
        }
        operations[f"publish{name}"] = {
            "action": "send",
            "title": f"Reelforge publishes {name}",
            "summary": doc,
            "channel": {"$ref": f"#/channels/{channel}"},
            "messages": [{"$ref": f"#/channels/{channel}/messages/{name}"}],
        }
    return {
        "asyncapi": "3.1.0",
        "info": {
            "title": "Reelforge bus",
            "version": "1.0.0",
            "description": (
                "Events between Reelforge's services on NATS JetStream, one stream per prefix (`{prefix}.>`). "
                "Downstream users subscribe to facts such as `job.completed` and `segment.delivered`. "
                "Generated from shared/src/reelforge_shared/events.py by `reelforge asyncapi`."
            ),
        },
        "defaultContentType": "application/json",
        "servers": {"local": {"host": host, "protocol": "nats", "description": "JetStream-enabled NATS server"}},
        "channels": channels,
        "operations": operations,
        "components": {"schemas": schemas, "messages": messages},
    }
