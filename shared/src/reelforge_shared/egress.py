"""The one way out of the cluster: every outbound HTTP request a storyboard or a job can steer goes through here.

Webhooks (the uploader) and reference fetches (the gateway) use :class:`Egress`. What it guarantees:

- **One resolution, off the event loop, and the connection goes to the checked address.** The name is
  resolved once per connection by the resolver function (``getaddrinfo`` by default) in a worker
  thread; every address is checked; the socket connects to a checked address, never to a second
  answer (a TTL-0 name that answers public, then 127.0.0.1, cannot steer it). The URL's host stays
  the ``Host`` header and the TLS server name (SNI and certificate check), so HTTPS still verifies.
- **No internal targets.** Refused: loopback, private, link-local, CGNAT (100.64/10), multicast,
  unspecified, reserved and documentation ranges (anything :attr:`ipaddress.IPv4Address.is_global`
  calls not global), and the IPv6 forms that smuggle an IPv4 address: IPv4-mapped ``::ffff:a.b.c.d``
  and NAT64 ``64:ff9b::a.b.c.d`` are judged by the IPv4 address inside; IPv4-compatible ``::/96``,
  local-use NAT64 ``64:ff9b:1::/48``, 6to4 ``2002::/16`` and Teredo ``2001::/32`` are refused whole
  (the relay, not this check, decides where they end up). ``allow_private`` (tests, local mode) lifts
  the address rule; ``allow_networks`` lifts it for named networks only.
- **Redirects re-checked.** At most ``max_redirects`` hops are followed, each one a new request
  whose scheme and address are checked again; a redirect to a refused target is refused.
- **One deadline per request**, covering resolution, connection, every redirect and the whole body:
  a target that trickles a byte a second is cut at the deadline, not kept alive by each byte.
- **A cap on the answer**: a body (or a declared ``Content-Length``) over ``max_bytes`` is refused.
- **No proxies from the environment** (``trust_env=False``): the check is about where the socket goes.

Failures are typed by what retrying can change: :class:`EgressRefused` (an :class:`InvalidInput`:
the target is not allowed, too big, a bad scheme) and :class:`EgressFailed` (a
:class:`TransientError`: unreachable, timed out, the name did not resolve).

httpx and httpcore do the HTTP and TLS; this module only supplies httpcore's network backend (where
sockets are opened) and the request loop. The young SSRF wrappers on PyPI were not taken: none has
a track record, and what they would save is the 30 lines of :class:`_CheckedBackend`.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import anyio.to_thread
import httpcore
import httpx

from reelforge_shared.errors import InvalidInput, TransientError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], Sequence[str]]
"""``(host, port) -> addresses``; blocking is fine, it runs in a worker thread."""

_MAPPED = ipaddress.ip_network("::ffff:0:0/96")
_COMPATIBLE = ipaddress.ip_network("::/96")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_REFUSED_WHOLE = {
    ipaddress.ip_network("64:ff9b:1::/48"): "local-use NAT64",
    ipaddress.ip_network("2002::/16"): "6to4",
    ipaddress.ip_network("2001::/32"): "Teredo",
}


class EgressRefused(InvalidInput):
    """The target is not allowed (address, scheme, redirect) or its answer is over the cap."""


class EgressFailed(TransientError):
    """The target could not be reached in time: unresolvable, refused the connection, too slow."""


def system_resolver(host: str, port: int) -> list[str]:
    return [str(info[4][0]) for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)]


def refusal(address: IPAddress) -> str | None:
    """Why ``address`` is not a public destination, or None when it is."""
    if isinstance(address, ipaddress.IPv6Address):
        for network, name in _REFUSED_WHOLE.items():
            if address in network:
                return f"{name} address"
        inner = address.ipv4_mapped
        if inner is None and address in _NAT64:
            inner = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if inner is not None:
            reason = refusal(inner)
            form = "IPv4-mapped" if address.ipv4_mapped else "NAT64"
            return None if reason is None else f"{form} form of {inner}, a {reason}"
        if address in _COMPATIBLE and int(address) > 1:  # :: and ::1 are judged below
            return "IPv4-compatible address"
    if address.is_multicast:
        return "multicast address"
    if address.is_loopback:
        return "loopback address"
    if address.is_unspecified:
        return "unspecified address"
    if address.is_link_local:
        return "link-local address"
    if not address.is_global:
        return "private/reserved address"
    return None


@dataclass(kw_only=True, frozen=True)
class EgressPolicy:
    allow_private: bool = False  # tests and local mode only
    allow_networks: tuple[IPNetwork, ...] = ()  # named internal networks allowed in spite of the address rule
    schemes: frozenset[str] = frozenset({"http", "https"})
    deadline_s: float = 10.0  # the whole request: resolve, connect, redirects, body
    max_bytes: int = 1 << 20  # the answer's body
    max_redirects: int = 0

    def check_address(self, address: IPAddress, host: str) -> None:
        if self.allow_private or any(address in net for net in self.allow_networks):
            return
        if (reason := refusal(address)) is not None:
            where = f"{address} is" if host == str(address) else f"{host} resolves to {address},"
            raise EgressRefused(f"{where} a {reason}: refused as an egress target")


@dataclass(kw_only=True, frozen=True)
class EgressResponse:
    url: str  # after redirects
    status_code: int
    headers: httpx.Headers
    content: bytes


class _CheckedBackend(httpcore.AsyncNetworkBackend):
    """httpcore's sockets, opened only to addresses the policy allows; the name resolved once, in a thread."""

    def __init__(self, policy: EgressPolicy, resolver: Resolver) -> None:
        self._policy, self._resolver, self._inner = policy, resolver, httpcore.AnyIOBackend()

    async def addresses(self, host: str, port: int) -> list[IPAddress]:
        try:
            literal: list[IPAddress] = [ipaddress.ip_address(host)]
        except ValueError:
            literal = []
        if literal:
            found = literal
        else:
            try:
                answers = await anyio.to_thread.run_sync(self._resolver, host, port, abandon_on_cancel=True)
            except (OSError, UnicodeError) as exc:
                raise EgressFailed(f"{host} does not resolve ({exc})") from exc
            found = [ipaddress.ip_address(a.split("%", 1)[0]) for a in answers]
        if not found:
            raise EgressFailed(f"{host} resolves to no address")
        for address in found:  # one refused answer refuses the name: the next resolution could pick it
            self._policy.check_address(address, host)
        return list(dict.fromkeys(found))

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        error: Exception | None = None
        for address in await self.addresses(host, port):
            try:
                return await self._inner.connect_tcp(str(address), port, timeout, local_address, socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                error = exc
        raise EgressFailed(f"{host}:{port} refused or did not answer the connection ({error})")

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.AsyncNetworkStream:
        raise EgressRefused("unix sockets are not an egress target")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class _CheckedTransport(httpx.AsyncHTTPTransport):
    def __init__(self, backend: _CheckedBackend, verify: ssl.SSLContext | bool) -> None:
        super().__init__(verify=verify, trust_env=False)
        # httpx does not take a network backend, httpcore does: the same pool httpx builds, on our backend.
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(verify=verify, trust_env=False),
            network_backend=backend,
            max_connections=100,
            max_keepalive_connections=20,
        )


