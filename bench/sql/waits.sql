-- bench/sql/waits.sql: samples what rolloutd's connections to this database are doing, every
-- 20 ms for :secs seconds, and prints one line
-- "idle=N cpu=N walsync=N walwrite=N lock=N lwlock=N io=N other=N"
-- (sample counts over all of the daemon's connections). idle: waiting for rolloutd to send the
-- next group; cpu: running (no wait event); walsync/walwrite: the commit's WAL flush; lock:
-- heavyweight locks (e.g. the commit-time NOTIFY lock); lwlock: lightweight locks (WAL insert...).
\set ON_ERROR_STOP 1
CREATE TEMP TABLE w (kind text);
-- One short transaction per sample (a procedure that commits): a transaction held open for the
-- whole run (as a DO block is) keeps PostgreSQL's xmin horizon back, so no dead row version the
-- run makes could be pruned, and item_state and the counter tables bloat as they never would
-- with rolloutd alone.
CREATE PROCEDURE pg_temp.sample_waits(secs float8) LANGUAGE plpgsql AS $$
DECLARE
    t_end timestamptz := clock_timestamp() + make_interval(secs => secs);
BEGIN
    WHILE clock_timestamp() < t_end LOOP
        INSERT INTO w
        SELECT CASE
                   WHEN a.state = 'idle' THEN 'idle'
                   WHEN a.wait_event_type IS NULL THEN 'cpu'
                   WHEN a.wait_event = 'WALSync' THEN 'walsync'
                   WHEN a.wait_event = 'WALWrite' AND a.wait_event_type = 'IO' THEN 'walwrite'
                   WHEN a.wait_event_type = 'Lock' THEN 'lock'
                   WHEN a.wait_event_type = 'LWLock' THEN 'lwlock'
                   WHEN a.wait_event_type = 'IO' THEN 'io'
                   WHEN a.wait_event_type = 'Client' THEN 'client'
                   ELSE 'other'
               END
          FROM pg_stat_activity a
         WHERE a.application_name = 'rolloutd' AND a.backend_type = 'client backend'
           AND a.datname = current_database();
        COMMIT;
        PERFORM pg_sleep(0.02);
    END LOOP;
END $$;
CALL pg_temp.sample_waits(:'secs');
SELECT string_agg(k || '=' || coalesce(n, 0), ' ' ORDER BY k)
  FROM unnest(ARRAY['idle', 'cpu', 'walsync', 'walwrite', 'lock', 'lwlock', 'io', 'client', 'other']) k
  LEFT JOIN (SELECT kind, count(*) AS n FROM w GROUP BY kind) c ON c.kind = k;
