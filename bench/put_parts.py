#!/usr/bin/env python3
"""Instructions per put by part, from callgrind (bench/README.md, "put, by part").

    valgrind --tool=callgrind --toggle-collect=wl_put --callgrind-out-file=put.out \\
        bench/hmmbench --callgrind put
    bench/put_parts.py put.out                 # one column
    bench/put_parts.py before.out after.out    # two columns, e.g. two builds

Only the 100 000 overwrites of hmmbench's --callgrind loop are collected.
callgrind_annotate gives the cost of every source line; each line goes to the
function whose body holds it (ctags), so code inlined from internal.h or
xxhash.h counts for the small function it came from; glibc's functions, which
have no source here, count by their self cost.  The functions are then grouped
into the parts of a put below.  The two checksums are their functions'
inclusive costs, the key hash is the rest of XXH3's lines, and the copies of key
and value (memcpy, hmm__copy_small) are split evenly between the entry and the
log record (all to the entry for a map without a log).  callgrind_annotate reads
the sources named in the profile: annotate a build's profile while its tree is
as it was built.  Needs valgrind's callgrind_annotate and ctags on PATH.
"""
import collections
import os
import re
import subprocess
import sys

PUTS = 100000

# (part, [file:function patterns]); '*' matches every function of the file.
PARTS = [
    ('bench loop and store adapter (`wl_put`, `next_key`, `hmm_store_put`)', ['hmmbench.c:*', 'store_hmm.c:*']),
    ('API entry: argument checks, request set-up, error clear, role check',
     ['update.c:hmm_put', 'update.c:hmm_put_tagged', 'update.c:write_value', 'update.c:write_run',
      'internal.h:check_key', 'internal.h:hmm__error_clear', 'internal.h:hmm__result', 'internal.h:hmm__role_word',
      'internal.h:hash_stripe']),
    ('process-slot check (`hmm__proc_slot_ensure`, `pthread_once`)',
     ['proc.c:hmm__proc_slot_ensure', 'internal.h:hmm__proc_slot_ensure', 'libc:pthread_once@@GLIBC_2.34']),
    ('key hash (XXH3, 16-byte key)', ['@keyhash']),
    ('prefetches before the lock (stripe lines, home bucket)',
     ['update.c:prefetch_for_write', 'internal.h:index_views', 'internal.h:index_view']),
    ("glibc's robust mutex: `pthread_mutex_trylock` + `pthread_mutex_unlock`, stripe and append lock",
     ['libc:pthread_mutex_trylock@@GLIBC_2.34', 'libc:__pthread_mutex_unlock_full',
      'libc:__pthread_mutex_unlock_usercnt', 'libc:pthread_mutex_unlock@@GLIBC_2.2.5']),
    ('our side of those two locks (calls, owner fields, seq check)',
     ['lock.c:hmm__lock_stripe', 'lock.c:lock_stripe_how', 'lock.c:hmm__unlock_stripe', 'lock.c:lock_robust',
      'lock.c:hmm__lock_robust', 'internal.h:hmm__lock_stripe', 'internal.h:hmm__unlock_stripe',
      'internal.h:hmm__stripe_locked', 'internal.h:hmm__lock_robust', 'proc.c:hmm__proc_self_tag',
      'internal.h:hmm__proc_self_tag', 'replog.c:lock_append', 'replog.c:unlock_append']),
    ('index find (cached view, tag match, key compare)',
     ['lookup.h:*', 'emmintrin.h:*', 'internal.h:hmm__index_cached', 'internal.h:hash_home', 'internal.h:hash_tag']),
    ('bounds checks (`hmm_at`, all callers: spare, lookup, old entry, chunks)', ['internal.h:hmm_at']),
    ('old entry: whole-entry check, expiry, decide',
     ['entry.c:hmm__entry_whole_at', 'internal.h:hmm__entry_whole_at', 'internal.h:entry_at',
      'entry.c:hmm__entry_expired', 'internal.h:hmm__entry_expired', 'update.c:expiry_for', 'update.c:write_decide']),
    ("slab: take the stripe's spare, keep the old chunk as the spare (class, page and chunk checks)",
     ['slab.c:*', 'compact.c:hmm__relocating', 'internal.h:hmm__relocating', 'internal.h:map_npages',
      'internal.h:map_page_off']),
    ('chunk state marks (WRITING, RETIRING, FREE)', ['entry.c:hmm__entry_mark', 'internal.h:hmm__entry_mark']),
    ('entry write: header, key and value',
     ['update.c:write_entry', '@entrycopies', 'internal.h:entry_key', 'internal.h:entry_val', 'internal.h:entry_bytes']),
    ('entry checksum (XXH3 over header, key and value)', ['@entrysum']),
    ('log reserve under the append lock (window check, make room, header, head)',
     ['replog.c:reserve_locked', 'replog.c:window_sane', 'replog.c:make_room_locked', 'replog.c:rec_at',
      'replog.c:round8', 'replog.c:populate_ahead']),
    ('log record fill (header fields, key and value)', ['replog.c:hmm__replog_append_locked', '@recordcopies']),
    ('log record checksum (XXH3-64, seeded)', ['@recordsum']),
    ('log commit (state store, `last_seq` max)',
     ['replog.c:decide_locked', 'replog.c:hmm__replog_commit_locked', 'replog.c:state_cas', 'replog.c:note_decided']),
    ('update protocol: intent, retire, publish, seq odd and even, gauges, intent clear',
     ['update.c:write_locked', 'update.c:write_find_locked', 'update.c:write_new_entry_locked',
      'update.c:write_replace_locked', 'update.c:retire_old_locked', 'update.c:free_retired_locked',
      'lock.c:hmm__seq_begin_free', 'lock.c:hmm__seq_end_free']),
    ("metrics (`puts` + 1: a plain add into the process's own slot)", ['internal.h:metrics_add']),
    ('growth check after unlocking (`hmm__grow_index_help`)', ['grow.c:hmm__grow_index_help']),
]
COPIES = [('libc', '__memcpy_avx_unaligned_erms'), ('internal.h', 'hmm__copy_small')]
NUM = re.compile(r'^\s*([\d,]+) \(\s*[\d.]+%\)  ')


