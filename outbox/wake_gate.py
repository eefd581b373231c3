"""The wake gate: a commit notifies the relays only while one of them sleeps.

A NOTIFY costs more than its message: PostgreSQL serializes the commits of notifying
transactions (a lock on "database 0", held until each commit is flushed), so writers committing
together lose part of their group commit (docs/decisions/0002-wake-gate.md). A relay needs the
notice only while it sleeps; while it is busy it claims again anyway. So each relay owns one of
`WAKE_SLOTS` gates, advisory locks:
- a writer's insert tries each gate shared (`pg_try_advisory_xact_lock_shared`, held to its
  commit) and notifies only when a try fails, that is when a relay holds or awaits that gate;
- a relay about to sleep takes its gate exclusively. That waits for every writer that got it
  shared, so once the relay holds it those writers' events are committed and the relay's next
  claim sees them; every later writer notifies. The relay claims once more, then sleeps holding
  the gate, and keeps holding it while events trickle in (each commit wakes it for a claim); it
  opens the gate when a batch shows commits coming faster than its cycle, and closes it again
  once a claim finds nothing.

A relay's gate and its slot are session locks of its LISTEN connection: a relay that dies or
loses that connection opens its gate, and frees its slot for the next relay to start. A relay
that finds every slot taken owns none and sleeps ungated: the relays that own a slot are woken
for every commit, so nothing waits on it; it only picks up work on its poll or alongside them.
"""

from __future__ import annotations

import psycopg

# Gates, and so relays that are woken on commit. Each costs every insert a lock try in the trigger
# (docs/decisions/0002-wake-gate.md); a deployment with more relays than this still relays
# everything (see above).
WAKE_SLOTS = 4

# The first key of the two-key advisory locks: a relay's gate, and its claim on a slot.
GATE_LOCK_CLASS = 1868724225
SLOT_LOCK_CLASS = 1868724226


def notify_trigger_sql(channel: str) -> str:
    """The insert trigger's body: notify `channel` when some relay sleeps behind its gate."""
    return (
        f"FOR slot IN 0..{WAKE_SLOTS - 1} LOOP "
        f"IF NOT pg_try_advisory_xact_lock_shared({GATE_LOCK_CLASS}, slot) THEN "
        f"PERFORM pg_notify('{channel}', ''); RETURN NULL; "
        "END IF; END LOOP; RETURN NULL;"
    )


def take_slot(connection: psycopg.Connection) -> int | None:
    """Claim a free slot for the session of `connection` (autocommit); None when all are taken."""
    for slot in range(WAKE_SLOTS):
        if connection.execute("SELECT pg_try_advisory_lock(%s, %s)", (SLOT_LOCK_CLASS, slot)).fetchone()[0]:
            return slot
    return None


def limit_gate_wait(connection: psycopg.Connection, wait_seconds: float) -> None:
    """Bound how long `close_gate` waits on this session; set once, as the session waits on nothing else.

    The wait is bounded because a writer holds the gate shared from its insert to its commit: a
    long transaction would otherwise keep the relay from both sleeping and claiming.
    """
    connection.execute(f"SET lock_timeout = {max(1, round(wait_seconds * 1000))}")


def close_gate(connection: psycopg.Connection, slot: int) -> bool:
    """Make writers notify from now on; False when writers held the gate past `limit_gate_wait`."""
    try:
        connection.execute("SELECT pg_advisory_lock(%s, %s)", (GATE_LOCK_CLASS, slot))
    except psycopg.errors.LockNotAvailable:
        return False
    return True


def open_gate(connection: psycopg.Connection, slot: int) -> None:
    """Let writers commit without a notice again: the relay is awake."""
    connection.execute("SELECT pg_advisory_unlock(%s, %s)", (GATE_LOCK_CLASS, slot))
