-- 004_plain_inserts: the group commit's set-based path writes with plain INSERTs and UPDATEs,
-- and finds each employee once.
--
-- Issue 7's profile of 003's rollout_apply_events (groups of 500 in isolation, auto_explain with
-- timings): the insert into the event log was the largest part, then the lock statement and
-- item_state's upsert, about equal. Three things in them did work twice:
-- - INSERT ... ON CONFLICT is a speculative insertion: a probe of the unique index before the
--   insert, a heavyweight lock on a speculative token, and a second WAL record to confirm the
--   row, for every event, to catch the one retry in thousands.
-- - item_state's upsert (ON CONFLICT DO UPDATE) locked each row (a WAL record of its own) before
--   updating it, although the statement had just read the row, under the employee's lock.
-- - The employee was found twice: once to lock it, once in the statement that writes.
--
-- Now the lock statement returns the employees it locked, and the writes are plain: an event
-- whose event_id is taken, or an item_state row that appeared meanwhile, raises unique_violation;
-- the block that catches it rolls the set-based writes back, and the group goes through
-- rollout_apply_events_serial, which answers each event (a retry: "duplicate", another event:
-- "event_id_conflict") as before. A retry costs its group the serial path, once.
--
-- The results are gathered into an array and returned after the block: rows returned inside it
-- would stay returned when the block rolls back (the data-modifying parts of a statement run to
-- completion after its rows are out), and the serial path would return them again.
--
-- A new database gets the functions from 001 and each later migration in turn; only the last
-- definition of a function counts.

-- Nothing here rewrites or scans a table, but give up rather than queue rolloutd's group
-- commits behind a lock this migration would wait for (and run it again later).
SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '60s';

CREATE TYPE rollout_apply_result AS (
    i integer, result text, code text, message text, field text, status integer,
    employee text, item text, state text, previous_state text, applied boolean
);

-- The group commit's entry point, as in 003, with the writes above.
-- enable_seqscan = off: every lookup here is by key (see 003).
CREATE OR REPLACE FUNCTION rollout_apply_events(p_events jsonb)
RETURNS TABLE (
    i integer, result text, code text, message text, field text, status integer,
    employee text, item text, state text, previous_state text, applied boolean
)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp SET enable_seqscan = off AS $$
#variable_conflict use_column
DECLARE
    v_shard smallint;
    v_simple boolean;
    v_items_known boolean;
    v_ids integer[];
    v_pns text[];
    v_dsts text[];
    v_rows rollout_apply_result[];
