#!/usr/bin/env python3
"""Instructions per get by part, from callgrind (bench/README.md, "get, by part").

    valgrind --tool=callgrind --toggle-collect=wl_get --callgrind-out-file=get.out \\
        bench/hmmbench --callgrind get
    bench/get_parts.py get.out                 # one column
    bench/get_parts.py before.out after.out    # two columns, e.g. two builds

Only the 100 000 gets (16-byte keys, 8-byte values, all present) of
hmmbench's --callgrind loop are collected.  The source lines are counted as in
bench/put_parts.py (callgrind_annotate, each line given to the function whose
body holds it).  A get is one function, hmm_get, with get_fast and the small
helpers of internal.h and lookup.h inline in it, so the lines of read.c's get
functions are sorted into parts by what they name (LINE_PARTS, first match
wins) and the helpers' lines by their function (PARTS).  The call frame is
what hmm_get's braces and returns cost: saving and restoring registers and
the spills.  Annotate a build's profile while its tree is as it was built;
lines no rule places are listed on stderr.  Needs valgrind's
callgrind_annotate and ctags on PATH.
"""
import collections
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from put_parts import per_line, print_table  # noqa: E402

GETS = 100000

# The parts in table order: (name, [file:function patterns of whole functions]).
PARTS = [
    ('bench loop and store adapter (`wl_get`, `next_key`, `hmm_store_get`)', ['hmmbench.c:*', 'store_hmm.c:*']),
    ('call frame of `hmm_get` (saved registers, spills, returns) and the error clear',
     ['internal.h:hmm__error_clear']),
    ('argument checks', ['internal.h:check_key']),
    ('key hash (XXH3, 16-byte key)', ['xxhash.h:*', 'internal.h:key_hash']),
    ("stripe and its `seq`: load before, fence and compare after", ['internal.h:hash_stripe']),
    ("index view check (the header's two index words against the cached view)",
     ['internal.h:hmm__index_cached']),
    ('home bucket (`hash_home`)', ['internal.h:hash_home', 'internal.h:hash_tag']),
    ('tag match and slot loop (`bucket_match`, slot load and tag check)',
     ['lookup.h:bucket_match', 'lookup.h:bucket_slot', 'lookup.h:bucket_word', 'emmintrin.h:*']),
    ('bounds checks (slot offset, value length)', ['internal.h:hmm_at', 'lookup.h:lookup_entry_at']),
    ('key compare', ['lookup.h:lookup_entry_holds', 'lookup.h:key_equal', 'lookup.h:key_ends_diff',
                     'internal.h:entry_key', 'libc:__memcmp_avx2_movbe']),
    ('expiry and capacity checks', ['internal.h:hmm_now_ms']),
    ('value copy (`hmm__copy_small`)', ['internal.h:hmm__copy_small', 'libc:__memcpy_avx_unaligned_erms']),
    ('result (`*vlen`, return code)', []),
    ('recency note and mark (one flag test outside cache mode)', ['read.c:recency_note', 'read.c:recency_mark']),
    ("metrics (`gets` + 1 into the process's own slot)",
     ['internal.h:metrics_count_get', 'internal.h:metrics_add', 'internal.h:metrics_plain_add']),
]
# The functions of read.c (and lookup.h) whose lines are sorted by LINE_PARTS.
LINE_FUNCTIONS = {('read.c', 'hmm_get'), ('read.c', 'get_fast'), ('read.c', 'get_short_key'),
                  ('read.c', 'get_entry_find'), ('read.c', 'get_finish'), ('lookup.h', 'home_bucket_find')}
# (regex on the source line, part name prefix); first match wins.
LINE_PARTS = [
    (r'^[{}]$|^return rc;$|error_clear|GET_GENERAL\)?;?$|return get_general', 'call frame'),
    (r'!key|!vlen|klen - 1|\(\*vlen && !val\)|!val', 'argument checks'),
    (r'metrics', 'metrics'),
    (r'mark', 'recency'),
    (r'key_hash', 'key hash'),
    (r'copy_small|read_copied', 'value copy'),
    (r'expire|TOOSMALL|> \*vlen', 'expiry'),
    (r'\bs0\b|->seq|stripe|thread_fence', 'stripe'),
    (r'hash_home', 'home bucket'),
    (r'\bwc\b|\bwo\b|view|word_|old\.nb|->hdr', 'index view'),
    (r'holds|e = c;|break;', 'key compare'),
    (r'\blh\b|span|data_off|max_value|limit|vlen; /\*|struct hmm_entry \*c', 'bounds'),
    (r'bucket_match|mask|\bsj\b|HMM_SLOT|continue;|tag = hash_tag|bk->meta', 'tag match'),
    (r'\*vlen = n|rc = |int rc|return rc', 'result'),
]


def parts(profile):
    cost = per_line(profile)
    names = [name for name, _ in PARTS]
    by_prefix = {}
    for regex, prefix in LINE_PARTS:
        by_prefix[regex] = next(n for n in names if n.startswith(prefix))
    out = collections.OrderedDict((name, 0) for name in names)
    other = collections.Counter()
    for (f, fn, text), v in cost.items():
        if (f, fn) in LINE_FUNCTIONS:
            part = next((by_prefix[r] for r, _ in LINE_PARTS if re.search(r, text)), None)
        else:
            part = next((name for name, pats in PARTS for p in pats
                         if p == f'{f}:{fn}' or p == f'{f}:*'), None)
        if part is None:
            other[f'{f}:{fn}: {text}'] += v
        else:
            out[part] += v
    out['other'] = sum(other.values())
    out['**whole get, loop included**'] = sum(cost.values())
    return out, {k: v / GETS for k, v in other.items() if v >= GETS / 20}  # not the general path's few runs


if __name__ == '__main__':
    sys.exit(print_table(sys.argv, parts, 'get', GETS, __doc__))
