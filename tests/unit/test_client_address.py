"""The key a client is limited and counted by: an IPv4 address, an IPv6 client's /64."""

from __future__ import annotations

import ipaddress

from hypothesis import given
from hypothesis import strategies as st

from bloghub.client_address import client_key

HOST_BITS = 2**64


def test_an_ipv4_address_is_its_own_key() -> None:
    assert client_key("198.51.100.7") == "198.51.100.7"
    assert client_key("198.51.100.8") != client_key("198.51.100.7")


def test_an_ipv4_mapped_address_is_the_ipv4_client() -> None:
    assert client_key("::ffff:198.51.100.7") == "198.51.100.7"
    assert client_key("::FFFF:c633:6407") == "198.51.100.7"


def test_an_ipv6_address_is_keyed_by_its_64() -> None:
    assert client_key("2001:db8:1:2:aaaa:bbbb:cccc:dddd") == "2001:db8:1:2::/64"
    assert client_key("2001:DB8:1:2::1") == "2001:db8:1:2::/64", "however it is written"
    assert client_key("2001:db8:1:3::1") == "2001:db8:1:3::/64"


def test_an_ipv6_address_standing_for_an_ipv4_client_is_that_client() -> None:
    # NAT64 (RFC 6052's well-known prefix): each IPv4 client behind it is its own client.
    assert client_key("64:ff9b::c633:6407") == "198.51.100.7"
    assert client_key("64:ff9b::cb00:7101") == "203.0.113.1"
    assert client_key("2002:c633:6407::1") == "198.51.100.7"  # 6to4
    teredo = "2001:0:4136:e378:8000:63bf:3fff:fdd2"  # the client's address, obfuscated
    assert client_key(teredo) == "192.0.2.45"


def test_what_is_no_address_is_its_own_key() -> None:
    for junk in ("unknown", "", "not:an:address", "2001:db8::1::2", "1.2.3.4:80:x"):
        assert client_key(junk) == junk


# Not the /64s whose addresses stand for IPv4 clients (mapped, NAT64, 6to4, Teredo).
_IPV4_WITHIN = [
    ipaddress.IPv6Network(n) for n in ("::/64", "64:ff9b::/96", "2002::/16", "2001::/32")
]


def _plain(network: int) -> bool:
    first = ipaddress.IPv6Address(network * HOST_BITS)
    return not any(first in n for n in _IPV4_WITHIN)


_networks = st.integers(min_value=1, max_value=2**64 - 1).filter(_plain)
_hosts = st.integers(min_value=0, max_value=HOST_BITS - 1)


def _address(network: int, host: int) -> str:
    return str(ipaddress.IPv6Address(network * HOST_BITS + host))


@given(_networks, _hosts, _hosts)
def test_every_address_of_one_64_is_one_client(network: int, one: int, other: int) -> None:
    assert client_key(_address(network, one)) == client_key(_address(network, other))


@given(_networks, _networks, _hosts)
def test_addresses_of_different_64s_are_different_clients(
    network: int, other_network: int, host: int
) -> None:
    same = network == other_network
    keys_equal = client_key(_address(network, host)) == client_key(_address(other_network, host))
    assert keys_equal == same
