"""Keyset paging of the ARM tables: one page of rows and the key of the next.

Why keyset and not offsets: a `$skiptoken` that is a position in (resource group, name) order never
shifts when resources are created or deleted during a listing, so a client that follows every
nextLink sees each resource that existed throughout exactly once. Pages are small on purpose
(`ArmLimits.page_size`), so clients must follow nextLink.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence


def rows_page(
    db: sqlite3.Connection,
    table: str,
    scope: Mapping[str, str],
    skip_token: str | None,
    page_size: int,
    order: Sequence[str] = ("rg_key", "name_key"),
) -> tuple[list[sqlite3.Row], str | None]:
    """The rows of `table` whose `scope` columns equal its values, after `skip_token`, in `order`."""
    clauses = [f"{column} = ?" for column in scope]
    args: list[str | int] = list(scope.values())
    if skip_token:
        keys = skip_token.split("/")
        if len(keys) == len(order):
            clauses.append(f"({', '.join(order)}) > ({', '.join('?' * len(order))})")
            args += keys
    where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
    rows = db.execute(
        f"SELECT * FROM {table} {where} ORDER BY {', '.join(order)} LIMIT ?", (*args, page_size + 1)
    ).fetchall()
    more = len(rows) > page_size
    rows = rows[:page_size]
    return rows, "/".join(str(rows[-1][column]) for column in order) if more else None
