"""The local stack's port check: a port in use is refused, one whose connections only linger
in TIME_WAIT (a stack stopped a moment ago) is not."""

from __future__ import annotations

import socket

from streamrec.local.stack import _port_free


def _listener() -> socket.socket:
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as both servers bind
    server.bind(("127.0.0.1", 0))
    server.listen()
    return server


def test_a_port_something_listens_on_is_in_use():
    with _listener() as server:
        assert not _port_free(server.getsockname()[1])


def test_a_port_whose_connections_linger_in_time_wait_is_free():
    server = _listener()
    port = server.getsockname()[1]
    client = socket.create_connection(("127.0.0.1", port))
    accepted, _ = server.accept()
    accepted.close()  # the server's side closes first: its end (this port) waits in TIME_WAIT
    client.recv(1)
    client.close()
    server.close()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as plain:
        try:  # what the check did before: a bind without SO_REUSEADDR
            plain.bind(("127.0.0.1", port))
            lingering = False
        except OSError:
            lingering = True
    assert lingering, "no TIME_WAIT was made: the test proves nothing"
    assert _port_free(port)
