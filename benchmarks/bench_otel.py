"""The per-stage cost of OtelRenderer, next to a plain OpenTelemetry SDK span.

Run from the repository root, with the project installed or ``PYTHONPATH=src``::

    python benchmarks/bench_otel.py            # about ten seconds
    python benchmarks/bench_otel.py --quick    # a smoke run

Both sides use one TracerProvider with the same span processor, in the same
process and run, and each side is timed several times, alternating; the best
round of each counts:

* ``sdk span``: ``with tracer.start_as_current_span(name): pass`` inside an
  open span, what instrumenting a block by hand costs;
* ``stage + OtelRenderer``: ``with stage(name): pass`` inside a story whose
  only renderer is OtelRenderer, so the figure includes the stage itself,
  its two events and their dispatch.

The ratio is printed last; the target is at most 1.3.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from typing import Callable

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider

from runtime_narrative import stage, story
from runtime_narrative.renderers.otel import OtelRenderer


class CountingProcessor(SpanProcessor):
    """Counts ended spans: the cheapest processor that still sees every span."""

    def __init__(self) -> None:
        self.ended = 0

    def on_start(self, span: object, parent_context: Context | None = None) -> None:
        pass

    def on_end(self, span: ReadableSpan) -> None:
        self.ended += 1


def best_per_call(run: Callable[[int], None], n: int, rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        run(n)
        best = min(best, (time.perf_counter() - started) / n)
    return best


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    args = parser.parse_args(argv)
    n, rounds = (2_000, 3) if args.quick else (20_000, 7)

    processor = CountingProcessor()
    provider = TracerProvider()
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("bench")
    renderer = OtelRenderer(tracer_provider=provider)

    def sdk_spans(count: int) -> None:
        with tracer.start_as_current_span("story"):
            for _ in range(count):
                with tracer.start_as_current_span("Step"):
                    pass

    def narrative_stages(count: int) -> None:
        with story("story", renderers=[renderer]):
            for _ in range(count):
                with stage("Step"):
                    pass

    sdk = narrative = float("inf")
    for _ in range(2):  # alternate, so drift in the machine hits both
        sdk = min(sdk, best_per_call(sdk_spans, n, rounds))
        narrative = min(narrative, best_per_call(narrative_stages, n, rounds))

    print(f"sdk span               {sdk * 1e6:8.2f} µs per span")
    print(f"stage + OtelRenderer   {narrative * 1e6:8.2f} µs per stage")
    print(f"ratio                  {narrative / sdk:8.2f}x  (target <= 1.30x)")
    print(f"spans ended            {processor.ended}")
    provider.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
