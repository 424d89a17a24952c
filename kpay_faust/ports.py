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
    return free_port_run(2)


def free_port_run(count: int) -> int:
    """A port P such that P .. P + count - 1 are free (a broker with a SASL listener uses 3)."""
    return free_ports_at(tuple(range(count)))


def free_ports_at(offsets: tuple[int, ...]) -> int:
    """A port P such that P + each of ``offsets`` (0 among them) is free: a three-node cluster
    uses P, P+1, P+10, P+11, P+20, P+21."""
    for _ in range(200):
        port = free_port()
        if port + max(offsets) <= 65535 and all(_is_free(port + n) for n in offsets if n):
            return port
    raise RuntimeError(f"no free ports at offsets {offsets} on 127.0.0.1")
