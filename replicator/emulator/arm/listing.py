"""Rows of the ARM tables: one by its key, or a page of them and the key of the next.

Why keyset and not offsets: a `$skiptoken` that is a position in (resource group, name) order never
shifts when resources are created or deleted during a listing, so a client that follows every
nextLink sees each resource that existed throughout exactly once. Pages are small on purpose
(`ArmLimits.page_size`), so clients must follow nextLink.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence


def named(resource_group: str, name: str) -> dict[str, str]:
    """The key of a top-level resource's row: its resource group's and its name, lowercased."""
    return {"rg_key": resource_group.lower(), "name_key": name.lower()}


def one_row(db: sqlite3.Connection, table: str, keys: Mapping[str, str]) -> sqlite3.Row | None:
    """The row of `table` whose key columns equal `keys` (give names lowercased: ARM's are
    case-insensitive, so every table keys them so)."""
    where = " AND ".join(f"{column} = ?" for column in keys)
    return db.execute(f"SELECT * FROM {table} WHERE {where}", tuple(keys.values())).fetchone()


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
