-- bench/sql/setup.sql: the synthetic inventory for the benchmark, straight into the tables
-- (as the superuser, after `rolloutctl migrate`): 10 Ressorts, 800 Dienststellen, 80,000
-- employees B0000000..B0079999 (100 per office), and the bench schema: bench.emp (employee index
-- -> id, as the wrk scripts number them) and bench.bench_event (shaped like the event log,
-- without foreign keys) for pgbench and COPY.
\set ON_ERROR_STOP 1
BEGIN;
INSERT INTO ressort (code, name)
SELECT r.code, 'Bench ' || r.code
  FROM unnest(ARRAY['HMdF', 'HMdIS', 'HMdJ', 'HKM', 'HMWK', 'HMUKLV', 'HMWEVW', 'HMSI', 'HStK',
                    'HMDIGI']) AS r(code);
INSERT INTO dienststelle (code, ressort, name, city)
SELECT 'D' || lpad(d::text, 4, '0'),
       (ARRAY['HMdF', 'HMdIS', 'HMdJ', 'HKM', 'HMWK', 'HMUKLV', 'HMWEVW', 'HMSI', 'HStK',
              'HMDIGI'])[(d - 1) % 10 + 1],
       'Dienststelle ' || d, (ARRAY['Wiesbaden', 'Kassel', 'Darmstadt', 'Giessen', 'Fulda'])[d % 5 + 1]
  FROM generate_series(1, 800) d;
INSERT INTO employee (personnel_number, dienststelle, name)
SELECT 'B' || lpad(i::text, 7, '0'), 'D' || lpad((i % 800 + 1)::text, 4, '0'), 'Person ' || i
  FROM generate_series(0, 79999) i;

CREATE SCHEMA bench;
CREATE TABLE bench.emp AS
SELECT (substr(personnel_number, 2))::integer AS idx, id, dienststelle FROM employee;
ALTER TABLE bench.emp ADD PRIMARY KEY (idx);
-- LIKE copies columns, defaults, identity, CHECKs and indexes, but no foreign keys
CREATE TABLE bench.bench_event (LIKE public.event INCLUDING ALL);
COMMIT;
VACUUM ANALYZE;
