"""Block network access from tests: only loopback and local (unix) sockets may be used.

The course promises to run offline (no model hub, no dataset download), and the tests hold it
to that promise. `install()` patches, in the Python `socket` module:

- the socket methods that take a destination: `socket.socket.connect`, `connect_ex`,
  `sendto` and `sendmsg`. A destination that is not loopback (or unspecified) raises;
  a host name other than the local names is refused without resolving it.
- name resolution: `socket.getaddrinfo`, `gethostbyname`, `gethostbyname_ex`,
  `gethostbyaddr` and `getnameinfo`. Numeric addresses, None and the local names
  ("localhost", "*.localhost", this machine's own host name) pass; any other name raises
  before a DNS query is sent (reverse lookups of a non-loopback address too).

Every Python-level client goes through these (`socket.create_connection`, http.client,
urllib, requests/urllib3, asyncio). A refusal raises `NetworkBlockedError` (an `OSError`, so
client libraries report a failed connection) naming the address or name. Not covered: C
extensions that open sockets or resolve names in their own code (libcurl, gRPC, torch's
gloo/nccl), and code calling the private `_socket` module directly.

Loopback stays open because the Jupyter kernel that runs a notebook talks to pytest over
127.0.0.1.

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


def _guarded_sendmsg(self, buffers, *args):
    # sendmsg(buffers[, ancdata[, flags[, address]]])
    if len(args) >= 3 and args[2] is not None:
        _check(self, args[2])
    return _ORIGINAL["sendmsg"](self, buffers, *args)


def _name_is_local(host) -> bool:
    """A name whose lookup sends no query out: None, a numeric address, a local name."""
    if host is None:
        return True
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    host = str(host).split("%", 1)[0]
    if _host_is_local(host) or host.lower() == _ORIGINAL_HOSTNAME.lower():
        return True
    try:
        ipaddress.ip_address(host)
        return True  # numeric: resolved without DNS (connecting to it is checked apart)
    except ValueError:
        return False


def _refuse_name(host, what: str):
    raise NetworkBlockedError(
        f"name resolution blocked in tests: {what}({host!r}) "
        "(the course runs offline; only local names resolve; "
        "set COURSE_ALLOW_NETWORK=1 to lift the guard)"
    )


def _guard_forward(name):
    def guarded(host, *args, **kwargs):
        if not _name_is_local(host):
            _refuse_name(host, name)
        return _ORIGINAL["module." + name](host, *args, **kwargs)
    guarded.__name__ = name
    return guarded


def _guard_reverse(name):
    def guarded(address, *args, **kwargs):
        host = address[0] if isinstance(address, tuple) and address else address
        if not _host_is_local(host) and str(host).lower() != _ORIGINAL_HOSTNAME.lower():
            _refuse_name(host, name)
        return _ORIGINAL["module." + name](address, *args, **kwargs)
    guarded.__name__ = name
    return guarded


_ORIGINAL_HOSTNAME = socket.gethostname()
_FORWARD = ("getaddrinfo", "gethostbyname", "gethostbyname_ex")
_REVERSE = ("gethostbyaddr", "getnameinfo")


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
        ("sendmsg", _guarded_sendmsg),
    ):
        if hasattr(socket.socket, name):  # no sendmsg on Windows
            _ORIGINAL[name] = getattr(socket.socket, name)
            setattr(socket.socket, name, guarded)
    for names, make in ((_FORWARD, _guard_forward), (_REVERSE, _guard_reverse)):
        for name in names:
            _ORIGINAL["module." + name] = getattr(socket, name)
            setattr(socket, name, make(name))
    return True


def uninstall() -> None:
    for name, original in _ORIGINAL.items():
        if name.startswith("module."):
            setattr(socket, name.removeprefix("module."), original)
        else:
            setattr(socket.socket, name, original)
    _ORIGINAL.clear()