BEGIN
    -- Lock the employees of the group in one fixed order, so that two groups touching the same
    -- people (another instance, an import) wait for each other instead of deadlocking, and keep
    -- what the writes need of them. The statements below take a new snapshot, so they see what a
    -- group before us committed.
    SELECT array_agg(l.id), array_agg(l.personnel_number), array_agg(l.dienststelle)
      INTO v_ids, v_pns, v_dsts
      FROM (SELECT e.id, e.personnel_number, e.dienststelle FROM employee e
             WHERE e.personnel_number IN (SELECT x->>'employee' FROM jsonb_array_elements(p_events) x)
             ORDER BY e.id FOR NO KEY UPDATE) l;
    SELECT count(DISTINCT x->>'employee') = count(*) AND count(DISTINCT x->>'event_id') = count(*)
           AND bool_and(jsonb_typeof(x->'device') IS DISTINCT FROM 'object'),
           bool_and(x->>'item' IN (SELECT key FROM item))
      INTO v_simple, v_items_known
      FROM jsonb_array_elements(p_events) x;
    -- the event log and item_state have no foreign key to item (002): rolloutd and rolloutctl only
    -- send items of the catalogue, and this keeps it so
    IF NOT coalesce(v_items_known, true) THEN
        RAISE EXCEPTION 'rollout_apply_events: an item outside the catalogue'
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    IF NOT coalesce(v_simple, false) THEN
        RETURN QUERY SELECT * FROM rollout_apply_events_serial(p_events);
        RETURN;
    END IF;

    v_shard := rollout_counter_shard();  -- before the block: its lock outlives a rollback of it
    BEGIN
        WITH ev AS (
            SELECT x.* FROM jsonb_to_recordset(p_events) AS x(
                i integer, event_id uuid, employee text, item text, state rollout_state,
                occurred_at timestamptz, hash text, token integer, scope jsonb, features jsonb, note text)
        ), em AS (
            SELECT * FROM unnest(v_ids, v_pns, v_dsts) AS u(id, pn, dst)
        ), d AS (
            -- One item_state probe per event (OFFSET 0 keeps each a subquery of its own; see 003).
            SELECT ev.*, decode(ev.hash, 'hex') AS h,
                   em.id AS emp_id, em.dst AS dst,
                   CASE WHEN jsonb_typeof(ev.scope) = 'array'
                        THEN (SELECT x.ressort FROM dienststelle x WHERE x.code = em.dst) END AS ressort,
                   s.state AS cur, s.since AS cur_since,
                   (s.since IS NULL OR ev.occurred_at >= s.since) AS app
              FROM ev
              LEFT JOIN em ON em.pn = ev.employee
              LEFT JOIN LATERAL (SELECT * FROM item_state x
                                  WHERE x.employee_id = em.id AND x.item = ev.item OFFSET 0) s ON true
        ), c AS (
            SELECT d.*,
                   CASE
                       WHEN d.emp_id IS NULL THEN 'unknown'
                       WHEN jsonb_typeof(d.scope) = 'array' AND NOT d.scope ? d.ressort THEN 'scope'
                       WHEN d.app AND NOT rollout_transition_allowed(d.cur, d.state) THEN 'illegal'
                       ELSE 'create'
                   END AS verdict
              FROM d
        ), ins AS (
            INSERT INTO event (event_id, employee_id, item, state, previous_state, applied, occurred_at,
                               token_id, request_hash, features, note)
            SELECT c.event_id, c.emp_id, c.item, c.state, c.cur, c.app, c.occurred_at, c.token, c.h,
                   c.features, c.note
              FROM c WHERE c.verdict = 'create'
        ), done AS (
            SELECT c.* FROM c WHERE c.verdict = 'create'
        ), st_upd AS (
            -- the employee's lock keeps the row as read above; a writer that does not take it makes
            -- this UPDATE act on the row's newest version, as the upsert did
            UPDATE item_state s SET state = done.state, since = done.occurred_at
              FROM done
             WHERE done.app AND done.cur IS NOT NULL
               AND s.employee_id = done.emp_id AND s.item = done.item
        ), st_new AS (
            INSERT INTO item_state (employee_id, item, state, since)
            SELECT done.emp_id, done.item, done.state, done.occurred_at
              FROM done WHERE done.app AND done.cur IS NULL
        ), released AS (
            -- a return or cancellation gives back the devices held for the item
            UPDATE device dv SET holder_id = NULL, since = done.occurred_at
              FROM done
             WHERE done.app AND done.state IN ('returned', 'cancelled')
               AND dv.holder_id = done.emp_id AND dv.item = done.item
            RETURNING dv.serial, done.emp_id, done.occurred_at
        ), released_holding AS (
            UPDATE device_holding h SET held_until = released.occurred_at
              FROM released
             WHERE h.serial = released.serial AND h.employee_id = released.emp_id AND h.held_until IS NULL
        ), delta AS (
            SELECT done.dst, done.item, done.state AS st, 1 AS n FROM done WHERE done.app
            UNION ALL
            SELECT done.dst, done.item, done.cur, -1 FROM done WHERE done.app AND done.cur IS NOT NULL
        ), cnt AS (
            INSERT INTO progress_counter AS pc (dienststelle, item, state, shard, n)
            SELECT delta.dst, delta.item, delta.st, v_shard, sum(delta.n)
              FROM delta GROUP BY 1, 2, 3 HAVING sum(delta.n) <> 0 ORDER BY 1, 2, 3
            ON CONFLICT (dienststelle, item, state, shard) DO UPDATE SET n = pc.n + excluded.n
        ), dd AS (
            INSERT INTO daily_done AS x (day, dienststelle, item, shard, n)
            SELECT (done.occurred_at AT TIME ZONE 'Europe/Berlin')::date, done.dst, done.item, v_shard,
                   sum(CASE WHEN done.state = 'active' THEN 1 ELSE -1 END)
              FROM done
             WHERE done.app AND ((done.state = 'active' AND done.cur IS DISTINCT FROM 'active')
                                 OR (done.cur = 'active' AND done.state <> 'active'))
             GROUP BY 1, 2, 3 HAVING sum(CASE WHEN done.state = 'active' THEN 1 ELSE -1 END) <> 0
             ORDER BY 1, 2, 3
            ON CONFLICT (day, dienststelle, item, shard) DO UPDATE SET n = x.n + excluded.n
        )
        -- an event rejected here may be a retry of one stored before: the first answer stands
        -- (a retry), or its event_id is taken (another event), as in 003
        SELECT array_agg(ROW(c.i,
               CASE WHEN c.verdict = 'create' THEN 'created'
                    WHEN o.dup THEN 'duplicate'
                    ELSE 'rejected' END,
               CASE WHEN c.verdict = 'create' OR o.dup THEN NULL
                    WHEN o.dup IS NOT NULL THEN 'event_id_conflict'
                    WHEN c.verdict = 'unknown' THEN 'unknown_employee'
                    WHEN c.verdict = 'scope' THEN 'outside_scope'
                    WHEN c.verdict = 'illegal' THEN 'illegal_transition' END,
               CASE WHEN c.verdict = 'create' OR o.dup THEN NULL
                    WHEN o.dup IS NOT NULL
                        THEN 'event_id ' || c.event_id || ' was already used for a different event'
                    WHEN c.verdict = 'unknown' THEN 'no employee with personnel number ' || c.employee
                    WHEN c.verdict = 'scope' THEN 'employee ' || c.employee || ' belongs to Ressort '
                         || c.ressort || ', which this token may not write'
                    WHEN c.verdict = 'illegal' THEN 'cannot go from ' || coalesce(c.cur::text, 'nothing')
                         || ' to ' || c.state::text || ' for ' || c.item END,
               CASE WHEN c.verdict = 'create' OR o.dup THEN NULL
                    WHEN o.dup IS NOT NULL THEN 'event_id'
                    WHEN c.verdict IN ('unknown', 'scope') THEN 'employee'
                    WHEN c.verdict = 'illegal' THEN 'state' END,
               CASE WHEN c.verdict = 'create' THEN 201
                    WHEN o.dup THEN 200
                    WHEN o.dup IS NOT NULL THEN 409
                    WHEN c.verdict = 'unknown' THEN 404
                    WHEN c.verdict = 'scope' THEN 403
                    ELSE 409 END,
               c.employee,
               CASE WHEN o.dup THEN o.item ELSE c.item END,
               CASE WHEN o.dup THEN o.state::text ELSE c.state::text END,
               CASE WHEN o.dup THEN o.previous_state::text
                    WHEN c.verdict IN ('create', 'illegal') THEN c.cur::text END,
               CASE WHEN o.dup THEN o.applied
                    WHEN c.verdict = 'create' THEN c.app END)::rollout_apply_result ORDER BY c.i)
          INTO v_rows
          FROM c
          LEFT JOIN LATERAL (SELECT x.request_hash IS NOT DISTINCT FROM c.h AS dup, x.item, x.state,
                                    x.previous_state, x.applied
                               FROM event x WHERE c.verdict <> 'create' AND x.event_id = c.event_id
                             OFFSET 0) o ON true;
    EXCEPTION WHEN unique_violation THEN
        -- an event_id stored before (a retry, or another event's) or by a group in flight
        RETURN QUERY SELECT * FROM rollout_apply_events_serial(p_events);
        RETURN;
    END;
    RETURN QUERY SELECT * FROM unnest(v_rows);
END
$$;
