"""The NATS and S3 clients' options from the settings: credentials and TLS (docs/security.md).

Nothing set: an open loopback server, as local mode starts.
"""

from __future__ import annotations

import ssl
from typing import Any

from reelforge_shared.settings import CommonSettings


def inbox_prefix(service: str) -> str:
    """Replies to a service's requests come here; only that service may subscribe to it."""
    return f"_INBOX_{service}"


def nats_connect_options(settings: CommonSettings, service: str | None = None) -> dict[str, Any]:
    """Credentials and TLS for ``nats.connect``, from the settings (nothing set: an open loopback server)."""
    options: dict[str, Any] = {}
    if settings.nats_user:
        options["user"] = settings.nats_user
        options["password"] = settings.nats_password.get_secret_value() if settings.nats_password else ""
    if settings.nats_token:
        options["token"] = settings.nats_token.get_secret_value()
    if settings.nats_creds_file:
        options["user_credentials"] = settings.nats_creds_file
    if settings.nats_nkey_seed_file:
        options["nkeys_seed"] = settings.nats_nkey_seed_file
    if settings.nats_tls_ca or settings.nats_tls_cert:
        context = ssl.create_default_context(cafile=settings.nats_tls_ca)
        if settings.nats_tls_cert:
            context.load_cert_chain(settings.nats_tls_cert, settings.nats_tls_key)
        options["tls"] = context
    if service:
        options["inbox_prefix"] = inbox_prefix(service)
    return options
