"""The warm start's messages (xpm_train/warm/messages.py): each message
crosses the wire as the JSON object the other side reads, and what the
server is sent is checked before it is trusted. In process, over a socket
pair (the client/server conversation itself: tests/launchers/test_forkserver.py)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

from xpm_train.warm import forkclient, messages
from xpm_train.warm.messages import Exited, Malformed, Refused, Request, Started


def test_a_request_and_each_reply_cross_the_wire_as_themselves(tmp_path):
    request = Request(key="k" * 16, script="/job.py", cwd="/", env={"A": "1"}, threads=2)
    replies = [Started(41), Refused("stale code", stale=True), Refused("no"), Exited(-15),
               Exited(0, reaped=True)]
    left, right = socket.socketpair(socket.AF_UNIX)
    with left, right, open(tmp_path / "f", "w") as passed:
        messages.send(left, request, [passed.fileno()])
        data, fds = messages.read_frame(right, with_fds=3)
        assert Request.from_wire(data) == request and len(fds) == 1
        assert os.fstat(fds[0]).st_ino == os.fstat(passed.fileno()).st_ino
        os.close(fds[0])
        for reply in replies:
            messages.send(right, reply)
        assert [messages.receive_reply(left) for _ in replies] == replies
        right.close()
        assert messages.receive_reply(left) is None  # the peer closed first


def test_the_wire_keeps_the_field_names_of_protocol_1():
    """A client and a server of two installations of this protocol read each other."""
    assert messages.to_wire(Request(key="k", script="s", cwd="c", env={}, threads=1)) == {
        "key": "k", "script": "s", "cwd": "c", "env": {}, "threads": 1, "protocol": 1}
    assert messages.to_wire(Started(3)) == {"pid": 3}
    assert messages.to_wire(Refused("why")) == {"refused": "why", "stale": False}
    assert messages.to_wire(Exited(2, reaped=True)) == {"exit": 2, "reaped": True}


@pytest.mark.parametrize("data, why", [
    ([1, 2], "not a request of this protocol"),
    ({"protocol": 99, "key": "k", "script": "s", "cwd": "c", "env": {}, "threads": 1},
     "not a request of this protocol"),
    ({"protocol": 1, "key": "k", "script": "s", "cwd": "c", "env": {}}, "incomplete request"),
    ({"protocol": 1, "key": "k", "script": "s", "cwd": "c", "env": {}, "threads": "1; rm -rf /"},
     "incomplete request"),
    ({"protocol": 1, "key": "k", "script": ["s"], "cwd": "c", "env": {}, "threads": 1}, "incomplete request"),
])
def test_a_forged_request_is_refused_with_its_reason(data, why):
    with pytest.raises(Malformed, match=why):
        Request.from_wire(data)


def test_a_reply_is_told_by_its_first_field_and_anything_else_is_malformed():
    assert messages.reply_from_wire({"exit": 1, "later": 2}) == Exited(1)  # a newer field: ignored
    assert messages.reply_from_wire({"refused": "x"}) == Refused("x")
    for data in ({"what": 1}, "text", None, ["pid"]):
        with pytest.raises(Malformed):
            messages.reply_from_wire(data)


def test_the_client_loads_the_messages_without_xpm_train_nor_more_modules():
    """Under ``python -S`` (how the launcher runs it) the client takes the
    messages from their file: xpm_train's __init__ never runs, and typed
    messages cost the client's start no module of weight (``dataclasses``
    would bring inspect, ast, dis...)."""
    code = ("import runpy, sys; g = runpy.run_path(sys.argv[1]); m = g['messages']; "
            "print(m.__name__, m.Request.__name__, 'xpm_train' in sys.modules, "
            "[name for name in ('dataclasses', 'inspect', 'ast') if name in sys.modules])")
    out = subprocess.run([sys.executable, "-S", "-c", code, forkclient.__file__], capture_output=True,
                         text=True, check=True).stdout.strip().split(maxsplit=3)
    assert out == ["xpm_train.warm.messages", "Request", "False", "[]"]
