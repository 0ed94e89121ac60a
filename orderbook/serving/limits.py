"""Process limits the server raises at start-up.

Every gRPC connection holds a file descriptor. The common soft limit (1,024) is reached by a few hundred
clients plus their half-closed sockets, long before the hard limit (often 65,536 or more) that an unprivileged
process may raise it to. Idle connections are closed by the gRPC server (``grpc.max_connection_idle_ms``), so
descriptors held by clients that open no stream are returned within that bound.
"""

from __future__ import annotations

import logging
import resource

log = logging.getLogger(__name__)


def raise_fd_limit() -> int:
    """Raise the soft limit on open files to the hard limit; return the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft == hard:
        return soft
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ValueError, OSError) as error:
        log.warning("cannot raise the open-file limit from %d to %d: %s", soft, hard, error)
        return soft
    log.debug("open-file limit raised from %d to %d", soft, hard)
    return hard
