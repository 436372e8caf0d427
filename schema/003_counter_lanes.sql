-- 003_counter_lanes: counter shards as few as the writers that ran at once; the event_id of an
-- event looked up only when the event was not stored.
--
-- progress_counter and daily_done are sharded so that concurrent group commits do not queue on
-- one hot row; readers sum the shards. Until now the shard was the backend's pid modulo 64: every
-- new connection (a restart, a reconnect, each rolloutctl run) could start writing to another of
-- the 64, so the rows a reader sums grew with the time the system ran, not with its data. The
-- benchmark's database held 117,000 counter rows in 21 shards after a few hours, and rolloutd's
-- progress read took 12 ms; at 64 shards it would sum 64 times the rows it needs. Now a
-- transaction writes to the first shard ("lane") no concurrent transaction holds, taken with a
-- transaction-scoped advisory lock: concurrent writers still never share rows, and the lanes in
-- use are as many as the most writers that ever ran at the same time (rolloutd's pool, plus an
-- import now and then).
--
-- The counters change in place, and rolloutd writes them all the time: give up rather than queue
-- its group commits behind this migration's lock (run it again later).
SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '60s';

-- Advisory locks (7245003, 0..63) are the lanes; 7245001 and 7245002 (single keys, a separate
-- space) serialise migrations and imports.
CREATE FUNCTION rollout_counter_shard() RETURNS smallint LANGUAGE plpgsql AS $$
BEGIN
    FOR s IN 0..63 LOOP
        IF pg_try_advisory_xact_lock(7245003, s) THEN
            RETURN s;
        END IF;
    END LOOP;
    -- 64 writers at once: share a lane (and wait for its holder's counter rows, as any two
    -- writers of one shard did before)
    RETURN (pg_backend_pid() % 64)::smallint;
END
$$;
REVOKE EXECUTE ON FUNCTION rollout_counter_shard() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION rollout_counter_shard() TO rollout_admin;

-- The shards written so far, folded into lane 0 (the sums stay as they were). EXCLUSIVE mode
-- lets readers read on and keeps writers out until the fold commits.
LOCK TABLE progress_counter, daily_done IN EXCLUSIVE MODE;
WITH gone AS (DELETE FROM progress_counter RETURNING dienststelle, item, state, n)
INSERT INTO progress_counter (dienststelle, item, state, shard, n)
SELECT gone.dienststelle, gone.item, gone.state, 0, sum(gone.n)
  FROM gone GROUP BY 1, 2, 3 HAVING sum(gone.n) <> 0;
WITH gone AS (DELETE FROM daily_done RETURNING day, dienststelle, item, n)
INSERT INTO daily_done (day, dienststelle, item, shard, n)
SELECT gone.day, gone.dienststelle, gone.item, 0, sum(gone.n)
  FROM gone GROUP BY 1, 2, 3 HAVING sum(gone.n) <> 0;

-- rollout_apply_events_serial, as in 002, writing its counters to its lane.
CREATE OR REPLACE FUNCTION rollout_apply_events_serial(p_events jsonb)
RETURNS TABLE (
    i integer, result text, code text, message text, field text, status integer,
    employee text, item text, state text, previous_state text, applied boolean
)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
#variable_conflict use_column
DECLARE
    ev jsonb;
    v_shard smallint := rollout_counter_shard();
    v_emp employee%ROWTYPE;
    v_ressort text;
    v_prev rollout_state;
    v_since timestamptz;
    v_state rollout_state;
    v_item text;
    v_at timestamptz;
    v_hash bytea;
    v_old event%ROWTYPE;
    v_applied boolean;
    v_dev device%ROWTYPE;
    v_serial text;
    v_imei text;
    v_inserted bigint;
    d_dst text[] := '{}';
    d_item text[] := '{}';
    d_state rollout_state[] := '{}';
    d_n integer[] := '{}';
    dd_day date[] := '{}';
    dd_dst text[] := '{}';
    dd_item text[] := '{}';
    dd_n integer[] := '{}';
    v_any boolean := false;
