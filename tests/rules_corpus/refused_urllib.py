"""urllib wraps the refusal in URLError."""

import socket
import urllib.request

EXPECT = ("Nothing is listening on 127.0.0.1:", "ECONNREFUSED")
MODE = "rich"

probe = socket.socket()
probe.bind(("127.0.0.1", 0))
port = probe.getsockname()[1]
probe.close()  # nothing listens on the port now


def fetch(url):
    return urllib.request.urlopen(url, timeout=2)


fetch(f"http://127.0.0.1:{port}/health")
