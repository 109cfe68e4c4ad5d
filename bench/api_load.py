"""Load one real ``tandem serve`` process with ``wrk``; prints one JSON line per target.

Run with ``.venv/bin/python -m bench.api_load`` (or ``make bench-api``); needs ``wrk`` on
the PATH. A temporary data directory gets a SQLite database (and, when
``TANDEM_BENCH_POSTGRES_URL`` names a database the benchmark may wipe, a second round on
PostgreSQL) seeded with a mentoring pair and about 300 busy blocks over 14 days, all
cached (nothing to refresh). Every target first runs ``--warmup`` seconds unmeasured (a
fresh process opens its pool's connections and prepares its statements in its first
second under load, which would otherwise land in the first target's p99). Then, each
with 8 connections, one after the other in the same run against the same process:

- ``healthz``: ``GET /healthz``, the yardstick;
- ``availability``: the pair ``availability`` query over the 14 days (30-minute meetings,
  15-minute step) asking for every slot field, with an API token;
- ``availability_compact``: the same question asking for the same answer in the compact
  shape (``compact { userIds busy unknown slots }``: rows of plain values);
- ``empty_reason``: the same question asking only for ``emptyReason``;
- ``week_page``: the pair's week page with a session cookie.

Each target but ``healthz`` runs ``--rounds`` times (default 3) for ``--seconds`` (default
4), each time right after ``/healthz`` for as long: the floor beside it, because the
machine's speed drifts within a minute and one p99 of a few seconds is noisy. Each line
is the round with the median ratio: ``name``, ``requests_per_s``, ``p50_ms``, ``p99_ms``,
``healthz_p99_ms`` (its floor), ``ratio_p99_to_healthz``, ``ratios`` (every round's),
``non_2xx`` and ``errors`` (of all rounds); then a ``check`` line with the peak RSS of
the serve process (``VmHWM``) and whether the goals are met: availability (either shape)
and week page at least 100 requests/s with p99 at most 10x the healthz p99, peak RSS at
most 250 MB.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from bench.seed import SeededPair, seed_pair

GOAL_RPS = 100.0
GOAL_RATIO = 10.0
GOAL_RSS_MB = 250.0

AVAILABILITY = """query Pair($input: AvailabilityInput!) {
  availability(input: $input) {
    emptyReason
    notes
    participants { optional calendarStatus lastSyncedAt user { id name timeZone } }
    busy { userId start end kind }
    unknown { userId start end reason }
    slots { start end freeUserIds busyUserIds unknownUserIds reason }
  }
}"""

AVAILABILITY_COMPACT = """query Pair($input: AvailabilityInput!) {
  availability(input: $input) {
    emptyReason
    notes
    participants { optional calendarStatus lastSyncedAt user { id name timeZone } }
    compact { userIds busy unknown slots }
  }
}"""

EMPTY_REASON = """query Pair($input: AvailabilityInput!) {
  availability(input: $input) { emptyReason }
}"""

WRK_SCRIPT = """
local body_file = os.getenv("BENCH_BODY")
local headers_json = os.getenv("BENCH_HEADERS")
wrk.method = os.getenv("BENCH_METHOD")
if body_file ~= nil and body_file ~= "" then
  local f = io.open(body_file, "rb")
  wrk.body = f:read("*a")
  f:close()
end
for line in string.gmatch(headers_json, "[^\\n]+") do
  local name, value = string.match(line, "^([^:]+): (.*)$")
  wrk.headers[name] = value
end

