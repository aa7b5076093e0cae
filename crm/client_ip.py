"""The address a request came from, for the audit log and the sign-in rate limits.

X-Forwarded-For is written by whoever sends the request, so it is believed only as far as it was
written by proxies this deployment names in TRUSTED_PROXIES (addresses or networks). Reading it
from the right, each hop added by a trusted proxy is skipped; the first address that is not a
trusted proxy is the client. With no trusted proxies configured, the header is ignored and the
socket's peer (REMOTE_ADDR) is the client.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache

from django.conf import settings


@lru_cache(maxsize=8)
def _networks(
    entries: tuple[str, ...],
) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(entry.strip(), strict=False) for entry in entries if entry)


def _address(text: str):
    try:
        return ipaddress.ip_address(text.strip())
    except ValueError:
        return None


def _is_trusted(address, networks) -> bool:
    return address is not None and any(address in network for network in networks)


def client_ip(request) -> str | None:
    """The client's address as far as trusted proxies vouch for it; None when unknown."""
    peer = _address(request.META.get("REMOTE_ADDR", "") or "")
    networks = _networks(tuple(getattr(settings, "TRUSTED_PROXIES", ()) or ()))
    if not _is_trusted(peer, networks):
        return str(peer) if peer is not None else None
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
    client = peer
    for hop in reversed(forwarded.split(",")):
        address = _address(hop)
        if address is None:
            break  # garbage in the chain: stop at the last address a trusted proxy vouched for
        client = address
        if not _is_trusted(address, networks):
            break
    return str(client) if client is not None else None