@dataclass(kw_only=True)
class Egress:
    """An HTTP client for targets chosen outside the cluster (see the module docstring)."""

    policy: EgressPolicy = field(default_factory=EgressPolicy)
    resolver: Resolver = system_resolver
    verify: ssl.SSLContext | bool = True  # a test's own certificate authority
    _backend: _CheckedBackend = field(init=False, repr=False)
    _client_: httpx.AsyncClient | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self._backend = _CheckedBackend(self.policy, self.resolver)

    @property
    def _client(self) -> httpx.AsyncClient:
        """Made at the first request: building its TLS context reads the CA bundle, which :meth:`check` never needs."""
        if self._client_ is None:
            transport = _CheckedTransport(self._backend, self.verify)
            self._client_ = httpx.AsyncClient(transport=transport, follow_redirects=False, trust_env=False)
        return self._client_

    async def check(self, url: str, *, field: str = "url") -> None:
        """Refuse ``url`` now (scheme and resolved addresses) without sending anything; the name is resolved again at send."""
        host, port = self._target(url, field)
        if self.policy.allow_private:  # no address is refused: nothing to resolve now (a name may resolve only later)
            return
        try:
            async with asyncio.timeout(self.policy.deadline_s):
                await self._backend.addresses(host, port)
        except TimeoutError as exc:
            raise EgressFailed(f"{field}: {url!r}: resolving {host} took over {self.policy.deadline_s} s") from exc
        except EgressRefused as exc:
            raise EgressRefused(f"{field}: {url!r}: {exc}") from exc

    async def request(
        self, method: str, url: str, *, content: bytes | None = None, headers: dict[str, str] | None = None, field: str = "url"
    ) -> EgressResponse:
        """One request (at most ``max_redirects`` checked redirects) in the deadline; the body read whole, capped."""
        try:
            async with asyncio.timeout(self.policy.deadline_s):
                return await self._follow(method, url, content, headers, field)
        except TimeoutError as exc:
            raise EgressFailed(f"{field}: {url!r} did not answer within the {self.policy.deadline_s} s deadline") from exc
        except (EgressRefused, EgressFailed) as exc:  # raised where the socket is opened, which knows no field
            if str(exc).startswith(f"{field}: "):
                raise
            raise type(exc)(f"{field}: {url!r}: {exc}") from exc
        except httpx.InvalidURL as exc:  # e.g. a host httpx will not read (``0177.0.0.1``)
            raise EgressRefused(f"{field}: {url!r} is not a URL ({exc})") from exc
        except httpx.HTTPError as exc:
            raise EgressFailed(f"{field}: {url!r}: {type(exc).__name__}: {exc}") from exc

    async def aclose(self) -> None:
        if self._client_ is not None:
            await self._client_.aclose()

    async def _follow(
        self, method: str, url: str, content: bytes | None, headers: dict[str, str] | None, field: str
    ) -> EgressResponse:
        for hop in range(self.policy.max_redirects + 1):
            self._target(url, field)
            request = self._client.build_request(method, url, content=content, headers=headers)
            response = await self._client.send(request, stream=True)
            try:
                if response.is_redirect and hop < self.policy.max_redirects:
                    url = str(response.next_request.url) if response.next_request else url
                    if response.status_code in (301, 302, 303) and method != "HEAD":
                        method, content = "GET", None
                    continue
                body = await self._read_capped(response, url, field)
                return EgressResponse(url=url, status_code=response.status_code, headers=response.headers, content=body)
            finally:
                await response.aclose()
        raise EgressRefused(f"{field}: {url!r}: more than {self.policy.max_redirects} redirects")

    async def _read_capped(self, response: httpx.Response, url: str, field: str) -> bytes:
        cap = self.policy.max_bytes
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > cap:
            raise EgressRefused(f"{field}: {url!r} declares {declared} bytes, over the {cap}-byte cap")
        body = bytearray()
        async for chunk in response.aiter_bytes():
            body += chunk
            if len(body) > cap:
                raise EgressRefused(f"{field}: {url!r} sent over the {cap}-byte cap")
        return bytes(body)

    def _target(self, url: str, field: str) -> tuple[str, int]:
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as exc:
            raise EgressRefused(f"{field}: {url!r} is not a URL ({exc})") from exc
        if parts.scheme not in self.policy.schemes or not parts.hostname:
            raise EgressRefused(f"{field}: {url!r} is not an {'/'.join(sorted(self.policy.schemes))} URL with a host")
        return parts.hostname, port or (443 if parts.scheme == "https" else 80)
