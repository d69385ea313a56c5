-- key IN (...) looks its keys up in groups (hmm_get_batch): its rows must be
-- those of a normal table, over lists longer than a group, with missing
-- keys, duplicates, NULLs, and values too big for the cursor's group buffer
-- (read again alone).
CREATE VIRTUAL TABLE t USING hashmmap(path='in');
CREATE TABLE n(key PRIMARY KEY NOT NULL, value) WITHOUT ROWID;
WITH RECURSIVE i(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM i WHERE x < 200)
INSERT INTO n SELECT 'k' || x, CASE WHEN x % 7 = 0 THEN printf('%.*c', 300 + x * 20, 'v') ELSE 'v' || x END FROM i;
INSERT INTO t(key, value) SELECT key, value FROM n;
EXPLAIN QUERY PLAN SELECT key FROM t WHERE key IN ('k1', 'k2');
-- 0..260 step 3: keys 201..260 are missing; every 7th value is 440..4300 bytes.
CREATE TEMP TABLE ask(k);
WITH RECURSIVE i(x) AS (SELECT 0 UNION ALL SELECT x + 3 FROM i WHERE x < 260)
INSERT INTO ask SELECT 'k' || x FROM i;
INSERT INTO ask SELECT k FROM ask WHERE rowid % 5 = 0; -- duplicates
INSERT INTO ask VALUES (NULL), ('nope'), ('');
SELECT count(*), sum(length(value)) FROM t WHERE key IN (SELECT k FROM ask);
SELECT count(*), sum(length(value)) FROM n WHERE key IN (SELECT k FROM ask);
SELECT count(*) AS disagreements FROM (
  SELECT key, value FROM t WHERE key IN (SELECT k FROM ask)
  EXCEPT SELECT key, value FROM n WHERE key IN (SELECT k FROM ask));
SELECT key, length(value) FROM t WHERE key IN ('k7', 'k7', 'k14', 'k999', 'k1', NULL, 'k140') ORDER BY key;
SELECT key, length(value) FROM n WHERE key IN ('k7', 'k7', 'k14', 'k999', 'k1', NULL, 'k140') ORDER BY key;
