"""Realistic board data for the browser tests and the docs/board.png screenshot.

Run inside a configured Django process (``seed()``); the browser tests' server uses it.
"""

from datetime import timedelta

from django.contrib.auth import get_user_model
from django.utils import timezone

from tasks_app.models import Event, EventKind, HandoffNote, Pod, Status, Task, Thought, TraceStep

USERNAME = "lead"
PASSWORD = "lead-password-1"
XSS_NOTE = (
    "Spec is final. OAuth only, no passwords.\n\n"
    "<script>window.__pwned = 1</script>\n"
    '<img src="x" onerror="window.__pwned = 2">\n'
    "[details](javascript:window.__pwned=3)"
)


def seed():
    get_user_model().objects.create_user(USERNAME, password=PASSWORD, is_staff=True)
    now = timezone.now()
    pods = {
        name: Pod.objects.create(name=name, order=i, wip_limit=limit, description=desc)
        for i, (name, limit, desc) in enumerate(
            [
                ("ProductPod", 2, "Turns requests into specs and acceptance criteria."),
                ("DevPod", 3, "Builds what the spec says."),
                ("QAPod", 2, "Tests builds against the acceptance criteria."),
                ("DocsPod", None, "Writes the user-facing docs."),
            ]
        )
    }

    def task(id, pod, title, status=Status.READY, ago=0, **fields):
        fields.setdefault("created_at", now - timedelta(hours=ago + 1))
        if status != Status.READY:
            fields.setdefault("started_at", now - timedelta(hours=ago, minutes=30))
        if status == Status.DONE:
            fields.setdefault("completed_at", now - timedelta(hours=ago))
        return Task.objects.create(id=id, pod_owner=pods[pod], title=title, status=status, **fields)

    lease = now + timedelta(minutes=11, seconds=40)
    prod100 = task(
        "PROD-100",
        "ProductPod",
        "Auth spec: OAuth sign-in",
        Status.DONE,
        ago=20,
        task_type="spec",
        priority=3,
        handoff_mode="sync",
        token_count=9120,
        reasoning_summary="Chose **OAuth-only** after reviewing the threat model.",
    )
    task(
        "PROD-101",
        "ProductPod",
        "Billing page requirements",
        Status.DONE,
        ago=16,
        task_type="spec",
        priority=2,
        handoff_mode="auto",
        token_count=7400,
    )
    task(
        "PROD-102",
        "ProductPod",
        "Team invitations: user stories",
        Status.ACTIVE,
        task_type="spec",
        priority=2,
        claimed_by="ProductPod#1",
        lease_expires_at=lease,
        token_count=3310,
    )
    task("PROD-103", "ProductPod", "Audit log retention policy", task_type="spec", priority=1)
    task("PROD-104", "ProductPod", "Onboarding checklist copy", task_type="spec")

    dev101 = task(
        "DEV-101",
        "DevPod",
        "Build the sign-in form",
        Status.ACTIVE,
        task_type="build",
        priority=3,
        handoff_mode="auto",
        handoff_from=prod100,
        claimed_by="DevPod#2",
        lease_expires_at=lease,
        token_count=12850,
        prompt="Build the OAuth sign-in form.\nFollow docs/auth-spec.md; keep the form accessible.",
        inputs={"spec": "docs/auth-spec.md", "design": "https://example.com/figma/auth"},
        reasoning_summary="Split the form into a provider picker and a callback view.",
    )
    dev101.depends_on.add(prod100)
    task(
        "DEV-102",
        "DevPod",
        "Billing page: invoice table",
        Status.ACTIVE,
        task_type="build",
        priority=2,
        claimed_by="DevPod#1",
        lease_expires_at=now + timedelta(minutes=1, seconds=30),
        token_count=14900,
    )
    task(
        "DEV-98",
        "DevPod",
        "Session cookie hardening",
        Status.DONE,
        ago=30,
        task_type="build",
        priority=2,
        token_count=8800,
    )
    dev99 = task(
        "DEV-99",
        "DevPod",
        "Rate-limit the login endpoint",
        Status.DONE,
        ago=26,
        task_type="build",
        priority=2,
        token_count=15020,
        handoff_mode="async",
    )
    task(
        "DEV-99.2",
        "DevPod",
        "Rate-limit the login endpoint",
        Status.DONE,
        ago=24,
        task_type="build",
        priority=2,
        token_count=6100,
        scale_root="DEV-99",
        handoff_from=dev99,
    )
    task("DEV-201", "DevPod", "Password-less magic link email", task_type="build", priority=2)
    task("DEV-202", "DevPod", "Export invoices as CSV", task_type="build", priority=1)
    task("DEV-203", "DevPod", "Dark mode for the dashboard", task_type="build", priority=1)
    task("DEV-204", "DevPod", "Fix flaky avatar upload", task_type="bugfix", priority=0)
    task(
        "DEV-205",
        "DevPod",
        "<script>window.__pwned = 4</script> Title with markup",
        task_type="build",
        priority=0,
    )

    qa310 = task(
        "QA-310", "QAPod", "Test the sign-in form", task_type="qa", priority=3, handoff_mode="sync"
    )
    qa310.depends_on.add(dev101)
    task(
        "QA-305",
        "QAPod",
        "Regression: session cookies",
        Status.ACTIVE,
        task_type="qa",
        priority=2,
        claimed_by="QAPod#1",
        lease_expires_at=lease,
        token_count=4200,
    )
    task(
        "QA-300",
        "QAPod",
        "Exploratory test of billing",
        Status.DONE,
        ago=12,
        task_type="qa",
        priority=1,
        token_count=5100,
    )
    task(
        "QA-301",
        "QAPod",
        "Load test the login endpoint",
        Status.DONE,
        ago=8,
        task_type="qa",
        priority=1,
        token_count=3900,
    )
    task("DOC-40", "DocsPod", "Document OAuth providers", task_type="docs", priority=1)
    task(
        "DOC-41",
        "DocsPod",
        "Changelog for 1.4",
        Status.DONE,
        ago=5,
        task_type="docs",
        token_count=2100,
    )

    HandoffNote.objects.create(
        from_task=prod100,
        to_task=dev101,
        note=XSS_NOTE,
        reason="completed",
        mode="sync",
        token_count=9120,
        author="ProductPod#1",
        created_at=now - timedelta(hours=20),
    )
    HandoffNote.objects.create(
        from_task=dev99,
        to_task=Task.objects.get(pk="DEV-99.2"),
        reason="capacity_reached",
        handoff_type="scale",
        mode="async",
        token_count=15020,
        author="DevPod#1",
        note="Ran out of context at ~15K tokens. Limiter done for `/login`; `/token` remains.",
    )
    for step, (action, why, tokens) in enumerate(
        [
            ("Read the auth spec", "Scope first: OAuth only, **no passwords**.", 800),
            ("Sketch the provider picker", "Two providers at launch; keep it extensible.", 1400),
            ("Write the callback view", "State parameter checked against the session.", 2600),
        ],
        start=1,
    ):
        TraceStep.objects.create(
            task=dev101,
            step=step,
            action=action,
            rationale=why,
            tokens=tokens,
            at=now - timedelta(minutes=40 - step * 10),
        )
    Thought.objects.create(
        task=dev101, step=1, thought="Passwords add reset flows; OAuth avoids them."
    )
    Thought.objects.create(task=dev101, step=2, thought="The callback must be idempotent.")
    Event.objects.create(
        task=dev101,
        task_key="DEV-101",
        kind=EventKind.CLAIMED,
        actor="DevPod#2",
        from_status="ready",
        to_status="active",
        from_pod="DevPod",
        to_pod="DevPod",
    )
