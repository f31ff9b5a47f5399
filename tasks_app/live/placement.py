"""Where a changed card goes in its column: the id of the card that follows it.

The order is ``ordering.COLUMN_KEYS`` (the one the board pages and the claim use): a card
goes in front of the first card whose sort key comes after its own. A frame places every
changed card, so this runs once per card per render; the statement is written once per
column kind and database from ``COLUMN_KEYS`` and kept, instead of compiling an ORM query
per card (compiling cost more than running it). ``tests/test_live_placement.py`` checks it
against the ORM's ``ordering.after_in_column``/``column_order`` on every column kind.
"""

from django.db import connection

from .. import ordering
from ..models import Task

_statements = {}  # (vendor, status) -> (sql, value preparers)


def _column(name):
    return Task._meta.get_field(name).column


def _statement(status):
    key = (connection.vendor, status)
    if key not in _statements:
        quote = connection.ops.quote_name

        def expression(name):
            if name == "carries_baton":
                return f"(CASE WHEN {quote(_column('handoff_from'))} IS NULL THEN 0 ELSE 1 END)"
            return quote(_column(name))

        keys = ordering.COLUMN_KEYS[status]
        after = []
        for i, (name, desc) in enumerate(keys):
            equal = [f"{expression(n)} = %s" for n, _ in keys[:i]]
            after.append(
                "(" + " AND ".join([*equal, f"{expression(name)} {'<' if desc else '>'} %s"]) + ")"
            )
        # Every card after this one has its first key on the same side (a bound the index
        # range can use, where the OR alone made the database read the whole column), and no
        # null key (the comparisons leave those out), so the order needs no nulls clause,
        # which would keep the database from reading the index in order.
        first, first_desc = keys[0]
        bound = f"{expression(first)} {'<=' if first_desc else '>='} %s"
        order = ", ".join(f"{expression(n)} {'DESC' if d else 'ASC'}" for n, d in keys)
        sql = (
            f"SELECT {quote(_column('id'))} FROM {quote(Task._meta.db_table)} "
            f"WHERE {quote(_column('pod_owner'))} = %s AND {quote(_column('status'))} = %s "
            f"AND {bound} AND ({' OR '.join(after)}) ORDER BY {order} LIMIT 1"
        )
        fields = [
            None if name == "carries_baton" else Task._meta.get_field(name) for name, _ in keys
        ]
        _statements[key] = (sql, fields)
    return _statements[key]


def next_in_column(row):
    """Return the id of the card that follows ``row`` in its column, or None (append).

    ``row``: a ``values()`` row with ``pod_owner``, ``status``, ``handoff_from`` and the
    column's key fields. None too when a key value is unknown (null), as in
    ``ordering.after_in_column``: the board then appends the card.
    """
    status = row["status"]
    if status not in ordering.COLUMN_KEYS:
        return None
    values = ordering.key_values(row, status)
    if any(value is None for value in values):
        return None
    sql, fields = _statement(status)
    prepared = [
        value if field is None else field.get_db_prep_value(value, connection)
        for field, value in zip(fields, values, strict=True)
    ]
    params = [row["pod_owner"], status, prepared[0]]
    for i in range(len(prepared)):
        params.extend(prepared[: i + 1])
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        found = cursor.fetchone()
    return found[0] if found else None
