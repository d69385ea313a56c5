"""Fork-safety of the hashmmap Python module: a Map survives os.fork(),
children write and the parent reads, processes count at once, and a child
SIGKILLed while writing leaves a map the others keep using."""
import os
import shutil
import signal
import tempfile
import time
import unittest

import hashmmap


def wait_ok(test, pid, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            test.assertTrue(os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, "child failed: %r" % status)
            return
        time.sleep(0.01)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    test.fail("child %d did not finish in %d s" % (pid, timeout))


def child(fn):
    """Fork; the child runs fn() and exits 0 (1 on any exception) without
    running the parent's cleanups."""
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            fn()
            code = 0
        finally:
            os._exit(code)
    return pid


class TestFork(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="hmm-pyfork.")

    def tearDown(self):
        shutil.rmtree(self.dir)

    def maps(self):
        yield "anonymous", hashmmap.anonymous(size=4 << 20)
        yield "directory", hashmmap.open(os.path.join(self.dir, "map"), size=4 << 20)
        yield "cache", hashmmap.anonymous(size=4 << 20, cache=True)

    def test_a_child_writes_and_the_parent_reads(self):
        for kind, m in self.maps():
            with self.subTest(kind=kind):
                m[b"before"] = b"parent"

                def write():
                    assert m[b"before"] == b"parent"
                    for i in range(200):
                        m[b"child-%d" % i] = b"from %d" % os.getpid()
                    m.close()  # the child's close leaves the parent's handle alone
                pid = child(write)
                wait_ok(self, pid)
                for i in range(200):
                    self.assertEqual(m[b"child-%d" % i], b"from %d" % pid)
                self.assertEqual(m.stats()["processes"], 1)  # the child's slot was given back
                m.close()

    def test_processes_counting_at_once_lose_no_increment(self):
        m = hashmmap.anonymous(size=4 << 20)

        def count():
            for _ in range(1000):
                m.incr(b"n")
        pids = [child(count) for _ in range(4)]
        count()
        for pid in pids:
            wait_ok(self, pid)
        self.assertEqual(m.incr(b"n", 0), 5000)
        m.close()

    def test_a_child_killed_while_writing_leaves_a_usable_map(self):
        m = hashmmap.open(os.path.join(self.dir, "map"), size=4 << 20)
        r, w = os.pipe()

        def write_forever():
            os.close(r)
            os.write(w, b"x")
            i = 0
            while True:
                m[b"k%d" % (i % 500)] = b"%d" % i * 20
                m.incr(b"n")
                i += 1
        for _ in range(5):
            pid = child(write_forever)
            os.read(r, 1)  # it is writing
            time.sleep(0.05)
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            # Every key is whole, and writes go on (a lock the child held is recovered).
            for i in range(500):
                v = m.get(b"k%d" % i)
                whole = v in (None, b"parent") or (len(v) % 20 == 0 and v == v[: len(v) // 20] * 20)
                self.assertTrue(whole, v)
                m[b"k%d" % i] = b"parent"
            m.incr(b"n")
        os.close(r)
        os.close(w)
        self.assertGreaterEqual(m.incr(b"n", 0), 5)
        m.close()


if __name__ == "__main__":
    unittest.main()
