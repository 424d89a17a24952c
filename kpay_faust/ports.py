"""Free TCP ports on the loopback interface for the throwaway brokers and workers of tests and
`make bench`."""

from __future__ import annotations

import socket


def _is_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def free_port_pair() -> int:
    """A port P such that P and P + 1 are free (a broker listens on both)."""
    for _ in range(100):
        port = free_port()
        if port < 65535 and _is_free(port + 1):
            return port
    raise RuntimeError("no two adjacent free ports on 127.0.0.1")
