-- A key keeps its SQL type, and compares as in a normal table whose key
-- column has no declared type: 42 and '42' differ, 'abc' and x'abc' differ.
-- In the map a key is its bytes ('abc' and x'616263' are one entry): the
-- entry's type decides which of the two finds it.
CREATE VIRTUAL TABLE t USING hashmmap(path='keys');
INSERT INTO t(key, value) VALUES ('abc', 'text key');
SELECT count(*) FROM t WHERE key = x'616263';
SELECT value FROM t WHERE key = 'abc';
-- Same bytes, so the same entry: a UNIQUE conflict, ignored here.
INSERT OR IGNORE INTO t(key, value) VALUES (x'616263', 'blob key');
SELECT count(*), quote(key), value FROM t;
INSERT INTO t(key, value) VALUES (42, 'number key');
SELECT count(*) FROM t WHERE key = '42';
SELECT quote(key), typeof(key), value FROM t WHERE key = 42;
SELECT quote(key), value FROM t WHERE key = 42.0;
INSERT INTO t(key, value) VALUES ('42x', 'text'), (2.5, 'real key'), ('007', 'zeros'), (x'00ff', 'binary key'),
  (x'6869', 'utf-8 blob'), ('-7', 'text minus seven'), (-0.0, 'zero');
SELECT quote(key), typeof(key), value FROM t ORDER BY value;
SELECT value FROM t WHERE key = 2.5;
SELECT value FROM t WHERE key = '2.5';
SELECT value FROM t WHERE key = x'6869';
SELECT count(*) FROM t WHERE key = 'hi';
SELECT value FROM t WHERE key = '-7';
SELECT count(*) FROM t WHERE key = -7;
SELECT value FROM t WHERE key = 0;
SELECT count(*) FROM t WHERE key = 'missing';
SELECT count(*) FROM t WHERE key = NULL;
SELECT count(*) FROM t WHERE key IS NULL;
SELECT count(*) FROM t WHERE key = '';
-- Collations other than BINARY are left to SQLite (a scan).
SELECT value FROM t WHERE key = 'ABC' COLLATE NOCASE;
SELECT key FROM t WHERE key LIKE 'a%';
-- key IN (...) takes the list at once: an entry comes once, if one of the
-- values asked for is of its type; NULLs and missing keys give nothing.
SELECT count(*) FROM t WHERE key IN ('abc', x'616263', 'abc', NULL, 'nope');
SELECT count(*) FROM t WHERE key IN (x'616263', '42', 2.5e0);
SELECT quote(key) FROM t WHERE key IN (42, '42', x'00ff', '', 42.0) ORDER BY 1;
SELECT count(*) FROM t WHERE key IN ();
-- The command-line tool's keys are bytes: a decimal integer reads as INTEGER,
-- other UTF-8 as TEXT (see sqlite.test).
-- A key the size limit refuses: over 65535 bytes.
INSERT INTO t(key, value) VALUES (printf('%.*c', 65536, 'k'), 1);
INSERT INTO t(key, value) VALUES (printf('%.*c', 65535, 'k'), 1);
SELECT length(key) FROM t WHERE key = printf('%.*c', 65535, 'k');
SELECT count(*) FROM t WHERE key = printf('%.*c', 65536, 'k');
