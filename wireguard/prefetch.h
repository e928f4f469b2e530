// A cache prefetch hint that the optimiser cannot delete.
//
// GCC treats __builtin_prefetch as free of side effects, so when the
// address is the only use of a computation (a table probe whose result is
// just prefetched: Device::prefetch_receive_keypair, FlowTable::prefetch_flow,
// Established::prefetch_entry) GCC 12 at -O2/-O3 deletes the probe and the
// prefetch with it. Found in the release build's disassembly: the data
// plane's decrypt path had carried no keypair prefetch at all. An asm
// volatile statement is never deleted, so the probe that feeds it stays.
// (DPDK's rte_prefetch0 is the same instruction; this header keeps the
// protocol core free of DPDK.)
//
// prefetch_line (prefetcht0) for every use, reads and writes alike, but
// the one below that must keep L1 free (prefetch_line_l2): a line fetched into
// this core's caches with no other sharer arrives exclusive, so the write
// that follows needs no further bus transaction (and the `prefetchw`
// instruction is outside -march=corei7, the baseline DPDK builds for).
#pragma once

namespace moongate {

inline void prefetch_line(const void* p) noexcept {
#if defined(__x86_64__) || defined(__i386__)
  asm volatile("prefetcht0 %0" : : "m"(*static_cast<const char*>(p)));
#else
  __builtin_prefetch(p);
#endif
}

// prefetcht1: into L2 but not L1, for lines needed only after a long
// stretch of other work that L1 is needed for (the decrypt burst's peer
// lines, read after the AEAD: docs/perf.md).
inline void prefetch_line_l2(const void* p) noexcept {
#if defined(__x86_64__) || defined(__i386__)
  asm volatile("prefetcht1 %0" : : "m"(*static_cast<const char*>(p)));
#else
  __builtin_prefetch(p, 0, 2);
#endif
}

}  // namespace moongate
