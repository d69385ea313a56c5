-- hashmmap_stats(path): counters, gauges and classes of a map.
CREATE VIRTUAL TABLE t USING hashmmap(path='stats');
INSERT INTO t(key, value) VALUES ('a', 1), ('b', 2), ('c', 3);
DELETE FROM t WHERE key = 'c';
SELECT value FROM t WHERE key IN ('a', 'b', 'x');
SELECT name, value, kind FROM hashmmap_stats('stats')
  WHERE name IN ('puts', 'deletes', 'gets', 'hits', 'misses', 'items', 'cache_mode') ORDER BY name;
SELECT count(*) > 0 FROM hashmmap_stats('stats') WHERE kind = 'class' AND name LIKE 'class_%_chunks_used';
SELECT sum(value) FROM hashmmap_stats('stats') WHERE kind = 'class' AND name LIKE 'class_%_chunks_used';
SELECT count(*) FROM hashmmap_stats('stats') WHERE help IS NULL;
SELECT s.value FROM hashmmap_stats('stats') AS s WHERE s.name = 'nprocs';
-- The path may come from another table (a join feeding the argument).
CREATE TABLE maps(dir TEXT);
INSERT INTO maps VALUES ('stats');
SELECT maps.dir, s.value FROM maps, hashmmap_stats(maps.dir) AS s WHERE s.name = 'items';
-- cache=1 and ttl= take effect when the map is created.
CREATE VIRTUAL TABLE c USING hashmmap(path='cachemap', size='2M', cache=1, ttl='90s');
SELECT name, value FROM hashmmap_stats('cachemap') WHERE name IN ('cache_mode', 'default_ttl_ms') ORDER BY name;
INSERT INTO c(key, value) VALUES ('k', 'v');
SELECT ttl_ms BETWEEN 89000 AND 90000 FROM c;
-- The hidden path column holds the argument, as in SQLite's own table-valued
-- functions, so a join on it can tell which map a row is from.
SELECT DISTINCT path FROM hashmmap_stats('stats');
SELECT s.path, s.value FROM maps JOIN hashmmap_stats AS s ON s.path = maps.dir WHERE s.name = 'items';
