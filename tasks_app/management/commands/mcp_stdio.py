"""Serve PodBoard's MCP tools over stdio, for a local MCP client (Claude Desktop, an IDE)."""

import anyio
from django.core.management.base import BaseCommand, CommandError

from tasks_app.auth import Unauthorized, find_token


class Command(BaseCommand):
    help = (
        "Serve the MCP tools (next_task, start_task, append_trace, complete_task, …) over "
        "stdin/stdout, acting for the pod whose token is given. Same rules, shapes and errors "
        "as the HTTP API and /mcp/."
    )

    def add_arguments(self, parser):
        parser.add_argument("--token", required=True, help="A pod token (pb_…).")

    def handle(self, *args, token, **options):
        try:
            found = find_token(token.strip())
        except Unauthorized as exc:
            raise CommandError(exc.detail) from None
        identity = (token.strip(), found.pod.name)
        anyio.run(serve, identity)


async def serve(identity):
    from mcp.server.stdio import stdio_server

    from podboard.asgi import application
    from tasks_app.push.mcp import Caller, build_server, current_token

    server = build_server(Caller(application))
    current_token.set(identity)
    async with stdio_server() as (read_stream, write_stream):
        await server.run(read_stream, write_stream, server.create_initialization_options())
