"""Simulated pods for the demo: instances of ProductPod, DevPod and QAPod working the pod API.

Each instance is a small state machine driven by one scheduler, so a run is deterministic for a
seed (given the same answers from the server): pull with ``next``, read the start context,
send a few trace heartbeats, then complete with outputs, a handoff note, a reasoning trace and
a chain of thought. Some instances run out of context and scale out, some stall and stop
answering (their lease expires), some hand off to a follow-up task they file themselves. When
the first pod's queue runs dry it files a new chain of work so the board keeps moving.

How idle instances find work: by polling ``next`` (the default), by long-poll (``next`` with
``wait``, on a thread of its own so the other instances keep moving) for the pods in
``long_poll``, or by webhook for the pods in ``webhook`` (``WebhookInbox`` receives the signed
notices and wakes an idle instance, which starts the task it names). Instances scale out when
the server's trace answer advises it (``capacity.advice``), and hand ``next_steps`` on.

The simulator only speaks HTTP (``httpx.Client``): it runs against a live server, or against
Django in-process through any httpx transport in tests.

Why one module of this size: the pods' behaviours share the scheduler, the HTTP client and the
run's statistics; split apart they would pass those back and forth on every step.
"""

import heapq
import queue
import random
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx

FEATURES = [
    "Sign-in with OAuth",
    "Password-less magic links",
    "CSV export of reports",
    "Dark mode",
    "Audit log",
    "API rate limiting",
    "Outgoing webhooks",
    "Team invitations",
    "Billing page",
    "Search across projects",
    "Two-factor recovery codes",
    "Slack notifications",
    "Bulk task import",
    "Usage dashboard",
    "Per-project permissions",
    "Email digest",
    "Offline mode for the mobile app",
    "Onboarding checklist",
    "Data retention policy",
    "Public status page",
]

ACTIONS = {
    "ProductPod": [
        ("Read the customer interviews", "Scope the problem before the solution"),
        ("Draft the user stories", "Each story needs an acceptance test QA can run"),
        ("Check the threat model", "Security constraints shape the spec"),
        ("List what is out of scope", "Keep DevPod's change small"),
        ("Write acceptance criteria", "QAPod tests exactly these"),
    ],
    "DevPod": [
        ("Read the spec and linked outputs", "Start from ProductPod's decisions"),
        ("Sketch the data model", "Migrations are the hardest part to change later"),
        ("Implement the view and the API", "One code path for both callers"),
        ("Write unit tests", "Prove the acceptance criteria before QA does"),
        ("Refactor the service layer", "Keep the module under a few hundred lines"),
        ("Run the whole test suite", "Nothing else may break"),
    ],
    "QAPod": [
        ("Read the acceptance criteria", "Test what was promised"),
        ("Run the end-to-end suite", "Catch integration gaps"),
        ("Try the edge cases by hand", "Empty input, huge input, unicode"),
        ("Check accessibility", "Keyboard and screen reader paths"),
        ("Write the test report", "The lead reads this before release"),
    ],
}
GENERIC_ACTIONS = [
    ("Read the start context", "Begin from the baton"),
    ("Do the work", "This is what the task asks"),
    ("Check the result", "Before handing off"),
]
# What a simulated QA finds when it sends work back, a pod asks a person, a reviewer wants.
FINDINGS = [
    "The sign-in form accepts an empty password. Steps: open /login, submit empty fields.",
    "Two acceptance criteria fail on Safari: the date picker never opens.",
    "Unicode names are cut at 20 characters in the export.",
    "The error message leaks a stack trace when the upstream API times out.",
]
QUESTIONS = [
    "The spec allows both OAuth and SAML: which one do we ship first?",
    "Should deleted projects stay searchable for admins?",
    "Is a 2-second p95 acceptable for the export, or do we need a background job?",
    "May I drop support for the legacy v1 endpoint in this change?",
]
CHANGE_REQUESTS = [
    "Add a test for the empty-input case before this goes to QA.",
    "Split the migration: the data backfill must run separately.",
    "The handoff note does not say how to run it; add the steps.",
]
# How many of its turns an instance waits for a person's answer before it completes anyway.
ASK_PATIENCE = 6
# Rework rounds a simulated QA asks for on one task, at most.
MAX_REWORKS = 2

THOUGHTS = [
    "The handoff note answers the open question, so I can skip re-reading the brief.",
    "This is larger than it looks; split the change if the context fills up.",
    "The linked outputs are enough to start; no need to ask the previous pod.",
    "Prefer the smallest change that satisfies the acceptance criteria.",
    "An edge case here would surprise QA; cover it now.",
    "The trace so far shows the risky step is done; the rest is routine.",
]
TASK_TYPES = {"ProductPod": "spec", "DevPod": "build", "QAPod": "qa"}
TITLE_VERBS = {"ProductPod": "Spec", "DevPod": "Build", "QAPod": "Test"}


