"""Push to pods: webhooks from an outbox, long-poll wake-ups, and the MCP server.

``workable``  which Events of a rule make a task workable for its pod, and how (one place, so
              webhooks and long-poll agree).
``outbox``    the rule runner's hook: writes a ``WebhookDelivery`` row per workable task of a
              pod with a webhook, in the rule's own transaction, and wakes long-poll waiters
              and delivery workers after commit.
``urls``      which webhook URLs are acceptable (http(s), never PodBoard itself, private
              networks only when allowed).
``signing``   Standard Webhooks headers for a delivery (``standardwebhooks``).
``worker``    the delivery worker: claims due rows, sends, logs each attempt, retries.
``wakeup``    the channel-layer groups that wake waiting ``next`` calls and workers.
``longpoll``  ``next`` with ``wait``: an async wait that holds no thread and no connection.
``mcp``       the Model Context Protocol server (Streamable HTTP at /mcp/, and stdio).
"""
