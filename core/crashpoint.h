/*
 * crashpoint.h - seams where the crash tests kill a writer (FORMAT.md §8, §9).
 *
 * HMM_CRASHPOINT(name) compiles to nothing in the library users get.  In
 * libhashmmap-crash.la (built with -DHMM_CRASHPOINTS, linked only by tests)
 * it SIGKILLs the process the nth time the named point is passed, after
 * hmm_crashpoint_arm(name, nth) or with HASHMMAP_CRASHPOINT=name:nth in the
 * environment.
 *
 * The points, in the order an update passes them:
 *   alloc_marked  chunk marked WRITING, class lock held, not yet unlinked
 *                 (or the stripe's spare marked, not yet taken)
 *   alloc         chunk unlinked from its class or taken from the spare
 *   written       new entry complete and LIVE, not yet published
 *   retired       old entry marked RETIRING, not yet replaced
 *   published     index slot replaced (or cleared by a delete)
 *   free_linked   old chunk linked into the free list, class lock held
 *                 (or kept as the stripe's spare)
 *   freed         old chunk FREE, seq still odd
 *   done          seq even again, stripe lock still held
 * and those of growth (FORMAT.md §10):
 *   grown         file extended, new page count not yet published
 *   index_grown   old index published as draining, new one not yet current
 *   moved         key inserted into the new index, still in the old one
 *   index_retired growth finished: index_old 0, the old run not yet freed
 *   index_fenced  the second barrier's first stripe fenced, its lock held
 * and of eviction (FORMAT.md §12):
 *   evict_retired victim marked RETIRING, still in the index
 *   evicted       victim out of the index, not yet freed
 * and of the replication log (FORMAT.md §13), between written and retired
 * (log_numbered .. log_written) and right after published (log_committed):
 *   log_numbered  append lock held, record RESERVED with next_seq taken,
 *                 not yet named in the writer's stripe
 *   log_locked    append lock held, next_seq taken, head not yet advanced
 *   log_reserved  record reserved (RESERVED|seq), nothing copied
 *   log_written   record filled, change not yet published
 *   log_committed record committed, old entry not yet freed
 * and of giving another stripe's spare back when a class runs out
 * (spares_reclaim, FORMAT.md §8), stripe t's lock held:
 *   reclaim_marked  t's spare marked RETIRING owned by t, still t's spare
 *   reclaim_named   also named in t's intent.old_off
 *   reclaim_taken   t's spare cleared, chunk not yet freed
 * and of handing a page back to the free pages (compact.c, FORMAT.md §6):
 *   page_leaving    the class's evac_page names the page, list untouched
 *   page_unlinked   free list rebuilt without the page(s), class lock held
 *   page_returned   the first page's table entry cleared (the commit)
 * and of a cold start (FORMAT.md §10), the only writer of the map:
 *   cold_rebuilt    lock words rebuilt and process table cleared, no
 *                   intent repaired yet
 * and of a map of format 2 (FORMAT.md §7), between published's store and
 * the crash point published itself:
 *   cell_copying    the cell's word stored without a copy, half the copy's
 *                   bytes written
 *
 * Stall points: a process stopped (SIGSTOP from inside, after
 * hmm_crashpoint_stall) where the test then changes what it looked at
 * without a lock, before it goes on (SIGCONT).  Not crash points (dying
 * there leaves nothing to repair), so not in hmm_crashpoint_names:
 *   read_viewed     a get loaded its stripe's seq and checked its cached
 *                   index view, nothing of the index read yet (FORMAT.md §10)
 *   read_found      a get found the key's entry and checked its lengths, the
 *                   value not copied yet
 *   read_copied     a get copied the value, its seq not yet checked
 *   read_validated  the seq check passed, cache mode's recency mark not
 *                   yet set (FORMAT.md §12)
 *   read_general    a get (or a key of a batch) left its fast path for the
 *                   general one, nothing read there yet: a seam for tests
 *                   that a get stays on its fast path
 * and a writer's sweep of expired entries (compact.c), its own stripe held:
 *   reclaim_looked  found an expired entry without its stripe's lock, not
 *                   yet locked to reclaim it
 * and of growth (FORMAT.md §10):
 *   insert_viewed   a writer decoded the index words under its stripe lock,
 *                   its new key not yet inserted
 *   drain_viewed    a helper decoded the old index without a lock, not yet
 *                   draining its buckets
 *   open_viewed     an opener loaded the index words, not yet checked
 *                   against the page table
 *   cursor_viewed   a cursor decoded the index words for its next range,
 *                   no slot of it read yet
 */
#ifndef HMM_CRASHPOINT_H
#define HMM_CRASHPOINT_H

#define HMM_CRASHPOINT_COUNT 28
extern const char *const hmm_crashpoint_names[HMM_CRASHPOINT_COUNT];

/* In libhashmmap-crash.la only: */
void hmm_crashpoint_arm(const char *name, unsigned nth);
void hmm_crashpoint_stall(const char *name, unsigned nth); /* SIGSTOP instead of SIGKILL */
void hmm_crashpoint_pass(const char *name);

#ifdef HMM_CRASHPOINTS
#define HMM_CRASHPOINT(name) hmm_crashpoint_pass(name)
#else
#define HMM_CRASHPOINT(name) ((void)0)
#endif

#endif /* HMM_CRASHPOINT_H */
