-- key = ? and key IN (...) are point lookups; the rest scans.
CREATE VIRTUAL TABLE t USING hashmmap(path='plan');
INSERT INTO t(key, value) VALUES ('a', 1), ('b', 2), ('c', 3);
EXPLAIN QUERY PLAN SELECT value FROM t WHERE key = 'a';
EXPLAIN QUERY PLAN SELECT value FROM t WHERE key IN ('a', 'c', 'x');
-- key IS ? is a point lookup too (no key is NULL: IS and = agree).
EXPLAIN QUERY PLAN SELECT value FROM t WHERE key IS 'a';
SELECT value FROM t WHERE key IS 'a';
SELECT count(*) FROM t WHERE key IS NULL;
SELECT count(*) FROM t WHERE key IS NOT NULL;
EXPLAIN QUERY PLAN SELECT value FROM t WHERE value > 1;
EXPLAIN QUERY PLAN SELECT value FROM t WHERE key > 'a';
SELECT key, value FROM t WHERE key IN ('a', 'c', 'x', 'a') ORDER BY key;
SELECT key, value FROM t WHERE key IN (SELECT 'b' UNION SELECT 'c') ORDER BY key;
CREATE TABLE other(k TEXT);
INSERT INTO other VALUES ('c'), ('a'), ('nope');
EXPLAIN QUERY PLAN SELECT other.k, t.value FROM other JOIN t ON t.key = other.k;
SELECT other.k, t.value FROM other JOIN t ON t.key = other.k ORDER BY 1;
-- A long IN list from a subquery: every present key once.
INSERT INTO t(key, value) SELECT 'n' || value, value FROM generate_series(1, 2000);
SELECT count(*), sum(value) FROM t WHERE key IN (SELECT 'n' || value FROM generate_series(1, 3000, 2));
