"""Seed a demo "warehouse" (a SQLite file) with e-mail consent rows for the example DAGs.

Two tables, same columns (the ones ``consent_sync_from_warehouse`` and ``large_consent_sync`` read):

``contact_consent``
    ``--contacts`` contacts with one to three rows each, some of them wrong on purpose: malformed e-mail
    addresses, unknown or missing statuses, half a legal basis, a subscription id HubSpot does not know,
    duplicates (exact copies, case variants of the address, later rows that change the status).
``contact_consent_large``
    ``--large-rows`` rows (default 0: not created) for the partitioned sync: about 0.5% malformed e-mails;
    contacts and subscriptions are drawn at random, so about a quarter of the rows repeat an earlier pair.

Columns: ``id`` (primary key), ``email``, ``subscription_id``, ``consent_status``, ``legal_basis``,
``legal_basis_explanation``, ``updated_at`` (ISO text). Rows are generated from ``--seed``, so the same
arguments always give the same database. Standard library only (``sqlite3``); for Postgres, create the same
table and load it with your usual tools.

Usage::

    python scripts/seed_warehouse.py --db /tmp/warehouse.db --contacts 2000 --large-rows 20000
"""

from __future__ import annotations

import argparse
import json
import random
import sqlite3
import sys
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

SMALL_TABLE = "contact_consent"
LARGE_TABLE = "contact_consent_large"
COLUMNS = ("email", "subscription_id", "consent_status", "legal_basis", "legal_basis_explanation", "updated_at")
#: The fake HubSpot's default subscription ids; 999 exists in no portal (reported before any write).
SUBSCRIPTION_IDS = (101, 102, 103)
UNKNOWN_SUBSCRIPTION_ID = 999
STATUSES = ("SUBSCRIBED", "UNSUBSCRIBED", "NOT_SPECIFIED")
#: How warehouses tend to spell them; HubSpot's enum is upper case, the operator accepts these spellings.
SPELLINGS = {
    "SUBSCRIBED": ("SUBSCRIBED", "subscribed", "Subscribed"),
    "UNSUBSCRIBED": ("UNSUBSCRIBED", "unsubscribed", "Unsubscribed"),
    "NOT_SPECIFIED": ("NOT_SPECIFIED", "not_specified"),
}
LEGAL_BASES = (
    ("CONSENT_WITH_NOTICE", "Ticked the newsletter box on the signup form"),
    ("LEGITIMATE_INTEREST_CLIENT", "Existing customer, product e-mails"),
    ("PERFORMANCE_OF_CONTRACT", "Service messages required by the contract"),
)
BAD_EMAILS = ("not-an-email", "missing-domain@", "two@@example.com", "spaces in@example.com", "nodot@localhost", "")
BAD_STATUSES = ("OPTED_IN", "maybe", "yes", "unsubscribe")

DDL = """
CREATE TABLE IF NOT EXISTS {table} (
    id INTEGER PRIMARY KEY,
    email TEXT,
    subscription_id INTEGER,
    consent_status TEXT,
    legal_basis TEXT,
    legal_basis_explanation TEXT,
    updated_at TEXT NOT NULL
)
"""

Row = tuple[Any, ...]
_T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _ts(rng: random.Random, day_span: int = 240, start_day: int = 0) -> str:
    moment = _T0 + timedelta(days=start_day, seconds=rng.randrange(day_span * 86_400))
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _later(rng: random.Random) -> str:
    """A timestamp after every first row (those are within the first 240 days)."""
    return _ts(rng, 60, start_day=250)


def _valid_row(rng: random.Random, email: str, subscription_id: int, updated_at: str) -> Row:
    status = rng.choices(STATUSES, weights=(6, 3, 1))[0]
    basis: tuple[str | None, str | None] = rng.choice(LEGAL_BASES) if rng.random() < 0.7 else (None, None)
    return (email, subscription_id, rng.choice(SPELLINGS[status]), *basis, updated_at)


