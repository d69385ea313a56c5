"""The hashmmap Python module: the mapping protocol, the methods, errors,
TTLs, threads and passing an anonymous map to an unrelated process.

Run by tests/python.test (make check) with PYTHONPATH at the built module."""
import errno
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

import hashmmap

SMALL = 1 << 20


class MapTestCase(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="hmm-py.")
        self.path = os.path.join(self.dir, "map")
        self.m = hashmmap.open(self.path, size=SMALL)

    def tearDown(self):
        self.m.close()
        shutil.rmtree(self.dir)


class TestMapping(MapTestCase):
    def test_a_value_put_is_read_back_as_bytes(self):
        self.m[b"k"] = b"v"
        self.assertEqual(self.m[b"k"], b"v")
        self.m[b"k"] = bytearray(b"w")
        self.assertEqual(self.m[memoryview(b"k")], b"w")

    def test_str_keys_and_values_are_stored_as_utf8(self):
        self.m["clé"] = "valeur é"
        self.assertEqual(self.m["clé".encode()], "valeur é".encode())
        self.assertEqual(self.m["clé"], "valeur é".encode())

    def test_text_mode_returns_str_and_round_trips_bytes_that_are_not_utf8(self):
        t = hashmmap.open(self.path, text=True)
        t[b"\xff\xfe"] = b"\x80 value"
        (key,) = [k for k in t.keys() if k != "x"]
        self.assertEqual(key, "\udcff\udcfe")
        self.assertEqual(t[key], "\udc80 value")
        t[key] = t[key] + "!"
        self.assertEqual(self.m[b"\xff\xfe"], b"\x80 value!")
        self.assertTrue(t.text)
        t.close()

    def test_a_missing_key_raises_a_key_error_that_is_a_hashmmap_error(self):
        with self.assertRaises(KeyError) as cm:
            self.m[b"absent"]
        self.assertIsInstance(cm.exception, hashmmap.NotFoundError)
        self.assertIsInstance(cm.exception, hashmmap.Error)
        self.assertEqual(cm.exception.args, (b"absent",))
        self.assertEqual(cm.exception.name, "HMM_NOTFOUND")

    def test_get_returns_the_default_for_a_missing_key(self):
        self.assertIsNone(self.m.get(b"absent"))
        self.assertEqual(self.m.get(b"absent", b"d"), b"d")
        self.m[b"k"] = b""
        self.assertEqual(self.m.get(b"k", b"d"), b"")

    def test_del_removes_and_del_of_a_missing_key_raises_key_error(self):
        self.m[b"k"] = b"v"
        del self.m[b"k"]
        self.assertNotIn(b"k", self.m)
        with self.assertRaises(KeyError):
            del self.m[b"k"]

    def test_contains_and_len_follow_puts_and_deletes(self):
        self.assertEqual(len(self.m), 0)
        for i in range(100):
            self.m[b"k%d" % i] = b"x" * i
        self.assertEqual(len(self.m), 100)
        self.assertIn(b"k0", self.m)   # empty value: present
        self.assertIn(b"k99", self.m)  # value longer than the probe buffer
        del self.m[b"k0"]
        self.assertEqual(len(self.m), 99)
        self.assertNotIn(b"k0", self.m)

    def test_iteration_returns_every_key_once_with_its_value(self):
        want = {b"k%d" % i: b"v%d" % i for i in range(500)}
        for k, v in want.items():
            self.m[k] = v
        keys = list(self.m)
        self.assertEqual(len(keys), len(set(keys)))
        self.assertEqual(set(keys), set(want))
        self.assertEqual(dict(self.m.items()), want)
        self.assertEqual(sorted(self.m.values()), sorted(want.values()))
        self.assertEqual(dict(self.m), want)  # keys() + __getitem__

    def test_put_nx_and_xx_say_whether_they_stored(self):
        self.assertFalse(self.m.put(b"k", b"1", xx=True))
        self.assertTrue(self.m.put(b"k", b"1", nx=True))
        self.assertFalse(self.m.put(b"k", b"2", nx=True))
        self.assertEqual(self.m[b"k"], b"1")
        self.assertTrue(self.m.put(b"k", b"3", xx=True))
        self.assertEqual(self.m[b"k"], b"3")
        with self.assertRaises(ValueError):
            self.m.put(b"k", b"4", nx=True, xx=True)

    def test_setdefault_stores_once(self):
        self.assertEqual(self.m.setdefault(b"k", b"first"), b"first")
        self.assertEqual(self.m.setdefault(b"k", b"second"), b"first")
        self.assertEqual(self.m.setdefault(b"e"), b"")

    def test_incr_counts_and_refuses_values_that_are_not_counters(self):
        self.assertEqual(self.m.incr(b"n"), 1)
        self.assertEqual(self.m.incr(b"n", 41), 42)
        self.assertEqual(self.m.incr(b"n", -50), -8)
        self.assertEqual(self.m[b"n"], b"-8")
        self.m[b"s"] = b"text"
        with self.assertRaises(hashmmap.NotNumberError) as cm:
            self.m.incr(b"s")
        self.assertIsInstance(cm.exception, ValueError)
        self.m[b"big"] = b"%d" % (2**63 - 1)
        with self.assertRaises(hashmmap.NotNumberError):
            self.m.incr(b"big")

    def test_getv_and_cas_detect_a_change_made_in_between(self):
        self.assertTrue(self.m.cas(b"k", b"a", 0))   # 0: must be absent
        self.assertFalse(self.m.cas(b"k", b"b", 0))
        value, version = self.m.getv(b"k")
        self.assertEqual(value, b"a")
        self.m[b"k"] = b"other writer"
        self.assertFalse(self.m.cas(b"k", b"mine", version))
        value, version2 = self.m.getv(b"k")
        self.assertGreater(version2, version)
        self.assertTrue(self.m.cas(b"k", b"mine", version2))
        self.assertEqual(self.m[b"k"], b"mine")
        with self.assertRaises(KeyError):
            self.m.getv(b"absent")

    def test_an_entry_with_a_ttl_expires(self):
        self.m.put(b"short", b"v", ttl=0.05)
        self.m.put(b"long", b"v", ttl=60)
        self.m[b"forever"] = b"v"
        self.assertIsNone(self.m.ttl(b"forever"))
        self.assertTrue(59 < self.m.ttl(b"long") <= 60)
        deadline = time.monotonic() + 5
        while b"short" in self.m and time.monotonic() < deadline:
            time.sleep(0.02)
        self.assertNotIn(b"short", self.m)
        self.assertIsNone(self.m.get(b"short"))
        self.assertEqual(self.m[b"long"], b"v")
        with self.assertRaises(ValueError):
            self.m.put(b"k", b"v", ttl=0)
        with self.assertRaises(ValueError):
            self.m.put(b"k", b"v", ttl=-1)

    def test_a_default_ttl_applies_to_puts_without_one(self):
        c = hashmmap.anonymous(size=SMALL, ttl=30)
        c[b"k"] = b"v"
        self.assertTrue(29 < c.ttl(b"k") <= 30)
        c.close()

    def test_a_value_larger_than_the_stack_buffer_round_trips(self):
        big = hashmmap.anonymous(size=8 << 20)
        for n in (511, 512, 513, 4096, 1 << 20):
            v = os.urandom(n)
            big[b"big"] = v
            self.assertEqual(big[b"big"], v)
            self.assertEqual(big.getv(b"big")[0], v)
        big.close()

    def test_stats_count_gets_hits_misses_and_puts(self):
        self.m[b"k"] = b"v"
        self.m[b"k"]
        self.m.get(b"absent")
        st = self.m.stats()
        self.assertEqual(st["items"], 1)
        self.assertGreaterEqual(st["puts"], 1)
        self.assertGreaterEqual(st["gets"], 2)
        self.assertGreaterEqual(st["misses"], 1)
        self.assertGreaterEqual(st["hits"], 1)
        self.assertFalse(st["cache"])
        self.assertFalse(st["readonly"])
        self.assertEqual(st["processes"], 1)

    def test_wrong_types_raise_type_error(self):
        with self.assertRaises(TypeError):
            self.m[42] = b"v"
        with self.assertRaises(TypeError):
            self.m[b"k"] = 42
        with self.assertRaises(TypeError):
            self.m.get()


