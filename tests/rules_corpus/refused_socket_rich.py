"""A refused TCP connection; the address is in the locals."""

import socket

EXPECT = ("Nothing is listening on 127.0.0.1:", "ECONNREFUSED")
MODE = "rich"

probe = socket.socket()
probe.bind(("127.0.0.1", 0))
port = probe.getsockname()[1]
probe.close()  # nothing listens on the port now


def connect(host, port):
    return socket.create_connection((host, port), timeout=2)


connect("127.0.0.1", port)
