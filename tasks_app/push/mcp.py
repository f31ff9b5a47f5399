"""The MCP server: PodBoard's pod API as Model Context Protocol tools (official ``mcp`` SDK).

Each tool is one API route (``TOOLS``). Its input schema is that route's request body, path and
query parameters, read from the API's own OpenAPI document; calling it sends the same request
through PodBoard's ASGI application in this process, with the caller's pod token, so the
rules, the validation, the shapes and the error codes are exactly the API's (``next_task`` with
``wait`` long-polls through ``longpoll`` as the API does). Results:

- a 2xx answer: its JSON (``next_task`` with nothing to do: ``{"task": null}``);
- any refusal: a tool error (``isError``) whose JSON is the API's ``{code, detail, …}`` plus the
  HTTP ``status``; an unknown tool or bad arguments are tool errors too (``not_found``,
  ``validation_error``), never a failure of the MCP session.

Served over Streamable HTTP at ``/mcp/`` (``McpApp``, stateless so any worker process may answer
any request) and over stdio (``manage.py mcp_stdio``).
"""

import asyncio
import contextvars
import json
import logging
from urllib.parse import quote, urlencode

import mcp_types as types
from channels.db import database_sync_to_async
from django.conf import settings
from django.http.request import split_domain_port, validate_host
from mcp.server.lowlevel import Server
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings

from ..auth import Unauthorized, find_token

log = logging.getLogger(__name__)

SERVER_NAME = "podboard"
INSTRUCTIONS = (
    "PodBoard is the task board of a chain of AI agent pods. Your token acts for one pod. "
    "Loop: next_task (wait up to 30 s for work) -> read the start context -> append_trace while "
    "you work (it extends your lease and advises scale_out near your context limit) -> "
    "complete_task with outputs, a handoff note and next_steps. Errors carry the API's code."
)

# name, HTTP method, API route, read-only
TOOLS = [
    ("next_task", "POST", "/api/tasks/next", False),
    ("start_task", "POST", "/api/tasks/{task_id}/start", False),
    ("append_trace", "POST", "/api/tasks/{task_id}/trace", False),
    ("complete_task", "POST", "/api/tasks/{task_id}/complete", False),
    ("scale_out", "POST", "/api/tasks/{task_id}/scale_out", False),
    ("auto_handoff", "POST", "/api/tasks/{task_id}/auto_handoff", False),
    ("send_back", "POST", "/api/tasks/{task_id}/send_back", False),
    ("ask_human", "POST", "/api/tasks/{task_id}/ask", False),
    ("get_task", "GET", "/api/tasks/{task_id}", True),
    ("list_tasks", "GET", "/api/tasks", True),
]

# The raw pod token of the current caller when there is no HTTP request (stdio).
current_token = contextvars.ContextVar("podboard_mcp_token", default=None)


# Tools from the OpenAPI document -------------------------------------------------------------


class Spec:
    def __init__(self, name, method, route, read_only, operation, components):
        self.name, self.method, self.route = name, method, route
        self.path_params, self.query_params, self.body_fields = [], [], set()
        properties, required = {}, []
        for param in operation.get("parameters", []):
            schema = dict(param.get("schema", {}))
            if param.get("description"):
                schema["description"] = param["description"]
            properties[param["name"]] = schema
            (self.path_params if param["in"] == "path" else self.query_params).append(param["name"])
            if param.get("required"):
                required.append(param["name"])
        body = (
            operation.get("requestBody", {})
            .get("content", {})
            .get("application/json", {})
            .get("schema")
        )
        if body and "$ref" in body:
            component = components[body["$ref"].rsplit("/", 1)[-1]]
            for field, schema in component.get("properties", {}).items():
                properties[field] = schema
                self.body_fields.add(field)
            required += component.get("required", [])
        if name == "next_task":
            # The token's pod is the only pod it may pull for: the argument may be left out.
            required = [r for r in required if r != "pod_owner"]
        schema = {"type": "object", "properties": properties, "additionalProperties": False}
        if required:
            schema["required"] = required
        text = json.dumps(schema)
        defs = _definitions(text, components)
        text = text.replace("#/components/schemas/", "#/$defs/")
        self.input_schema = json.loads(text)
        if defs:
            self.input_schema["$defs"] = json.loads(
                json.dumps(defs).replace("#/components/schemas/", "#/$defs/")
            )
        self.tool = types.Tool(
            name=name,
            title=operation.get("summary"),
            description=operation.get("description") or operation.get("summary", ""),
            input_schema=self.input_schema,
            annotations=types.ToolAnnotations(
                read_only_hint=read_only, destructive_hint=False, open_world_hint=False
            ),
        )