def demo_rows(contacts: int, seed: int = 42) -> Iterator[tuple[Row, str]]:
    """Yield ``(row, kind)`` for the small demo table; ``kind`` says what the row is meant to exercise.

    Kinds: ``valid``, ``duplicate`` (same key as an earlier row, later ``updated_at``), ``case_duplicate``,
    ``invalid_email``, ``invalid_status``, ``missing_status``, ``half_legal_basis``, ``unknown_subscription``.

    :param contacts: number of distinct contacts.
    :param seed: random seed.
    """
    rng = random.Random(seed)
    for i in range(contacts):
        email = f"contact{i:06d}@example.com"
        subs = rng.sample(SUBSCRIPTION_IDS, k=rng.choice((1, 1, 2, 3)))
        for sid in subs:
            first = _valid_row(rng, email, sid, _ts(rng))
            yield first, "valid"
            draw = rng.random()
            if draw < 0.06:  # a later change of mind: last one wins
                later = _valid_row(rng, email, sid, _later(rng))
                yield later, "duplicate"
            elif draw < 0.08:  # the same address typed with capitals, later
                yield (email.upper(), *first[1:5], _later(rng)), "case_duplicate"
            elif draw < 0.10:  # an exact copy (same updated_at)
                yield first, "duplicate"
        sid = rng.choice(SUBSCRIPTION_IDS)
        draw = rng.random()
        if draw < 0.02:
            yield (rng.choice(BAD_EMAILS) or None, sid, "SUBSCRIBED", None, None, _ts(rng, 310)), "invalid_email"
        elif draw < 0.035:
            yield (email, sid, rng.choice(BAD_STATUSES), None, None, _ts(rng)), "invalid_status"
        elif draw < 0.04:
            yield (email, sid, None, None, None, _ts(rng)), "missing_status"
        elif draw < 0.045:
            yield (email, sid, "SUBSCRIBED", "CONSENT_WITH_NOTICE", None, _ts(rng)), "half_legal_basis"
        elif draw < 0.05:
            yield (email, UNKNOWN_SUBSCRIPTION_ID, "UNSUBSCRIBED", None, None, _ts(rng)), "unknown_subscription"


def large_rows(rows: int, seed: int = 7) -> Iterator[Row]:
    """Yield ``rows`` rows for the large table (about 0.5% invalid; random pairs, so about 25% repeat one).

    :param rows: number of rows.
    :param seed: random seed.
    """
    rng = random.Random(seed)
    contacts = max(1, rows // 2)
    for _ in range(rows):
        i = rng.randrange(contacts)
        draw = rng.random()
        email = f"user{i:08d}@example.org" if draw >= 0.005 else f"user{i:08d}-at-example.org"
        yield _valid_row(rng, email, rng.choice(SUBSCRIPTION_IDS), _ts(rng))


def _insert(db: sqlite3.Connection, table: str, rows: Iterator[Row], chunk: int = 50_000) -> int:
    db.execute(f"DROP TABLE IF EXISTS {table}")
    db.execute(DDL.format(table=table))
    sql = f"INSERT INTO {table} ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"
    total = 0
    buf: list[Row] = []
    for row in rows:
        buf.append(row)
        if len(buf) >= chunk:
            db.executemany(sql, buf)
            total += len(buf)
            buf.clear()
    db.executemany(sql, buf)
    total += len(buf)
    db.execute(f"CREATE INDEX IF NOT EXISTS {table}_order ON {table} (updated_at, id)")
    db.commit()
    return total


def seed(db_path: str | Path, contacts: int = 2000, large: int = 0, seed: int = 42) -> dict[str, Any]:
    """(Re)create the demo tables in the SQLite file ``db_path``; return what was written.

    :param db_path: the SQLite file (created if missing; the tables are dropped and recreated).
    :param contacts: distinct contacts of the small table.
    :param large: rows of the large table (0: do not create it).
    :param seed: random seed of the small table (the large one uses ``seed + 1``).
    """
    kinds: Counter[str] = Counter()

    def small() -> Iterator[Row]:
        for row, kind in demo_rows(contacts, seed):
            kinds[kind] += 1
            yield row

    Path(db_path).parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(db_path) as db:
        written = {SMALL_TABLE: _insert(db, SMALL_TABLE, small())}
        if large:
            written[LARGE_TABLE] = _insert(db, LARGE_TABLE, large_rows(large, seed + 1))
    db.close()
    return {"db": str(db_path), "rows": written, "small_table_kinds": dict(sorted(kinds.items()))}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", required=True, help="SQLite file to (re)create the tables in")
    parser.add_argument("--contacts", type=int, default=2000, help="contacts in contact_consent (default 2000)")
    parser.add_argument("--large-rows", type=int, default=0, help="rows in contact_consent_large (default 0: skip)")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args(argv)
    print(json.dumps(seed(args.db, args.contacts, args.large_rows, args.seed), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
