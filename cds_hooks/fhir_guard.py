"""Where fetch-back may go: `fhirServer` URLs parsed and compared by component, and addresses vetted.

A hook call names the FHIR server we send the EHR's bearer token to, so that URL is attacker-chosen
input. Checks, none of them on strings:

- `parse_server_url`: http(s) only, no userinfo (`https://fhir.a.org@attacker.net`), the host lower-cased
  and IDNA-normalised, every numeric IPv4 spelling (`2130706433`, `0x7f.1`, `0177.0.0.1`, `127.1`) read
  as the address it is, the default port made explicit, the path split into whole segments (no `.`/`..`
  or encoded `/`).
- `within`: a URL is under an allowlisted base when scheme, host and port are equal and the base's
  segments are a prefix of its segments (`/fhir` admits `/fhir/r4`, never `/fhir-a-evil`).
- `forbidden_address`: loopback, link-local, private, shared, unspecified, reserved and multicast
  addresses, also when embedded in IPv6 (IPv4-mapped, NAT64, 6to4).
- `GuardedBackend`: the connect step of our FHIR client. It resolves the host name itself, refuses the
  connection when any resolved address is forbidden, and connects to the address it vetted (TLS still
  verifies the certificate against the host name), so a DNS answer that changes between the check and
  the connection (rebinding) cannot move the request. The client never goes through a proxy from the
  environment (HTTPS_PROXY, ALL_PROXY): a proxy would resolve the host itself and escape this check, so
  fetch-back connects directly or not at all.

Messages name what was wrong, never the URL: it is client input and may carry a token.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Final
from urllib.parse import unquote, urlsplit

import httpcore
import httpx
import idna

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Awaitable[Sequence[str]]]

DEFAULT_PORTS: Final = {"http": 80, "https": 443}
_HOST_NAME = re.compile(r"[a-z0-9_](?:[a-z0-9_-]*[a-z0-9_])?(?:\.[a-z0-9_](?:[a-z0-9_-]*[a-z0-9_])?)*")
_NUMERIC_LABEL = re.compile(r"[0-9]+|0x[0-9a-f]*")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


class UnsafeUrl(ValueError):
    """The URL cannot be a FHIR base we fetch from; the message names the reason, not the URL."""


@dataclass(frozen=True, slots=True)
class ServerUrl:
    scheme: str
    host: str  # lower-case A-label name, or the canonical text of an IP address
    port: int
    segments: tuple[str, ...]
    address: IPAddress | None  # set when the host is an IP address, however it was spelt


def _normalise_host(raw: str) -> tuple[str, IPAddress | None]:
    host = raw[:-1] if raw.endswith(".") else raw
    if not host:
        raise UnsafeUrl("the URL has no host")
    if ":" in host:
        if "%" in host:
            raise UnsafeUrl("IPv6 zone identifiers are not accepted")
        try:
            v6 = ipaddress.IPv6Address(host)
        except ValueError:
            raise UnsafeUrl("the URL's host is not a valid IPv6 address") from None
        return str(v6), v6
    if not host.isascii():
        try:
            host = idna.encode(host, uts46=True).decode("ascii")
        except idna.IDNAError:
            raise UnsafeUrl("the URL's host is not a valid internationalised name") from None
    host = host.lower()
    if _NUMERIC_LABEL.fullmatch(host.rsplit(".", 1)[-1]):
        # A host ending in a number is an IPv4 address to every URL parser and resolver, in any of the
        # BSD spellings inet_aton reads (decimal, octal, hex, 1 to 4 parts); otherwise it is no host.
        try:
            v4 = ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            raise UnsafeUrl("the URL's host is a malformed IPv4 address") from None
        return str(v4), v4
    if not _HOST_NAME.fullmatch(host) or len(host) > 253:
        raise UnsafeUrl("the URL's host is not a valid host name")
    return host, None


def parse_server_url(url: str) -> ServerUrl:
    """The components fetch-back compares; UnsafeUrl for anything that is no plain http(s) base URL."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        raise UnsafeUrl("the URL cannot be parsed") from None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise UnsafeUrl("only http and https URLs are accepted")
    if "@" in parts.netloc:
        raise UnsafeUrl("URLs with user information (user@host) are not accepted")
    if "\\" in url:
        raise UnsafeUrl("URLs with a backslash are not accepted")
    host, address = _normalise_host(parts.hostname or "")
    segments = tuple(unquote(s) for s in parts.path.split("/") if s)
    if any(s in (".", "..") or "/" in s for s in segments):
        raise UnsafeUrl("the URL's path holds dot segments or an encoded slash")
    return ServerUrl(scheme, host, port or DEFAULT_PORTS[scheme], segments, address)


