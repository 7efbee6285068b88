/*
 * remote.c - freeing a slot that another heap owns, without a lock.
 *
 * The freeing thread does everything a local free does, at once and in
 * its own name: it validates the pointer (a bogus pointer or a double free
 * aborts here, with the usual "tars: tars_free(): ..." line), checks the
 * slot's canary, and wipes the slot.  Only then does it hand the slot to
 * the owner, out of band: one bit in the page's `xfree` bitmap (an atomic
 * OR, which also catches two threads freeing the same block at the same
 * time: the second finds the bit set), and, if the page is not queued yet,
 * the page record pushed on the owner's `pending` stack (a Treiber stack
 * that only the owner empties, all at once, so no ABA).  Nothing is ever
 * written into the freed slot but the wipe: there is no link an overflow
 * could forge.
 *
 * The owner takes the bits when it runs out of slots (heap.c,
 * tars_heap_collect).  Ordering, with every step sequentially consistent:
 * the owner clears `queued` before it exchanges the bitmap words, the
 * freeing thread sets its bit before it tests-and-sets `queued`.  If the
 * owner's exchange missed the bit, the bit came after, so the freeing
 * thread's test-and-set saw the cleared flag and queued the page again.
 *
 * A double free that races a local free of the same block (owner frees,
 * another thread frees too) leaves the slot free in both bitmaps: the
 * owner finds it when it hands the slot out or collects it, and aborts.
 */
#include "chunk.h"

static void
push_pending(struct tars_heap *owner, struct chunk_info *ci)
{
	struct chunk_info *head = atomic_load_explicit(&owner->pending, memory_order_relaxed);
	do {
		ci->pnext = head;
	} while (!atomic_compare_exchange_weak_explicit(&owner->pending, &head, ci,
	    memory_order_release, memory_order_relaxed));
}

void
tars_remote_free(struct tars_heap *me, struct chunk_info *ci, void *ptr,
    size_t expect, const char *func)
{
	/* The owner's heap is written below (its pending stack): check it. */
	tars_heap_check(ci->heap, func);
	unsigned slot = chunk_live_slot(ci, ptr, func, 0);
	uint16_t req = ci_req(ci)[slot];
	if (expect != (size_t)-1 && expect != (size_t)(req & REQ_SIZE)) {
		tars_chunk_size_mismatch(ptr, expect, req & REQ_SIZE, func);
	}
	if (!(__atomic_load_n(&ci->flags, __ATOMIC_RELAXED) & (CI_NOACCESS | CI_GONE))) {
		long junk = TARS_OPT(junk);
		(void)chunk_canary_ok(ptr, req, ci->size, func, 0);
		chunk_wipe(ptr, ci->size, junk);
		if (junk == 0) {
			__atomic_store_n(&ci->xzeroed, 1, __ATOMIC_RELAXED);
		}
	}
	uint64_t bit = 1ull << (slot & 63);
	uint64_t old = __atomic_fetch_or(&ci_xfree(ci)[slot >> 6], bit, __ATOMIC_SEQ_CST);
	if (old & bit) {
		tars_chunk_double_free(ptr, "freed by two threads at once", func);
	}
	/* A page already queued needs no second push, and a plain load (not
	 * an exchange, which takes the line for writing) tells: if it reads
	 * 1, the owner's clearing store comes later in the seq_cst order,
	 * and so does its exchange of this bitmap word, which sees the bit. */
	if (atomic_load_explicit(&ci->queued, memory_order_seq_cst) == 0 &&
	    atomic_exchange_explicit(&ci->queued, 1, memory_order_seq_cst) == 0) {
		push_pending(ci->heap, ci);
	}
	if (me != NULL) {
		me->remote_frees++;
	}
}
