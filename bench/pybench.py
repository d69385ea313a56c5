"""Python get/put latency: hashmmap against a dict, dbm.gnu and sqlite3.

    PYTHONPATH=bindings/python/.libs /usr/bin/python3 bench/pybench.py [--keys N] [--ops N]

(`make bench-python` runs it from the build tree.)  The workload of
bench/hmmbench: N keys of 16 bytes with 8-byte values, loaded first; then
uniform random gets of present keys and puts that overwrite, one call per
operation, single process.  Each figure is the best of 5 rounds of --ops
operations (the machine is shared: the best round is the one least disturbed),
in ns per operation including the Python loop, whose own cost is measured
alone and printed as "loop".  Peers: dict (process-local), dbm.gnu (a file
opened "nf": no locking, not synced), sqlite3 (a WITHOUT ROWID table in a file,
journal_mode=WAL, synchronous=OFF, one autocommit statement per operation,
statements cached).  Missing peers (python3-gdbm) are reported and skipped.
"""
import argparse
import os
import random
import shutil
import sqlite3
import sys
import tempfile
import time

import hashmmap

ROUNDS = 5


def best_ns(fn, keys, ops):
    best = float("inf")
    for _ in range(ROUNDS):
        t0 = time.perf_counter_ns()
        fn(keys)
        best = min(best, (time.perf_counter_ns() - t0) / ops)
    return best


def run_loop(keys):
    for k in keys:
        pass


def gets_of(lookup):
    def run(keys):
        for k in keys:
            lookup(k)
    return run


def puts_of(store, value):
    def run(keys):
        for k in keys:
            store(k, value)
    return run


class Dict:
    name = "dict"

    def __init__(self, d):
        self.d = {}

    def get(self):
        return self.d.__getitem__

    def put(self):
        return self.d.__setitem__


class Hmm:
    def __init__(self, d, anonymous=False):
        size = 256 << 20
        self.name = "hashmmap anonymous" if anonymous else "hashmmap (directory)"
        self.m = hashmmap.anonymous(size=size) if anonymous else hashmmap.open(os.path.join(d, "hmm"), size=size)

    def get(self):
        return self.m.__getitem__

    def put(self):
        return self.m.__setitem__


class Gdbm:
    name = "dbm.gnu"

    def __init__(self, d):
        import dbm.gnu
        self.db = dbm.gnu.open(os.path.join(d, "gdbm"), "nf")

    def get(self):
        return self.db.__getitem__

    def put(self):
        return self.db.__setitem__


class Sqlite:
    name = "sqlite3"

    def __init__(self, d):
        self.db = sqlite3.connect(os.path.join(d, "sqlite.db"), isolation_level=None, cached_statements=16)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=OFF")
        self.db.execute("CREATE TABLE kv (k BLOB PRIMARY KEY, v BLOB) WITHOUT ROWID")

    def get(self):
        ex = self.db.execute

        def get(k):
            return ex("SELECT v FROM kv WHERE k = ?", (k,)).fetchone()[0]
        return get

    def put(self):
        ex = self.db.execute

        def put(k, v):
            ex("INSERT OR REPLACE INTO kv VALUES (?, ?)", (k, v))
        return put


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--keys", type=int, default=100000)
    ap.add_argument("--ops", type=int, default=200000)
    args = ap.parse_args()
    rnd = random.Random(42)
    keys = [b"%016x" % rnd.getrandbits(64) for _ in range(args.keys)]
    value = b"v" * 8
    trace = [keys[rnd.randrange(args.keys)] for _ in range(args.ops)]
    loop = best_ns(run_loop, trace, args.ops)
    print("python %s, %d keys, %d ops per round, best of %d; loop alone %.0f ns/op"
          % (sys.version.split()[0], args.keys, args.ops, ROUNDS, loop))
    print("%-22s %10s %10s" % ("store", "get ns", "put ns"))
    d = tempfile.mkdtemp(prefix="hmm-pybench.")
    try:
        for make in (Dict, lambda d: Hmm(d), lambda d: Hmm(d, anonymous=True), Gdbm, Sqlite):
            try:
                s = make(d)
            except ImportError as e:
                print("%-22s skipped: %s" % (getattr(make, "name", "?"), e))
                continue
            put = s.put()
            for k in keys:
                put(k, value)
            g = best_ns(gets_of(s.get()), trace, args.ops)
            p = best_ns(puts_of(put, value), trace, args.ops)
            print("%-22s %10.0f %10.0f" % (s.name, g, p))
    finally:
        shutil.rmtree(d)


if __name__ == "__main__":
    main()
