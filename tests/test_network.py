"""The tests run offline: non-loopback connections fail, loopback (the kernel's channel) works.

The guard lives in tests/netguard/; conftest.py installs it in the pytest process and puts
tests/netguard on PYTHONPATH so subprocesses and notebook kernels load it at startup.
203.0.113.0/24 (TEST-NET-3, RFC 5737) is reserved for documentation: nothing answers there,
so a connection that got through would hang or be refused instead of raising our error.
"""

import os
import socket
import subprocess
import sys
import threading
import urllib.request

import pytest

OUTSIDE = ("203.0.113.1", 80)


def test_outside_connection_is_blocked_in_process():
    with pytest.raises(OSError, match=r"network access blocked in tests: 203\.0\.113\.1:80"):
        socket.create_connection(OUTSIDE, timeout=2)


def test_outside_ipv6_and_host_names_are_blocked_without_dns():
    with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock:
        with pytest.raises(OSError, match=r"blocked in tests: \[2001:db8::1\]:443"):
            sock.connect(("2001:db8::1", 443))
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        with pytest.raises(OSError, match="blocked in tests: huggingface.co:443"):
            sock.connect_ex(("huggingface.co", 443))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        with pytest.raises(OSError, match=r"blocked in tests: 203\.0\.113\.1:53"):
            sock.sendto(b"x", ("203.0.113.1", 53))


def test_http_client_fails_with_the_guard_message():
    with pytest.raises(OSError, match="network access blocked"):
        urllib.request.urlopen("http://203.0.113.1/", timeout=2)


def test_outside_connection_is_blocked_in_a_subprocess():
    assert os.path.join("tests", "netguard") in os.environ["PYTHONPATH"]
    code = (
        "import socket\n"
        "try:\n"
        "    socket.create_connection(('203.0.113.1', 80), timeout=2)\n"
        "except OSError as err:\n"
        "    print('BLOCKED', err)\n"
        "else:\n"
        "    print('CONNECTED')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    assert "BLOCKED network access blocked in tests: 203.0.113.1:80" in result.stdout


def _serve_once(server):
    conn, _ = server.accept()
    with conn:
        conn.sendall(b"hello " + conn.recv(16))


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_loopback_still_works(host):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        thread = threading.Thread(target=_serve_once, args=(server,), daemon=True)
        thread.start()
        port = server.getsockname()[1]
        with socket.create_connection((host, port), timeout=5) as client:
            client.sendall(b"kernel")
            assert client.recv(32) == b"hello kernel"
        thread.join(timeout=5)


def test_unix_sockets_are_allowed(tmp_path):
    if not hasattr(socket, "AF_UNIX"):
        pytest.skip("no unix sockets on this platform")
    left, right = socket.socketpair()
    with left, right:
        left.sendall(b"ping")
        assert right.recv(4) == b"ping"
    path = str(tmp_path / "s")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
        server.bind(path)
        server.listen(1)
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
            client.connect(path)


@pytest.mark.parametrize("call", [
    lambda: socket.getaddrinfo("huggingface.co", 443),
    lambda: socket.getaddrinfo(b"pypi.org", None),
    lambda: socket.gethostbyname("example.com"),
    lambda: socket.gethostbyname_ex("example.com"),
    lambda: socket.gethostbyaddr("203.0.113.1"),
    lambda: socket.getnameinfo(("203.0.113.1", 80), 0),
])
def test_name_resolution_is_blocked(call):
    """A DNS query is network traffic: refused before it is sent."""
    with pytest.raises(OSError, match="name resolution blocked in tests"):
        call()


def test_clients_fail_at_name_resolution():
    with pytest.raises(OSError, match="name resolution blocked in tests.*huggingface.co"):
        socket.create_connection(("huggingface.co", 443), timeout=2)
    with pytest.raises(OSError, match="name resolution blocked"):
        urllib.request.urlopen("https://huggingface.co/", timeout=2)


def test_local_names_still_resolve():
    assert socket.getaddrinfo("localhost", 80)
    assert socket.getaddrinfo("127.0.0.1", 80, type=socket.SOCK_STREAM)[0][4][0] == "127.0.0.1"
    assert socket.getaddrinfo(None, 0, flags=socket.AI_PASSIVE)
    assert socket.gethostbyname("127.0.0.1") == "127.0.0.1"


def test_sendmsg_to_outside_is_blocked():
    if not hasattr(socket.socket, "sendmsg"):
        pytest.skip("no sendmsg on this platform")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        with pytest.raises(OSError, match=r"blocked in tests: 203\.0\.113\.1:53"):
            sock.sendmsg([b"x"], [], 0, ("203.0.113.1", 53))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as server, \
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
        server.bind(("127.0.0.1", 0))
        client.sendmsg([b"ok"], [], 0, server.getsockname())       # loopback still works
        assert server.recv(8) == b"ok"


def test_dns_is_blocked_in_a_subprocess():
    code = (
        "import socket\n"
        "try:\n"
        "    socket.getaddrinfo('huggingface.co', 443)\n"
        "except OSError as err:\n"
        "    print('BLOCKED', err)\n"
        "else:\n"
        "    print('RESOLVED')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    assert "BLOCKED name resolution blocked in tests" in result.stdout
