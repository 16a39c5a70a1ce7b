"""What the warm start's client and fork server say to each other: one
class per message (a named tuple), and the wire that carries them.

A conversation on the server's Unix socket::

    client -> server   Request   (with the client's stdin/stdout/stderr as fds)
    server -> client   Started   (the forked job's pid)   or   Refused (why)
    job    -> client   Exited    (its exit code, from its last exit handler)
    server -> client   Exited    (reaped=True: the process is gone, its files,
                                   locks and GPUs released)

On the wire each message is one length-prefixed JSON object (:func:`write_frame`
/ :func:`read_frame`) whose field names are the class's own
(:meth:`to_wire`); a reply is told apart by its first field (``pid``,
``refused``, ``exit``). The server trusts nothing it reads:
:meth:`Request.from_wire` checks the protocol and every field's type and says
why it refuses.

Standard library only: the client, which runs under ``python -S`` before
xpm_train can be imported, loads this module from its file.
"""

import array
import json
import socket
import struct
from collections import namedtuple

PROTOCOL = 1
MAX_MESSAGE = 1 << 22
"""Largest message read (bytes): a request carries the job's environment"""
HEADER = "!I"


class Malformed(ValueError):
    """A message that is not one of this protocol (the text says why)."""


# Named tuples rather than dataclasses: ``dataclasses`` would add 14 modules
# (inspect, ast, dis...) to the client's start, which is the warm start's point.


class Request(namedtuple("Request", "key script cwd env threads protocol", defaults=(PROTOCOL,))):
    """Client -> server: fork one process that runs ``script`` (str) as
    ``python script`` would, in ``cwd`` (str), with ``env`` (dict) and
    ``threads`` (int) reserved cores (0: the allowed CPUs), under the server
    of ``key`` (str)."""

    __slots__ = ()

    @classmethod
    def from_wire(cls, data) -> "Request":
        """:raises Malformed: not a request of this protocol, or incomplete."""
        if not isinstance(data, dict) or data.get("protocol") != PROTOCOL:
            raise Malformed("not a request of this protocol")
        if not all(isinstance(data.get(name), kind) for name, kind in REQUEST_TYPES.items()):
            raise Malformed("incomplete request")
        return cls(**{name: data[name] for name in REQUEST_TYPES})


REQUEST_TYPES = {"key": str, "script": str, "cwd": str, "env": dict, "threads": int}
"""What a request must carry, each field of its own type"""


class Started(namedtuple("Started", "pid")):
    """Server -> client: the job was forked, as process ``pid`` (int)."""

    __slots__ = ()


class Refused(namedtuple("Refused", "refused stale", defaults=(False,))):
    """Server -> client: this server will not run the job (``refused`` says
    why); ``stale``: its code changed since it started (it stops listening,
    the client starts a fresh one)."""

    __slots__ = ()


class Exited(namedtuple("Exited", "exit reaped", defaults=(False,))):
    """Job or server -> client: the job's exit code (negative: the signal that
    killed it); ``reaped``: sent by the server once the process is gone."""

    __slots__ = ()


Reply = Started | Refused | Exited
REPLIES = {"pid": Started, "refused": Refused, "exit": Exited}
"""A reply's first field -> its class"""


def to_wire(message: "Request | Reply") -> dict:
    return message._asdict()


def reply_from_wire(data) -> "Reply":
    """:raises Malformed: not a reply of this protocol."""
    if isinstance(data, dict):
        for field, kind in REPLIES.items():
            if field in data:
                try:
                    return kind(**{k: v for k, v in data.items() if k in kind._fields})
                except TypeError:
                    break
    raise Malformed(f"not a reply of this protocol: {str(data)[:200]}")


def send(sock: socket.socket, message: "Request | Reply", fds: list[int] = ()) -> None:
    """Send one message (``fds`` passed along with it)."""
    write_frame(sock, to_wire(message), fds)


def receive_reply(sock: socket.socket) -> "Reply | None":
    """The next reply (None when the peer closed first). :raises Malformed:"""
    data, _ = read_frame(sock)
    return None if data is None else reply_from_wire(data)


def write_frame(sock: socket.socket, data: dict, fds: list[int] = ()) -> None:
    """One length-prefixed JSON object (``fds`` passed along with it)."""
    body = json.dumps(data).encode()
    body = struct.pack(HEADER, len(body)) + body
    ancillary = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))] if fds else []
    sent = sock.sendmsg([body], ancillary)
    if sent < len(body):
        sock.sendall(body[sent:])


def read_frame(sock: socket.socket, with_fds: int = 0) -> "tuple[object | None, list[int]]":
    """One JSON value (None when the peer closed first) and the fds that came with it."""
    fds = array.array("i")
    size = struct.calcsize(HEADER)
    try:
        head, ancillary, _, _ = sock.recvmsg(size, socket.CMSG_SPACE(with_fds * fds.itemsize))
    except ConnectionResetError:
        return None, []
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(data[:len(data) - len(data) % fds.itemsize])
    while head and len(head) < size:
        more = sock.recv(size - len(head))
        if not more:
            break
        head += more
    if len(head) < size:
        return None, list(fds)
    (length,) = struct.unpack(HEADER, head)
    if length > MAX_MESSAGE:
        raise Malformed(f"message of {length} bytes")
    body = b""
    while len(body) < length:
        more = sock.recv(length - len(body))
        if not more:
            return None, list(fds)
        body += more
    return json.loads(body), list(fds)