BEGIN
    -- Lock the employees of the group in one fixed order, so that two groups touching the same
    -- people (another instance, an import) wait for each other instead of deadlocking.
    PERFORM 1 FROM employee e
     WHERE e.personnel_number IN (SELECT x->>'employee' FROM jsonb_array_elements(p_events) x)
     ORDER BY e.id FOR NO KEY UPDATE;

    FOR ev IN SELECT x FROM jsonb_array_elements(p_events) x LOOP
        i := (ev->>'i')::integer;
        v_item := ev->>'item';
        v_state := (ev->>'state')::rollout_state;
        v_at := (ev->>'occurred_at')::timestamptz;
        v_hash := decode(ev->>'hash', 'hex');
        result := NULL; code := NULL; message := NULL; field := NULL; status := NULL;
        employee := ev->>'employee'; item := v_item; state := v_state::text;
        previous_state := NULL; applied := NULL;

        -- Idempotency first: a repeat gets the first answer even if the state moved since.
        SELECT * INTO v_old FROM event WHERE event_id = (ev->>'event_id')::uuid;
        IF FOUND THEN
            IF v_old.request_hash IS DISTINCT FROM v_hash THEN
                result := 'rejected'; status := 409; code := 'event_id_conflict'; field := 'event_id';
                message := 'event_id ' || (ev->>'event_id') || ' was already used for a different event';
            ELSE
                result := 'duplicate'; status := 200;
                item := v_old.item; state := v_old.state::text;
                previous_state := v_old.previous_state::text; applied := v_old.applied;
            END IF;
            RETURN NEXT;
            CONTINUE;
        END IF;

        SELECT * INTO v_emp FROM employee e WHERE e.personnel_number = ev->>'employee';
        IF NOT FOUND THEN
            result := 'rejected'; status := 404; code := 'unknown_employee'; field := 'employee';
            message := 'no employee with personnel number ' || (ev->>'employee');
            RETURN NEXT;
            CONTINUE;
        END IF;
        SELECT d.ressort INTO v_ressort FROM dienststelle d WHERE d.code = v_emp.dienststelle;
        IF ev->'scope' IS NOT NULL AND jsonb_typeof(ev->'scope') = 'array'
           AND NOT (ev->'scope') ? v_ressort THEN
            result := 'rejected'; status := 403; code := 'outside_scope'; field := 'employee';
            message := 'employee ' || (ev->>'employee') || ' belongs to Ressort ' || v_ressort
                       || ', which this token may not write';
            RETURN NEXT;
            CONTINUE;
        END IF;

        SELECT s.state, s.since INTO v_prev, v_since
          FROM item_state s WHERE s.employee_id = v_emp.id AND s.item = v_item;
        previous_state := v_prev::text;
        -- A late event (older than the state's own) goes into the history only.
        v_applied := v_since IS NULL OR v_at >= v_since;

        IF v_applied AND NOT rollout_transition_allowed(v_prev, v_state) THEN
            result := 'rejected'; status := 409; code := 'illegal_transition'; field := 'state';
            message := 'cannot go from ' || coalesce(v_prev::text, 'nothing') || ' to '
                       || v_state::text || ' for ' || v_item;
            RETURN NEXT;
            CONTINUE;
        END IF;

        v_serial := ev->'device'->>'serial';
        v_imei := ev->'device'->>'imei';
        IF v_serial IS NOT NULL THEN
            SELECT * INTO v_dev FROM device d WHERE d.serial = v_serial FOR UPDATE;
            IF FOUND AND v_dev.holder_id IS NOT NULL AND v_dev.holder_id <> v_emp.id THEN
                result := 'rejected'; status := 409; code := 'device_in_use'; field := 'device.serial';
                message := 'device ' || v_serial || ' is held by another employee; post its return first';
                RETURN NEXT;
                CONTINUE;
            END IF;
            IF FOUND AND v_dev.item <> v_item THEN
                result := 'rejected'; status := 409; code := 'device_item_mismatch'; field := 'device.serial';
                message := 'device ' || v_serial || ' is registered for ' || v_dev.item || ', not ' || v_item;
                RETURN NEXT;
                CONTINUE;
            END IF;
            IF v_imei IS NOT NULL AND EXISTS (SELECT 1 FROM device d WHERE d.imei = v_imei AND d.serial <> v_serial) THEN
                result := 'rejected'; status := 409; code := 'imei_in_use'; field := 'device.imei';
                message := 'IMEI ' || v_imei || ' belongs to another device';
                RETURN NEXT;
                CONTINUE;
            END IF;
        END IF;

        INSERT INTO event (event_id, employee_id, item, state, previous_state, applied, occurred_at,
                           token_id, request_hash, device_serial, device_model, device_imei, features, note)
        VALUES ((ev->>'event_id')::uuid, v_emp.id, v_item, v_state, v_prev, v_applied, v_at,
                (ev->>'token')::integer, v_hash, v_serial, ev->'device'->>'model', v_imei,
                ev->'features', ev->>'note')
        ON CONFLICT (event_id) DO NOTHING
        RETURNING id INTO v_inserted;
        IF v_inserted IS NULL THEN
            -- The same event_id committed on another connection after our check: report it as
            -- the duplicate it is.
            SELECT * INTO v_old FROM event WHERE event_id = (ev->>'event_id')::uuid;
            IF v_old.request_hash IS DISTINCT FROM v_hash THEN
                result := 'rejected'; status := 409; code := 'event_id_conflict'; field := 'event_id';
                message := 'event_id ' || (ev->>'event_id') || ' was already used for a different event';
            ELSE
                result := 'duplicate'; status := 200; item := v_old.item; state := v_old.state::text;
                previous_state := v_old.previous_state::text; applied := v_old.applied;
            END IF;
            RETURN NEXT;
            CONTINUE;
        END IF;
        v_any := true;
        applied := v_applied;
        result := 'created'; status := 201;

        IF v_applied THEN
            INSERT INTO item_state AS s (employee_id, item, state, since)
            VALUES (v_emp.id, v_item, v_state, v_at)
            ON CONFLICT (employee_id, item) DO UPDATE SET state = excluded.state, since = excluded.since;
            d_dst := d_dst || v_emp.dienststelle; d_item := d_item || v_item;
            d_state := d_state || v_state; d_n := d_n || 1;
            IF v_prev IS NOT NULL THEN
                d_dst := d_dst || v_emp.dienststelle; d_item := d_item || v_item;
                d_state := d_state || v_prev; d_n := d_n || -1;
            END IF;
            IF v_state = 'active' AND v_prev IS DISTINCT FROM 'active' THEN
                dd_day := dd_day || (v_at AT TIME ZONE 'Europe/Berlin')::date;
                dd_dst := dd_dst || v_emp.dienststelle; dd_item := dd_item || v_item; dd_n := dd_n || 1;
            ELSIF v_prev = 'active' AND v_state <> 'active' THEN
                dd_day := dd_day || (v_at AT TIME ZONE 'Europe/Berlin')::date;
                dd_dst := dd_dst || v_emp.dienststelle; dd_item := dd_item || v_item; dd_n := dd_n || -1;
            END IF;

            -- One device per employee and item: a return or cancellation gives back what the
            -- employee holds for the item; a new serial replaces the one held before.
            IF v_state IN ('returned', 'cancelled') OR v_serial IS NOT NULL THEN
                UPDATE device_holding h SET held_until = v_at
                  FROM device d
                 WHERE d.serial = h.serial AND d.holder_id = v_emp.id AND d.item = v_item
                   AND d.serial IS DISTINCT FROM v_serial
                   AND h.employee_id = v_emp.id AND h.held_until IS NULL;
                UPDATE device d SET holder_id = NULL, since = v_at
                 WHERE d.holder_id = v_emp.id AND d.item = v_item AND d.serial IS DISTINCT FROM v_serial;
            END IF;
            IF v_serial IS NOT NULL THEN
                IF v_state IN ('returned', 'cancelled') THEN
                    UPDATE device d SET holder_id = NULL, since = v_at,
                           model = coalesce(ev->'device'->>'model', d.model), imei = coalesce(v_imei, d.imei)
                     WHERE d.serial = v_serial;
                    IF NOT FOUND THEN
                        INSERT INTO device (serial, model, imei, item, holder_id, since)
                        VALUES (v_serial, ev->'device'->>'model', v_imei, v_item, NULL, v_at);
                    END IF;
                    UPDATE device_holding h SET held_until = v_at
                     WHERE h.serial = v_serial AND h.employee_id = v_emp.id AND h.held_until IS NULL;
                ELSE
                    INSERT INTO device AS d (serial, model, imei, item, holder_id, since)
                    VALUES (v_serial, ev->'device'->>'model', v_imei, v_item, v_emp.id, v_at)
                    ON CONFLICT (serial) DO UPDATE
                       SET holder_id = excluded.holder_id,
                           model = coalesce(excluded.model, d.model),
                           imei = coalesce(excluded.imei, d.imei),
                           since = CASE WHEN d.holder_id IS DISTINCT FROM excluded.holder_id
                                        THEN excluded.since ELSE d.since END;
                    IF NOT EXISTS (SELECT 1 FROM device_holding h
                                    WHERE h.serial = v_serial AND h.employee_id = v_emp.id AND h.held_until IS NULL) THEN
                        INSERT INTO device_holding (serial, employee_id, held_from) VALUES (v_serial, v_emp.id, v_at);
                    END IF;
                END IF;
            END IF;
        END IF;
        RETURN NEXT;
    END LOOP;

    IF v_any THEN
        INSERT INTO progress_counter AS c (dienststelle, item, state, shard, n)
        SELECT u.dst, u.item, u.state, v_shard, sum(u.n)
          FROM unnest(d_dst, d_item, d_state, d_n) AS u(dst, item, state, n)
         GROUP BY u.dst, u.item, u.state
        HAVING sum(u.n) <> 0
         ORDER BY u.dst, u.item, u.state
        ON CONFLICT (dienststelle, item, state, shard) DO UPDATE SET n = c.n + excluded.n;

        INSERT INTO daily_done AS c (day, dienststelle, item, shard, n)
        SELECT u.day, u.dst, u.item, v_shard, sum(u.n)
          FROM unnest(dd_day, dd_dst, dd_item, dd_n) AS u(day, dst, item, n)
         GROUP BY u.day, u.dst, u.item
        HAVING sum(u.n) <> 0
         ORDER BY u.day, u.dst, u.item
        ON CONFLICT (day, dienststelle, item, shard) DO UPDATE SET n = c.n + excluded.n;
    END IF;
END
$$;

-- The group commit's entry point, as in 002, and: its counters go to its lane (taken only on this
-- set-based path: the serial path takes its own), and an event's event_id is looked up only when
-- the event was not stored. The insert's ON CONFLICT probes the unique index anyway; a lookup of
-- every event before it was a third descent into that index, the largest and most randomly
-- written in the schema (client-chosen UUIDs), for the one event in thousands that is a retry.
CREATE OR REPLACE FUNCTION rollout_apply_events(p_events jsonb)
RETURNS TABLE (
    i integer, result text, code text, message text, field text, status integer,
    employee text, item text, state text, previous_state text, applied boolean
)
-- enable_seqscan = off, for this call and rollout_apply_events_serial within it: every lookup
-- here is by key, and a plan is cached per connection. Planned while the event log or item_state
-- was still small (a new database, or the first minutes after a restore), a lookup became a
-- sequential scan, and that plan kept scanning the whole table for every event as it grew,
-- until the next ANALYZE (the benchmark's server log showed 8 ms for a group of 14 events,
-- against under 1 ms with index probes).
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp SET enable_seqscan = off AS $$
#variable_conflict use_column
DECLARE
    v_shard smallint;
    v_simple boolean;
    v_items_known boolean;
