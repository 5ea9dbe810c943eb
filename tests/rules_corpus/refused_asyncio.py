"""asyncio names the address in its message."""

import asyncio
import socket

EXPECT = ("Nothing is listening on 127.0.0.1:",)

probe = socket.socket()
probe.bind(("127.0.0.1", 0))
port = probe.getsockname()[1]
probe.close()  # nothing listens on the port now


async def connect():
    await asyncio.open_connection("127.0.0.1", port)


asyncio.run(connect())
