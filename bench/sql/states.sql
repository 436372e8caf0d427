-- bench/sql/states.sql: the current state of every employee x item pair as one line of 320,000
-- digits (pair p = item * 80000 + employee index; 0 none, 1 planned ... 6 cancelled) for
-- bench/lua/events.lua.
SELECT string_agg(coalesce(array_position(enum_range(NULL::rollout_state), s.state), 0)::text, ''
                  ORDER BY p)
  FROM generate_series(0, 319999) p
  JOIN bench.emp e ON e.idx = p % 80000
  LEFT JOIN item_state s
    ON s.employee_id = e.id
   AND s.item = (ARRAY['mobile_device', 'hessen_smartphone', 'hessen_voice', 'wlan_autologin'])[p / 80000 + 1];