BEGIN
    -- Lock the employees of the group in one fixed order, so that two groups touching the same
    -- people (another instance, an import) wait for each other instead of deadlocking. The
    -- statements below take a new snapshot, so they see what a group before us committed.
    PERFORM 1 FROM employee e
     WHERE e.personnel_number IN (SELECT x->>'employee' FROM jsonb_array_elements(p_events) x)
     ORDER BY e.id FOR NO KEY UPDATE;
    SELECT count(DISTINCT x->>'employee') = count(*) AND count(DISTINCT x->>'event_id') = count(*)
           AND bool_and(jsonb_typeof(x->'device') IS DISTINCT FROM 'object'),
           bool_and(x->>'item' IN (SELECT key FROM item))
      INTO v_simple, v_items_known
      FROM jsonb_array_elements(p_events) x;
    -- the event log and item_state have no foreign key to item (see above): rolloutd and
    -- rolloutctl only send items of the catalogue, and this keeps it so
    IF NOT coalesce(v_items_known, true) THEN
        RAISE EXCEPTION 'rollout_apply_events: an item outside the catalogue' USING ERRCODE = 'foreign_key_violation';
    END IF;
    IF NOT coalesce(v_simple, false) THEN
        RETURN QUERY SELECT * FROM rollout_apply_events_serial(p_events);
        RETURN;
    END IF;

    v_shard := rollout_counter_shard();
    RETURN QUERY
    WITH ev AS (
        SELECT x.* FROM jsonb_to_recordset(p_events) AS x(
            i integer, event_id uuid, employee text, item text, state rollout_state,
            occurred_at timestamptz, hash text, token integer, scope jsonb, features jsonb, note text)
    ), d AS (
        SELECT ev.*, decode(ev.hash, 'hex') AS h,
               em.id AS emp_id, em.dienststelle AS dst,
               -- the Ressort only where a token's scope needs it
               CASE WHEN jsonb_typeof(ev.scope) = 'array'
                    THEN (SELECT x.ressort FROM dienststelle x WHERE x.code = em.dienststelle) END AS ressort,
               s.state AS cur, s.since AS cur_since,
               (s.since IS NULL OR ev.occurred_at >= s.since) AS app
          -- One lookup per event (OFFSET 0 keeps each a subquery of its own, not a join whose
          -- method the planner picks from the tables' sizes), and each an index probe
          -- (enable_seqscan, above). Flattened, item_state was probed by employee alone and the
          -- employee's other items filtered out after reading them.
          FROM ev
          LEFT JOIN LATERAL (SELECT * FROM employee x
                              WHERE x.personnel_number = ev.employee OFFSET 0) em ON true
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
        ON CONFLICT (event_id) DO NOTHING
        RETURNING event_id
    ), done AS (
        SELECT c.* FROM c JOIN ins ON ins.event_id = c.event_id
    ), st AS (
        INSERT INTO item_state AS s (employee_id, item, state, since)
        SELECT done.emp_id, done.item, done.state, done.occurred_at FROM done WHERE done.app
        ON CONFLICT (employee_id, item) DO UPDATE SET state = excluded.state, since = excluded.since
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
    SELECT c.i,
           CASE WHEN ins.event_id IS NOT NULL THEN 'created'
                WHEN o.dup THEN 'duplicate'
                ELSE 'rejected' END,
           CASE WHEN ins.event_id IS NOT NULL OR o.dup THEN NULL
                WHEN o.dup IS NOT NULL OR c.verdict = 'create' THEN 'event_id_conflict'
                WHEN c.verdict = 'unknown' THEN 'unknown_employee'
                WHEN c.verdict = 'scope' THEN 'outside_scope'
                WHEN c.verdict = 'illegal' THEN 'illegal_transition' END,
           CASE WHEN ins.event_id IS NOT NULL OR o.dup THEN NULL
                WHEN o.dup IS NOT NULL OR c.verdict = 'create'
                    THEN 'event_id ' || c.event_id || ' was already used for a different event'
                WHEN c.verdict = 'unknown' THEN 'no employee with personnel number ' || c.employee
                WHEN c.verdict = 'scope' THEN 'employee ' || c.employee || ' belongs to Ressort '
                     || c.ressort || ', which this token may not write'
                WHEN c.verdict = 'illegal' THEN 'cannot go from ' || coalesce(c.cur::text, 'nothing')
                     || ' to ' || c.state::text || ' for ' || c.item END,
           CASE WHEN ins.event_id IS NOT NULL OR o.dup THEN NULL
                WHEN o.dup IS NOT NULL OR c.verdict = 'create' THEN 'event_id'
                WHEN c.verdict IN ('unknown', 'scope') THEN 'employee'
                WHEN c.verdict = 'illegal' THEN 'state' END,
           CASE WHEN ins.event_id IS NOT NULL THEN 201
                WHEN o.dup THEN 200
                WHEN o.dup IS NOT NULL OR c.verdict = 'create' THEN 409
                WHEN c.verdict = 'unknown' THEN 404
                WHEN c.verdict = 'scope' THEN 403
                ELSE 409 END,
           c.employee,
           CASE WHEN o.dup THEN o.item ELSE c.item END,
           CASE WHEN o.dup THEN o.state::text ELSE c.state::text END,
           CASE WHEN o.dup THEN o.previous_state::text
                WHEN ins.event_id IS NOT NULL OR c.verdict = 'illegal' THEN c.cur::text END,
           CASE WHEN o.dup THEN o.applied
                WHEN ins.event_id IS NOT NULL THEN c.app END
      FROM c
      LEFT JOIN ins ON ins.event_id = c.event_id
      -- an event not stored now: was its event_id stored before? (dup: by this same event, a
      -- retry; otherwise a different event used it)
      LEFT JOIN LATERAL (SELECT x.request_hash IS NOT DISTINCT FROM c.h AS dup, x.item, x.state,
                                x.previous_state, x.applied
                           FROM event x WHERE ins.event_id IS NULL AND x.event_id = c.event_id
                         OFFSET 0) o ON true
     ORDER BY c.i;

END
$$;
