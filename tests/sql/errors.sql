-- nobail
-- Every bad input is a clear SQL error, never a crash.
CREATE VIRTUAL TABLE nopath USING hashmmap();
CREATE VIRTUAL TABLE nopath2 USING hashmmap(size='1M');
CREATE VIRTUAL TABLE badopt USING hashmmap(path='e', colour='blue');
CREATE VIRTUAL TABLE badsize USING hashmmap(path='e', size='lots');
CREATE VIRTUAL TABLE badsize2 USING hashmmap(path='e', size=-5);
CREATE VIRTUAL TABLE badttl USING hashmmap(path='e', ttl='soon');
CREATE VIRTUAL TABLE badcache USING hashmmap(path='e', cache=maybe);
CREATE VIRTUAL TABLE noeq USING hashmmap(path);
CREATE VIRTUAL TABLE emptypath USING hashmmap(path='');
CREATE VIRTUAL TABLE notdir USING hashmmap(path='plainfile');
CREATE VIRTUAL TABLE notmap USING hashmmap(path='garbage');
CREATE VIRTUAL TABLE missing_ro USING hashmmap(path='nowhere', readonly=1);
-- Options that contradict each other, or that would not do what they say.
CREATE VIRTUAL TABLE rep USING hashmmap(path='e', path='f');
CREATE VIRTUAL TABLE rep2 USING hashmmap(path='e', size='1M', size='2M');
CREATE VIRTUAL TABLE shrink USING hashmmap(path='e', size='4M', max_size='1M');
CREATE VIRTUAL TABLE tiny USING hashmmap(path='e', size='100K');
CREATE VIRTUAL TABLE smallval USING hashmmap(path='e', max_value='512K');
CREATE VIRTUAL TABLE hugeval USING hashmmap(path='e', max_value='3G');
CREATE VIRTUAL TABLE val2g USING hashmmap(path='e', max_value='2G');
CREATE VIRTUAL TABLE rosize USING hashmmap(path='e', readonly=1, size='1M');
CREATE VIRTUAL TABLE nottl USING hashmmap(path='e', ttl=0);
-- Only CREATE VIRTUAL TABLE makes a map, and only where no other files are.
CREATE VIRTUAL TABLE other USING hashmmap(path='notmapdir');
CREATE VIRTUAL TABLE t USING hashmmap(path='e', size='1M', ttl='10m', cache=0);
INSERT INTO t(key, value) VALUES ('a', 1);
INSERT INTO t(key, value) VALUES ('a', 2);
INSERT INTO t(key, value) VALUES (NULL, 2);
INSERT INTO t(key, value) VALUES ('', 2);
INSERT INTO t(key, value, ttl_ms) VALUES ('b', 2, 0);
INSERT INTO t(key, value, ttl_ms) VALUES ('b', 2, 'later');
INSERT INTO t(key, value, ttl_ms) VALUES ('b', 2, 1e16);
INSERT INTO t(key, value) VALUES ('c', 3);
UPDATE t SET key = 'a' WHERE key = 'c';
UPDATE t SET key = NULL WHERE key = 'c';
SELECT key, value, ttl_ms BETWEEN 590000 AND 600000 FROM t ORDER BY key;
-- On an existing map, creation options must be what it has.
CREATE VIRTUAL TABLE c1 USING hashmmap(path='e', cache=1);
CREATE VIRTUAL TABLE c2 USING hashmmap(path='e', ttl='1s');
CREATE VIRTUAL TABLE c3 USING hashmmap(path='e', size='1G');
CREATE VIRTUAL TABLE c4 USING hashmmap(path='e', max_size='64M');
CREATE VIRTUAL TABLE c5 USING hashmmap(path='e', max_value='2M');
CREATE VIRTUAL TABLE same USING hashmmap(path='e', size='1M', ttl='10m', cache=0, max_size='1M', max_value='1M');
SELECT count(*) FROM same;
-- Writes to a read-only table say so.
CREATE VIRTUAL TABLE ro USING hashmmap(path='e', readonly=1);
SELECT key, value FROM ro ORDER BY key;
INSERT INTO ro(key, value) VALUES ('r', 1);
DELETE FROM ro WHERE key = 'a';
UPDATE ro SET value = 5 WHERE key = 'a';
SELECT hashmmap_incr('ro', 'a');
SELECT key FROM ro ORDER BY key;
SELECT * FROM hashmmap_stats;
SELECT * FROM hashmmap_stats(NULL);
SELECT * FROM hashmmap_stats('nowhere');
SELECT count(*) FROM hashmmap_stats('garbage');
ALTER TABLE t RENAME TO t_new;
INSERT INTO t_new(key, value) VALUES ('a', 5);
-- Side effects never come from a trigger or a view (SQLITE_VTAB_DIRECTONLY,
-- and hashmmap_incr is SQLITE_DIRECTONLY).
CREATE TABLE log(x);
CREATE TRIGGER log_to_map AFTER INSERT ON log BEGIN INSERT INTO t_new(key, value) VALUES (new.x, 1); END;
INSERT INTO log VALUES ('from a trigger');
DROP TRIGGER log_to_map;
CREATE TRIGGER log_count AFTER INSERT ON log BEGIN SELECT hashmmap_incr('t_new', 'n'); END;
INSERT INTO log VALUES ('from a trigger');
CREATE VIEW v AS SELECT key FROM t_new;
SELECT count(*) FROM v;
SELECT count(*) FROM t_new WHERE key = 'from a trigger';
-- hashmmap_incr on what is not a counter, not a table, not a map.
SELECT hashmmap_incr('t_new', 'a', 'lots');
INSERT INTO t_new(key, value) VALUES ('word', 'text');
SELECT hashmmap_incr('t_new', 'word');
SELECT hashmmap_incr('log', 'a');
SELECT hashmmap_incr('nowhere', 'a');
SELECT hashmmap_incr(NULL, 'a');
SELECT hashmmap_incr('t_new', NULL);
-- expire_ms follows from ttl_ms, version is the map's: setting them is an
-- error, never silently ignored; leaving them alone or NULL is fine.
INSERT INTO t_new(key, value, expire_ms) VALUES ('exp', 1, 4102444800000);
INSERT INTO t_new(key, value, version) VALUES ('ver', 1, 5);
UPDATE t_new SET expire_ms = 4102444800000 WHERE key = 'word';
UPDATE t_new SET expire_ms = 4102444800000 WHERE +key = 'word';
SELECT count(*) FROM t_new WHERE key IN ('exp', 'ver');
SELECT value, expire_ms < 4102444800000 FROM t_new WHERE key = 'word';
INSERT INTO t_new(key, value, version, expire_ms) VALUES ('nulls', 1, NULL, NULL);
UPDATE t_new SET value = 'text2', expire_ms = NULL WHERE key = 'word';
UPDATE t_new SET value = value || '!', ttl_ms = 600000 WHERE +key IN ('word', 'nulls');
SELECT key, value, ttl_ms > 590000 FROM t_new WHERE key IN ('word', 'nulls') ORDER BY key;
SELECT 'still alive';
