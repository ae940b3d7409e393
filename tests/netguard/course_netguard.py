"""Block network access from tests: only loopback and local (unix) sockets may connect.

The course promises to run offline (no model hub, no dataset download), and the tests hold it
to that promise. `install()` patches `socket.socket.connect`, `connect_ex` and `sendto`, which
every Python-level client goes through (`socket.create_connection`, http.client, urllib,
requests, asyncio). An address that is not loopback raises `NetworkBlockedError` (an
`OSError`, so client libraries report it as a failed connection) naming the address.

Loopback stays open because the Jupyter kernel that runs a notebook talks to pytest over
127.0.0.1. A host name other than "localhost" is refused without resolving it, since the DNS
lookup would itself be network traffic.

Set COURSE_ALLOW_NETWORK=1 to switch the guard off.
"""

from __future__ import annotations

import ipaddress
import os
import socket

__all__ = ["NetworkBlockedError", "install", "uninstall", "is_installed", "is_local_address"]

_LOCAL_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"}
_ORIGINAL: dict[str, object] = {}


class NetworkBlockedError(OSError):
    """Raised when code under test tries to reach a non-loopback address."""


def _host_is_local(host) -> bool:
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    host = str(host).split("%", 1)[0]  # drop an IPv6 scope id ("fe80::1%eth0")
    if host == "" or host.lower() in _LOCAL_NAMES or host.lower().endswith(".localhost"):
        return True
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False  # a host name: refuse rather than resolve it through DNS
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback or ip.is_unspecified


def is_local_address(family, address) -> bool:
    """True when `address` (as passed to socket.connect) stays on this machine."""
    if family not in (socket.AF_INET, socket.AF_INET6):
        return True  # AF_UNIX, AF_NETLINK, ...: local by construction
    if not isinstance(address, tuple) or not address:
        return False
    return _host_is_local(address[0])


def _describe(address) -> str:
    if isinstance(address, tuple) and len(address) >= 2:
        host, port = address[0], address[1]
        return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
    return repr(address)


def _check(sock, address) -> None:
    if not is_local_address(sock.family, address):
        raise NetworkBlockedError(
            f"network access blocked in tests: {_describe(address)} "
            "(the course runs offline; only loopback is allowed; "
            "set COURSE_ALLOW_NETWORK=1 to lift the guard)"
        )


def _guarded_connect(self, address):
    _check(self, address)
    return _ORIGINAL["connect"](self, address)


def _guarded_connect_ex(self, address):
    _check(self, address)
    return _ORIGINAL["connect_ex"](self, address)


def _guarded_sendto(self, data, *args):
    # sendto(data, address) or sendto(data, flags, address)
    if args:
        _check(self, args[-1])
    return _ORIGINAL["sendto"](self, data, *args)


def is_installed() -> bool:
    return bool(_ORIGINAL)


def install() -> bool:
    """Patch the socket class; returns False when COURSE_ALLOW_NETWORK=1 or already done."""
    if os.environ.get("COURSE_ALLOW_NETWORK") == "1" or is_installed():
        return False
    for name, guarded in (
        ("connect", _guarded_connect),
        ("connect_ex", _guarded_connect_ex),
        ("sendto", _guarded_sendto),
    ):
        _ORIGINAL[name] = getattr(socket.socket, name)
        setattr(socket.socket, name, guarded)
    return True


def uninstall() -> None:
    for name, original in _ORIGINAL.items():
        setattr(socket.socket, name, original)
    _ORIGINAL.clear()