def id_prefix(pod):
    """Return the id prefix of tasks the simulator files for ``pod`` (``DevPod`` → ``DEV``)."""
    known = {"ProductPod": "PROD", "DevPod": "DEV", "QAPod": "QA"}
    if pod in known:
        return known[pod]
    return re.sub(r"(?i)pod$", "", pod).upper() or pod.upper()


@dataclass
class Chances:
    """How often an instance does something other than a plain completion (0..1 each)."""

    stall: float = 0.07
    scale_out: float = 0.15
    auto_handoff: float = 0.12
    send_back: float = 0.3  # the last pod of the chain sends its predecessor's work back
    ask: float = 0.08  # the holder asks a person a question
    request_changes: float = 0.3  # a reviewer pod requests changes instead of approving


@dataclass
class Stats:
    actions: int = 0
    claimed: int = 0
    heartbeats: int = 0
    completed: int = 0
    scaled_out: int = 0
    stalled: int = 0
    sync_handoffs: int = 0
    auto_handoffs: int = 0
    long_polls: int = 0
    webhooks: int = 0
    sent_back: int = 0
    asked: int = 0
    answered: int = 0
    reviewed: int = 0
    changes_requested: int = 0
    filed: int = 0
    lost: int = 0
    errors: int = 0

    def line(self):
        return ", ".join(f"{name} {value}" for name, value in vars(self).items())


class RealClock:
    """Wall-clock time; ``sleep`` wakes early when ``stop`` is set."""

    def __init__(self, stop):
        self.stop = stop

    def now(self):
        return time.monotonic()

    def sleep(self, seconds):
        if seconds > 0:
            self.stop.wait(seconds)


class VirtualClock:
    """Time that jumps to the next scheduled action at once (tests, ``--speed 0``)."""

    def __init__(self):
        self.t = 0.0

    def now(self):
        return self.t

    def sleep(self, seconds):
        self.t += max(0.0, seconds)


class PodApi:
    """Call the pod API with the token of the pod an instance plays."""

    def __init__(self, http, tokens, trace_path="/api/tasks/{id}/trace"):
        self.http = http
        self.tokens = dict(tokens)
        self.trace_path = trace_path

    def call(self, method, path, *, pod, json=None, params=None):
        """Return ``(status, body)``; the body is parsed JSON, or None when empty."""
        response = self.http.request(
            method,
            path,
            json=json,
            params=params,
            headers={"Authorization": f"Bearer {self.tokens[pod]}", "Accept": "application/json"},
        )
        body = None
        if response.content:
            try:
                body = response.json()
            except ValueError:
                body = {"code": "bad_response", "detail": response.text[:200]}
        return response.status_code, body

    def next(self, pod, instance, wait=0):
        body = {"pod_owner": pod, "instance": instance}
        if wait:
            body["wait"] = wait
        return self.call("POST", "/api/tasks/next", pod=pod, json=body)

    def start(self, pod, task_id, instance):
        return self.call(
            "POST", f"/api/tasks/{task_id}/start", pod=pod, json={"instance": instance}
        )

    def trace(self, pod, task_id, payload):
        return self.call("POST", self.trace_path.format(id=task_id), pod=pod, json=payload)

    def complete(self, pod, task_id, payload):
        return self.call("POST", f"/api/tasks/{task_id}/complete", pod=pod, json=payload)

    def auto_handoff(self, pod, task_id, next_task_id, note, instance=""):
        return self.call(
            "POST",
            f"/api/tasks/{task_id}/auto_handoff",
            pod=pod,
            json={"next_task_id": next_task_id, "note": note, "instance": instance},
        )

    def create(self, pod, payload):
        return self.call("POST", "/api/tasks", pod=pod, json=payload)

    def get(self, pod, task_id):
        return self.call("GET", f"/api/tasks/{task_id}", pod=pod)

    def list(self, pod, **params):
        return self.call("GET", "/api/tasks", pod=pod, params=params)

    def pods(self, pod):
        return self.call("GET", "/api/pods", pod=pod)

    def send_back(self, pod, task_id, instance, to, findings):
        body = {"instance": instance, "to": to, "findings": findings}
        return self.call("POST", f"/api/tasks/{task_id}/send_back", pod=pod, json=body)

    def ask(self, pod, task_id, instance, question):
        body = {"instance": instance, "question": question}
        return self.call("POST", f"/api/tasks/{task_id}/ask", pod=pod, json=body)

    def review(self, pod, task_id, verdict, note=""):
        body = {"verdict": verdict, "note": note}
        return self.call("POST", f"/api/tasks/{task_id}/review", pod=pod, json=body)


@dataclass(order=True)
class _Turn:
    at: float
    order: int
    agent: "Agent" = field(compare=False)


