"""Per-request cost of RuntimeNarrativeMiddleware on a Starlette app.

The same app (one route, a path parameter, two optional stages in the
handler) is called directly through ASGI, with no network, without the
middleware and with it, in one run; the figures are the time per request,
the middleware's overhead and the ratio to the bare app. Optional stages
make the handler identical in both apps: outside a story they do nothing.

    python benchmarks/bench_middleware.py [--requests 5000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from typing import Any, Callable

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from runtime_narrative import JsonRenderer, stage
from runtime_narrative.integrations.starlette import RuntimeNarrativeMiddleware


class NoOpRenderer:
    def handle(self, event: object) -> None:
        pass


async def get_order(request: Request) -> JSONResponse:
    with stage("Load Order", optional=True):
        order_id = int(request.path_params["order_id"])
    with stage("Render", optional=True):
        return JSONResponse({"id": order_id})


def make_app(renderers: list[object] | None) -> Any:
    app = Starlette(routes=[Route("/orders/{order_id}", get_order)])
    if renderers is not None:
        app.add_middleware(RuntimeNarrativeMiddleware, renderers=renderers)
    return app


async def per_request(app: Any, requests: int) -> float:
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/orders/42",
        "raw_path": b"/orders/42",
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"127.0.0.1")],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        pass

    start = time.perf_counter()
    for _ in range(requests):
        await app(dict(scope), receive, send)
    return (time.perf_counter() - start) / requests


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with open(os.devnull, "w") as devnull:
        variants: dict[str, Callable[[], Any]] = {
            "bare app": lambda: make_app(None),
            "middleware, no-op renderer": lambda: make_app([NoOpRenderer()]),
            "middleware, JsonRenderer": lambda: make_app([JsonRenderer(devnull)]),
        }
        apps = {name: build() for name, build in variants.items()}
        results = {name: float("inf") for name in apps}

        async def measure() -> None:
            for app in apps.values():  # warm up routing and imports
                await per_request(app, 200)
            # Interleaved rounds, best of each, so drift hits every variant.
            for _ in range(args.repeat):
                for name, app in apps.items():
                    seconds = await per_request(app, args.requests)
                    results[name] = min(results[name], seconds)

        asyncio.run(measure())
    baseline = results["bare app"]
    print(f"{args.requests} requests per round, best of {args.repeat} rounds")
    for name, seconds in results.items():
        overhead = (seconds - baseline) * 1e6
        print(
            f"{name:<28} {seconds * 1e6:8.1f} µs/request"
            f"  +{overhead:6.1f} µs  {seconds / baseline:5.2f}x"
        )


if __name__ == "__main__":
    main()
