"""A board observer in its own process: how late do changes reach an open board?

A load generator that also listens to boards measures its own starvation as much as the
server's delay: its event loop, busy sending requests, reads the sockets late. This observer
does nothing else. It opens one board websocket with a session cookie, makes its own probe
change every ``--interval`` seconds through the pod API (it files a task, ``POST /api/tasks``,
in a pod of its own), and times each probe from the API's answer to the first frame that names
the task. It also collects the server's own figure, ``data-lag`` on every frame (the age of the
frame's newest change when the server sent it), so a slow server and a slow network can be
told apart. After ``--seconds`` (or on SIGTERM) it files nothing more, waits up to
``--settle`` seconds for late frames, completes its probe tasks (so a run that expects every
task done still finds them done) and prints one JSON object on stdout:

``probes``, ``received``, ``missing`` (never named by a frame), ``via_refresh`` (covered by a
refresh frame instead), ``p50_ms``/``p95_ms``/``max_ms`` (API answer → frame, negative when
the frame came first), ``server_lag_p50_ms``/``server_lag_p95_ms``/``server_lag_max_ms`` (over
every frame), ``frames``, ``refreshes``, ``lag_notes`` (frames past the board's 2 s note),
``prefix`` and ``answered`` (probe id → ``time.time()`` of its answer, so a caller watching
other boards on the same machine can time them too).

``--mode bare`` measures the bare channel layer instead (``bench_live.py``'s bare app: an HTTP
``POST /send?id=…`` that the app ``group_send``s to every socket), the floor PodBoard is held to.

    .venv/bin/python bench/observer.py --url http://127.0.0.1:8000 --session KEY --token TOKEN \\
        --pod ObserverPod [--seconds 15] [--interval 0.5]
    .venv/bin/python bench/observer.py --url … --setup   # makes its own user, pod and token
                                                         # (needs the server's DATABASE_URL)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import statistics
import sys
import time
import uuid
from pathlib import Path

import httpx
from websockets.asyncio.client import connect as ws_connect

ROOT = Path(__file__).resolve().parents[1]
LAG = re.compile(r'<div id="live-meta"[^>]*?data-lag="(\d+)"')
REFRESH = re.compile(r'<div id="live-meta"[^>]*?data-refresh="')
LAG_NOTE_MS = 2000


def percentile(values, pct):
    """Nearest-rank percentile; None when there are no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, round(pct / 100 * len(ordered) + 0.5) - 1))]


def setup_identity(pod):
    """Create (in the server's database) a user with a session, the pod ``pod`` and a token
    for it; return ``(session key, token)``. Needs Django settings for the server's database."""
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "podboard.settings")
    import django

    django.setup()
    from django.contrib.auth import get_user_model

    from tasks_app.models import Pod, PodToken
    from tests.support.sessions import session_cookie_for

    user, _ = get_user_model().objects.get_or_create(username="board-observer")
    pod_row, _ = Pod.objects.get_or_create(name=pod, defaults={"order": 10_000})
    return session_cookie_for(user), PodToken.issue(pod=pod_row, label="board observer")[1]


