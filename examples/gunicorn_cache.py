"""A gunicorn app whose workers share one cache-mode hashmmap map.

    gunicorn --preload --workers 4 --bind 127.0.0.1:8000 \\
        --chdir examples gunicorn_cache:app
    curl 127.0.0.1:8000/word/alpha      # "hit": false, computed by one worker
    curl 127.0.0.1:8000/word/alpha      # "hit": true, whichever worker answers
    curl 127.0.0.1:8000/stats

With --preload the map is made once, in shared anonymous memory, by the
master before it forks the workers: all of them share it, and it is gone
when the server stops.  Without --preload, or to keep the cache across
restarts, set HASHMMAP_CACHE_DIR: every worker then opens the map kept in
that directory.  Each answer names the worker that computed the value
(stored_by) and the one that served it (served_by): a hit served by another
worker than the one that stored it is the point of the exercise.

The "expensive" computation is 20000 rounds of SHA-256; results live for
HASHMMAP_CACHE_TTL seconds (default 300) and the least recently used are
evicted when the cache is full.  PYTHONPATH must reach the hashmmap module
(from the build tree: bindings/python/.libs).
"""
import hashlib
import json
import os

import hashmmap

CACHE_BYTES = 32 << 20
TTL_SECONDS = float(os.environ.get("HASHMMAP_CACHE_TTL", "300"))


def open_cache():
    where = os.environ.get("HASHMMAP_CACHE_DIR")
    if where:
        return hashmmap.open(where, size=CACHE_BYTES, cache=True, ttl=TTL_SECONDS)
    return hashmmap.anonymous(size=CACHE_BYTES, cache=True, ttl=TTL_SECONDS, replog=False)


# Made at import: in the master with --preload, so the workers inherit it.
cache = open_cache()


def compute(word):
    digest = word.encode()
    for _ in range(20000):
        digest = hashlib.sha256(digest).digest()
    return digest.hex()


def lookup(word):
    key = b"word:" + word.encode()
    raw = cache.get(key)
    if raw is not None:
        answer = json.loads(raw)
        answer["hit"] = True
    else:
        answer = {"word": word, "digest": compute(word), "stored_by": os.getpid()}
        # Of workers racing on the same word, the first store wins; all
        # answer with the stored value, so every answer is the same.
        stored = json.loads(cache.setdefault(key, json.dumps(answer).encode()))
        answer = dict(stored, hit=stored["stored_by"] != os.getpid())
    answer["served_by"] = os.getpid()
    return answer


def app(environ, start_response):
    path = environ.get("PATH_INFO", "/")
    if path.startswith("/word/") and len(path) > len("/word/"):
        body = lookup(path[len("/word/"):])
    elif path == "/stats":
        st = cache.stats()
        body = {k: st[k] for k in ("items", "gets", "hits", "misses", "puts", "evictions", "processes")}
        body["served_by"] = os.getpid()
    else:
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"try /word/WORD or /stats\n"]
    data = json.dumps(body).encode() + b"\n"
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
    return [data]
