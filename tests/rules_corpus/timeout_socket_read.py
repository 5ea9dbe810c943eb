"""A server that accepts but never answers."""

import socket

EXPECT = ("did not answer in time", "127.0.0.1:")
MODE = "rich"


def ask(host, port):
    with socket.create_connection((host, port), timeout=2) as client:
        client.settimeout(0.05)
        client.sendall(b"PING\r\n")
        return client.recv(1)


with socket.socket() as server:
    server.bind(("127.0.0.1", 0))
    server.listen(1)  # the kernel completes the handshake; nobody ever answers
    ask(*server.getsockname())
