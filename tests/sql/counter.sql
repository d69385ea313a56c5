-- A counter made by `hashmmap incr` reads as an integer, and SQL counts on.
CREATE VIRTUAL TABLE t USING hashmmap(path='counter');
SELECT key, value, typeof(value) FROM t WHERE key = 'hits';
UPDATE t SET value = value + 1 WHERE key = 'hits';
SELECT value, typeof(value) FROM t WHERE key = 'hits';
INSERT INTO t(key, value) VALUES ('sqlcount', 10);