class TestErrors(MapTestCase):
    def test_an_empty_or_too_long_key_is_refused(self):
        with self.assertRaises(hashmmap.SysError) as cm:
            self.m[b""] = b"v"
        self.assertEqual(cm.exception.errno, errno.EINVAL)
        with self.assertRaises(hashmmap.TooBigError) as cm:
            self.m[b"k" * 70000] = b"v"
        self.assertIsInstance(cm.exception, ValueError)
        self.assertEqual(cm.exception.code, -30905)

    def test_a_plain_map_that_is_full_raises_full_error(self):
        with self.assertRaises(hashmmap.FullError):
            for i in range(100000):
                self.m[b"k%d" % i] = b"v" * 100

    def test_a_cache_map_evicts_instead_of_raising_full_error(self):
        c = hashmmap.anonymous(size=SMALL, cache=True)
        for i in range(100000):
            c[b"k%d" % i] = b"v" * 100
        self.assertIn(b"k99999", c)
        self.assertGreater(c.stats()["evictions"], 0)
        c.close()

    def test_an_inline_map_reads_back_and_says_so(self):
        path = os.path.join(self.dir, "inline")
        m = hashmmap.open(path, inline=True)
        for i in range(1000):
            m[b"k%d" % i] = b"%08d" % i
        m[b"long"] = b"v" * 100
        self.assertEqual(m[b"k999"], b"00000999")
        self.assertEqual(m[b"long"], b"v" * 100)
        st = m.stats()
        self.assertTrue(st["inline"])
        self.assertEqual(st["format_version"], 4)
        m.close()
        with self.assertRaises(ValueError):
            hashmmap.anonymous(size=SMALL, cache=True, inline=True)
        self.assertFalse(self.m.stats()["inline"])

    def test_a_missing_map_without_create_raises_an_os_error(self):
        with self.assertRaises(FileNotFoundError if False else OSError) as cm:
            hashmmap.open(os.path.join(self.dir, "none"), create=False)
        self.assertEqual(cm.exception.errno, errno.ENOENT)
        self.assertIsInstance(cm.exception, hashmmap.Error)

    def test_exclusive_open_of_an_existing_map_raises_exists_error(self):
        with self.assertRaises(hashmmap.ExistsError):
            hashmmap.open(self.path, exclusive=True)

    def test_a_file_that_is_not_a_map_raises_corrupt_error(self):
        bad = os.path.join(self.dir, "bad")
        os.mkdir(bad)
        with open(os.path.join(bad, "hashmmap.map"), "wb") as f:
            f.write(b"\0" * 65536)
        with self.assertRaises(hashmmap.CorruptError):
            hashmmap.open(bad)