def within(url: ServerUrl, base: ServerUrl) -> bool:
    """Same scheme, host and port, and the base's path segments are the first of the URL's."""
    return (
        url.scheme == base.scheme
        and url.host == base.host
        and url.port == base.port
        and url.segments[: len(base.segments)] == base.segments
    )


def embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one carries (IPv4-mapped, NAT64, 6to4), which is where it leads."""
    if isinstance(address, ipaddress.IPv4Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address.sixtofour


def forbidden_address(address: IPAddress) -> bool:
    """Anything but a global unicast address: loopback, private, link-local, multicast, reserved..."""
    inner = embedded_ipv4(address)
    if inner is not None:
        if forbidden_address(inner):
            return True
        if isinstance(address, ipaddress.IPv6Address) and (address.ipv4_mapped or address in _NAT64):
            return False  # the IPv4 address decides: Python counts all of ::ffff:0:0/96 as private
    return (
        not address.is_global
        or address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
    )


class ForbiddenAddress(httpx.ConnectError):
    """The FHIR server's host is, or resolves to, an address fetch-back may not reach."""


async def system_resolver(host: str, port: int) -> Sequence[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def _addresses(texts: Iterable[str]) -> list[IPAddress]:
    found: list[IPAddress] = []
    for text in texts:
        address = ipaddress.ip_address(text.split("%", 1)[0])
        if address not in found:
            found.append(address)
    return found


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """Resolves, refuses forbidden addresses, and connects to the vetted address (pinned, not re-resolved)."""

    def __init__(
        self,
        allow_private: bool,
        resolve: Resolver = system_resolver,
        inner: httpcore.AsyncNetworkBackend | None = None,
    ) -> None:
        self._allow_private = allow_private
        self._resolve = resolve
        self._inner = inner or httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            name, literal = _normalise_host(host)
        except UnsafeUrl as exc:
            raise ForbiddenAddress(str(exc)) from None
        if literal is not None:
            addresses = [literal]
        else:
            try:
                addresses = _addresses(await self._resolve(name, port))
            except (OSError, ValueError):
                raise httpcore.ConnectError("the FHIR server's host name did not resolve") from None
            if not addresses:
                raise httpcore.ConnectError("the FHIR server's host name did not resolve")
        if not self._allow_private and any(forbidden_address(a) for a in addresses):
            raise ForbiddenAddress("the FHIR server's host is or resolves to a non-public address")
        last: Exception = httpcore.ConnectError("no address could be reached")
        for address in addresses:
            try:
                return await self._inner.connect_tcp(
                    str(address), port, timeout, local_address, socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last = exc
        raise last

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise ForbiddenAddress("unix sockets are not FHIR servers")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class GuardedTransport(httpx.AsyncHTTPTransport):
    """httpx's transport with `GuardedBackend` as its connect step.

    httpx takes no network backend of its own, so the connection pool it builds is replaced by one that
    has ours, with the same TLS and limits.
    """

    def __init__(
        self,
        allow_private: bool,
        limits: httpx.Limits,
        resolve: Resolver = system_resolver,
    ) -> None:
        super().__init__(limits=limits)
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=GuardedBackend(allow_private, resolve),
        )


def fhir_client(
    allow_private: bool, resolve: Resolver = system_resolver, limits: httpx.Limits | None = None
) -> httpx.AsyncClient:
    """The client fetch-back uses: no redirects followed, every connection through `GuardedBackend`."""
    limits = limits or httpx.Limits(max_connections=64, max_keepalive_connections=16)
    return httpx.AsyncClient(
        follow_redirects=False,
        transport=GuardedTransport(allow_private, limits, resolve),
        headers={"User-Agent": "r1-cds"},
    )


def refusal(url: str, *, allow_http: bool, allow_private: bool, allowlist: Iterable[str]) -> str | None:
    """Why fetch-back may not go to `url` (a reason in our words, naming no part of it), or None.

    The static checks: the address a host name resolves to is checked when connecting (`GuardedBackend`).
    """
    try:
        target = parse_server_url(url)
    except UnsafeUrl as exc:
        return f"fhirServer refused: {exc}"
    if target.scheme == "http" and not allow_http:
        return "fhirServer refused: plain-http FHIR servers are off (R1CDS_FHIR_ALLOW_HTTP)"
    if not allow_private and (
        (target.address is not None and forbidden_address(target.address))
        or target.host == "localhost"
        or target.host.endswith(".localhost")
    ):
        return "fhirServer refused: a loopback, private or link-local address (R1CDS_FHIR_ALLOW_PRIVATE_NETWORKS)"
    bases = [parse_server_url(entry) for entry in allowlist]
    if bases and not any(within(target, base) for base in bases):
        return "fhirServer is not on this deployment's allowlist"
    return None
