"""The key a client is limited and counted by, from its address.

An IPv4 address is one client. An IPv6 client is its /64: that is the smallest network a
site or a host is given, and a host picks any address in it (privacy addresses, one per
connection if it likes). Keyed per address, one host could rotate its source address
past every per-address limit and lockout, and count as a new reader with each request.
An IPv4-mapped IPv6 address (``::ffff:a.b.c.d``, how a dual-stack socket shows an IPv4
peer) is that IPv4 address, so one client has one key whichever socket it came in on.
Anything that is no address (``"unknown"``, a proxy's odd header) is keyed as itself.

The security log keeps the full address: only limits and counts use the key.
"""

from __future__ import annotations

import functools
import ipaddress

IPV6_CLIENT_PREFIX = 64
_HOST_BITS = 128 - IPV6_CLIENT_PREFIX


def client_key(address: str) -> str:
    """The key ``address`` is limited and counted by: an IPv4 address itself, an IPv6
    address its /64 (``"2001:db8:1:2::/64"``)."""
    if ":" not in address:
        return address  # IPv4 (or no address at all): nothing to parse on the hot path
    return _ipv6_key(address)


# A client sends many requests: the parse is made once per address, not per request.
@functools.lru_cache(maxsize=4096)
def _ipv6_key(address: str) -> str:
    try:
        ip = ipaddress.IPv6Address(address)
    except ValueError:
        return address
    mapped = ip.ipv4_mapped
    if mapped is not None:
        return str(mapped)
    network = ipaddress.IPv6Address(int(ip) >> _HOST_BITS << _HOST_BITS)
    return f"{network}/{IPV6_CLIENT_PREFIX}"
