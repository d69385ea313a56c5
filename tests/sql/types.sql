-- Values keep their SQL type through the map.
CREATE VIRTUAL TABLE t USING hashmmap(path='types', size='4M');
INSERT INTO t(key, value) VALUES
  ('int', 42), ('neg', -9223372036854775808), ('real', 2.5), ('tiny', 1e-300),
  ('pi', 3.141592653589793), ('text', 'hello'), ('numtext', '42'), ('utf8', 'ünïcödé ✓'),
  ('blob', x'00ff10'), ('textblob', x'414243'), ('null', NULL), ('empty', ''), ('emptyblob', x'');
SELECT key, typeof(value), quote(value) FROM t ORDER BY key;
SELECT value = 3.141592653589793 FROM t WHERE key = 'pi';
SELECT value + 1, typeof(value + 1) FROM t WHERE key = 'int';
-- A second table on the same map, as another connection would see it.
CREATE VIRTUAL TABLE t2 USING hashmmap(path='types');
SELECT count(*), sum(typeof(value) = 'integer') FROM t2;
SELECT quote(value) FROM t2 WHERE key = 'blob';
-- Values and keys larger than the cursor's inline buffer, by point lookup and by scan.
INSERT INTO t(key, value) VALUES ('big', printf('%.*c', 100000, 'x') || 'end');
INSERT INTO t(key, value) VALUES (printf('%.*c', 1000, 'k'), randomblob(3000));
SELECT length(value), substr(value, -4) FROM t WHERE key = 'big';
SELECT length(key), length(value), typeof(value) FROM t WHERE key = printf('%.*c', 1000, 'k');
SELECT key, length(value) FROM t WHERE key IN ('big', 'int') ORDER BY key;
SELECT sum(length(value)) > 103000, max(length(key)) FROM t;
