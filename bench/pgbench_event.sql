-- bench/pgbench_event.sql: PostgreSQL's bare minimum for one event, for pgbench -f:
-- one single-row INSERT into a table shaped like the event log (same columns, CHECKs and
-- indexes, no foreign keys), one transaction each.
\set e random(1, 80000)
INSERT INTO bench.bench_event (event_id, employee_id, item, state, previous_state, applied, occurred_at, request_hash) VALUES (gen_random_uuid(), :e, 'mobile_device', 'planned', NULL, true, now(), sha256(CAST(:e AS text)::bytea));
