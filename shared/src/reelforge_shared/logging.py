"""structlog, configured once: JSON when stderr is not a terminal (containers), console otherwise.

Secrets never reach a log line. Three guards, for structlog events and for the standard logging of
libraries (nats, urllib3, uvicorn) alike (uvicorn's loggers lose the handlers of its default logging
config and write through the root handler; the gateway starts uvicorn with ``log_config=None``):
- a field named like a secret setting (``nats_password``, ``s3_secret_key``, ``api_tokens`` ...: each
  ``SecretStr`` setting, by its name and its environment variable) or like a header that carries
  credentials (``Authorization``, ``Cookie`` ...) is replaced whole; names are matched whole, not by
  substring, so a figure such as ``prompt_tokens`` is logged as it is;
- the value of every secret setting (registered when the service is built) is cut out of any text it
  appears in, an error message included;
- the password in a URL (``scheme://user:password@host``) is cut out.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any, TextIO, cast

import structlog
from pydantic import BaseModel, SecretStr

# HTTP headers that carry credentials; a log field of one of these names is masked whole.
SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key"})
_URL_PASSWORD = re.compile(r"(\b[a-zA-Z][a-zA-Z0-9+.-]*://[^:/@\s]*:)[^@/\s]+@")
_MASK = "***"
UVICORN_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi")
_secrets: set[str] = set()
_secret_names: set[str] = set(SECRET_HEADERS)  # lower case; the secret settings' names join when registered


def register_secrets(settings: BaseModel) -> None:
    """Remember every secret value of ``settings`` (its SecretStr fields, in lists and dicts too) for redaction,
    and the names of its secret settings (set or not), as fields and as environment variables."""

    def walk(value: Any) -> None:
        if isinstance(value, SecretStr):
            secret = value.get_secret_value()
            # A list secret (``name:token,name:token``) also gives each token on its own.
            pieces = [secret, *(p.strip() for p in secret.split(",")), *(p.partition(":")[2].strip() for p in secret.split(","))]
            _secrets.update(p for p in pieces if len(p) >= 8)  # shorter would mask ordinary words
        elif isinstance(value, BaseModel):
            for name, info in type(value).model_fields.items():
                if "SecretStr" in str(info.annotation):
                    _secret_names.update({name, f"reelforge_{name}"})
                walk(getattr(value, name))
        elif isinstance(value, dict):
            for item in value.values():
                walk(item)
        elif isinstance(value, list | tuple | set | frozenset):
            for item in value:
                walk(item)

    walk(settings)


def redact(text: str) -> str:
    """``text`` without any registered secret and without URL passwords."""
    for secret in sorted(_secrets, key=len, reverse=True):  # longest first: a secret inside another goes with it
        if secret in text:
            text = text.replace(secret, _MASK)
    return _URL_PASSWORD.sub(rf"\1{_MASK}@", text)


def _clean(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, SecretStr):
        return _MASK
    if isinstance(value, dict):
        return {k: _MASK if _secret_name(k) else _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, BaseException):
        return redact(repr(value))
    return value


def _secret_name(key: object) -> bool:
    return isinstance(key, str) and key.lower() in _secret_names


def _redact(_: object, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key in event:
        event[key] = _MASK if _secret_name(key) else _clean(event[key])
    return event


class _RedactingFilter(logging.Filter):
    """The same for the standard logging of libraries: the message is formatted, then cleaned."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if record.exc_info:
            message += "\n" + logging.Formatter().formatException(record.exc_info)
            record.exc_info, record.exc_text = None, None
        record.msg, record.args = redact(message), None
        return True


class _CurrentStderr:
    """Whatever ``sys.stderr`` is when a line is written, not when logging was configured.

    A process that swaps stderr (a test runner capturing output, a daemon redirecting it) would otherwise
    keep writing to the old, possibly closed, stream: the nats client's callbacks then fail on
    "I/O operation on closed file" and the client closes its connection.
    """

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()

    def isatty(self) -> bool:
        return sys.stderr.isatty()


def configure_logging(level: str = "INFO", json: bool | None = None, stream: TextIO | None = None) -> None:
    stream = stream or cast(TextIO, _CurrentStderr())
    use_json = (not stream.isatty()) if json is None else json
    renderer = structlog.processors.JSONRenderer() if use_json else structlog.dev.ConsoleRenderer(colors=False)
    logging.basicConfig(level=level.upper(), stream=stream, format="%(message)s", force=True)
    # The libraries' records (nats, uvicorn, diffusers, Python warnings) in the same shape as the service's
    # own lines: one JSON object each in containers, with level, logger and time.
    stamped: list[Any] = [
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=stamped, processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, _redact, renderer]
    )
    for handler in logging.getLogger().handlers:
        handler.addFilter(_RedactingFilter())
        handler.setFormatter(formatter)
    for server in UVICORN_LOGGERS:  # its own handlers (uvicorn's default config) would write past the redaction
        logging.getLogger(server).handlers.clear()
        logging.getLogger(server).propagate = True
    for noisy in ("nats", "urllib3", "httpx", "diffusers", "transformers"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,  # the traceback as text, so that it is redacted too
            _redact,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(stream),
        cache_logger_on_first_use=False,
    )