class TestLifecycle(MapTestCase):
    def test_a_map_persists_across_close_and_open(self):
        self.m[b"k"] = b"v"
        self.m.close()
        self.m = hashmmap.open(self.path)
        self.assertEqual(self.m[b"k"], b"v")

    def test_a_cas_version_out_of_range_is_a_value_error(self):
        # 2**64 wrapped to 0, "only if absent": the cas stored a new key.
        for bad in (2**64, -1, 1.0, "1"):
            with self.assertRaises(ValueError) as cm:
                self.m.cas(b"fresh", b"v", bad)
            self.assertIn("version", str(cm.exception))
        self.assertNotIn(b"fresh", self.m)
        self.assertTrue(self.m.cas(b"fresh", b"v", 0))

    def test_negative_sizes_and_modes_are_value_errors_that_name_them(self):
        # Parsed unsigned, -5 became 2**64 - 5 and the library called it
        # over the size limit; -1 as a mode became 0xffffffff.
        fresh = self.path + "-neg"
        for kw, name in (({"size": -5}, "size"), ({"max_size": -1}, "max_size"),
                         ({"max_value": -1}, "max_value"), ({"mode": -1}, "mode"),
                         ({"mode": 0o10000}, "mode"), ({"max_value": 2**31}, "max_value")):
            with self.assertRaises(ValueError) as cm:
                hashmmap.open(fresh, **kw)
            self.assertIn(name, str(cm.exception))
        self.assertFalse(os.path.exists(fresh))
        with self.assertRaises(ValueError) as cm:
            hashmmap.anonymous(size=-1)
        self.assertIn("size", str(cm.exception))

    def test_a_closed_map_raises_value_error_and_close_twice_is_harmless(self):
        self.m.close()
        self.assertTrue(self.m.closed)
        with self.assertRaises(ValueError):
            self.m[b"k"]
        with self.assertRaises(ValueError):
            len(self.m)
        self.m.close()

    def test_the_context_manager_closes_the_map(self):
        with hashmmap.open(self.path) as m2:
            m2[b"k"] = b"v"
        self.assertTrue(m2.closed)
        self.assertEqual(self.m[b"k"], b"v")

    def test_a_read_only_map_reads_and_refuses_writes(self):
        self.m[b"k"] = b"v"
        ro = hashmmap.open(self.path, readonly=True)
        self.assertEqual(ro[b"k"], b"v")
        self.assertTrue(ro.stats()["readonly"])
        with self.assertRaises(hashmmap.SysError) as cm:
            ro[b"k"] = b"w"
        self.assertEqual(cm.exception.errno, errno.EBADF)
        ro.close()

    def test_an_iterator_keeps_a_closed_map_until_it_ends(self):
        for i in range(100):
            self.m[b"k%d" % i] = b"v"
        it = self.m.items()
        next(it)
        self.m.close()
        self.assertEqual(len(list(it)), 99)

    def test_every_public_function_and_method_has_a_docstring(self):
        for name in ("open", "anonymous", "from_fds"):
            self.assertTrue(getattr(hashmmap, name).__doc__, name)
        methods = [n for n in dir(hashmmap.Map) if not n.startswith("__") or n in ("__enter__", "__exit__")]
        self.assertIn("cas", methods)
        for name in methods:
            self.assertTrue(getattr(hashmmap.Map, name).__doc__, name)


