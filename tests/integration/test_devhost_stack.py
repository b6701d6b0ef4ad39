"""The local system's lifecycle: ports free again right after a stop.

`make run` after Ctrl-C and back-to-back `make test` runs rely on it.
"""

from __future__ import annotations

import socket

from devhost.stack import port_is_free


def test_a_port_left_in_time_wait_is_free_and_a_listening_one_is_not() -> None:
    with socket.socket() as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        port = listener.getsockname()[1]
        assert not port_is_free(port)
        client = socket.create_connection(("127.0.0.1", port))
        accepted, _ = listener.accept()
        accepted.close()  # the server side closes first, so it is the side left in TIME-WAIT
        assert client.recv(1) == b""
        client.close()
    assert port_is_free(port)
