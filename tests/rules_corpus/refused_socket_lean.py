"""A refused connection in lean mode: no address to name."""

import socket

EXPECT = ("the connection was refused", "were not in the captured data")

probe = socket.socket()
probe.bind(("127.0.0.1", 0))
port = probe.getsockname()[1]
probe.close()  # nothing listens on the port now


def connect(address):
    return socket.create_connection(address, timeout=2)


connect(("127.0.0.1", port))