def _definitions(text, components):
    """Return the component schemas ``text`` refers to, with those they refer to."""
    found, todo = {}, [text]
    while todo:
        chunk = todo.pop()
        for part in chunk.split('"#/components/schemas/')[1:]:
            name = part.split('"', 1)[0]
            if name not in found and name in components:
                found[name] = components[name]
                todo.append(json.dumps(components[name]))
    return found


_specs = None


def specs():
    """Return ``{tool name: Spec}`` for the tools whose route the API serves."""
    global _specs
    if _specs is None:
        from ..api import api

        document = api.get_openapi_schema(path_prefix="/api")
        paths, components = document["paths"], document.get("components", {}).get("schemas", {})
        built = {}
        for name, method, route, read_only in TOOLS:
            operation = paths.get(route, {}).get(method.lower())
            if operation is not None:
                built[name] = Spec(name, method, route, read_only, operation, components)
        _specs = built
    return _specs


# Calling the API -----------------------------------------------------------------------------


def _result(data, *, error=False):
    return types.CallToolResult(
        content=[types.TextContent(type="text", text=json.dumps(data))],
        structured_content=data,
        is_error=error,
    )


def refusal(status, code, detail, **extra):
    return _result({"code": code, "detail": detail, "status": status, **extra}, error=True)


def _default_host():
    for entry in settings.ALLOWED_HOSTS:
        if entry and entry != "*":
            return entry.lstrip(".")
    return "localhost"


