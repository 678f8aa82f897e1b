#!/usr/bin/env python3
"""Loopback ports, the one Python place that finds them (stdlib only).

Imported by run.py (beside this file) and bench/startup.py; the shell scripts call it as a program
through `free_port` in bench/common.sh. Rust has its own, `disttags_tests::free_port`.

    python3 tests/emulators/ports.py     # prints one free port of 127.0.0.1
"""

from __future__ import annotations

import random
import socket


def is_free(port: int, reuse_addr: bool = False) -> bool:
    """Whether 127.0.0.1:port can be bound now (with SO_REUSEADDR: ignoring TIME_WAIT leftovers)."""
    with socket.socket() as s:
        if reuse_addr:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    """A port of 127.0.0.1 the kernel just handed out as free."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_port_pair(offset: int = 10000) -> int:
    """A free port P whose P+offset is free too (for listeners that derive one)."""
    for _ in range(200):
        p = random.randint(20000, 65535 - offset)
        try:
            with socket.socket() as s1, socket.socket() as s2:
                s1.bind(("127.0.0.1", p))
                s2.bind(("127.0.0.1", p + offset))
            return p
        except OSError:
            continue
    raise SystemExit("ports.py: found no free port pair")


if __name__ == "__main__":
    print(free_port())
