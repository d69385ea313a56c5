#!/usr/bin/python3
"""Python's sqlite3 module as a second client of the SQLite extension.

    sqlite_client.py EXT check            behaviours through bound parameters;
                                          leaves map 'py' for the shell to read
    sqlite_client.py EXT updater DIR N    N times: UPDATE t SET value = value + 1
                                          WHERE key = 'c' (retried while it fails
                                          with SQLITE_BUSY, as the README says),
                                          and SELECT hashmmap_incr(t, 'c');
                                          prints "UPDATES INCRS RETRIES"
    sqlite_client.py EXT count DBFILE     SELECT count(*) FROM t in that database
    sqlite_client.py EXT writer DIR SECS  write map DIR until the file DIR.stop
                                          appears (at most SECS seconds): puts,
                                          updates, deletes, growth (a concurrent
                                          writer for sqlite.test's scans); makes
                                          DIR.started after its first round
Runs in the directory where the maps live.  Prints "ok" at the end of check.
"""
import os
import sqlite3
import sys
import time


def connect(ext):
    db = sqlite3.connect(":memory:", isolation_level=None)
    db.enable_load_extension(True)
    db.load_extension(ext)
    db.enable_load_extension(False)
    return db


def expect(what, want, got):
    if want != got:
        raise AssertionError(f"{what}: expected {want!r}, got {got!r}")


def check(ext):
    db = connect(ext)
    db.execute("CREATE VIRTUAL TABLE t USING hashmmap(path='py', size='8M')")
    values = {"int": 7, "big": 2**62, "real": 2.5, "text": "héllo", "bytes": b"\x00\x01\xff", "none": None,
              "numtext": "12"}
    db.executemany("INSERT INTO t(key, value) VALUES (?, ?)", values.items())
    for k, v in values.items():
        row = db.execute("SELECT value FROM t WHERE key = ?", (k,)).fetchone()
        expect(f"round trip of {k}", (v,), row)
        expect(f"type of {k}", type(v), type(row[0]))
    db.executemany("INSERT INTO t(key, value) VALUES (?, ?)", ((f"row{i}", i) for i in range(1000)))
    expect("count", (1000,), db.execute("SELECT count(*) FROM t WHERE key LIKE 'row%'").fetchone())
    rows = db.execute("SELECT key, value FROM t WHERE key IN (?, ?, ?) ORDER BY key", ("row1", "row999", "zz")).fetchall()
    expect("IN with parameters", [("row1", 1), ("row999", 999)], rows)
    # A full-scan UPDATE counts every row up once, then back down.
    db.execute("UPDATE t SET value = value + 1 WHERE key LIKE 'row%'")
    expect("sum after +1", (500500,), db.execute("SELECT sum(value) FROM t WHERE key LIKE 'row%'").fetchone())
    db.execute("UPDATE t SET value = value - 1 WHERE key LIKE 'row%'")
    # Constraint errors are Python exceptions, and the connection goes on.
    try:
        db.execute("INSERT INTO t(key, value) VALUES ('int', 8)")
        raise AssertionError("duplicate key accepted")
    except sqlite3.IntegrityError as e:
        expect("constraint message", "UNIQUE constraint failed: t.key", str(e))
    try:
        db.execute("CREATE VIRTUAL TABLE bad USING hashmmap(size='1M')")
        raise AssertionError("table without path accepted")
    except sqlite3.OperationalError as e:
        expect("missing path message", "hashmmap: missing option path='DIR' (the map's directory)", str(e))
    # Keys keep their type, as in a normal table with an untyped key: 7 and
    # '7' are different questions, and the index and a scan agree.
    db.execute("INSERT INTO t(key, value) VALUES (?, ?)", (7, "seven"))
    expect("int key by int", [(7, "seven")], db.execute("SELECT key, value FROM t WHERE key = ?", (7,)).fetchall())
    expect("int key by text", [], db.execute("SELECT key FROM t WHERE key = ?", ("7",)).fetchall())
    expect("int key by scan", [(7,)], db.execute("SELECT key FROM t WHERE +key = ?", (7,)).fetchall())
    expect("int key by IS", [(7,)], db.execute("SELECT key FROM t WHERE key IS ?", (7.0,)).fetchall())
    db.execute("DELETE FROM t WHERE key = ?", (7,))
    # A row changed after the statement read it (here by hashmmap_incr in the
    # WHERE clause) is not overwritten: OperationalError, and the change stays.
    db.execute("INSERT INTO t(key, value) VALUES ('cnt', 0)")
    try:
        db.execute("UPDATE t SET value = value + 100 WHERE key = 'cnt' AND hashmmap_incr('t', 'cnt') > 0")
        raise AssertionError("update of a changed row applied")
    except sqlite3.OperationalError as e:
        if "changed since this statement read it" not in str(e):
            raise
    expect("the increment stays", (1,), db.execute("SELECT value FROM t WHERE key = 'cnt'").fetchone())
    db.execute("DELETE FROM t WHERE key = 'cnt'")
    db.execute("INSERT OR REPLACE INTO t(key, value) VALUES ('int', ?)", (8,))
    expect("replace", (8,), db.execute("SELECT value FROM t WHERE key = 'int'").fetchone())
    # A key update from a parameter, and its rename back.
    db.execute("UPDATE t SET key = ? WHERE key = ?", ("int2", "int"))
    expect("renamed", [("int2", 8)], db.execute("SELECT key, value FROM t WHERE key IN ('int', 'int2')").fetchall())
    db.execute("UPDATE t SET key = 'int' WHERE key = 'int2'")
    # Two connections on one map see each other's writes at once.
    other = connect(ext)
    other.execute("CREATE VIRTUAL TABLE u USING hashmmap(path='py')")
    other.execute("UPDATE u SET value = 'from other' WHERE key = 'text'")
    expect("second connection's write", ("from other",), db.execute("SELECT value FROM t WHERE key = 'text'").fetchone())
    other.execute("UPDATE u SET value = 'héllo' WHERE key = 'text'")
    stats = dict(db.execute("SELECT name, value FROM hashmmap_stats('py')").fetchall())
    expect("stats items", 1007, stats["items"])
    if stats["puts"] < 1007:
        raise AssertionError(f"puts counter {stats['puts']} < 1007")
    other.close()
    db.close()
    print("ok")


