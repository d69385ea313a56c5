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
