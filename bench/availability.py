"""Benchmark the availability engine; prints one JSON line per case.

Run with ``.venv/bin/python -m bench.availability``. Cases: 2, 10 and 100 participants
with 50 and 500 random busy blocks (15 min to 3 h) each over 30 days, 15-minute step,
30-minute meetings; pair mode for two people, group mode (one required organizer,
everyone else optional) otherwise. Then the brute-force oracle on a small case, and a
final ``check`` line with the goals (busy blocks as ``BusyInterval`` objects, and
packed as ``PackedBusy``): 100 x 500 in <= 25 ms median, and at most 12x
slower when busy blocks grow 10x.
"""

from __future__ import annotations

import json
import random
import statistics
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from bench.oracle import oracle_slots
from server.providers.base import BusyInterval, BusyKind
from server.services.availability import Mode, PackedBusy, Participant, Rules, find_slots
from server.services.availability.zones import allowed_spans

ZONES = [
    "Europe/London",
    "America/New_York",
    "Asia/Kolkata",
    "Europe/Berlin",
    "America/Los_Angeles",
    "Australia/Sydney",
    "America/Sao_Paulo",
    "Africa/Lagos",
]
START = datetime(2026, 3, 2, tzinfo=UTC)  # a Monday; the window crosses the US DST change
KINDS = list(BusyKind)


def make_people(
    count: int, busy_each: int, days: int, seed: int = 7, *, packed: bool = False
) -> list[Participant]:
    rng = random.Random(seed)
    minutes = days * 24 * 60
    people = []
    for index in range(count):
        busy = []
        for _ in range(busy_each):
            begin = START + timedelta(minutes=5 * rng.randrange(minutes // 5))
            length = timedelta(minutes=15 * rng.randint(1, 12))
            busy.append(BusyInterval(begin, begin + length, rng.choice(KINDS)))
        people.append(
            Participant(
                user_id=uuid.UUID(int=index + 1),
                name=f"Person {index}",
                time_zone=ZONES[index % len(ZONES)],
                busy=PackedBusy.from_intervals(busy) if packed else busy,
                optional=count > 2 and index > 0,
            )
        )
    return people


def measure(run: Callable[[], Any], budget_s: float = 2.0, min_runs: int = 15) -> dict[str, Any]:
    for _ in range(3):
        run()
    timings: list[float] = []
    spent = 0.0
    while len(timings) < min_runs or (spent < budget_s and len(timings) < 400):
        began = time.perf_counter()
        run()
        elapsed = time.perf_counter() - began
        timings.append(elapsed * 1000)
        spent += elapsed
    timings.sort()
    return {
        "median_ms": round(statistics.median(timings), 3),
        "p95_ms": round(timings[min(len(timings) - 1, int(len(timings) * 0.95))], 3),
        "runs": len(timings),
    }


def case(
    name: str,
    count: int,
    busy_each: int,
    days: int = 30,
    *,
    cold_zones: bool = False,
    use_oracle: bool = False,
    packed: bool = False,
) -> dict[str, Any]:
    people = make_people(count, busy_each, days, packed=packed)
    mode = Mode.PAIR if count <= 2 else Mode.GROUP
    kwargs: dict[str, Any] = {
        "start": START,
        "end": START + timedelta(days=days),
        "duration": timedelta(minutes=30),
        "step": timedelta(minutes=15),
        "now": START - timedelta(days=1),
        "mode": mode,
    }
    rules = Rules()

    def run() -> int:
        if cold_zones:
            allowed_spans.cache_clear()
        if use_oracle:
            return len(oracle_slots(people, rules, **kwargs))
        return len(find_slots(people, rules, **kwargs).slots)

    figures = measure(run, budget_s=1.0 if use_oracle else 2.0, min_runs=3 if use_oracle else 15)
    return {
        "case": name,
        "participants": count,
        "busy_per_participant": busy_each,
        "days": days,
        "step_minutes": 15,
        "duration_minutes": 30,
        "mode": mode.value,
        "busy_input": "packed" if packed else "objects",
        **figures,
        "slots": run(),
    }


def main() -> None:
    results = {}
    for packed in (False, True):
        for count in (2, 10, 100):
            for busy_each in (50, 500):
                name = f"{count}x{busy_each}" + (" packed" if packed else "")
                results[name] = case(name, count, busy_each, packed=packed)
                print(json.dumps(results[name]), flush=True)
    print(json.dumps(case("100x500 cold zone cache", 100, 500, cold_zones=True)), flush=True)
    small_engine = case("engine 3x20x3d", 3, 20, days=3)
    small_oracle = case("oracle 3x20x3d", 3, 20, days=3, use_oracle=True)
    assert small_engine["slots"] == small_oracle["slots"]
    print(json.dumps(small_engine), flush=True)
    print(json.dumps(small_oracle), flush=True)
    goal = results["100x500"]["median_ms"]
    scaling = goal / results["100x50"]["median_ms"]
    packed_goal = results["100x500 packed"]["median_ms"]
    packed_scaling = packed_goal / results["100x50 packed"]["median_ms"]
    check = {
        "check": True,
        "goal_100x500_ms": goal,
        "goal_100x500_met": goal <= 25,
        "scaling_10x_busy": round(scaling, 2),
        "scaling_10x_busy_met": scaling <= 12,
        "goal_100x500_packed_ms": packed_goal,
        "goal_100x500_packed_met": packed_goal <= 25,
        "scaling_10x_busy_packed": round(packed_scaling, 2),
        "oracle_speedup": round(small_oracle["median_ms"] / small_engine["median_ms"], 1),
    }
    print(json.dumps(check), flush=True)


if __name__ == "__main__":
    main()