local non2xx = 0
response = function(status, headers, body)
  if status < 200 or status > 299 then non2xx = non2xx + 1 end
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH {"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, ' ..
    '"errors": %d, "non_2xx": %d}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.connect + e.read + e.write + e.timeout, e.status))
end
"""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _environment(data_dir: Path, database_url: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TANDEM_")}
    env.update(
        TANDEM_DATA_DIR=str(data_dir),
        TANDEM_ENV="development",
        TANDEM_RUN_JOBS_IN_PROCESS="false",  # measure requests, not the job loop
        TANDEM_SYNC_MAX_AGE_SECONDS="86400",  # the seeded caches stay fresh for the run
        PYTHONPATH=str(Path(__file__).resolve().parent.parent),
    )
    if database_url:
        env["TANDEM_DATABASE_URL"] = database_url
    return env


async def _prepare(env: dict[str, str], wipe_postgres: bool) -> SeededPair:
    """Migrate and seed the database the serve process will use."""
    from sqlalchemy import text

    from server.config import Settings
    from server.db import Database, migrate

    settings = Settings(
        data_dir=Path(env["TANDEM_DATA_DIR"]), database_url=env.get("TANDEM_DATABASE_URL")
    )
    database = Database.from_url(settings.resolved_database_url)
    try:
        if wipe_postgres:
            async with database.engine.begin() as conn:
                await conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
                await conn.execute(text("CREATE SCHEMA public"))
        await migrate(database.engine)
        async with database.session() as db:
            return await seed_pair(db)
    finally:
        await database.dispose()


def _wait_ready(base: str, process: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"tandem serve exited with {process.returncode}")
        try:
            if httpx.get(f"{base}/healthz", timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError("tandem serve did not answer /healthz in time")


def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return float("nan")


def _variables(pair: SeededPair) -> dict[str, Any]:
    return {
        "input": {
            "participantIds": [str(pair.mentor), str(pair.mentee)],
            "start": pair.window_start.isoformat(),
            "end": pair.window_end.isoformat(),
            "durationMinutes": 30,
            "stepMinutes": 15,
        }
    }


def _check_answers(base: str, pair: SeededPair, targets: dict[str, dict[str, Any]]) -> int:
    """Each target answers 200 with real content before it is loaded; returns the slot
    count of the full availability answer."""
    slots = 0
    for name, target in targets.items():
        response = httpx.request(
            target["method"],
            base + target["path"],
            headers=target["headers"],
            content=target.get("body"),
            timeout=30.0,
        )
        if response.status_code != 200:
            raise RuntimeError(f"{name} answered {response.status_code}: {response.text[:300]}")
        if name == "availability":
            answer = response.json()
            if answer.get("errors"):
                raise RuntimeError(f"availability answered errors: {answer['errors']}")
            slots = len(answer["data"]["availability"]["slots"])
            busy = len(answer["data"]["availability"]["busy"])
            if not slots or not busy:
                raise RuntimeError("the availability answer has no slots or no busy blocks")
        if name == "availability_compact":
            answer = response.json()
            if answer.get("errors"):
                raise RuntimeError(f"the compact answer has errors: {answer['errors']}")
            compact = answer["data"]["availability"]["compact"]
            if len(compact["slots"]) != slots or not compact["busy"]:
                raise RuntimeError("the compact answer does not match the full one")
        if name == "week_page" and "schedule" not in response.text:
            raise RuntimeError("the week page does not look like the schedule page")
    return slots


def _wrk(
    base: str, target: dict[str, Any], seconds: int, connections: int, work: Path
) -> dict[str, Any]:
    script = work / "bench.lua"
    script.write_text(WRK_SCRIPT)
    env = dict(os.environ)
    env["BENCH_METHOD"] = target["method"]
    env["BENCH_HEADERS"] = "\n".join(f"{k}: {v}" for k, v in target["headers"].items()) or "\n"
    env["BENCH_BODY"] = ""
    if target.get("body") is not None:
        body = work / "body.json"
        body.write_bytes(target["body"])
        env["BENCH_BODY"] = str(body)
    output = subprocess.run(
        [
            "wrk",
            f"-t{min(2, connections)}",
            f"-c{connections}",
            f"-d{seconds}s",
            "--timeout",
            "10s",
            "-s",
            str(script),
            base + target["path"],
        ],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    line = next(x for x in output.splitlines() if x.startswith("BENCH "))
    figures: dict[str, Any] = json.loads(line.removeprefix("BENCH "))
    return figures


def run_round(
    database: str,
    database_url: str | None,
    seconds: int,
    connections: int,
    warmup: int = 2,
    rounds: int = 3,
) -> list[dict[str, Any]]:
    work = Path(tempfile.mkdtemp(prefix="tandem-bench-"))
    try:
        env = _environment(work, database_url)
        pair = asyncio.run(_prepare(env, wipe_postgres=database_url is not None))
        port = _free_port()
        base = f"http://127.0.0.1:{port}"
        log = (work / "serve.log").open("wb")
        process = subprocess.Popen(
            [sys.executable, "-m", "server.cli", "serve", "--port", str(port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            _wait_ready(base, process)
            graphql_headers = {
                "Authorization": f"Bearer {pair.token}",
                "Content-Type": "application/json",
            }
            variables = _variables(pair)
            targets: dict[str, dict[str, Any]] = {
                "healthz": {"method": "GET", "path": "/healthz", "headers": {}},
                "availability": {
                    "method": "POST",
                    "path": "/graphql",
                    "headers": graphql_headers,
                    "body": json.dumps({"query": AVAILABILITY, "variables": variables}).encode(),
                },
                "availability_compact": {
                    "method": "POST",
                    "path": "/graphql",
                    "headers": graphql_headers,
                    "body": json.dumps(
                        {"query": AVAILABILITY_COMPACT, "variables": variables}
                    ).encode(),
                },
                "empty_reason": {
                    "method": "POST",
                    "path": "/graphql",
                    "headers": graphql_headers,
                    "body": json.dumps({"query": EMPTY_REASON, "variables": variables}).encode(),
                },
                "week_page": {
                    "method": "GET",
                    "path": f"/connections/{pair.connection}/schedule?"
                    f"week={pair.window_start.date().isoformat()}&duration=30",
                    "headers": {"Cookie": f"tandem_session={pair.session}"},
                },
            }
            slots = _check_answers(base, pair, targets)
            if warmup:
                # Unmeasured: the pool's connections open, statements are prepared on
                # each and the heap settles before the first measured second.
                for target in targets.values():
                    _wrk(base, target, warmup, connections, work)
            lines: list[dict[str, Any]] = []
            first_healthz_p99 = 0.0
            for name, target in targets.items():
                # Each target runs ``rounds`` times, each time right after ``/healthz``
                # (the floor beside it: this machine's speed drifts within a minute, and
                # one p99 of a few seconds is noisy); the line reports the median round.
                measured: list[tuple[float, dict[str, Any], float]] = []
                for _ in range(1 if name == "healthz" else rounds):
                    floor = first_healthz_p99
                    if name != "healthz":
                        beside = _wrk(base, targets["healthz"], seconds, connections, work)
                        floor = beside["p99_us"] / 1000
                    figures = _wrk(base, target, seconds, connections, work)
                    if name == "healthz":
                        first_healthz_p99 = floor = figures["p99_us"] / 1000
                    measured.append((figures["p99_us"] / 1000 / floor, figures, floor))
                measured.sort(key=lambda m: m[0])
                ratio, figures, floor = measured[len(measured) // 2]
                p99 = figures["p99_us"] / 1000
                line = {
                    "name": name,
                    "database": database,
                    "connections": connections,
                    "requests_per_s": round(
                        figures["requests"] / (figures["duration_us"] / 1e6), 1
                    ),
                    "p50_ms": round(figures["p50_us"] / 1000, 2),
                    "p99_ms": round(p99, 2),
                    "healthz_p99_ms": round(floor, 2),
                    "ratio_p99_to_healthz": round(ratio, 2),
                    "ratios": [round(m[0], 2) for m in measured],
                    "non_2xx": sum(m[1]["non_2xx"] for m in measured),
                    "errors": sum(m[1]["errors"] for m in measured),
                }
                if name in ("availability", "availability_compact"):
                    line["slots"] = slots
                print(json.dumps(line), flush=True)
                lines.append(line)
            rss = _peak_rss_mb(process.pid)
        finally:
            process.terminate()
            process.wait(timeout=20)
            log.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    by_name = {line["name"]: line for line in lines}

    def met(name: str) -> bool:
        line = by_name[name]
        return bool(
            line["requests_per_s"] >= GOAL_RPS
            and line["ratio_p99_to_healthz"] is not None
            and line["ratio_p99_to_healthz"] <= GOAL_RATIO
            and line["non_2xx"] == 0
            and line["errors"] == 0
        )

    check = {
        "check": True,
        "database": database,
        "date": datetime.now().astimezone().date().isoformat(),
        "peak_rss_mb": rss,
        "peak_rss_met": rss <= GOAL_RSS_MB,
        "availability_met": met("availability"),
        "availability_compact_met": met("availability_compact"),
        "empty_reason_met": met("empty_reason"),
        "week_page_met": met("week_page"),
    }
    print(json.dumps(check), flush=True)
    return [*lines, check]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=4, help="per target and round (default 4)")
    parser.add_argument("--rounds", type=int, default=3, help="per target (default 3)")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument(
        "--warmup", type=int, default=2, help="unmeasured seconds per target first (default 2)"
    )
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        raise SystemExit("bench.api_load needs wrk on the PATH (apt-get install wrk)")
    run_round("sqlite", None, args.seconds, args.connections, args.warmup, args.rounds)
    postgres = os.environ.get("TANDEM_BENCH_POSTGRES_URL")
    if postgres:
        run_round("postgresql", postgres, args.seconds, args.connections, args.warmup, args.rounds)


if __name__ == "__main__":
    main()
