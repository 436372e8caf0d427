-- The inventory every integration test starts from, loaded by th_db_create() as superuser into a
-- fresh copy of rollout_template (migrated, empty). Small on purpose: a test adds what its story
-- needs. Tests rely on exactly these rows (see tests/integration/harness.h); extend, never change.
--
--   Ressort  Dienststelle  employees
--   HMdF     FIN-WI-01     P0000001..P0000010 (named)
--   HMdF     FIN-KS-01     P0000011..P0000020
--   HMdIS    INN-WI-01     P0000021..P0000030 (named)
--   HMdJ     JUS-F-01      P0000031..P0000040
--
-- Targets: 40 for every item overall (deadline 2027-12-31), and HMdF's own target of 15 for
-- hessen_smartphone (deadline 2027-06-30). So HMdIS and HMdJ (10 employees each) get the
-- pro-rata share 10 of an overall target, and HMdF's Dienststellen share HMdF's 15.
BEGIN;

INSERT INTO ressort (code, name) VALUES
    ('HMdF', 'Hessisches Ministerium der Finanzen'),
    ('HMdIS', 'Hessisches Ministerium des Innern, für Sicherheit und Heimatschutz'),
    ('HMdJ', 'Hessisches Ministerium der Justiz und für den Rechtsstaat');

INSERT INTO dienststelle (code, ressort, name, city) VALUES
    ('FIN-WI-01', 'HMdF', 'Finanzamt Wiesbaden I', 'Wiesbaden'),
    ('FIN-KS-01', 'HMdF', 'Finanzamt Kassel', 'Kassel'),
    ('INN-WI-01', 'HMdIS', 'Innenministerium, Dienstsitz Wiesbaden', 'Wiesbaden'),
    ('JUS-F-01', 'HMdJ', 'Amtsgericht Frankfurt am Main', 'Frankfurt am Main');

INSERT INTO employee (personnel_number, dienststelle, name)
SELECT format('P%s', lpad(n::text, 7, '0')),
       CASE WHEN n <= 10 THEN 'FIN-WI-01'
            WHEN n <= 20 THEN 'FIN-KS-01'
            WHEN n <= 30 THEN 'INN-WI-01'
            ELSE 'JUS-F-01' END,
       -- every other office without names: the name is optional in the contract
       CASE WHEN n <= 10 OR n BETWEEN 21 AND 30 THEN format('Testperson %s', n) END
  FROM generate_series(1, 40) AS n
 ORDER BY n;

INSERT INTO target (item, ressort, target, deadline) VALUES
    ('mobile_device', NULL, 40, '2027-12-31'),
    ('hessen_smartphone', NULL, 40, '2027-12-31'),
    ('hessen_voice', NULL, 40, '2027-12-31'),
    ('wlan_autologin', NULL, 40, '2027-12-31'),
    ('hessen_smartphone', 'HMdF', 15, '2027-06-30');

COMMIT;
