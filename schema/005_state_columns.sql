-- 005_state_columns: one counter row per office, item and lane, with a column per state.
--
-- progress_counter had a row per office, item, state and lane, so an event that moves an item
-- from one state to another changed two rows: one down, one up. A group's events mostly name
-- different offices, so a group of n events updated about 2n counter rows, each an index probe
-- and an in-place (HOT) update with its WAL record, about 5 us apiece. Issue 7's measurements in
-- isolation (groups of 500 on the benchmark's database): the counters were a third of the group
-- commit's time (30.7 vs 18.7 us per event without them). With a column per state the event
-- changes one row; the same groups took 25-26 us per event, and the benchmark's batches gained
-- 5% side by side (bench/ab).
--
-- progress_counter stays, as a view with the rows and columns it had (without rows of 0), so
-- every reader (rolloutd's progress read, rolloutctl progress, report and verify) reads what it
-- read; writers write progress_count, through rollout_add_counts() or (the group commit's
-- set-based path) the same upsert in its statement. The lanes are as in 003.
--
-- A new database gets the functions from 001 and each later migration in turn; only the last
-- definition of a function counts.

-- rolloutd writes the counters all the time: give up rather than queue its group commits
-- behind this migration's lock (and run it again later).
SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '60s';

CREATE TABLE progress_count (
    dienststelle text NOT NULL REFERENCES dienststelle (code),
    item text NOT NULL REFERENCES item (key),
    shard smallint NOT NULL CHECK (shard BETWEEN 0 AND 63),
    planned bigint NOT NULL DEFAULT 0,
    ordered bigint NOT NULL DEFAULT 0,
    delivered bigint NOT NULL DEFAULT 0,
    active bigint NOT NULL DEFAULT 0,
    returned bigint NOT NULL DEFAULT 0,
    cancelled bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (dienststelle, item, shard)
)
-- as progress_counter (001): updated in place all the time, so room in every page for HOT
-- updates, and vacuum comes by often
WITH (fillfactor = 20, autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 2000,
      autovacuum_vacuum_cost_delay = 0);

-- The counts so far, lane by lane. EXCLUSIVE mode keeps writers out while they are copied and
-- lets readers read on; the DROP below then holds the table from everyone until this migration
-- commits, a moment later.
LOCK TABLE progress_counter IN EXCLUSIVE MODE;
INSERT INTO progress_count (dienststelle, item, shard, planned, ordered, delivered, active, returned,
                            cancelled)
SELECT dienststelle, item, shard,
       coalesce(sum(n) FILTER (WHERE state = 'planned'), 0),
       coalesce(sum(n) FILTER (WHERE state = 'ordered'), 0),
       coalesce(sum(n) FILTER (WHERE state = 'delivered'), 0),
       coalesce(sum(n) FILTER (WHERE state = 'active'), 0),
       coalesce(sum(n) FILTER (WHERE state = 'returned'), 0),
       coalesce(sum(n) FILTER (WHERE state = 'cancelled'), 0)
  FROM progress_counter
 GROUP BY dienststelle, item, shard;
-- the view below takes its name, with the same columns: no reader notices
-- squawk-ignore ban-drop-table
DROP TABLE progress_counter;

CREATE VIEW progress_counter AS
    SELECT c.dienststelle, c.item, s.state, c.shard, s.n
      FROM progress_count c
     CROSS JOIN LATERAL (VALUES ('planned'::rollout_state, c.planned), ('ordered', c.ordered),
                                ('delivered', c.delivered), ('active', c.active),
                                ('returned', c.returned), ('cancelled', c.cancelled)) AS s (state, n)
     WHERE s.n <> 0;

GRANT SELECT ON progress_counter, progress_count TO rollout_service, rollout_admin;
GRANT SELECT, INSERT, UPDATE, DELETE ON progress_count TO rollout_admin;

-- Adds counts (p_n of p_state, per office and item) to lane p_shard: the serial path's and
-- rolloutctl import's way to write them.
CREATE FUNCTION rollout_add_counts(p_dst text[], p_item text[], p_state rollout_state[], p_n integer[],
                                   p_shard smallint)
RETURNS void LANGUAGE sql AS $$
    INSERT INTO progress_count AS c (dienststelle, item, shard, planned, ordered, delivered, active,
                                     returned, cancelled)
    SELECT x.* FROM (
        SELECT u.dst, u.item, p_shard,
               coalesce(sum(u.n) FILTER (WHERE u.state = 'planned'), 0),
               coalesce(sum(u.n) FILTER (WHERE u.state = 'ordered'), 0),
               coalesce(sum(u.n) FILTER (WHERE u.state = 'delivered'), 0),
               coalesce(sum(u.n) FILTER (WHERE u.state = 'active'), 0),
               coalesce(sum(u.n) FILTER (WHERE u.state = 'returned'), 0),
               coalesce(sum(u.n) FILTER (WHERE u.state = 'cancelled'), 0)
          FROM unnest(p_dst, p_item, p_state, p_n) AS u (dst, item, state, n)
         GROUP BY u.dst, u.item) AS x (dst, item, shard, p, o, d, a, r, c)
     WHERE (x.p, x.o, x.d, x.a, x.r, x.c) <> (0, 0, 0, 0, 0, 0)
     ORDER BY 1, 2
    ON CONFLICT (dienststelle, item, shard) DO UPDATE
       SET planned = c.planned + excluded.planned, ordered = c.ordered + excluded.ordered,
           delivered = c.delivered + excluded.delivered, active = c.active + excluded.active,
           returned = c.returned + excluded.returned, cancelled = c.cancelled + excluded.cancelled
$$;
REVOKE EXECUTE ON FUNCTION rollout_add_counts(text[], text[], rollout_state[], integer[], smallint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION rollout_add_counts(text[], text[], rollout_state[], integer[], smallint) TO rollout_admin;

-- rollout_apply_events_serial, as in 003, with its counters through rollout_add_counts.
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
        PERFORM rollout_add_counts(d_dst, d_item, d_state, d_n, v_shard);

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

-- The group commit's entry point, as in 004, with one counter row per office and item.
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
        ), cnt AS (
            -- an event moves one count of its office and item from its previous state to its new
            -- one: one row, as in rollout_add_counts
            INSERT INTO progress_count AS pc (dienststelle, item, shard, planned, ordered, delivered,
                                              active, returned, cancelled)
            SELECT x.* FROM (
                SELECT done.dst, done.item, v_shard,
                       count(*) FILTER (WHERE done.state = 'planned') - count(*) FILTER (WHERE done.cur = 'planned'),
                       count(*) FILTER (WHERE done.state = 'ordered') - count(*) FILTER (WHERE done.cur = 'ordered'),
                       count(*) FILTER (WHERE done.state = 'delivered') - count(*) FILTER (WHERE done.cur = 'delivered'),
                       count(*) FILTER (WHERE done.state = 'active') - count(*) FILTER (WHERE done.cur = 'active'),
                       count(*) FILTER (WHERE done.state = 'returned') - count(*) FILTER (WHERE done.cur = 'returned'),
                       count(*) FILTER (WHERE done.state = 'cancelled') - count(*) FILTER (WHERE done.cur = 'cancelled')
                  FROM done WHERE done.app GROUP BY 1, 2) AS x (dst, item, shard, p, o, d, a, r, c)
             WHERE (x.p, x.o, x.d, x.a, x.r, x.c) <> (0, 0, 0, 0, 0, 0)
             ORDER BY 1, 2
            ON CONFLICT (dienststelle, item, shard) DO UPDATE
               SET planned = pc.planned + excluded.planned, ordered = pc.ordered + excluded.ordered,
                   delivered = pc.delivered + excluded.delivered, active = pc.active + excluded.active,
                   returned = pc.returned + excluded.returned, cancelled = pc.cancelled + excluded.cancelled
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
