"""requests' read timeout names host, port and limit."""

import socket

import requests

EXPECT = ("127.0.0.1:", "within 0.05s")

with socket.socket() as server:
    server.bind(("127.0.0.1", 0))
    server.listen(1)  # the kernel completes the handshake; nobody ever answers
    port = server.getsockname()[1]
    with requests.Session() as session:
        session.get(f"http://127.0.0.1:{port}/slow", timeout=0.05)
