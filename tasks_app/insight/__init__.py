"""Insight: what the Event history says in aggregate.

``flow``        the flow metrics of ``GET /api/metrics/flow`` and ``/metrics/``: throughput,
                cycle, lead and handoff-wait percentiles, scale-outs, stalls, review
                rejections, send-backs, tokens and the cumulative flow diagram, computed by
                the database (window functions over Events), never row by row in Python.
``flow_sql``    the rows each figure is made of, over a range of time, as SQL.
``rollup``      those rows stored once per closed day, so a request reads today's Events
                and a few rows per past day.
``sql``         the few expressions that differ between PostgreSQL and SQLite.
``chains``      the delivery chain of a task: everything linked to it by dependencies,
                batons, continuations and rework, laid out as a server-side SVG.
``prometheus``  ``/metrics/prometheus``: counters read from the database at scrape time (so
                every server process reports the same figures), plus request counts.
``api``, ``views``, ``urls``  the JSON route, the pages and their URLs.
"""