@dataclass(eq=False)
class Agent:
    """One running instance of a pod, and the task it works on."""

    pod: str
    name: str
    task_id: str = ""
    title: str = ""
    fate: str = ""  # "complete" | "scale_out" | "stall" | "auto_handoff"
    steps_left: int = 0
    step_no: int = 0
    tokens: int = 0
    started: bool = False
    limit: int = 0  # the pod's context limit, from the start context
    turn: int = 0  # the agent's latest scheduled turn; older ones are stale
    idle: str = ""  # "long_poll" or "webhook" while it waits for work that way
    upstream: str = ""  # the task whose baton it carries (where work is sent back to)
    ask_at: int = -1  # the step at which it asks a person, -1 for none
    asking: int = 0  # turns it has waited for the answer (0: not waiting)


class Simulator:
    """Play pod instances against the API until stopped or a bound is reached."""

    def __init__(
        self,
        api,
        *,
        pods=("ProductPod", "DevPod", "QAPod"),
        instances=2,
        speed=1.0,
        seed=None,
        clock=None,
        stop=None,
        log=None,
        chances=None,
        token_limit=15_000,
        max_open=None,
        long_poll=(),
        webhook=(),
        wait=20,
    ):
        if not pods:
            raise ValueError("Name at least one pod to simulate.")
        self.api = api
        self.pods = list(pods)
        self.speed = speed
        self.rng = random.Random(seed)
        # Human-control decisions (send back, ask, review) draw from their own sequence.
        self.control_rng = random.Random(None if seed is None else f"control-{seed}")
        self._reviewers = None  # {reviewer pod: [pods it reviews]}, read once from /api/pods
        self._review_seen = {}  # task id -> when a reviewer first saw it waiting
        self._changes_asked = set()
        # A task waits this long in Review before a simulated reviewer decides, so a person
        # watching the board has time to approve or request changes first.
        self.review_after = 15 / speed if speed else 0
        self.stop = stop or threading.Event()
        self.clock = clock or (VirtualClock() if not speed else RealClock(self.stop))
        self.log_line = log or (lambda line: None)
        self.chances = chances or Chances()
        self.token_limit = token_limit
        # File new work only while fewer tasks than this are open, so queues stay short.
        self.max_open = max_open or 2 * instances * len(self.pods)
        self.stats = Stats()
        self.transcript = []
        # Long-poll and webhooks need real time (threads, a receiver); a virtual clock polls.
        realtime = isinstance(self.clock, RealClock)
        self.long_poll = set(long_poll) if realtime else set()
        self.webhook = set(webhook) if realtime else set()
        self.wait = wait
        self.inbox = queue.Queue()
        self._waiting = set()  # agents with a long-poll in flight
        self._numbers = {pod: instances for pod in self.pods}
        self._queue = []
        self._order = 0
        self._next_chain = None
        self._t0 = self.clock.now()
        for pod in self.pods:
            for n in range(1, instances + 1):
                self._schedule(Agent(pod=pod, name=f"{pod}#{n}"), self.rng.uniform(0, 1.5))

    # Scheduling --------------------------------------------------------------------------

    def _schedule(self, agent, delay, base=None):
        base = self.clock.now() if base is None else base
        self._order += 1
        agent.turn = self._order
        heapq.heappush(self._queue, _Turn(base + delay, self._order, agent))

    def _pace(self, low, high):
        """Return a delay in seconds: ``low``..``high`` at speed 1, shorter when faster."""
        delay = self.rng.uniform(low, high)
        return delay / self.speed if self.speed else delay

    def log(self, agent, message):
        line = f"{agent.name:<13} {message}"
        self.transcript.append(line)
        elapsed = self.clock.now() - self._t0
        self.log_line(f"[{elapsed:7.1f}s] {line}")

    def run(self, *, max_actions=None, duration=None):
        """Run until ``stop`` is set, ``max_actions`` steps ran or ``duration`` seconds passed."""
        while (self._queue or self.long_poll or self.webhook) and not self.stop.is_set():
            if max_actions is not None and self.stats.actions >= max_actions:
                break
            if not self._next_due() or not self._queue:
                continue
            turn = heapq.heappop(self._queue)
            if turn.order != turn.agent.turn:
                continue  # rescheduled since (woken by a webhook or a long-poll answer)
            if duration is not None and turn.at - self._t0 > duration:
                break
            if self.stop.is_set():
                break
            self.stats.actions += 1
            try:
                delay = self.step(turn.agent)
            except httpx.HTTPError as exc:
                self.stats.errors += 1
                self.log(turn.agent, f"cannot reach PodBoard ({exc.__class__.__name__}); retrying")
                # From now, so a server that went away is not hit by a burst of late turns.
                self._schedule(turn.agent, self._pace(2, 4) if self.speed else 1.0)
                continue
            if delay is None:
                continue  # waiting (long-poll): the inbox reschedules it
            # Planned times, not "now": a slow answer does not reorder the instances.
            self._schedule(turn.agent, delay, base=turn.at)
        return self.stats

    def _next_due(self):
        """Wait until the next turn is due, handling what arrives in the inbox meanwhile;
        return True when a turn is due (False: look at the queue again)."""
        at = self._queue[0].at if self._queue else self.clock.now() + 1.0
        if not (self.long_poll or self.webhook):
            self.clock.sleep(at - self.clock.now())
            return True
        try:
            item = self.inbox.get(timeout=max(0.0, min(at - self.clock.now(), 1.0)))
        except queue.Empty:
            return self.clock.now() >= at
        self._arrived(*item)
        return False

    def _arrived(self, what, *details):
        if what == "pulled":
            agent, status, body = details
            agent.idle = ""
            if status == 200 and body:
                self.stats.long_polls += 1
                self._pulled(agent, body, how="long-poll")
                self._schedule(agent, self._pace(0.5, 1.5))
            elif status == 204:
                self._schedule(agent, self._pace(0.2, 0.5))  # the wait ended: ask again
            else:
                self._refused(agent, "next", status, body)
                self._schedule(agent, self._pace(3, 5))
        elif what == "notice":
            (payload,) = details
            pod, task_id = payload.get("pod"), payload.get("task_id")
            idle = [a for a in self._agents(pod) if a.idle == "webhook" and not a.task_id]
            if not idle or not task_id:
                return
            agent = idle[0]
            agent.idle = ""
            agent.task_id, agent.title = task_id, ""
            self.stats.webhooks += 1
            self.log(agent, f"webhook {payload.get('type')}: {task_id} is ready for {pod}")
            self._schedule(agent, 0)

    def _agents(self, pod):
        return {t.agent for t in self._queue if t.agent.pod == pod} | {
            a for a in self._waiting if a.pod == pod
        }

    def notify(self, payload):
        """Hand a verified webhook notice to the simulator (any thread)."""
        self.inbox.put(("notice", payload))

    # One step of one instance --------------------------------------------------------------

    def step(self, agent):
        """Do one thing for ``agent``; return the delay before its next turn."""
        if not agent.task_id:
            return self._pull(agent)
        if not agent.started:
            return self._start(agent)
        if agent.asking:
            return self._await_answer(agent)
        if agent.steps_left > 0:
            if agent.ask_at == agent.step_no:
                return self._ask(agent)
            return self._heartbeat(agent)
        return self._finish(agent)

    def _pull(self, agent):
        status, body = self.api.next(agent.pod, agent.name)
        if status == 200 and body:
            self._pulled(agent, body)
            return self._pace(1, 3)
        if status == 204:
            if agent.pod == self.pods[0]:
                self._file_work(agent)
            if self._review(agent):
                return self._pace(1, 3)
            if agent.pod in self.long_poll:
                return self._wait_long(agent)
            if agent.pod in self.webhook:
                # Idle until a webhook names a task (with a slow poll in case one is missed).
                agent.idle = "webhook"
                return self._pace(20, 30)
            return self._pace(2, 4)
        self._refused(agent, "next", status, body)
        return self._pace(3, 5)

    def _pulled(self, agent, body, how="pulled"):
        task = body["task"]
        self._take(agent, task)
        self._read_context(agent, body)
        note = body.get("handoff_note") or {}
        why = f" (baton from {note['from']}, {note['reason']})" if note.get("from") else ""
        self.log(agent, f"{how} {task['id']} «{task['title']}»{why}")
        steps = body.get("next_steps") or []
        if steps:
            self.log(agent, f"next steps from its predecessor: {'; '.join(steps[:3])}")
        self.stats.claimed += 1

    def _read_context(self, agent, context):
        capacity = context.get("capacity") or {}
        agent.limit = int(capacity.get("limit") or self.token_limit)
        agent.tokens = int(capacity.get("used") or agent.tokens)

    def _wait_long(self, agent):
        """Ask ``next`` with ``wait`` on a thread; the answer comes back through the inbox."""
        agent.idle = "long_poll"
        self._waiting.add(agent)

        def ask():
            try:
                status, body = self.api.next(agent.pod, agent.name, wait=self.wait)
            except httpx.HTTPError:
                status, body = 0, None
            self._waiting.discard(agent)
            self.inbox.put(("pulled", agent, status, body))

        threading.Thread(target=ask, name=f"long-poll {agent.name}", daemon=True).start()
        self._order += 1
        agent.turn = self._order  # no turn until the answer comes
        return None

    def _take(self, agent, task):
        agent.task_id, agent.title = task["id"], task["title"]
        agent.started, agent.step_no, agent.tokens = False, 0, int(task.get("token_count") or 0)
        roll = self.rng.random()
        c = self.chances
        if roll < c.stall:
            agent.fate = "stall"
        elif roll < c.stall + c.scale_out:
            agent.fate = "scale_out"
        elif roll < c.stall + c.scale_out + c.auto_handoff and self._downstream(agent.pod):
            agent.fate = "auto_handoff"
        else:
            agent.fate = "complete"
        agent.steps_left = 1 if agent.fate == "stall" else self.rng.randint(2, 4)
        self._plan_control(agent, task)

    def _start(self, agent):
        status, body = self.api.start(agent.pod, agent.task_id, agent.name)
        if status != 200:
            return self._lose(agent, "start", status, body)
        agent.started = True
        context = body or {}
        if not agent.title:  # started from a webhook notice: nothing claimed yet
            self._take(agent, context.get("task") or {"id": agent.task_id, "title": ""})
            agent.started = True
        self._read_context(agent, context)
        linked = len(context.get("linked_outputs") or [])
        deps = len(context.get("dependencies") or [])
        self.log(
            agent,
            f"read the start context of {agent.task_id}: "
            f"{_plural(deps, 'dependency', 'dependencies')}, "
            f"{_plural(linked, 'linked output', 'linked outputs')}",
        )
        return self._pace(1, 3)

    def _heartbeat(self, agent):
        actions = ACTIONS.get(agent.pod, GENERIC_ACTIONS)
        action, rationale = actions[agent.step_no % len(actions)]
        if agent.fate == "scale_out":
            # Fill the context window over the planned steps, reaching 90 % of the pod's limit
            # on the last: the server's answer then advises scaling out.
            limit = agent.limit or self.token_limit
            remaining = int(limit * 0.9) + self.rng.randint(100, 900) - agent.tokens
            tokens = max(100, remaining // max(1, agent.steps_left))
        else:
            tokens = self.rng.randint(600, 2500)
        agent.step_no += 1
        agent.tokens += tokens
        payload = {
            "instance": agent.name,
            "steps": [{"action": action, "rationale": rationale, "tokens": tokens}],
            "token_count": agent.tokens,
        }
        if self.rng.random() < 0.5:
            payload["thoughts"] = [{"thought": self.rng.choice(THOUGHTS)}]
        status, body = self.api.trace(agent.pod, agent.task_id, payload)
        if status != 200:
            return self._lose(agent, "trace", status, body)
        agent.steps_left -= 1
        self.stats.heartbeats += 1
        self.log(agent, f"{agent.task_id} step {agent.step_no}: {action} ({agent.tokens:,} tokens)")
        if ((body or {}).get("capacity") or {}).get("advice") == "scale_out":
            self.log(agent, f"the server advises scaling out at {agent.tokens:,} tokens")
            agent.fate, agent.steps_left = "scale_out", 0
        return self._pace(1, 3)

    def _finish(self, agent):
        if agent.fate == "send_back":
            return self._send_back(agent)
        if agent.fate == "stall":
            return self._stall(agent)
        if agent.fate == "scale_out":
            return self._complete(agent, scale_out=True)
        if agent.fate == "auto_handoff":
            self._auto_handoff(agent)
        return self._complete(agent)

    def _stall(self, agent):
        """Stop answering: the task keeps a dead claim until its lease runs out."""
        self.stats.stalled += 1
        self.log(agent, f"stalled on {agent.task_id} and stopped answering; its lease will expire")
        self._numbers[agent.pod] += 1
        self._clear(agent)
        agent.name = f"{agent.pod}#{self._numbers[agent.pod]}"
        self.log(agent, "started as a replacement instance")
        return self._pace(3, 6)

    def _complete(self, agent, scale_out=False):
        slug = _slug(agent.title)
        payload = {
            "instance": agent.name,
            "token_count": agent.tokens,
            "chain_of_thought": [{"thought": self.rng.choice(THOUGHTS)}],
        }
        if scale_out:
            payload.update(
                handoff_to_same_pod=True,
                reason="capacity_reached",
                next_steps=[f"Continue from step {agent.step_no + 1}", "Then hand off"],
                handoff_note=(
                    f"Context window full at {agent.tokens:,} tokens after {agent.step_no} steps. "
                    f"Continue from step {agent.step_no + 1}; the trace has what is done."
                ),
                reasoning_trace={
                    "summary": f"{agent.title}: stopped at the token limit, part done; "
                    "the trace says what is left.",
                    "steps": [
                        {
                            "action": "Write the handoff for the next instance",
                            "rationale": "The context is full",
                            "tokens": 150,
                        }
                    ],
                },
                outputs=[
                    {
                        "name": "partial work",
                        "uri": f"wip/{slug}.md",
                        "summary": f"What {agent.name} finished before its context filled",
                    }
                ],
            )
        else:
            payload.update(
                next_steps=self._next_steps(agent),
                handoff_note=self._handoff_text(agent),
                reasoning_trace={
                    "summary": f"{agent.title}: done in {agent.step_no} steps; "
                    f"{self.rng.choice(THOUGHTS).lower()}",
                    "steps": [
                        {"action": "Hand off", "rationale": "Work is complete", "tokens": 120}
                    ],
                },
                outputs=[self._output(agent, slug)],
            )
        status, body = self.api.complete(agent.pod, agent.task_id, payload)
        if status != 200:
            return self._lose(agent, "complete", status, body)
        body = body or {}
        if scale_out:
            continuation = (body.get("continuation") or {}).get("id", "?")
            self.stats.scaled_out += 1
            self.log(
                agent,
                f"hit its token limit at {agent.tokens:,} tokens: scaled "
                f"{agent.task_id} out to {continuation}",
            )
        else:
            self.stats.completed += 1
            started = [ctx["task"]["id"] for ctx in body.get("next") or []]
            waiting = [s["id"] for s in body.get("successors") or [] if s["id"] not in started]
            self.stats.sync_handoffs += len(started)
            detail = ""
            if started:
                detail += f"; sync handoff started {', '.join(started)}"
            if waiting:
                detail += f"; {', '.join(waiting)} waiting"
            self.log(agent, f"completed {agent.task_id}{detail}")
        self._clear(agent)
        return self._pace(1, 3)

    def _auto_handoff(self, agent):
        """File a follow-up for the next pod and hand the baton to it before completing."""
        pod = self._downstream(agent.pod)
        prefix = id_prefix(pod)
        for n in range(2, 50):
            next_id = f"{agent.task_id}-{prefix}{n}" if n > 2 else f"{agent.task_id}-{prefix}"
            payload = {
                "id": next_id,
                "title": f"Follow-up: {agent.title.split(': ', 1)[-1]}",
                "pod_owner": pod,
                "task_type": TASK_TYPES.get(pod, "follow-up"),
                "priority": 1,
                "handoff_mode": self.rng.choice(["sync", "async", "auto"]),
                "prompt": f"{agent.name} found more to do while working on {agent.task_id}.\n"
                "Pick it up from the handoff note.\n",
            }
            status, body = self.api.create(agent.pod, payload)
            if status in (200, 201):
                break
            if status != 409:
                self._refused(agent, "file a follow-up", status, body)
                return
        else:
            return
        status, body = self.api.auto_handoff(
            agent.pod,
            agent.task_id,
            next_id,
            f"{agent.name} hands {next_id} its baton: review what {agent.task_id} changed.",
            instance=agent.name,
        )
        if status == 200:
            self.stats.auto_handoffs += 1
            self.log(agent, f"auto_handoff {agent.task_id} → {next_id} ({pod})")
        else:
            self._refused(agent, "auto_handoff", status, body)

    # Human control: send back, ask a person, review -------------------------------------------

    def _plan_control(self, agent, task):
        """Decide whether this task is sent back (the chain's last pod, at most ``MAX_REWORKS``
        rounds per task) or brings a question for a person."""
        agent.upstream = task.get("handoff_from") or ""
        agent.ask_at, agent.asking = -1, 0
        if agent.fate != "complete":
            return
        roll = self.control_rng.random()
        reworks = sum(1 for dep in task.get("depends_on") or [] if ".fix" in dep)
        last = len(self.pods) > 1 and agent.pod == self.pods[-1]
        if last and agent.upstream and reworks < MAX_REWORKS and roll < self.chances.send_back:
            agent.fate = "send_back"
        elif self.control_rng.random() < self.chances.ask:
            agent.ask_at = 1

    def _send_back(self, agent):
        """Send the predecessor's work back with findings; the task returns to Ready and
        waits for the rework."""
        findings = self.control_rng.choice(FINDINGS)
        status, body = self.api.send_back(
            agent.pod, agent.task_id, agent.name, agent.upstream, findings
        )
        if status == 201:
            self.stats.sent_back += 1
            self.log(
                agent,
                f"sent {agent.upstream} back for rework as {body['rework']['id']}: {findings}",
            )
            self._clear(agent)
            return self._pace(1, 3)
        if status == 409 and (body or {}).get("code") == "invalid_transition":
            agent.fate = "complete"  # nothing to send back after all: finish normally
            return self._complete(agent)
        return self._lose(agent, "send back", status, body)

    def _ask(self, agent):
        question = self.control_rng.choice(QUESTIONS)
        status, body = self.api.ask(agent.pod, agent.task_id, agent.name, question)
        agent.ask_at = -1
        if status != 200:
            return self._lose(agent, "ask", status, body)
        agent.asking = 1
        self.stats.asked += 1
        self.log(agent, f"asked a human about {agent.task_id}: {question}")
        return self._pace(4, 8)

    def _await_answer(self, agent):
        """Look for the answer; after ``ASK_PATIENCE`` turns finish without it (completing
        closes the question)."""
        status, body = self.api.get(agent.pod, agent.task_id)
        if status != 200 or (body or {}).get("claimed_by") != agent.name:
            return self._lose(agent, "wait for an answer", status, body)
        if not body.get("question"):
            agent.asking = 0
            answers = [c for c in body.get("comments") or [] if c["kind"] == "answer"]
            if answers:
                self.stats.answered += 1
                text = answers[-1]["body"].strip().splitlines()[0][:80]
                self.log(agent, f"{answers[-1]['author'] or 'a person'} answered: {text}")
            return self._pace(1, 3)
        agent.asking += 1
        if agent.asking > ASK_PATIENCE:
            agent.asking, agent.steps_left = 0, 0
            self.log(agent, f"nobody answered; completes {agent.task_id} without the answer")
            return self._pace(1, 2)
        return self._pace(4, 8)

    def _reviewed_by(self, pod):
        if self._reviewers is None:
            status, body = self.api.pods(pod)
            self._reviewers = {}
            for item in body if status == 200 else []:
                if item.get("review_required") and item.get("reviewer"):
                    self._reviewers.setdefault(item["reviewer"], []).append(item["name"])
        return self._reviewers.get(pod, [])

    def _review(self, agent):
        """As an idle instance of a reviewer pod, decide one task that has waited in Review
        for ``review_after`` seconds; return True when it decided one."""
        now = self.clock.now()
        for pod in self._reviewed_by(agent.pod):
            status, body = self.api.call(
                "GET",
                "/api/tasks",
                pod=agent.pod,
                params={"pod": pod, "status": "review", "limit": 10},
            )
            for task in body["items"] if status == 200 else []:
                task_id = task["id"]
                if now - self._review_seen.setdefault(task_id, now) < self.review_after:
                    continue
                verdict, note = "approve", "Reviewed: good to go."
                if task_id not in self._changes_asked and (
                    self.control_rng.random() < self.chances.request_changes
                ):
                    verdict, note = "changes_requested", self.control_rng.choice(CHANGE_REQUESTS)
                status, answer = self.api.review(agent.pod, task_id, verdict, note)
                self._review_seen.pop(task_id, None)
                if status != 200:
                    self.log(agent, f"could not review {task_id}: {status} (decided already?)")
                    return True
                self.stats.reviewed += 1
                if verdict == "approve":
                    self.log(agent, f"approved {task_id}; its successors start")
                else:
                    self._changes_asked.add(task_id)
                    self.stats.changes_requested += 1
                    self.log(agent, f"requested changes on {task_id}: {note}")
                return True
        return False

    # Filing new work -------------------------------------------------------------------------

    def _file_work(self, agent):
        """File a new chain across the simulated pods, unless enough work is already open."""
        if self._open_tasks(agent) >= self.max_open:
            return
        feature = self.rng.choice(FEATURES)
        if self._next_chain is None:
            self._next_chain = self._first_free_number(agent)
        previous = None
        ids = []
        for pod in self.pods:
            while True:
                task_id = f"{id_prefix(pod)}-{self._next_chain}"
                payload = {
                    "id": task_id,
                    "title": f"{TITLE_VERBS.get(pod, 'Work on')}: {feature}",
                    "pod_owner": pod,
                    "task_type": TASK_TYPES.get(pod, "work"),
                    "priority": self.rng.randint(0, 3),
                    "handoff_mode": self.rng.choice(["sync", "async", "auto"]),
                    "prompt": _prompt(pod, feature),
                    "inputs": {"feature": feature},
                    "depends_on": [previous] if previous else [],
                    "handoff_from": previous,
                }
                status, body = self.api.create(agent.pod, payload)
                if status == 409 and previous is None:
                    self._next_chain += 1  # somebody else took the number: use the next
                    continue
                break
            if status not in (200, 201):
                self._refused(agent, f"file {task_id}", status, body)
                return
            ids.append(task_id)
            previous = task_id
        self._next_chain += 1
        self.stats.filed += len(ids)
        self.log(agent, f"queue ran dry: filed {' → '.join(ids)} «{feature}»")

    def _open_tasks(self, agent):
        """Return how many tasks are ready or active (all pods), as the API counts them."""
        total = 0
        for status in ("ready", "active"):
            code, body = self.api.list(agent.pod, status=status, limit=1)
            total += body["count"] if code == 200 else 0
        return total

    def _first_free_number(self, agent, start=1000):
        """Return the first chain number whose first task id is free (ids are dense)."""
        prefix = id_prefix(self.pods[0])

        def taken(n):
            return self.api.get(agent.pod, f"{prefix}-{n}")[0] == 200

        if not taken(start):
            return start
        low, step = start, 1
        while taken(low + step):
            low += step
            step *= 2
        high = low + step  # free; low is taken
        while high - low > 1:
            mid = (low + high) // 2
            if taken(mid):
                low = mid
            else:
                high = mid
        return high

    # Helpers ---------------------------------------------------------------------------------

    def _downstream(self, pod):
        index = self.pods.index(pod)
        return self.pods[index + 1] if index + 1 < len(self.pods) else None

    def _next_steps(self, agent):
        nxt = self._downstream(agent.pod)
        if agent.pod == "ProductPod":
            return ["Start from the acceptance criteria", "Keep the change small"]
        if agent.pod == "DevPod":
            return ["Run the acceptance tests", "Try the edge cases the trace lists"]
        return [f"Hand the result to {nxt}"] if nxt else ["Report to the lead"]

    def _handoff_text(self, agent):
        nxt = self._downstream(agent.pod)
        audience = f"{nxt}: " if nxt else ""
        return (
            f"{audience}{agent.title} is done in {agent.step_no} steps "
            f"({agent.tokens:,} tokens). Outputs are linked; start from the acceptance "
            "criteria.\n"
        )

    def _output(self, agent, slug):
        if agent.pod == "ProductPod":
            return {
                "name": "spec",
                "uri": f"docs/specs/{slug}.md",
                "summary": "User stories and acceptance criteria",
            }
        if agent.pod == "DevPod":
            return {
                "name": "branch",
                "uri": f"git://podboard/feature/{slug}",
                "summary": "Implementation with unit tests",
            }
        if agent.pod == "QAPod":
            return {
                "name": "report",
                "uri": f"reports/{agent.task_id}.html",
                "summary": "All acceptance criteria pass",
            }
        return {"name": "result", "uri": f"results/{agent.task_id}", "summary": "Done"}

    def _clear(self, agent):
        agent.task_id = agent.title = agent.fate = agent.idle = agent.upstream = ""
        agent.started, agent.steps_left, agent.step_no, agent.tokens = False, 0, 0, 0
        agent.ask_at, agent.asking = -1, 0

    def _lose(self, agent, verb, status, body):
        """The task was taken away (lease expired, a human moved it): drop it and pull again."""
        self.stats.lost += 1
        detail = (body or {}).get("detail", "") if isinstance(body, dict) else ""
        self.log(agent, f"lost {agent.task_id} at {verb} ({status}: {detail})")
        self._clear(agent)
        return self._pace(1, 3)

    def _refused(self, agent, verb, status, body):
        self.stats.errors += 1
        detail = (body or {}).get("detail", "") if isinstance(body, dict) else ""
        self.log(agent, f"could not {verb}: {status} {detail}".rstrip())


def _plural(n, one, many):
    return f"{n} {one if n == 1 else many}"


def _slug(text):
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:40] or "work"


