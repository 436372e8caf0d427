-- 001_init: the rollout inventory.
-- Applied by `rolloutctl migrate` in one transaction; the checksum of this file is recorded in
-- schema_migrations and a changed file is refused afterwards. Never edit an applied migration:
-- add the next NNN_name.sql instead.

-- Two group roles: the daemon's (rollout_service: reads and records events, no DDL, no tokens)
-- and the admins' (rollout_admin: imports, targets, tokens, erasure). Login roles are granted
-- one of them; tools/dev creates `rolloutd` and `rolloutctl` for the local set-up.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'rollout_service') THEN
        CREATE ROLE rollout_service NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'rollout_admin') THEN
        CREATE ROLE rollout_admin NOLOGIN;
    END IF;
END
$$;

CREATE TYPE rollout_state AS ENUM ('planned', 'ordered', 'delivered', 'active', 'returned', 'cancelled');
CREATE TYPE token_role AS ENUM ('support', 'reader', 'admin');

-- Ministries. Data, not code: cabinets change them.
CREATE TABLE ressort (
    code text PRIMARY KEY CHECK (code ~ '^[A-Za-z][A-Za-z0-9_-]{0,31}$'),
    name text NOT NULL CHECK (length(name) BETWEEN 1 AND 200)
);

-- Offices and sites, each belonging to one Ressort.
CREATE TABLE dienststelle (
    code text PRIMARY KEY CHECK (code ~ '^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$'),
    ressort text NOT NULL REFERENCES ressort (code),
    name text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    city text NOT NULL CHECK (length(city) BETWEEN 1 AND 100)
);
CREATE INDEX dienststelle_ressort ON dienststelle (ressort);

-- Employees. Only what the job needs: the personnel number (how support teams name a person),
-- the office (for scope and counts) and optionally a name (to look people up). Everything else
-- refers to the surrogate id, so an erasure (`rolloutctl forget`) clears these two columns and
-- the anonymous history stays countable.
CREATE TABLE employee (
    id integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    personnel_number text UNIQUE CHECK (personnel_number ~ '^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$'),
    dienststelle text NOT NULL REFERENCES dienststelle (code),
    name text CHECK (length(name) BETWEEN 1 AND 200),
    forgotten_at timestamptz,
    CHECK ((forgotten_at IS NULL) = (personnel_number IS NOT NULL)),
    CHECK (forgotten_at IS NULL OR name IS NULL)
);
CREATE INDEX employee_dienststelle ON employee (dienststelle);

