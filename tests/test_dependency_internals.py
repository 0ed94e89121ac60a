"""The private internals of dependencies the service relies on, checked so that an upgrade that moves them fails
here, loudly, instead of degrading in production (the versions tested are pinned in constraints.txt).

- grpcio: ``cygrpc.g_gevent_threadpool`` and ``CompletionQueue._internal_poll``, the completion-polling hook of
  :mod:`orderbook.gevent_polling` (without it the server silently falls back to stock polling, about a
  third of the sends a second), and ``RpcMethodHandler._replace``, with which the server parses requests itself.
"""

from __future__ import annotations

import subprocess
import sys

import grpc
import pytest
from grpc._cython import cygrpc

from tests.support.service import REPO_ROOT


def test_grpc_method_handlers_can_be_replaced_field_by_field():
    handler: grpc.RpcMethodHandler[str, bytes] = grpc.unary_stream_rpc_method_handler(
        lambda request, context: iter(()), request_deserializer=bytes.decode)
    # A namedtuple at run time, as checked here; the stub declares a plain class.
    replaced = handler._replace(request_deserializer=None)  # type: ignore[attr-defined]
    assert replaced.request_deserializer is None and replaced.unary_stream is handler.unary_stream


def test_grpc_has_the_completion_polling_hook():
    assert hasattr(cygrpc, "g_gevent_threadpool")
    assert callable(getattr(cygrpc.CompletionQueue, "_internal_poll", None))


@pytest.mark.e2e
def test_a_booted_process_polls_ready_first():
    """What boot() installs in a real process: the fast path, not the stock fallback (which only warns)."""
    probe = ("from orderbook.boot import boot; polls = boot(); "
             "from grpc._cython import cygrpc; "
             "print(type(polls).__name__, cygrpc.g_gevent_threadpool is polls)")
    result = subprocess.run([sys.executable, "-c", probe], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["ReadyFirstPolls", "True"], result.stdout + result.stderr
    assert "no completion-queue poll hook" not in result.stderr
