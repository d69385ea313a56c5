-- nobail
-- Optimistic writes: UPDATE and DELETE apply only to the entry their row was
-- read with; a row another writer changed in between fails the statement
-- with SQLITE_BUSY (retry it), and that writer's change stays.
CREATE VIRTUAL TABLE t USING hashmmap(path='opt');
INSERT INTO t(key, value) VALUES ('a', 1), ('b', 2), ('n', 0);
-- hashmmap_incr in the WHERE clause changes the row after the statement read
-- it: the UPDATE must not overwrite that increment, the DELETE must not drop it.
UPDATE t SET value = value + 100 WHERE key = 'n' AND hashmmap_incr('t', 'n') > 0;
SELECT value FROM t WHERE key = 'n';
DELETE FROM t WHERE key = 'n' AND hashmmap_incr('t', 'n') > 0;
SELECT value FROM t WHERE key = 'n';
-- The same through a scan (no point lookup).
UPDATE t SET value = value + 100 WHERE +key = 'n' AND hashmmap_incr('t', 'n') > 0;
DELETE FROM t WHERE +key = 'n' AND hashmmap_incr('t', 'n') > 0;
SELECT value FROM t WHERE key = 'n';
-- Renaming a row that changed meanwhile: nothing is written (no new key
-- with the stale row), the old row keeps the other writer's change, and
-- the statement says so.
UPDATE t SET key = 'n2' WHERE key = 'n' AND hashmmap_incr('t', 'n') > 0;
SELECT key, value FROM t WHERE key IN ('n', 'n2') ORDER BY key;
-- Retried, the statements apply.
UPDATE t SET value = value + 100 WHERE key = 'n';
SELECT value FROM t WHERE key = 'n';
DELETE FROM t WHERE key IN ('n', 'n2');
SELECT count(*) FROM t WHERE key IN ('n', 'n2');
-- SET version = V: apply only if the row still has the version an earlier
-- SELECT returned.
CREATE TEMP TABLE seen AS SELECT version FROM t WHERE key = 'a';
UPDATE t SET value = 10, version = (SELECT version FROM seen) WHERE key = 'a';
SELECT value FROM t WHERE key = 'a';
UPDATE t SET value = 20, version = (SELECT version FROM seen) WHERE key = 'a';
SELECT value FROM t WHERE key = 'a';
-- A stale version set by the statement is named as such (no other writer
-- is to blame), for a rename too; a quote in the key is doubled.
INSERT INTO t(key, value) VALUES ('it''s', 1);
UPDATE t SET key = 'its', version = 99 WHERE key = 'it''s';
SELECT key FROM t WHERE key IN ('it''s', 'its');
UPDATE t SET value = 20, version = NULL WHERE key = 'a';
-- version is an INTEGER column: '5' and 5.0 are the integer 5, as in a
-- normal table; 2.5 is no version at all.
UPDATE t SET value = 11, version = CAST((SELECT version FROM t WHERE key = 'a') AS TEXT) WHERE key = 'a';
UPDATE t SET value = 12, version = (SELECT version FROM t WHERE key = 'a') + 0.0 WHERE key = 'a';
SELECT value FROM t WHERE key = 'a';
UPDATE t SET value = 13, version = 2.5 WHERE key = 'a';
-- hashmmap_incr: by table name or by map directory; a missing key starts at 0.
SELECT hashmmap_incr('t', 'hits'), hashmmap_incr('t', 'hits', 41), hashmmap_incr('opt', 'hits', -2);
SELECT value, typeof(value) FROM t WHERE key = 'hits';
SELECT hashmmap_incr('t', 7, 7);
-- delta is an integer; '2' and 2.0 are that integer, 2.5 is not.
SELECT hashmmap_incr('t', 'd', '2'), hashmmap_incr('t', 'd', 2.0);
SELECT hashmmap_incr('t', 'd', 2.5);
SELECT quote(key), value FROM t WHERE key = 7;
-- An ignored INSERT OR IGNORE changes nothing, and changes() says so.
INSERT OR IGNORE INTO t(key, value) VALUES ('a', 100);
SELECT changes();
INSERT OR IGNORE INTO t(key, value) VALUES ('a', 100), ('c', 3);
SELECT changes();
UPDATE OR IGNORE t SET key = 'a' WHERE key = 'b';
SELECT changes();
INSERT OR REPLACE INTO t(key, value) VALUES ('a', 100);
SELECT changes(), value FROM t WHERE key = 'a';
-- UPSERT is refused by SQLite for virtual tables: INSERT OR REPLACE instead.
INSERT INTO t(key, value) VALUES ('a', 1) ON CONFLICT(key) DO UPDATE SET value = value + 1;
-- RETURNING: SQLite allows it on INSERT only, with the row as written;
-- version and expire_ms are assigned by the map afterwards, so NULL there.
INSERT INTO t(key, value) VALUES ('r', 'x') RETURNING key, value, typeof(version);
UPDATE t SET value = 'y' WHERE key = 'r' RETURNING value;
-- hashmmap_incr keeps the type of a key: a REAL key, text that reads as a
-- number, a blob that reads as text are found again by what was counted.
INSERT INTO t(key, value) VALUES (2.5, 10), ('42', 1), (x'6869', 1);
SELECT hashmmap_incr('t', 2.5), hashmmap_incr('t', '42'), hashmmap_incr('t', x'6869');
SELECT quote(key), value FROM t WHERE key IN (2.5, '42', x'6869') ORDER BY 2, 1;
-- A new counter's key has the type given, as an INSERT's would; an existing
-- one keeps the type it was written with (7 is an INTEGER key, 7.0 finds it).
SELECT hashmmap_incr('t', 3.5), hashmmap_incr('t', '43'), hashmmap_incr('t', x'6a69'), hashmmap_incr('t', 'n' || char(0));
SELECT hex(key), typeof(key) FROM t WHERE key IN (3.5, '43', x'6a69', 'n' || char(0)) ORDER BY 1;
SELECT hashmmap_incr('t', 7.0), (SELECT typeof(key) FROM t WHERE key = 7);