def writer(ext, path, seconds):
    db = connect(ext)
    db.execute(f"CREATE VIRTUAL TABLE t USING hashmmap(path='{path}')")
    end = time.monotonic() + seconds
    n = 0
    while time.monotonic() < end and not os.path.exists(path + ".stop"):
        # Batches of new keys (the map grows), rewrites with growing values,
        # renames and deletes: every kind of change a scan can meet.
        db.executemany("INSERT OR REPLACE INTO t(key, value) VALUES (?, ?)",
                       ((f"w{n}_{i}", "v" * (i * 37 % 4000)) for i in range(200)))
        db.execute("INSERT OR REPLACE INTO t(key, value) VALUES ('w1', ?), ('w2', ?)", (n, "x" * (n % 500)))
        # OR REPLACE: a second writer on the same map meets the first one's r{n}.
        db.execute("UPDATE OR REPLACE t SET key = ? WHERE key = ?", (f"r{n}", f"w{n}_0"))
        if n >= 2:
            db.execute("DELETE FROM t WHERE key LIKE ? ESCAPE '\\'", (f"w{n - 2}\\_%",))
        if n == 0:
            with open(path + ".started", "w") as f:
                f.write(f"{os.getpid()}\n")  # the test SIGKILLs this process, not its timeout(1)
        n += 1
    db.close()
    print(f"writer: {n} rounds", file=sys.stderr)


def updater(ext, path, n):
    db = connect(ext)
    db.execute(f"CREATE VIRTUAL TABLE t USING hashmmap(path='{path}')")
    updates = incrs = retries = 0
    for _ in range(n):
        for _attempt in range(100000):
            try:
                db.execute("UPDATE t SET value = value + 1 WHERE key = 'c'")
                updates += 1
                break
            except sqlite3.OperationalError as e:
                # The row changed between our read and our write: nothing
                # was written; run the statement again.
                if "changed since this statement read it" not in str(e):
                    raise
                retries += 1
        db.execute("SELECT hashmmap_incr('t', 'c')")
        incrs += 1
    db.close()
    print(f"{updates} {incrs} {retries}")


def count(ext, dbfile):
    db = sqlite3.connect(dbfile, isolation_level=None)
    db.enable_load_extension(True)
    db.load_extension(ext)
    try:
        print(db.execute("SELECT count(*) FROM t").fetchone()[0])
    except sqlite3.OperationalError as e:
        print(f"error: {e}")


def main():
    if len(sys.argv) >= 3 and sys.argv[2] == "check":
        check(sys.argv[1])
    elif len(sys.argv) == 5 and sys.argv[2] == "updater":
        updater(sys.argv[1], sys.argv[3], int(sys.argv[4]))
    elif len(sys.argv) == 4 and sys.argv[2] == "count":
        count(sys.argv[1], sys.argv[3])
    elif len(sys.argv) == 5 and sys.argv[2] == "writer":
        writer(sys.argv[1], sys.argv[3], float(sys.argv[4]))
    else:
        print(__doc__, file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
