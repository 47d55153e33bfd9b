"""Versioned migrations against a real Postgres: a fresh database gets every file once; one
made by an older set of migrations is brought forward; one made by the old `IF NOT EXISTS`
schema is baselined; `leadflow run` refuses a schema older or newer than the code, in one
line; two migrators at once apply each file once; advisory locks carry the deployment."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from services.runtime.db import READ_SCHEMA, connect, quote_ident, service_ddl_files, sql_text
from services.runtime.locks import advisory_key
from services.runtime.migrations import (
    BASELINE,
    Migration,
    SchemaError,
    available,
    migrate,
    require_current,
    schema_version,
)
from tests.harness import dsn_for


@pytest.fixture
async def empty_db(admin_dsn: str) -> AsyncIterator[str]:
    """A database with nothing in it (not cloned from the migrated template)."""
    name = f"leadflow_m_{uuid.uuid4().hex[:12]}"
    async with connect(admin_dsn) as conn:
        await conn.execute(f"CREATE DATABASE {quote_ident(name)}")
    yield dsn_for(admin_dsn, name)
    async with connect(admin_dsn) as conn:
        await conn.execute(f"DROP DATABASE IF EXISTS {quote_ident(name)} WITH (FORCE)")


async def versions(dsn: str) -> list[tuple[int, bool]]:
    async with connect(dsn) as conn:
        return [(r["version"], r["baselined"]) for r in await conn.fetch(
            "SELECT version, baselined FROM schema_migrations ORDER BY version")]


NEXT = Migration(len(available()) + 1, "lead_notes",
                 "ALTER TABLE contact_leads ADD COLUMN notes text;")


async def test_a_fresh_database_gets_every_migration_once_in_order(empty_db: str) -> None:
    said: list[str] = []
    done = await migrate(empty_db, say=said.append)
    known = available()
    assert [m.version for m in done.applied] == list(range(1, len(known) + 1))
    assert said == [f"applying {m.label}" for m in known]
    assert not done.baselined
    again = await migrate(empty_db)
    assert (again.applied, again.baselined) == ([], [])
    assert await versions(empty_db) == [(m.version, False) for m in known]
    await require_current(empty_db)  # a service may start


async def test_a_database_made_by_an_older_set_of_migrations_is_brought_forward(
        empty_db: str) -> None:
    known = available()
    await migrate(empty_db, known[:5])  # an older release shipped five
    with pytest.raises(SchemaError, match=r"at version 005, this code needs .*leadflow db migrate"):
        await require_current(empty_db)

    done = await migrate(empty_db, [*known, NEXT])  # this release, plus one that alters a table
    assert [m.version for m in done.applied] == [m.version for m in known[5:]] + [NEXT.version]
    async with connect(empty_db) as conn:
        assert await conn.fetchval(
            "SELECT count(*) FROM information_schema.columns WHERE table_name = 'contact_leads' "
            "AND column_name = 'notes'") == 1
        assert await schema_version(conn) == NEXT.version
    # The code is now older than the database.
    with pytest.raises(SchemaError, match=r"newer than this code .*upgrade leadflow"):
        await require_current(empty_db)
    with pytest.raises(SchemaError, match="newer than this code"):
        await migrate(empty_db)


async def test_a_schema_made_before_versioning_is_baselined_and_keeps_its_rows(
        empty_db: str) -> None:
    async with connect(empty_db) as conn:  # the old way: every file, IF NOT EXISTS
        for name in service_ddl_files():
            await conn.execute(sql_text(name))
        await conn.execute("INSERT INTO stage_instances (job, instance_id, pid, ready_at, "
                           "last_seen) VALUES ('score', 'kept', 1, now(), now())")
    with pytest.raises(SchemaError, match="at version 000"):
        await require_current(empty_db)
    done = await migrate(empty_db)
    assert [m.version for m in done.baselined] == list(range(1, BASELINE + 1))
    assert [m.version for m in done.applied] == [m.version for m in available()[BASELINE:]]
    assert all(baselined for _, baselined in (await versions(empty_db))[:BASELINE])
    async with connect(empty_db) as conn:
        assert await conn.fetchval("SELECT instance_id FROM stage_instances") == "kept"
    await require_current(empty_db)


async def test_an_edited_migration_and_a_failing_one_are_refused_whole(empty_db: str) -> None:
    known = available()
    await migrate(empty_db, known)
    edited = [*known[:-1], Migration(known[-1].version, known[-1].name, known[-1].sql + "\n-- x")]
    with pytest.raises(SchemaError, match="changed after it was applied"):
        await migrate(empty_db, edited)
    broken = [*known, NEXT, Migration(NEXT.version + 1, "broken", "ALTER TABLE nowhere ADD x int;")]
    with pytest.raises(SchemaError, match="_broken failed, nothing was applied"):
        await migrate(empty_db, broken)
    async with connect(empty_db) as conn:  # the transaction took NEXT back with it
        assert await schema_version(conn) == known[-1].version


async def test_two_migrators_at_once_apply_each_migration_once(empty_db: str) -> None:
    results = await asyncio.gather(migrate(empty_db), migrate(empty_db))
    assert sorted(len(r.applied) for r in results) == [0, len(available())]
    assert len(await versions(empty_db)) == len(available())


async def test_leadflow_run_refuses_an_older_schema_in_one_line(empty_db: str) -> None:
    await migrate(empty_db, available()[:3])
    env = {**os.environ, "DATABASE_URL": empty_db, "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9"}
    env.pop("LEADFLOW_CONFIG", None)
    leadflow = str(Path(sys.executable).parent / "leadflow")
    done = await asyncio.to_thread(
        subprocess.run, [leadflow, "run", "score"], env=env,
        capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    lines = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    assert len(lines) <= 2, lines  # the error, wrapped at most once by the terminal width
    assert "schema is at version 003" in " ".join(lines)
    assert "leadflow db migrate" in " ".join(lines)


def test_advisory_lock_keys_carry_the_deployment() -> None:
    for name in ("clock", "harvest", "alerts", "projector", "replay", "instance"):
        assert advisory_key(name, "a.") != advisory_key(name, "b.")
        assert advisory_key(name, "a.") == advisory_key(name, "a.")
    assert advisory_key("replay", "a.", "score") != advisory_key("replay", "a.", "qualify")


async def test_lead_events_of_an_older_schema_keep_their_payloads_verbatim_from_then_on(
        empty_db: str) -> None:
    """lead_events.payload was jsonb (parsed, reordered); it is json now: the message's own
    bytes. A database made with jsonb is converted by migrate and keeps its rows."""
    await migrate(empty_db)
    async with connect(empty_db) as conn, conn.transaction():
        await conn.execute(f"SET LOCAL search_path TO {READ_SCHEMA}")
        await conn.execute("ALTER TABLE lead_events ALTER COLUMN payload TYPE jsonb")
        await conn.execute(
            """
            INSERT INTO lead_events (event_id, lead_id, type, version, status, tenant_id,
                                     campaign_id, occurred_at, recorded_at, topic, partition,
                                     "offset", payload)
            VALUES (gen_random_uuid(), gen_random_uuid(), 'lead.created', 1, 'NEW', 't', 'c',
                    now(), now(), 'leads.new', 0, 0, '{"z": 1, "a": [2]}')
            """)
    await migrate(empty_db)
    raw = b'{"type":"lead.created",  "z":1,"a":[2]}'
    async with connect(empty_db) as conn, conn.transaction():
        await conn.execute(f"SET LOCAL search_path TO {READ_SCHEMA}")
        assert await conn.fetchval(
            "SELECT data_type FROM information_schema.columns WHERE table_schema = $1 "
            "AND table_name = 'lead_events' AND column_name = 'payload'", READ_SCHEMA) == "json"
        assert await conn.fetchval("SELECT payload FROM lead_events") == {"z": 1, "a": [2]}
        await conn.execute(
            """
            INSERT INTO lead_events (event_id, lead_id, type, version, status, tenant_id,
                                     campaign_id, occurred_at, recorded_at, topic, partition,
                                     "offset", payload)
            VALUES (gen_random_uuid(), gen_random_uuid(), 'lead.created', 1, 'NEW', 't', 'c',
                    now(), now(), 'leads.new', 0, 1, $1)
            """, raw)
        assert await conn.fetchval(
            'SELECT payload::text FROM lead_events WHERE "offset" = 1') == raw.decode()


async def test_the_leads_email_index_no_query_can_use_is_dropped_from_an_older_schema(
        empty_db: str) -> None:
    """The leads list matches emails by ILIKE substring, which a btree cannot serve, and every
    projector write of a lead paid an insertion into it."""
    await migrate(empty_db)
    async with connect(empty_db) as conn, conn.transaction():
        await conn.execute(f"SET LOCAL search_path TO {READ_SCHEMA}")
        await conn.execute("CREATE INDEX IF NOT EXISTS leads_email ON leads (email)")
    await migrate(empty_db)
    async with connect(empty_db) as conn:
        indexes = {r["indexname"] for r in await conn.fetch(
            "SELECT indexname FROM pg_indexes WHERE schemaname = $1 AND tablename = 'leads'",
            READ_SCHEMA)}
    assert indexes == {"leads_pkey"}  # nor the status indexes (tests/integration/test_lead_counts.py)


async def test_lead_events_are_found_by_age_through_a_brin_index_not_a_btree(
        empty_db: str) -> None:
    """Only retention reads lead_events by recorded_at, and rows arrive in that order: a BRIN
    summary serves its range delete, where the btree cost every projected event an insertion."""
    await migrate(empty_db)
    async with connect(empty_db) as conn, conn.transaction():
        await conn.execute(f"SET LOCAL search_path TO {READ_SCHEMA}")
        await conn.execute("DROP INDEX IF EXISTS lead_events_recorded_brin")
        await conn.execute("CREATE INDEX lead_events_recorded ON lead_events (recorded_at)")
    await migrate(empty_db)
    async with connect(empty_db) as conn:
        methods = {r["indexname"]: r["amname"] for r in await conn.fetch(
            """
            SELECT c.relname AS indexname, a.amname FROM pg_index i
            JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_am a ON a.oid = c.relam
            JOIN pg_class t ON t.oid = i.indrelid JOIN pg_namespace n ON n.oid = t.relnamespace
            WHERE n.nspname = $1 AND t.relname = 'lead_events'
            """, READ_SCHEMA)}
    assert methods == {"lead_events_pkey": "btree", "lead_events_recorded_brin": "brin"}


async def test_lead_events_of_an_older_schema_are_keyed_by_lead_with_one_btree(
        empty_db: str) -> None:
    """lead_events had a primary key on its random event id besides (lead_id, version): two
    random btree insertions per event. Its key is now (lead_id, version, event_id), which
    serves a lead's history and the duplicate check alike; migrate converts an older table
    and keeps its rows."""
    await migrate(empty_db)
    row = (uuid.uuid4(), uuid.uuid4())
    async with connect(empty_db) as conn, conn.transaction():
        await conn.execute(f"SET LOCAL search_path TO {READ_SCHEMA}")
        await conn.execute("ALTER TABLE lead_events DROP CONSTRAINT lead_events_pkey")
        await conn.execute("ALTER TABLE lead_events ADD PRIMARY KEY (event_id)")
        await conn.execute("CREATE INDEX lead_events_lead ON lead_events (lead_id, version)")
        await conn.execute(
            """
            INSERT INTO lead_events (event_id, lead_id, type, version, status, tenant_id,
                                     campaign_id, occurred_at, recorded_at, topic, partition,
                                     "offset", payload)
            VALUES ($1, $2, 'lead.created', 1, 'NEW', 't', 'c', now(), now(), 'leads.new', 0, 0,
                    '{}')
            """, *row)
    await migrate(empty_db)
    async with connect(empty_db) as conn, conn.transaction():
        await conn.execute(f"SET LOCAL search_path TO {READ_SCHEMA}")
        key = await conn.fetchval(
            """
            SELECT array_agg(a.attname::text ORDER BY k.n) FROM pg_index i
            JOIN pg_class t ON t.oid = i.indrelid JOIN pg_namespace s ON s.oid = t.relnamespace
            CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, n)
            JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum
            WHERE s.nspname = $1 AND t.relname = 'lead_events' AND i.indisprimary
            """, READ_SCHEMA)
        stored = await conn.fetch("SELECT event_id, lead_id FROM lead_events")
    assert key == ["lead_id", "version", "event_id"]
    assert [(r["event_id"], r["lead_id"]) for r in stored] == [row]


async def test_sends_an_older_ledger_never_marked_published_move_to_windows_for_recovery(
        empty_db: str) -> None:
    """Before contact_windows a send's row was marked published after its LeadContacted was
    acknowledged, and recovery read the unmarked ones through an index: those become windows
    (one per claim token), and the index goes."""
    known = available()
    windows = next(m for m in known if m.name == "contact_windows")
    await migrate(empty_db, known[:windows.version - 1])
    dead, live = uuid.uuid4(), uuid.uuid4()
    async with connect(empty_db) as conn:
        await conn.execute(
            """
            INSERT INTO contact_ledger (idempotency_key, tenant_id, campaign_id, lead_id, step,
                                        sequence_id, status, sender, email, cause_event_id,
                                        claimed_by, claim_token, sent_at, event_published_at)
            SELECT k, 'acme', 'q4', gen_random_uuid(), 1, 'standard', 'sent', 'proof',
                   'x@example.com', gen_random_uuid(), 'i1', t, now() - interval '1 hour', p
            FROM (VALUES ('q4:a', $1::uuid, NULL::timestamptz), ('q4:b', $1, NULL),
                         ('q4:c', $2, NULL), ('q4:d', $2, now())) AS v(k, t, p)
            """, dead, live)
    await migrate(empty_db)
    async with connect(empty_db) as conn:
        found = {r["claim_token"]: sorted(r["keys"]) for r in await conn.fetch(
            "SELECT claim_token, keys FROM contact_windows WHERE claimed_by = 'i1'")}
        index = await conn.fetchval("SELECT to_regclass('contact_ledger_unpublished')")
    assert found == {dead: ["q4:a", "q4:b"], live: ["q4:c"]}  # q4:d was reported
    assert index is None