-- The catalogue of what is rolled out (the report's quick wins).
CREATE TABLE item (
    key text PRIMARY KEY,
    position smallint NOT NULL UNIQUE,
    title text NOT NULL,
    recommendation text NOT NULL
);
INSERT INTO item (key, position, title, recommendation) VALUES
    ('mobile_device', 1, 'Mobile Arbeitsplatzausstattung', 'Priorität auf mobile, digitale Arbeitsplatzausstattung'),
    ('hessen_smartphone', 2, 'HessenSmartphone', 'Erweiterung der Nutzergruppe des HessenSmartphones'),
    ('hessen_voice', 3, 'HessenVoice (CTI, One-Number)', 'Rollout von HessenVoice mit CTI und One-Number-Service'),
    ('wlan_autologin', 4, 'Automatische WLAN-Einwahl', 'Automatische WLAN-Einwahl in hessischen Dienststellen');

-- Targets: overall (ressort NULL) and optionally per Ressort.
CREATE TABLE target (
    item text NOT NULL REFERENCES item (key),
    ressort text REFERENCES ressort (code),
    target integer NOT NULL CHECK (target > 0),
    deadline date NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE NULLS NOT DISTINCT (item, ressort)
);

-- API tokens: only the SHA-256 of the secret is kept.
CREATE TABLE api_token (
    id integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name text NOT NULL UNIQUE CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$'),
    role token_role NOT NULL,
    ressorts text[] NOT NULL DEFAULT '{}',
    hash bytea NOT NULL UNIQUE CHECK (length(hash) = 32),
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz,
    revoked_at timestamptz,
    CHECK ((role = 'support') = (cardinality(ressorts) > 0))
);

-- The append-only event log. The answer to a repeated post is rebuilt from this row.
CREATE TABLE event (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id uuid NOT NULL UNIQUE,
    employee_id integer NOT NULL REFERENCES employee (id),
    item text NOT NULL REFERENCES item (key),
    state rollout_state NOT NULL,
    previous_state rollout_state,
    applied boolean NOT NULL,
    occurred_at timestamptz NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    token_id integer REFERENCES api_token (id),
    request_hash bytea CHECK (length(request_hash) = 32),
    device_serial text,
    device_model text,
    device_imei text,
    features jsonb,
    note text CHECK (length(note) <= 1000)
);
CREATE INDEX event_employee_history ON event (employee_id, occurred_at DESC, id DESC);
CREATE INDEX event_received ON event (received_at);

-- The current state of one employee's item.
CREATE TABLE item_state (
    employee_id integer NOT NULL REFERENCES employee (id),
    item text NOT NULL REFERENCES item (key),
    state rollout_state NOT NULL,
    since timestamptz NOT NULL,      -- occurred_at of the event that set this state
    PRIMARY KEY (employee_id, item)
)
WITH (fillfactor = 80); -- room for the state's in-place (HOT) updates

-- Devices: serial unique across the inventory, IMEI unique where given.
CREATE TABLE device (
    serial text PRIMARY KEY CHECK (serial ~ '^[A-Za-z0-9][A-Za-z0-9_.:/-]{0,63}$'),
    model text CHECK (length(model) <= 100),
    imei text UNIQUE CHECK (imei ~ '^[0-9]{15}$'),
    item text NOT NULL REFERENCES item (key),
    holder_id integer REFERENCES employee (id),
    since timestamptz NOT NULL
);
CREATE INDEX device_holder ON device (holder_id);

-- Who held which device when (held_until NULL: still holds it).
CREATE TABLE device_holding (
    serial text NOT NULL REFERENCES device (serial),
    employee_id integer REFERENCES employee (id),
    held_from timestamptz NOT NULL,
    held_until timestamptz
);
CREATE INDEX device_holding_serial ON device_holding (serial, held_from DESC);
CREATE INDEX device_holding_employee ON device_holding (employee_id);

-- Counts of current states per office, item and state. Each transaction adds its summed deltas
-- to its own shard row, so concurrent group commits do not queue on one hot row; a reader sums
-- the shards. Kept in the same transaction as the events that change them.
CREATE TABLE progress_counter (
    dienststelle text NOT NULL REFERENCES dienststelle (code),
    item text NOT NULL REFERENCES item (key),
    state rollout_state NOT NULL,
    shard smallint NOT NULL CHECK (shard BETWEEN 0 AND 63),
    n bigint NOT NULL,
    PRIMARY KEY (dienststelle, item, state, shard)
)
-- Updated in place hundreds of times a second: room in every page keeps the updates HOT (no
-- new index entries, pruned on the page), and vacuum comes by often; without this the table
-- bloats to megabytes of dead rows and every snapshot read scans them.
WITH (fillfactor = 20, autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 2000,
      autovacuum_vacuum_cost_delay = 0);

-- Net completions (entered active minus left active) per day of occurrence (Europe/Berlin),
-- office and item: the 7-day rate, the forecast and the burn-up chart read only this.
CREATE TABLE daily_done (
    day date NOT NULL,
    dienststelle text NOT NULL REFERENCES dienststelle (code),
    item text NOT NULL REFERENCES item (key),
    shard smallint NOT NULL CHECK (shard BETWEEN 0 AND 63),
    n bigint NOT NULL,
    PRIMARY KEY (day, dienststelle, item, shard)
)
WITH (fillfactor = 50, autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 2000,
      autovacuum_vacuum_cost_delay = 0);

-- Employees per office, for targets shared out pro rata by headcount.
CREATE VIEW dienststelle_headcount AS
    SELECT dienststelle, count(*)::integer AS headcount FROM employee GROUP BY dienststelle;

-- Reads of one person's data through the API or the CLI (who, whom, when).
CREATE TABLE access_log (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at timestamptz NOT NULL DEFAULT now(),
    token_id integer REFERENCES api_token (id),
    actor text NOT NULL,
    employee_id integer NOT NULL REFERENCES employee (id),
    action text NOT NULL
);
CREATE INDEX access_log_employee ON access_log (employee_id, at);

-- Erasures under data protection law: who erased whom (by surrogate id) and when.
CREATE TABLE erasure (
    employee_id integer PRIMARY KEY REFERENCES employee (id),
    erased_at timestamptz NOT NULL DEFAULT now(),
    erased_by text NOT NULL
);

-- Applies a group of validated events in order and returns one outcome per event. Expected
-- failures (unknown employee, outside the token's Ressorts, illegal transition, duplicate,
-- event_id reused with another body, device held by someone else) are outcomes, not errors, so
-- one bad event never aborts the group commit of the others.
--
-- p_events: [{"i": index, "event_id", "employee", "item", "state", "occurred_at",
--             "hash": hex sha256 of the canonical body, "token": id or null,
--             "scope": [ressort, ...] or null for all, "device": {...}|null,
--             "features": {...}|null, "note": text|null}, ...]
CREATE FUNCTION rollout_apply_events_serial(p_events jsonb)
RETURNS TABLE (
    i integer, result text, code text, message text, field text, status integer,
    employee text, item text, state text, previous_state text, applied boolean
)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
#variable_conflict use_column
DECLARE
    ev jsonb;
    v_shard smallint := (pg_backend_pid() % 64)::smallint;
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

        -- Delivered at commit: every rolloutd on this database re-reads its progress snapshot.
        PERFORM pg_notify('rollout_progress', '');
    END IF;
END
$$;

-- The group commit's entry point. A group whose events name distinct employees and distinct
-- event_ids and carry no device (the common burst: many people, one step each) is applied by
-- one set-based statement; anything else goes through rollout_apply_events_serial, one event
-- after the other, with exactly the same outcomes.
CREATE FUNCTION rollout_apply_events(p_events jsonb)
RETURNS TABLE (
    i integer, result text, code text, message text, field text, status integer,
    employee text, item text, state text, previous_state text, applied boolean
)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
#variable_conflict use_column
DECLARE
    v_shard smallint := (pg_backend_pid() % 64)::smallint;
    v_simple boolean;
BEGIN
    PERFORM 1 FROM employee e
     WHERE e.personnel_number IN (SELECT x->>'employee' FROM jsonb_array_elements(p_events) x)
     ORDER BY e.id FOR NO KEY UPDATE;
    SELECT count(DISTINCT x->>'employee') = count(*) AND count(DISTINCT x->>'event_id') = count(*)
           AND bool_and(jsonb_typeof(x->'device') IS DISTINCT FROM 'object')
      INTO v_simple
      FROM jsonb_array_elements(p_events) x;
    IF NOT coalesce(v_simple, false) THEN
        RETURN QUERY SELECT * FROM rollout_apply_events_serial(p_events);
        RETURN;
    END IF;

    RETURN QUERY
    WITH ev AS (
        SELECT x.* FROM jsonb_to_recordset(p_events) AS x(
            i integer, event_id uuid, employee text, item text, state rollout_state,
            occurred_at timestamptz, hash text, token integer, scope jsonb, features jsonb, note text)
    ), d AS (
        SELECT ev.*, decode(ev.hash, 'hex') AS h,
               o.event_id IS NOT NULL AS seen, o.request_hash AS old_hash, o.item AS o_item,
               o.state AS o_state, o.previous_state AS o_prev, o.applied AS o_applied,
               em.id AS emp_id, em.dienststelle AS dst, ds.ressort AS ressort,
               s.state AS cur, s.since AS cur_since,
               (s.since IS NULL OR ev.occurred_at >= s.since) AS app
          -- LATERAL lookups: one index probe per event whatever the tables' sizes were when
          -- the plan was cached (a cached hash join made on a small event log would scan the
          -- whole log on every group once it has grown)
          FROM ev
          LEFT JOIN LATERAL (SELECT * FROM event x WHERE x.event_id = ev.event_id) o ON true
          LEFT JOIN LATERAL (SELECT * FROM employee x WHERE x.personnel_number = ev.employee) em ON true
          LEFT JOIN LATERAL (SELECT * FROM dienststelle x WHERE x.code = em.dienststelle) ds ON true
          LEFT JOIN LATERAL (SELECT * FROM item_state x
                              WHERE x.employee_id = em.id AND x.item = ev.item) s ON true
    ), c AS (
        SELECT d.*,
               CASE
                   WHEN d.seen AND d.old_hash IS DISTINCT FROM d.h THEN 'conflict'
                   WHEN d.seen THEN 'duplicate'
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
           CASE WHEN c.verdict = 'duplicate' THEN 'duplicate'
                WHEN c.verdict = 'create' AND ins.event_id IS NOT NULL THEN 'created'
                ELSE 'rejected' END,
           CASE WHEN c.verdict IN ('conflict', 'create') AND ins.event_id IS NULL THEN 'event_id_conflict'
                WHEN c.verdict = 'unknown' THEN 'unknown_employee'
                WHEN c.verdict = 'scope' THEN 'outside_scope'
                WHEN c.verdict = 'illegal' THEN 'illegal_transition' END,
           CASE WHEN c.verdict IN ('conflict', 'create') AND ins.event_id IS NULL
                    THEN 'event_id ' || c.event_id || ' was already used for a different event'
                WHEN c.verdict = 'unknown' THEN 'no employee with personnel number ' || c.employee
                WHEN c.verdict = 'scope' THEN 'employee ' || c.employee || ' belongs to Ressort '
                     || c.ressort || ', which this token may not write'
                WHEN c.verdict = 'illegal' THEN 'cannot go from ' || coalesce(c.cur::text, 'nothing')
                     || ' to ' || c.state::text || ' for ' || c.item END,
           CASE WHEN c.verdict IN ('conflict', 'create') AND ins.event_id IS NULL THEN 'event_id'
                WHEN c.verdict IN ('unknown', 'scope') THEN 'employee'
                WHEN c.verdict = 'illegal' THEN 'state' END,
           CASE WHEN c.verdict = 'duplicate' THEN 200
                WHEN c.verdict = 'create' AND ins.event_id IS NOT NULL THEN 201
                WHEN c.verdict = 'unknown' THEN 404
                WHEN c.verdict = 'scope' THEN 403
                ELSE 409 END,
           c.employee,
           CASE WHEN c.verdict = 'duplicate' THEN c.o_item ELSE c.item END,
           CASE WHEN c.verdict = 'duplicate' THEN c.o_state::text ELSE c.state::text END,
           CASE WHEN c.verdict = 'duplicate' THEN c.o_prev::text
                WHEN c.verdict IN ('create', 'illegal') THEN c.cur::text END,
           CASE WHEN c.verdict = 'duplicate' THEN c.o_applied
                WHEN c.verdict = 'create' AND ins.event_id IS NOT NULL THEN c.app END
      FROM c LEFT JOIN ins ON ins.event_id = c.event_id
     ORDER BY c.i;

    -- Delivered at commit: every rolloutd on this database re-reads its progress snapshot.
    PERFORM pg_notify('rollout_progress', '');
END
$$;

-- The transition rules, the same table as domain_transition_allowed() in daemon/core/domain.c.
CREATE FUNCTION rollout_transition_allowed(p_from rollout_state, p_to rollout_state)
RETURNS boolean LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE
        WHEN p_from IS NULL THEN p_to IN ('planned', 'ordered', 'delivered', 'active')
        WHEN p_from IN ('planned', 'ordered', 'delivered') THEN
            (p_to IN ('planned', 'ordered', 'delivered', 'active') AND p_to > p_from) OR p_to = 'cancelled'
        WHEN p_from = 'active' THEN p_to = 'returned'
        WHEN p_from = 'returned' THEN p_to IN ('planned', 'ordered', 'cancelled')
        WHEN p_from = 'cancelled' THEN p_to IN ('planned', 'ordered')
        ELSE false
    END
$$;

-- One employee as the API shows it, with the read recorded in access_log. NULL when unknown;
-- {"forbidden": ressort} when outside p_scope (NULL scope: all Ressorts).
CREATE FUNCTION rollout_employee_view(p_personnel text, p_token integer, p_actor text, p_scope text[])
RETURNS jsonb LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    v_emp employee%ROWTYPE;
    v_ressort text;
BEGIN
    SELECT * INTO v_emp FROM employee WHERE personnel_number = p_personnel;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    SELECT ressort INTO v_ressort FROM dienststelle WHERE code = v_emp.dienststelle;
    IF p_scope IS NOT NULL AND NOT v_ressort = ANY (p_scope) THEN
        RETURN jsonb_build_object('forbidden', v_ressort);
    END IF;
    INSERT INTO access_log (token_id, actor, employee_id, action)
    VALUES (p_token, p_actor, v_emp.id, 'employee.show');
    RETURN jsonb_build_object(
        'employee', v_emp.personnel_number,
        'ressort', v_ressort,
        'dienststelle', v_emp.dienststelle,
        'items', coalesce((SELECT jsonb_object_agg(s.item, jsonb_build_object('state', s.state, 'since', s.since))
                             FROM item_state s WHERE s.employee_id = v_emp.id), '{}'::jsonb),
        'devices', coalesce((SELECT jsonb_agg(jsonb_build_object('serial', d.serial, 'model', d.model,
                                                                 'imei', d.imei, 'item', d.item, 'since', d.since)
                                              ORDER BY d.since, d.serial)
                               FROM device d WHERE d.holder_id = v_emp.id), '[]'::jsonb));
END
$$;

-- One page of an employee's history, newest first. p_before_at/p_before_id: the cursor (NULL
-- for the first page). Returns NULL for an unknown employee, {"forbidden": ressort} outside scope.
CREATE FUNCTION rollout_employee_events(p_personnel text, p_token integer, p_actor text, p_scope text[],
                                        p_limit integer, p_before_at timestamptz, p_before_id bigint)
RETURNS jsonb LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    v_emp employee%ROWTYPE;
    v_ressort text;
    v_page jsonb;
    v_last record;
    v_more boolean;
BEGIN
    SELECT * INTO v_emp FROM employee WHERE personnel_number = p_personnel;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    SELECT ressort INTO v_ressort FROM dienststelle WHERE code = v_emp.dienststelle;
    IF p_scope IS NOT NULL AND NOT v_ressort = ANY (p_scope) THEN
        RETURN jsonb_build_object('forbidden', v_ressort);
    END IF;
    INSERT INTO access_log (token_id, actor, employee_id, action)
    VALUES (p_token, p_actor, v_emp.id, 'employee.events');
    WITH page AS (
        SELECT e.* FROM event e
         WHERE e.employee_id = v_emp.id
           AND (p_before_at IS NULL OR (e.occurred_at, e.id) < (p_before_at, p_before_id))
         ORDER BY e.occurred_at DESC, e.id DESC
         LIMIT p_limit + 1
    ), numbered AS (
        SELECT p.*, row_number() OVER (ORDER BY p.occurred_at DESC, p.id DESC) AS rn FROM page p
    )
    SELECT coalesce(jsonb_agg(jsonb_strip_nulls(jsonb_build_object(
               'event_id', n.event_id, 'item', n.item, 'state', n.state,
               'previous_state', n.previous_state, 'applied', n.applied,
               'occurred_at', n.occurred_at, 'received_at', n.received_at,
               'device', CASE WHEN n.device_serial IS NULL THEN NULL ELSE jsonb_strip_nulls(jsonb_build_object(
                   'serial', n.device_serial, 'model', n.device_model, 'imei', n.device_imei)) END,
               'features', n.features, 'note', n.note))
             ORDER BY n.rn) FILTER (WHERE n.rn <= p_limit), '[]'::jsonb),
           bool_or(n.rn > p_limit)
      INTO v_page, v_more
      FROM numbered n;
    IF v_more THEN
        SELECT e.occurred_at, e.id INTO v_last FROM event e
         WHERE e.employee_id = v_emp.id
           AND (p_before_at IS NULL OR (e.occurred_at, e.id) < (p_before_at, p_before_id))
         ORDER BY e.occurred_at DESC, e.id DESC OFFSET p_limit - 1 LIMIT 1;
        RETURN jsonb_build_object('events', v_page,
            'next', (extract(epoch FROM v_last.occurred_at) * 1000000)::bigint::text || '.' || v_last.id::text);
    END IF;
    RETURN jsonb_build_object('events', v_page, 'next', NULL);
END
$$;

-- What the daemon may do: read the inventory and the counters, and write only through the
-- functions above (SECURITY DEFINER), which record events and reads. No DDL, no tokens.
REVOKE ALL ON ALL TABLES IN SCHEMA public FROM PUBLIC;
REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA public FROM PUBLIC;
-- ... but the migrations table (made by rolloutctl before this file) stays readable: rolloutd
-- checks the schema version with its own small role.
DO $$
BEGIN
    IF to_regclass('schema_migrations') IS NOT NULL THEN
        GRANT SELECT ON schema_migrations TO PUBLIC;
    END IF;
END
$$;
GRANT USAGE ON SCHEMA public TO rollout_service, rollout_admin;
GRANT SELECT ON ressort, dienststelle, item, target, api_token, progress_counter, daily_done,
                dienststelle_headcount
      TO rollout_service;
GRANT SELECT (received_at) ON event TO rollout_service; -- "time of the last event" in /status
GRANT EXECUTE ON FUNCTION rollout_apply_events(jsonb), rollout_transition_allowed(rollout_state, rollout_state),
                          rollout_employee_view(text, integer, text, text[]),
                          rollout_employee_events(text, integer, text, text[], integer, timestamptz, bigint)
      TO rollout_service;

-- What the admins' tool may do: everything on the data, nothing on the structure.
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO rollout_admin;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA public TO rollout_admin;

-- The data-protection erasure of one employee: the personnel number and the name are removed,
-- free-text notes and request fingerprints of their events are cleared, devices are unlinked
-- from the person. Kept, without anything that names the person: the surrogate id, the office
-- (for the anonymous counts), the states and the event history's dates, items and states.
-- Returns the surrogate id, or NULL when no such employee exists.
CREATE FUNCTION rollout_forget(p_personnel text, p_actor text)
RETURNS integer LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    v_id integer;
BEGIN
    SELECT id INTO v_id FROM employee WHERE personnel_number = p_personnel FOR UPDATE;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    UPDATE employee SET personnel_number = NULL, name = NULL, forgotten_at = now() WHERE id = v_id;
    UPDATE event SET note = NULL, request_hash = NULL, device_serial = NULL, device_model = NULL,
                     device_imei = NULL, features = NULL
     WHERE employee_id = v_id;
    UPDATE device SET holder_id = NULL WHERE holder_id = v_id;
    UPDATE device_holding SET employee_id = NULL WHERE employee_id = v_id;
    INSERT INTO erasure (employee_id, erased_by) VALUES (v_id, p_actor);
    RETURN v_id;
END
$$;
REVOKE EXECUTE ON FUNCTION rollout_forget(text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION rollout_forget(text, text) TO rollout_admin;
