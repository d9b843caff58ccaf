"""A stand-in camera node for the bus tests, run as its own process so that a test can kill it
with SIGKILL: it publishes the events of a JSON-lines file through NatsBus and its outbox, one at a
time, printing `put N` once event N is in the outbox, then `done B` (B: events left in the outbox)
after giving the sender up to --flush seconds to empty it.

    python nats_publisher.py URL STORE_ID OUTBOX EVENTS_JSONL [--delay S] [--flush S]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from store_runtime.bus.nats import NatsBus, NatsSettings
from store_runtime.bus.outbox import Outbox
from store_runtime.events import parse_event


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("store_id")
    parser.add_argument("outbox", type=Path)
    parser.add_argument("events", type=Path)
    parser.add_argument("--delay", type=float, default=0.0, help="seconds between two events")
    parser.add_argument("--flush", type=float, default=20.0, help="seconds to wait for the outbox to empty")
    args = parser.parse_args()
    events = [parse_event(line) for line in args.events.read_text().splitlines() if line.strip()]
    bus = NatsBus(NatsSettings(url=args.url, store_id=args.store_id), Outbox(args.outbox), name="test-node")
    for n, event in enumerate(events):
        bus.publish(event)
        print(f"put {n}", flush=True)
        time.sleep(args.delay)
    print(f"done {bus.close(timeout=args.flush)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
