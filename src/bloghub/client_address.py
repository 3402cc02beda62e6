"""The key a client is limited and counted by, from its address.

An IPv4 address is one client. An IPv6 client is its /64: that is the smallest network a
site or a host is given, and a host picks any address in it (privacy addresses, one per
connection if it likes). Keyed per address, one host could rotate its source address
past every per-address limit and lockout, and count as a new reader with each request.
An IPv6 address that stands for an IPv4 client is that IPv4 address: IPv4-mapped
(``::ffff:a.b.c.d``, how a dual-stack socket shows an IPv4 peer), NAT64's ``64:ff9b::/96``,
6to4 and Teredo; so one client has one key whichever way it came in, and the IPv4 clients
behind one translator are not one client. A client holding a larger prefix (a /56 or /48
delegation has 256 or 65,536 /64s) can still rotate through its /64s.
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
    embedded = _ipv4_within(ip)
    if embedded is not None:
        return str(embedded)
    network = ipaddress.IPv6Address(int(ip) >> _HOST_BITS << _HOST_BITS)
    return f"{network}/{IPV6_CLIENT_PREFIX}"


# RFC 6052's well-known prefix: a NAT64 translator shows an IPv4 client as this /96 and
# its address. Keyed by /64, every IPv4 client behind it would be one client.
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


def _ipv4_within(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 client an IPv6 address stands for, if it is one: mapped (a dual-stack
    socket), translated (NAT64), 6to4 or Teredo. Those carry the client's IPv4 address in
    bits a /64 would cut through or leave out."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip.sixtofour is not None:
        return ip.sixtofour
    return ip.teredo[1] if ip.teredo is not None else None
