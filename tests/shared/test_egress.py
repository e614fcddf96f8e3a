"""The egress guard against real local HTTP servers: rebinding, smuggled addresses, redirects, tricklers, big answers.

The servers listen on 127.0.0.2 (standing for a public host: the policy names it in ``allow_networks``)
and on 127.0.0.1 (the internal target an attacker wants). On Linux all of 127/8 is loopback.
"""

from __future__ import annotations

import asyncio
import ipaddress
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from reelforge_shared.egress import Egress, EgressFailed, EgressPolicy, EgressRefused, refusal
from support.egress_servers import INTERNAL, PUBLIC, Server, public_and_internal, stop, tls_for


@pytest.fixture
async def servers() -> AsyncIterator[tuple[Server, Server]]:
    public, internal = await public_and_internal()
    yield public, internal
    await stop(public, internal)


def guard(**policy: object) -> Egress:
    allow = (ipaddress.ip_network(f"{PUBLIC}/32"),)
    return Egress(policy=EgressPolicy(allow_networks=allow, **policy), resolver=lambda host, port: [PUBLIC])  # type: ignore[arg-type]


async def test_a_rebinding_name_is_connected_at_the_address_that_was_checked(servers: tuple[Server, Server]) -> None:
    public, internal = servers
    answers = iter([[PUBLIC], [INTERNAL], [INTERNAL], [INTERNAL]])  # TTL 0: public for the check, then loopback

    egress = Egress(
        policy=EgressPolicy(allow_networks=(ipaddress.ip_network(f"{PUBLIC}/32"),)),
        resolver=lambda host, port: next(answers),
    )
    response = await egress.request("POST", public.url("/hook", name="hooks.example"), content=b"signed")
    await egress.aclose()
    assert response.status_code == 200
    assert len(public.requests) == 1
    assert internal.requests == []
    assert b"host: hooks.example:" in public.requests[0].lower()  # the name stays the Host header


async def test_a_name_answering_loopback_is_refused_before_anything_is_sent(servers: tuple[Server, Server]) -> None:
    public, internal = servers
    egress = Egress(resolver=lambda host, port: [INTERNAL])
    with pytest.raises(EgressRefused, match="loopback"):
        await egress.request("POST", internal.url("/hook", name="hooks.example"), content=b"x")
    with pytest.raises(EgressRefused, match="loopback"):
        await egress.check(internal.url("/hook", name="hooks.example"))
    assert internal.requests == []


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "loopback"),
        ("10.1.2.3", "private"),
        ("169.254.169.254", "link-local"),
        ("100.64.0.1", "private/reserved"),  # CGNAT
        ("224.0.0.1", "multicast"),
        ("0.0.0.0", "unspecified"),  # noqa: S104 (an address checked, nothing bound)
        ("::1", "loopback"),
        ("::", "unspecified"),
        ("fe80::1", "link-local"),
        ("fc00::1", "private"),
        ("ff02::1", "multicast"),
        ("::ffff:169.254.169.254", "IPv4-mapped form of 169.254.169.254, a link-local"),
        ("::ffff:127.0.0.1", "form of 127.0.0.1"),
        ("64:ff9b::a9fe:a9fe", "NAT64 form of 169.254.169.254"),  # NAT64 of the metadata service
        ("64:ff9b::7f00:1", "form of 127.0.0.1"),
        ("64:ff9b:1::a9fe:a9fe", "local-use NAT64"),
        ("2002:a9fe:a9fe::", "6to4"),
        ("2002:7f00:1::", "6to4"),
        ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "Teredo"),
        ("::a9fe:a9fe", "IPv4-compatible"),
        ("::7f00:1", "IPv4-compatible"),
    ],
)
def test_internal_addresses_and_their_ipv6_forms_are_refused(address: str, reason: str) -> None:
    found = refusal(ipaddress.ip_address(address))
    assert found is not None
    assert reason in found


def test_public_addresses_and_their_nat64_form_are_allowed() -> None:
    for address in ("93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946", "64:ff9b::5db8:d822", "::ffff:93.184.216.34"):
        assert refusal(ipaddress.ip_address(address)) is None, address


async def test_a_nat64_name_for_the_metadata_service_is_refused(servers: tuple[Server, Server]) -> None:
    egress = Egress(resolver=lambda host, port: ["93.184.216.34", "64:ff9b::a9fe:a9fe"])  # one bad answer is enough
    with pytest.raises(EgressRefused, match="169.254.169.254"):
        await egress.request("GET", "http://metadata.example/latest")


async def test_a_redirect_to_loopback_is_not_followed(servers: tuple[Server, Server]) -> None:
    public, internal = servers

    async def to_loopback(writer: asyncio.StreamWriter) -> None:
        writer.write(f"HTTP/1.1 302 Found\r\nLocation: {internal.url('/admin')}\r\nContent-Length: 0\r\n\r\n".encode())
        await writer.drain()

    public.answer = to_loopback
    egress = guard(max_redirects=5)
    with pytest.raises(EgressRefused, match="127.0.0.1.*loopback"):
        await egress.request("GET", public.url("/image.png"))
    assert len(public.requests) == 1
    assert internal.requests == []


