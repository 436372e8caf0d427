-- bench/sql/load_events.sql: appends :n events to the log by SQL (no HTTP), then rebuilds the
-- derived tables from the whole log so that event, item_state, progress_count and daily_done
-- agree with each other. Variables: n, g0 (first sequence number), from, to (occurred_at range).
-- Event g is for pair g % 320000 (employee index g % 80000, item (g % 320000) / 80000) and takes
-- the (g / 320000)-th step of planned -> ordered -> delivered -> active -> returned.
\set ON_ERROR_STOP 1
BEGIN;
INSERT INTO event (event_id, employee_id, item, state, previous_state, applied, occurred_at,
                   received_at, request_hash)
SELECT gen_random_uuid(), e.id,
       (ARRAY['mobile_device', 'hessen_smartphone', 'hessen_voice', 'wlan_autologin'])[(g % 320000) / 80000 + 1],
       (ARRAY['planned', 'ordered', 'delivered', 'active', 'returned'])[(g / 320000) % 5 + 1]::rollout_state,
       CASE WHEN g >= 320000
            THEN (ARRAY['planned', 'ordered', 'delivered', 'active', 'returned'])[(g / 320000 + 4) % 5 + 1]::rollout_state
       END,
       true, t.at, t.at + interval '5 minutes', sha256(g::text::bytea)
  FROM generate_series(:g0::bigint, :g0::bigint + :n - 1) g
  JOIN bench.emp e ON e.idx = g % 80000
 CROSS JOIN LATERAL (SELECT :'from'::timestamptz
                            + (:'to'::timestamptz - :'from'::timestamptz) * ((g - :g0)::float8 / :n) AS at) t;

TRUNCATE item_state, progress_count, daily_done;
INSERT INTO item_state (employee_id, item, state, since)
SELECT DISTINCT ON (employee_id, item) employee_id, item, state, occurred_at
  FROM event WHERE applied
 ORDER BY employee_id, item, occurred_at DESC, id DESC;
INSERT INTO progress_count (dienststelle, item, shard, planned, ordered, delivered, active, returned,
                            cancelled)
SELECT em.dienststelle, s.item, 0, count(*) FILTER (WHERE s.state = 'planned'),
       count(*) FILTER (WHERE s.state = 'ordered'), count(*) FILTER (WHERE s.state = 'delivered'),
       count(*) FILTER (WHERE s.state = 'active'), count(*) FILTER (WHERE s.state = 'returned'),
       count(*) FILTER (WHERE s.state = 'cancelled')
  FROM item_state s JOIN employee em ON em.id = s.employee_id
 GROUP BY 1, 2;
INSERT INTO daily_done (day, dienststelle, item, shard, n)
SELECT (ev.occurred_at AT TIME ZONE 'Europe/Berlin')::date, em.dienststelle, ev.item, 0,
       sum(CASE WHEN ev.state = 'active' THEN 1 ELSE -1 END)
  FROM event ev JOIN employee em ON em.id = ev.employee_id
 WHERE ev.applied AND ((ev.state = 'active' AND ev.previous_state IS DISTINCT FROM 'active')
                       OR (ev.previous_state = 'active' AND ev.state <> 'active'))
 GROUP BY 1, 2, 3
HAVING sum(CASE WHEN ev.state = 'active' THEN 1 ELSE -1 END) <> 0;
COMMIT;
VACUUM ANALYZE event, item_state, progress_count, daily_done;
-- every rolloutd on this database re-reads its progress snapshot
NOTIFY rollout_progress;