def _prompt(pod, feature):
    if pod == "ProductPod":
        return (
            f"Write the spec for: {feature}.\n\nInclude user stories, acceptance criteria "
            "and what is out of scope.\nKeep it short enough for DevPod to start at once.\n"
        )
    if pod == "DevPod":
        return (
            f"Build {feature} from ProductPod's spec (see the linked outputs).\n\n"
            "Add unit tests for every acceptance criterion.\n"
        )
    if pod == "QAPod":
        return (
            f"Test {feature} against the acceptance criteria.\n\nReport every failure "
            "with steps to reproduce.\n"
        )
    return f"Work on {feature}.\n"


class WebhookInbox:
    """The webhook receiver of the simulated pods: a small HTTP server on this machine that
    verifies each notice (Standard Webhooks, the pod's secret) and hands it to ``deliver``."""

    def __init__(self, deliver, host="127.0.0.1"):
        self.verifiers = verifiers = {}
        self.received = 0

        inbox = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):  # noqa: N802 - http.server's name
                body = self.rfile.read(min(int(self.headers.get("content-length") or 0), 65536))
                pod = self.path.rstrip("/").rsplit("/", 1)[-1]
                try:
                    payload = verifiers[pod].verify(body, dict(self.headers))
                except Exception:  # unknown pod, bad signature, stale timestamp
                    self.send_response(401)
                    self.end_headers()
                    return
                inbox.received += 1
                deliver(payload)
                self.send_response(204)
                self.end_headers()

        self.server = ThreadingHTTPServer((host, 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def add(self, pod, secret):
        """Accept notices for ``pod`` signed with ``secret``."""
        from standardwebhooks.webhooks import Webhook

        self.verifiers[pod] = Webhook(secret)

    def url_for(self, pod):
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/hooks/{pod}"

    def close(self):
        self.server.shutdown()
        self.server.server_close()
