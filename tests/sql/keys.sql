-- A key is its bytes: text and blob with the same bytes are one key, and
-- numbers are keyed by their text.  Keys read back as TEXT when they are
-- UTF-8 without NUL, else as BLOB.
CREATE VIRTUAL TABLE t USING hashmmap(path='keys');
INSERT INTO t(key, value) VALUES ('abc', 'text key');
SELECT value FROM t WHERE key = x'616263';
INSERT OR IGNORE INTO t(key, value) VALUES (x'616263', 'blob key');
SELECT count(*), quote(key), value FROM t;
INSERT INTO t(key, value) VALUES (42, 'number key');
SELECT quote(key), value FROM t WHERE key = '42';
SELECT quote(key), value FROM t WHERE key = 42;
INSERT INTO t(key, value) VALUES (x'00ff', 'binary key');
SELECT quote(key), value FROM t WHERE key = x'00ff';
SELECT count(*) FROM t WHERE key = 'missing';
SELECT count(*) FROM t WHERE key = NULL;
SELECT count(*) FROM t WHERE key = '';
-- Collations other than BINARY are left to SQLite (a scan).
SELECT value FROM t WHERE key = 'ABC' COLLATE NOCASE;
SELECT key FROM t WHERE key LIKE 'a%';
-- key IN (...) takes the list at once: keys with the same bytes give one row,
-- NULLs and missing keys none.
SELECT count(*) FROM t WHERE key IN ('abc', x'616263', 'abc', NULL, 'nope');
SELECT quote(key) FROM t WHERE key IN (42, '42', x'00ff', '') ORDER BY 1;
SELECT count(*) FROM t WHERE key IN ();
