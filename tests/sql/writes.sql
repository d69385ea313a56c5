-- INSERT OR IGNORE / OR REPLACE, UPDATE of value and key, DELETE, ttl_ms.
CREATE VIRTUAL TABLE t USING hashmmap(path='writes');
INSERT INTO t(key, value) VALUES ('a', 1), ('b', 2), ('c', 3);
INSERT OR IGNORE INTO t(key, value) VALUES ('a', 100), ('d', 4);
SELECT key, value FROM t ORDER BY key;
INSERT OR REPLACE INTO t(key, value) VALUES ('a', 'one'), ('e', 5);
SELECT key, value FROM t ORDER BY key;
REPLACE INTO t(key, value) VALUES ('b', 2.25);
SELECT key, value, typeof(value) FROM t WHERE key = 'b';
UPDATE t SET value = value * 10 WHERE key IN ('c', 'd');
SELECT key, value FROM t ORDER BY key;
-- UPDATE of the key moves the row.
UPDATE t SET key = 'z' WHERE key = 'c';
SELECT key, value FROM t ORDER BY key;
-- OR IGNORE on a key update onto an existing key leaves both rows alone.
UPDATE OR IGNORE t SET key = 'a' WHERE key = 'z';
SELECT key, value FROM t ORDER BY key;
-- OR REPLACE overwrites the target and removes the source.
UPDATE OR REPLACE t SET key = 'a' WHERE key = 'z';
SELECT key, value FROM t ORDER BY key;
-- A full-scan UPDATE touches every row once.
UPDATE t SET value = value || '!';
SELECT key, value FROM t ORDER BY key;
DELETE FROM t WHERE key = 'e';
DELETE FROM t WHERE key = 'nothing';
SELECT count(*) FROM t;
-- ttl_ms: NULL without expiry, else the milliseconds left.
INSERT INTO t(key, value, ttl_ms) VALUES ('lease', 'me', 100000);
SELECT key, ttl_ms IS NULL FROM t WHERE key IN ('a', 'lease') ORDER BY key;
SELECT ttl_ms BETWEEN 90000 AND 100000, expire_ms > 1700000000000 FROM t WHERE key = 'lease';
UPDATE t SET ttl_ms = 5000000 WHERE key = 'lease';
SELECT ttl_ms BETWEEN 4900000 AND 5000000, value FROM t WHERE key = 'lease';
-- An update of the value keeps the expiry.
UPDATE t SET value = 'you' WHERE key = 'lease';
SELECT ttl_ms BETWEEN 4900000 AND 5000000, value FROM t WHERE key = 'lease';
-- version only grows.
SELECT (SELECT version FROM t WHERE key = 'lease') > 0;
CREATE TEMP TABLE v AS SELECT version FROM t WHERE key = 'lease';
UPDATE t SET value = 'again' WHERE key = 'lease';
SELECT (SELECT version FROM t WHERE key = 'lease') > (SELECT version FROM v);
DELETE FROM t;
SELECT count(*) FROM t;
-- No transactions: a change is in the map at once, and ROLLBACK keeps it.
BEGIN;
INSERT INTO t(key, value) VALUES ('kept', 1);
ROLLBACK;
SELECT key, value FROM t;
-- DROP TABLE forgets the table, not the map.
DROP TABLE t;
CREATE VIRTUAL TABLE again USING hashmmap(path='writes');
SELECT key, value FROM again;
-- ALTER TABLE RENAME: the same map under the new name, in messages too.
ALTER TABLE again RENAME TO renamed;
SELECT key FROM renamed;