def annotate(profile, *args):
    return subprocess.run(['callgrind_annotate', *args, profile], capture_output=True, text=True,
                          check=True).stdout


def function_starts(path):
    """(first line, name) of every function of a C file, by ctags."""
    out = subprocess.run(['ctags', '-x', '--c-kinds=f', '--language-force=C', path], capture_output=True,
                         text=True).stdout
    starts = []
    for line in out.splitlines():
        f = line.split()
        if len(f) >= 3 and f[1] == 'function':
            starts.append((int(f[2]), f[0]))
    return sorted(starts)


def enclosing(starts, lineno):
    name = None
    for first, fn in starts:
        if first > lineno:
            break
        name = fn
    return name


def per_function(profile):
    """{(file, function): instructions} over the whole collected loop."""
    cost = collections.Counter()
    for (f, fn, _), v in per_line(profile).items():
        cost[(f, fn)] += v
    return cost


def per_line(profile):
    """{(file, function, source line): instructions} over the whole collected
    loop; glibc's functions, which have no source here, with the line ''."""
    text = annotate(profile, '--auto=yes', '--threshold=100', '--context=0')
    cost = collections.Counter()
    starts, path, lineno, last = [], None, None, None
    for line in text.splitlines():
        m = re.match(r'^-- Auto-annotated source: (.*)$', line)
        if m:
            path, lineno, last = m.group(1), None, None
            starts = function_starts(path) if os.path.exists(path) else []
            continue
        if not starts:
            continue
        m = re.match(r'^-- line (\d+) -+$', line)
        if m:
            # An annotated line stands between two markers of its number.
            n = int(m.group(1))
            lineno = None if n == last else n
            last = lineno
            continue
        m = NUM.match(line)
        if not m or lineno is None or line[m.end():].startswith('=> '):
            continue
        cost[(os.path.basename(path), enclosing(starts, lineno), line[m.end():].strip())] += \
            int(m.group(1).replace(',', ''))
        lineno = None
    for line in annotate(profile).splitlines():
        m = re.match(r'^\s*([\d,]+) \(\s*[\d.]+%\)\s+\S+:(\S+) \[(/usr/lib[^\]]*)\]$', line)
        if m:
            cost[('libc', m.group(2), '')] += int(m.group(1).replace(',', ''))
    return cost


