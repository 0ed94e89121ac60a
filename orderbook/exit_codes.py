"""How a book node (``bin/run-server``) and an edge (``bin/run-edge``) end, for whatever restarts them (systemd,
Kubernetes) to tell apart: 0 when stopped (SIGTERM, SIGINT), else one of these."""

EXIT_TASKS_FAILING = 1
"""Its tasks kept failing (:class:`~orderbook.supervision.Supervisor` gave up): starting it again may help."""

EXIT_FATAL = 2
"""It cannot run as configured (a bad setting, a port taken, a symbol no venue lists, another deployment on its
Redis keys), said in the one line it ends with (:func:`orderbook.logs.fatal_line`): starting it again will not help."""