class Caller:
    """Send tool calls to PodBoard's ASGI application (the API) as HTTP requests."""

    def __init__(self, app):
        self.app = app

    async def call(self, name, arguments, *, token, pod_name=None, origin=None):
        """Run tool ``name`` with ``arguments`` for the raw pod ``token``; a CallToolResult.

        ``origin``: the HTTP scope the MCP request came in with (its host, scheme and client
        are reused), or None (stdio).
        """
        spec = specs().get(name)
        if spec is None:
            known = ", ".join(sorted(specs()))
            return refusal(404, "not_found", f"No tool named {name!r}. Tools: {known}.")
        if not isinstance(arguments, dict):
            return refusal(422, "validation_error", "Tool arguments must be a JSON object.")
        args = dict(arguments)
        path = spec.route
        for param in spec.path_params:
            value = args.pop(param, None)
            if not isinstance(value, str) or not value:
                return refusal(
                    422,
                    "validation_error",
                    f"{param}: required (a string)",
                    errors=[{"field": param, "message": "Field required", "type": "missing"}],
                )
            path = path.replace("{" + param + "}", quote(value, safe=""))
        query = {k: args.pop(k) for k in spec.query_params if k in args and args[k] is not None}
        if name == "next_task" and "pod_owner" not in args and pod_name:
            args["pod_owner"] = pod_name
        body = None
        if spec.method != "GET":
            body = json.dumps(args).encode()
        elif args:
            unknown = ", ".join(sorted(args))
            return refusal(422, "validation_error", f"Unknown argument(s): {unknown}.")
        status, headers, content = await self.request(
            spec.method, path, query, body, token=token, origin=origin
        )
        try:
            data = json.loads(content) if content else None
        except ValueError:
            data = None
        if status == 204 and name == "next_task":
            answer = {"task": None}
            if headers.get(b"podboard-paused"):
                answer["paused"] = True
            if headers.get(b"podboard-wip-limit"):
                answer["wip_limit"] = int(headers[b"podboard-wip-limit"])
            return _result(answer)
        if 200 <= status < 300:
            return _result(data if isinstance(data, dict) else {"result": data})
        if isinstance(data, dict) and "code" in data:
            return _result({**data, "status": status}, error=True)
        return refusal(status, "error", content.decode(errors="replace")[:500] or f"HTTP {status}")

    async def request(self, method, path, query, body, *, token, origin=None):
        """Send one request through the application; return ``(status, headers, body)``."""
        origin = origin or {}
        origin_headers = dict(origin.get("headers") or [])
        host = origin_headers.get(b"host") or _default_host().encode()
        headers = [
            (b"host", host),
            (b"authorization", f"Bearer {token}".encode()),
            (b"accept", b"application/json"),
        ]
        for name in (b"x-forwarded-proto", b"x-forwarded-for"):
            if name in origin_headers:
                headers.append((name, origin_headers[name]))
        if body is not None:
            headers += [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ]
        scheme = origin.get("scheme") or (
            "https" if getattr(settings, "SECURE_SSL_REDIRECT", False) else "http"
        )
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": method,
            "scheme": scheme,
            "path": path,
            "raw_path": path.encode(),
            "root_path": "",
            "query_string": urlencode(query).encode(),
            "headers": headers,
            "client": origin.get("client") or ("127.0.0.1", 0),
            "server": origin.get("server") or ("127.0.0.1", 80),
        }
        sent_body = False
        never = asyncio.get_running_loop().create_future()

        async def receive():
            nonlocal sent_body
            if not sent_body:
                sent_body = True
                return {"type": "http.request", "body": body or b"", "more_body": False}
            await never  # the client stays connected until the answer is complete
            return {"type": "http.disconnect"}

        status, response_headers, chunks = 500, {}, []

        async def send(message):
            nonlocal status, response_headers
            if message["type"] == "http.response.start":
                status = message["status"]
                response_headers = {k.lower(): v for k, v in message.get("headers", [])}
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        try:
            await self.app(scope, receive, send)
        finally:
            never.cancel()
        return status, response_headers, b"".join(chunks)


# The MCP server --------------------------------------------------------------------------------


def build_server(caller):
    """Return the low-level MCP ``Server`` whose tools call the API through ``caller``."""

    async def list_tools(ctx, params):
        return types.ListToolsResult(tools=[spec.tool for spec in specs().values()])

    async def call_tool(ctx, params):
        request = getattr(ctx, "request", None)
        scope = getattr(request, "scope", None) or {}
        identity = scope.get("podboard.token") or current_token.get()
        if identity is None:
            return refusal(401, "unauthorized", "Send the pod token as 'Bearer <token>'.")
        token, pod_name = identity
        try:
            return await caller.call(
                params.name,
                params.arguments or {},
                token=token,
                pod_name=pod_name,
                origin=scope.get("podboard.origin"),
            )
        except Exception:  # a tool never takes the session down
            log.exception("MCP tool %s failed", params.name)
            return refusal(500, "server_error", "Something went wrong on the server; logged.")

    return Server(
        SERVER_NAME,
        version="1.0",
        title="PodBoard",
        instructions=INSTRUCTIONS,
        on_list_tools=list_tools,
        on_call_tool=call_tool,
    )


@database_sync_to_async
def _identify(raw):
    token = find_token(raw)
    return raw, token.pod.name


def bearer(headers):
    """Return the raw bearer token of ``headers`` (a dict of bytes), or None."""
    value = headers.get(b"authorization", b"").decode("latin-1")
    scheme, _, raw = value.partition(" ")
    raw = raw.strip()
    if scheme.lower() != "bearer" or not raw or len(raw) > 200 or not raw.isprintable():
        return None
    return raw


async def identify(raw):
    """Return ``(raw token, pod name)``; raise ``Unauthorized``."""
    if raw is None:
        raise Unauthorized("Send the pod token as 'Authorization: Bearer <token>'.")
    return await _identify(raw)


