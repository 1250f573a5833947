"""Whether the PostgreSQL server the tests use (127.0.0.1:5432, trust auth, database `test`) is
running here: tests that need it skip with a visible reason on a laptop without one."""
from __future__ import annotations

import socket

HOST, PORT = "127.0.0.1", 5432


def pg_reachable(timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((HOST, PORT), timeout=timeout):
            return True
    except OSError:
        return False