def inclusive(profile, function):
    """The function's inclusive cost: the largest of its rows (a function
    can also have rows for code of another file inlined into it)."""
    best = 0
    for line in annotate(profile, '--inclusive=yes').splitlines():
        m = re.match(r'^\s*([\d,]+) \(\s*[\d.]+%\)\s+\S+:(\S+)(?: \[.*\])?$', line)
        if m and m.group(2) == function:
            best = max(best, int(m.group(1).replace(',', '')))
    return best


def parts(profile):
    cost = per_function(profile)
    entry_sum, record_sum = inclusive(profile, 'hmm__entry_checksum'), inclusive(profile, 'hmm__replog_checksum')
    xxh3 = sum(v for k, v in cost.items() if k[0] == 'xxhash.h') + cost[('internal.h', 'key_hash')]
    copies = sum(cost[k] for k in COPIES)
    record_share = copies / 2 if record_sum else 0
    special = {
        '@entrysum': entry_sum,
        '@recordsum': record_sum,
        '@keyhash': xxh3 - (entry_sum - cost[('entry.c', 'hmm__entry_checksum')])
                    - (record_sum - cost[('replog.c', 'hmm__replog_checksum')]),
        '@entrycopies': copies - record_share,
        '@recordcopies': record_share,
    }
    used = {k for k in cost if k[0] == 'xxhash.h'} | set(COPIES) | {
        ('internal.h', 'key_hash'), ('entry.c', 'hmm__entry_checksum'), ('replog.c', 'hmm__replog_checksum')}
    out = collections.OrderedDict()
    for name, patterns in PARTS:
        total = 0
        for p in patterns:
            if p in special:
                total += special[p]
                continue
            f, fn = p.split(':', 1)
            for k, v in cost.items():
                if k[0] == f and (fn == '*' or k[1] == fn) and k not in used:
                    total += v
                    used.add(k)
        out[name] = total
    out['other'] = sum(v for k, v in cost.items() if k not in used)
    out['**whole put, loop included**'] = sum(cost.values())
    return out, {f'{k[0]}:{k[1]}': v / PUTS for k, v in cost.items() if k not in used and v}


def print_table(argv, parts_of, what, ops, doc):
    """The table of parts_of(profile) for the one or two profiles named in
    argv (instructions per operation: ops were collected), and on stderr
    what no part took.  bench/get_parts.py uses it too."""
    if len(argv) not in (2, 3):
        sys.stderr.write(doc)
        return 2
    columns = [parts_of(p) for p in argv[1:]]
    heads = ['before', 'after'] if len(columns) == 2 else ['instructions']
    print(f'| part of a {what} | ' + ' | '.join(heads) + ' |')
    print('| --- |' + ' ---: |' * len(heads))
    for name in columns[0][0]:
        print(f'| {name} | ' + ' | '.join(f'{c[0][name] / ops:.0f}' for c in columns) + ' |')
    for p, (_, other) in zip(argv[1:], columns):
        if other:
            print(f'{p}: in "other": ' + ', '.join(f'{k} {v:.1f}' for k, v in sorted(other.items())), file=sys.stderr)
    return 0


if __name__ == '__main__':
    sys.exit(print_table(sys.argv, parts, 'put', PUTS, __doc__))