def transport_security():
    """The SDK's Host/Origin check, following ``ALLOWED_HOSTS`` (and ``CSRF_TRUSTED_ORIGINS``).

    Patterns the SDK cannot express (``*``, ``.example.com``) leave the check to ``McpApp``,
    which applies Django's own ``validate_host`` to every request first anyway.
    """
    hosts = list(settings.ALLOWED_HOSTS)
    if any(h == "*" or h.startswith(".") for h in hosts):
        return TransportSecuritySettings(enable_dns_rebinding_protection=False)
    allowed_hosts, allowed_origins = [], list(settings.CSRF_TRUSTED_ORIGINS)
    for host in hosts:
        allowed_hosts += [host, f"{host}:*"]
        allowed_origins += [f"{scheme}://{host}{port}" for scheme in ("http", "https")
                            for port in ("", ":*")]  # fmt: skip
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=allowed_hosts,
        allowed_origins=allowed_origins,
    )


class McpApp:
    """ASGI app for ``/mcp/``: Host check, pod token (401 before any MCP handshake), then the
    SDK's Streamable HTTP transport in stateless mode.

    Neither daphne nor uvicorn delivers ASGI lifespan through the Channels router, so the SDK's
    session manager is started here on first use, once per event loop, and runs as long as the
    loop does.
    """

    def __init__(self, api_app):
        self.caller = Caller(api_app)
        self.server = build_server(self.caller)
        self._managers = {}  # event loop -> (manager, ready event)

    async def _manager(self):
        loop = asyncio.get_running_loop()
        entry = self._managers.get(loop)
        if entry is None:
            manager = StreamableHTTPSessionManager(
                app=self.server,
                stateless=True,
                json_response=True,
                security_settings=transport_security(),
                max_request_body_size=settings.PODBOARD_MAX_BODY_BYTES,
            )
            ready = asyncio.Event()
            entry = self._managers[loop] = (manager, ready)
            task = loop.create_task(self._run(manager, ready))
            _keep.add(task)
            task.add_done_callback(_keep.discard)
        manager, ready = entry
        await ready.wait()
        return manager

    async def _run(self, manager, ready):
        async with manager.run():
            ready.set()
            await asyncio.Event().wait()

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return
        headers = {k.lower(): v for k, v in scope.get("headers") or []}
        refused = _check_host(headers)
        if refused is not None:
            return await _answer(send, *refused)
        try:
            identity = await identify(bearer(headers))
        except Unauthorized as exc:
            return await _answer(
                send,
                401,
                {"code": "unauthorized", "detail": exc.detail},
                [(b"www-authenticate", b'Bearer realm="podboard"')],
            )
        manager = await self._manager()
        origin = {k: scope.get(k) for k in ("scheme", "client", "server", "headers")}
        inner = {**scope, "podboard.token": identity, "podboard.origin": origin}
        reset = current_token.set(identity)
        try:
            await manager.handle_request(inner, receive, send)
        finally:
            current_token.reset(reset)


_keep = set()


def _check_host(headers):
    """Return ``(status, body)`` when the Host (or Origin) is not one PodBoard serves."""
    allowed = list(settings.ALLOWED_HOSTS)
    if settings.DEBUG and not allowed:
        allowed = [".localhost", "127.0.0.1", "[::1]"]
    host = headers.get(b"host", b"").decode("latin-1")
    domain, _port = split_domain_port(host)
    if not domain or not validate_host(domain, allowed):
        return 400, {"code": "bad_request", "detail": f"Host {host!r} is not served here."}
    origin = headers.get(b"origin")
    if origin:
        text = origin.decode("latin-1")
        trusted = set(settings.CSRF_TRUSTED_ORIGINS)
        origin_domain, _ = split_domain_port(text.split("://", 1)[-1])
        if text not in trusted and not validate_host(origin_domain, allowed):
            return 403, {"code": "forbidden", "detail": f"Origin {text!r} is not allowed."}
    return None


async def _answer(send, status, data, extra_headers=()):
    body = json.dumps(data).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *extra_headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