class Observer:
    def __init__(self, args):
        self.args = args
        self.base = args.url.rstrip("/")
        self.prefix = args.prefix if args.exact_prefix else f"{args.prefix}{uuid.uuid4().hex[:6]}-"
        self.names = re.compile(r'id="live-put-task-(' + re.escape(self.prefix) + r'[^"]*)"')
        self.seen = {}  # probe id -> perf_counter when a frame first named it
        self.refreshed_at = []  # perf_counter of every refresh frame
        self.lags = []  # data-lag of every frame (ms)
        self.frames = 0

    def ws_url(self):
        scheme = "wss" if self.base.startswith("https") else "ws"
        host = self.base.split("://", 1)[1]
        query = "" if self.args.mode == "bare" else "?since=999999999"
        return f"{scheme}://{host}{self.args.ws_path}{query}"

    async def listen(self, socket):
        async for message in socket:
            now = time.perf_counter()
            self.frames += 1
            if self.args.mode == "bare":
                self.seen.setdefault(message.strip(), now)
                continue
            lag = LAG.search(message)
            if lag:
                self.lags.append(int(lag.group(1)))
            if REFRESH.search(message):
                self.refreshed_at.append(now)
            for task_id in self.names.findall(message):
                self.seen.setdefault(task_id, now)

    async def probe(self, client, n):
        """Make one change; return ``(probe id, perf_counter of the answer, wall clock)``."""
        probe_id = f"{self.prefix}{n}"
        if self.args.mode == "bare":
            answer = await client.post("/send", params={"id": probe_id})
        else:
            answer = await client.post(
                "/api/tasks",
                json={"id": probe_id, "title": f"Observer probe {n}", "pod_owner": self.args.pod},
            )
        answered, wall = time.perf_counter(), time.time()
        answer.raise_for_status()
        return probe_id, answered, wall

    async def cleanup(self, client, probe_ids):
        """Complete the probe tasks, so a run that expects every task done still finds them so."""
        instance = {"instance": "board-observer#1"}
        for probe_id in probe_ids:
            started = await client.post(f"/api/tasks/{probe_id}/start", json=instance)
            if started.status_code == 200:
                await client.post(f"/api/tasks/{probe_id}/complete", json=instance)

    async def run(self):
        args = self.args
        headers = {"Origin": self.base}
        if args.session:
            headers["Cookie"] = f"sessionid={args.session}"
        api_headers = {"Authorization": f"Bearer {args.token}"} if args.token else {}
        async with (
            ws_connect(self.ws_url(), additional_headers=headers, max_queue=None) as socket,
            httpx.AsyncClient(base_url=self.base, headers=api_headers, timeout=30) as client,
        ):
            listener = asyncio.create_task(self.listen(socket))
            stop = asyncio.Event()
            asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
            await asyncio.sleep(0.3)
            sent = []
            start = time.perf_counter()
            n = 0
            while not stop.is_set() and (
                args.seconds <= 0 or time.perf_counter() - start < args.seconds
            ):
                n += 1
                sent.append(await self.probe(client, n))
                next_at = start + n * args.interval
                await asyncio.sleep(max(0.0, next_at - time.perf_counter()))
            deadline = time.perf_counter() + args.settle
            while time.perf_counter() < deadline and any(p not in self.seen for p, *_ in sent):
                await asyncio.sleep(0.05)
            listener.cancel()
            if args.mode != "bare" and args.cleanup:
                await self.cleanup(client, [p for p, *_ in sent])
        return self.report(sent)

    def report(self, sent):
        delays, missing, via_refresh = [], 0, 0
        for probe_id, answered, _wall in sent:
            if probe_id in self.seen:
                delays.append((self.seen[probe_id] - answered) * 1000)
                continue
            refresh = [t for t in self.refreshed_at if t >= answered]
            if refresh:
                via_refresh += 1
                delays.append((min(refresh) - answered) * 1000)
            else:
                missing += 1

        def ms(value):
            return None if value is None else round(value, 1)

        return {
            "mode": self.args.mode,
            "probes": len(sent),
            "received": len(delays) - via_refresh,
            "via_refresh": via_refresh,
            "missing": missing,
            "p50_ms": ms(statistics.median(delays)) if delays else None,
            "p95_ms": ms(percentile(delays, 95)),
            "max_ms": ms(max(delays)) if delays else None,
            "server_lag_p50_ms": ms(percentile(self.lags, 50)),
            "server_lag_p95_ms": ms(percentile(self.lags, 95)),
            "server_lag_max_ms": ms(max(self.lags)) if self.lags else None,
            "frames": self.frames,
            "refreshes": len(self.refreshed_at),
            "lag_notes": sum(lag > LAG_NOTE_MS for lag in self.lags),
            "prefix": self.prefix,
            # When each probe's API answer came (time.time()), for a caller that watches other
            # boards on this machine and wants their delays too.
            "answered": {probe_id: wall for probe_id, _answered, wall in sent},
        }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="the server's http base URL")
    parser.add_argument("--mode", choices=["podboard", "bare"], default="podboard")
    parser.add_argument("--session", help="a session key of a user who may see the board")
    parser.add_argument("--token", help="a pod token for --pod (the probes file tasks there)")
    parser.add_argument("--pod", default="ObserverPod")
    parser.add_argument("--setup", action="store_true", help="create the session, pod, token")
    parser.add_argument(
        "--seconds", type=float, default=15.0, help="how long to probe (0: until SIGTERM)"
    )
    parser.add_argument("--interval", type=float, default=0.5, help="seconds between probes")
    parser.add_argument("--settle", type=float, default=5.0, help="wait for late frames")
    parser.add_argument("--prefix", default="OBS-", help="probe ids start with it")
    parser.add_argument(
        "--exact-prefix", action="store_true", help="use --prefix as it is (no random part)"
    )
    parser.add_argument("--ws-path", default=None)
    parser.add_argument("--no-cleanup", dest="cleanup", action="store_false")
    args = parser.parse_args(argv)
    if args.ws_path is None:
        args.ws_path = "/ws/bare/" if args.mode == "bare" else "/ws/board/"
    if args.mode == "podboard":
        if args.setup:
            args.session, args.token = setup_identity(args.pod)
        if not (args.session and args.token):
            parser.error("podboard mode needs --session and --token, or --setup")
    print(json.dumps(asyncio.run(Observer(args).run())))


if __name__ == "__main__":
    main()
