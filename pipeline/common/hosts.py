"""Whether a host name resolves, asked before talking to a server by that name.

A name that does not resolve (a typo, a network that cannot see the server, a placeholder such
as `db.example` copied from the docs) is not a busy or a slow server: retries and client
timeouts would only delay the same answer, which `getaddrinfo` gives at once.
"""

from __future__ import annotations

import socket
from collections.abc import Sequence


def unresolved(hosts: Sequence[str]) -> str | None:
    """None when one of `hosts` resolves (or there are none), else the resolver's reason for the first."""
    reasons = []
    for host in hosts:
        try:
            socket.getaddrinfo(host, None)
            return None
        except socket.gaierror as exc:
            reasons.append(exc.strerror or str(exc))
    return reasons[0] if reasons else None
