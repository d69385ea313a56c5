-- Answers never depend on the plan: for every probe value, the point lookup
-- (key = v, key IS v, key IN (...)), the scan (+key = v: the unary plus
-- keeps SQLite from using the index) and a normal table with the same
-- declared columns return the same number of rows.
CREATE VIRTUAL TABLE t USING hashmmap(path='match');
CREATE TABLE n(key PRIMARY KEY NOT NULL, value, ttl_ms INTEGER) WITHOUT ROWID;
CREATE TEMP TABLE rowset(k, v);
INSERT INTO rowset VALUES (42, 'a'), ('abc', 'b'), (2.5, 'c'), ('42x', 'd'), (x'00ff', 'e'), (x'6869', 'f'),
  ('-7', 'g'), ('007', 'h'), (-9223372036854775808, 'i'), (1e300, 'j'), ('ünï', 'k');
INSERT INTO t(key, value) SELECT k, v FROM rowset;
INSERT INTO n(key, value) SELECT k, v FROM rowset;
CREATE TEMP TABLE probe(v);
INSERT INTO probe VALUES (42), ('42'), (42.0), ('abc'), (x'616263'), (2.5), ('2.5'), (x'00ff'), ('hi'), (x'6869'),
  ('-7'), (-7), ('007'), (7), (NULL), (''), (-9223372036854775808), (-9.2233720368547758e18), (1e300),
  ('1e+300'), ('ünï'), (CAST('ünï' AS BLOB));
EXPLAIN QUERY PLAN SELECT count(*) FROM t WHERE key = 42;
EXPLAIN QUERY PLAN SELECT count(*) FROM t WHERE +key = 42;
CREATE TEMP VIEW counts AS SELECT quote(p.v) AS probe,
  (SELECT count(*) FROM t WHERE key = p.v) AS t_eq,
  (SELECT count(*) FROM t WHERE +key = p.v) AS t_scan,
  (SELECT count(*) FROM t WHERE key IS p.v) AS t_is,
  (SELECT count(*) FROM t WHERE key IN (p.v, 'zz')) AS t_in,
  (SELECT count(*) FROM n WHERE key = p.v) AS n_eq,
  (SELECT count(*) FROM n WHERE +key = p.v) AS n_scan
  FROM probe AS p;
SELECT * FROM counts;
SELECT count(*) AS disagreements FROM counts
  WHERE NOT (t_eq = t_scan AND t_scan = t_is AND t_is = t_in AND t_in = n_eq AND n_eq = n_scan);
-- Keys read back with their types, as the normal table has them.
SELECT count(*) AS differing_keys FROM (SELECT key, typeof(key) FROM t EXCEPT SELECT key, typeof(key) FROM n);
-- A join on the key gives the same rows either way.
SELECT count(*), (SELECT count(*) FROM probe AS p JOIN t ON +t.key = p.v) FROM probe AS p JOIN t ON t.key = p.v;