async def test_a_redirect_to_an_allowed_target_is_followed_and_a_scheme_change_is_refused(servers: tuple[Server, Server]) -> None:
    public, _ = servers
    hops = iter([public.url("/next"), "file:///etc/passwd"])

    async def redirect(writer: asyncio.StreamWriter) -> None:
        writer.write(f"HTTP/1.1 302 Found\r\nLocation: {next(hops)}\r\nContent-Length: 0\r\n\r\n".encode())
        await writer.drain()

    public.answer = redirect
    with pytest.raises(EgressRefused, match="file://"):
        await guard(max_redirects=5).request("GET", public.url("/first"))
    assert len(public.requests) == 2


async def test_a_trickling_target_is_cut_at_the_deadline(servers: tuple[Server, Server]) -> None:
    public, _ = servers
    stop = asyncio.Event()

    async def trickle(writer: asyncio.StreamWriter) -> None:  # a byte every 0.1 s for up to 100 s: no read ever waits long
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")
        for _ in range(1000):
            if stop.is_set():
                return
            writer.write(b".")
            await writer.drain()
            await asyncio.sleep(0.1)

    public.answer = trickle
    with pytest.raises(EgressFailed, match="0.5 s deadline"):
        await guard(deadline_s=0.5).request("GET", public.url("/slow"))
    stop.set()


async def test_an_answer_over_the_cap_is_refused(servers: tuple[Server, Server]) -> None:
    public, _ = servers

    async def big(writer: asyncio.StreamWriter) -> None:  # no Content-Length: the cap holds on what arrives
        writer.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + b"x" * 5000)
        await writer.drain()

    public.answer = big
    with pytest.raises(EgressRefused, match="1000-byte cap"):
        await guard(max_bytes=1000).request("GET", public.url("/big"))
    assert (await guard(max_bytes=5000).request("GET", public.url("/big"))).content == b"x" * 5000


async def test_resolution_does_not_block_the_event_loop(servers: tuple[Server, Server]) -> None:
    public, _ = servers
    loop_ran = threading.Event()

    def slow_resolver(host: str, port: int) -> list[str]:
        # Answers only once a task on the event loop has run: resolving on the loop would never see it.
        if not loop_ran.wait(timeout=5):
            raise OSError("the event loop was blocked while resolving")
        return [PUBLIC]

    async def on_the_loop() -> None:
        loop_ran.set()

    egress = Egress(policy=EgressPolicy(allow_networks=(ipaddress.ip_network(f"{PUBLIC}/32"),)), resolver=slow_resolver)
    response, _ = await asyncio.gather(egress.request("GET", public.url("/", name="slow-dns.example")), on_the_loop())
    assert response.status_code == 200


async def test_other_schemes_and_unix_sockets_are_refused() -> None:
    egress = Egress(policy=EgressPolicy(allow_private=True, schemes=frozenset({"https"})))
    for url in ("http://example.com/x", "file:///etc/passwd", "gopher://example.com/", "https:///nohost", "https://[::1"):
        with pytest.raises(EgressRefused, match="url"):
            await egress.request("GET", url)


async def test_allow_private_lets_local_targets_through(servers: tuple[Server, Server]) -> None:
    _, internal = servers
    egress = Egress(policy=EgressPolicy(allow_private=True))
    assert (await egress.request("GET", internal.url("/local"))).content == b"ok"


async def test_https_to_the_checked_address_keeps_the_name_for_sni_and_the_certificate(tmp_path: Path) -> None:
    tls, trust = tls_for("media.example", tmp_path)
    names: list[str | None] = []
    tls.sni_callback = lambda sock, name, ctx: names.append(name)  # type: ignore[assignment,misc,return-value]
    public = await Server(PUBLIC, tls=tls).start()
    allow = (ipaddress.ip_network(f"{PUBLIC}/32"),)
    egress = Egress(policy=EgressPolicy(allow_networks=allow), resolver=lambda host, port: [PUBLIC], verify=trust)
    try:
        response = await egress.request("GET", public.url("/a.png", name="media.example"))
        assert response.content == b"ok"
        assert names == ["media.example"]
        assert b"host: media.example:" in public.requests[0].lower()
        with pytest.raises(EgressFailed, match="certificate|hostname|IP address mismatch"):  # verification is on
            await egress.request("GET", public.url("/a.png"))
    finally:
        await egress.aclose()
        assert public.server is not None
        public.server.close()


async def test_loopback_in_odd_ipv4_spellings_is_refused(servers: tuple[Server, Server]) -> None:
    _, internal = servers
    egress = Egress()  # the system resolver: it reads these spellings as 127.0.0.1 without asking DNS
    for host in ("2130706433", "0x7f.1", "127.1", "0177.0.0.1", "[::ffff:127.0.0.1]", "[::1]"):
        with pytest.raises(EgressRefused, match="loopback|is not a URL"):
            await egress.request("GET", f"http://{host}:{internal.port}/admin")
    assert internal.requests == []