class TestThreadsAndProcesses(MapTestCase):
    def test_threads_counting_at_once_lose_no_increment(self):
        def work():
            for _ in range(2000):
                self.m.incr(b"n")
        threads = [threading.Thread(target=work) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        self.assertEqual(self.m.incr(b"n", 0), 8000)

    def test_close_in_one_thread_waits_for_puts_running_in_others(self):
        stop = threading.Event()
        errors = []

        def writer():
            i = 0
            while not stop.is_set():
                try:
                    self.m[b"k%d" % (i % 100)] = b"v" * 200
                except ValueError:
                    return  # closed: the documented outcome
                except Exception as e:  # anything else is a failure
                    errors.append(e)
                    return
                i += 1
        threads = [threading.Thread(target=writer) for _ in range(3)]
        for t in threads:
            t.start()
        time.sleep(0.1)
        self.m.close()
        stop.set()
        for t in threads:
            t.join(60)
        self.assertEqual(errors, [])

    def test_an_anonymous_map_passed_by_descriptors_is_shared_with_an_exec_ed_process(self):
        a = hashmmap.anonymous(size=SMALL)
        a[b"from-parent"] = b"hello"
        parent, child = socket.socketpair()
        code = (
            "import socket, sys, hashmmap\n"
            "s = socket.socket(fileno=int(sys.argv[1]))\n"
            "msg, fds, flags, addr = socket.recv_fds(s, 16, 3)\n"
            "slots = [int(x) for x in msg.decode().split(',')]\n"
            "it = iter(fds)\n"
            "m = hashmmap.from_fds([next(it) if x >= 0 else -1 for x in slots])\n"
            "assert m[b'from-parent'] == b'hello'\n"
            "m[b'from-child'] = b'world'\n"
            "for _ in range(1000): m.incr(b'n')\n"
            "m.close()\n"
        )
        p = subprocess.Popen([sys.executable, "-c", code, str(child.fileno())], pass_fds=[child.fileno()])
        child.close()
        slots = a.fds()
        socket.send_fds(parent, [",".join(map(str, slots)).encode()], [fd for fd in slots if fd >= 0])
        for _ in range(1000):
            a.incr(b"n")
        self.assertEqual(p.wait(60), 0)
        self.assertEqual(a[b"from-child"], b"world")
        self.assertEqual(a.incr(b"n", 0), 2000)
        parent.close()
        a.close()
        with self.assertRaises(hashmmap.SysError):
            self.m.fds()  # a map kept in a directory is opened by path instead


if __name__ == "__main__":
    unittest.main()
