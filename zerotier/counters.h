// The moon's counters: one X-macro list generating the struct fields and
// their names, so a new drop reason cannot be forgotten in the output.
#pragma once

#include <cstdint>

namespace moongate::zerotier {

#define MOONGATE_ZT_COUNTERS(X)                                                           \
  X(rx_datagrams)              /* every datagram handed to receive() */                    \
  X(rx_fragments)              /* of which fragments */                                    \
  X(relayed)                   /* packets relayed to their destination */                  \
  X(relayed_fragments)         /* fragments relayed */                                     \
  X(rendezvous_sent)           /* RENDEZVOUS messages (two per introduced pair) */         \
  X(hello_answered)            /* OK(HELLO) sent */                                        \
  X(hello_new_identity)        /* new identities verified and added */                     \
  X(hello_deferred)            /* new-identity HELLOs handed to the host's worker */       \
  X(world_sent)                /* OK(HELLO) that carried our World */                      \
  X(whois_answered)            /* OK(WHOIS) sent */                                        \
  X(echo_answered)             /* OK(ECHO) sent */                                         \
  X(multicast_likes)           /* group memberships recorded */                            \
  X(gathers_answered)          /* OK(MULTICAST_GATHER) sent */                             \
  X(reassembled)               /* fragmented packets to us put back together */            \
  X(peers_expired)             /* idle peers forgotten */                                  \
  X(drop_too_short)            /* shorter than a header */                                 \
  X(drop_too_big)              /* over kMaxDatagram / kMaxPacket */                        \
  X(drop_malformed)            /* a message that does not parse */                         \
  X(drop_bad_fragment)         /* inconsistent or duplicate fragments */                   \
  X(drop_reassembly_evicted)   /* partial packets pushed out by newer ones */              \
  X(drop_reassembly_expired)   /* partial packets that never completed */                  \
  X(drop_bad_mac)              /* MAC check failed (forged or corrupted) */                \
  X(drop_unsupported_suite)    /* cipher suite other than 0/1 */                           \
  X(drop_unknown_source)       /* to us, from an address that never said HELLO */         \
  X(drop_unknown_destination)  /* to relay, destination unknown or without a path */       \
  X(drop_hop_limit)            /* to relay, already at the hop limit */                    \
  X(drop_loop)                 /* claims our own address as source, or would go back */    \
  X(drop_hello_rate_limited)   /* new-identity HELLO over the verification budget */       \
  X(drop_hello_deferred_full)  /* new-identity HELLO with the worker's queue full */       \
  X(drop_hello_replay)         /* an old HELLO from another address (path hijack try) */   \
  X(drop_identity_invalid)     /* address does not derive from the public key */           \
  X(drop_identity_collision)   /* known address, other key: ERROR sent */                 \
  X(drop_peer_table_full)      /* no room for a new peer */                                \
  X(drop_old_protocol)         /* protocol version below 4 */                              \
  X(drop_compressed)           /* LZ4 payloads to the moon that do not decompress */       \
  X(drop_tx_full)              /* no room in the host's TxBatch */                         \
  X(ignored_verb)              /* verbs a moon does not act on */

struct Counters {
#define MOONGATE_ZT_FIELD(name) std::uint64_t name = 0;
  MOONGATE_ZT_COUNTERS(MOONGATE_ZT_FIELD)
#undef MOONGATE_ZT_FIELD

  template <typename F>
  void for_each(F&& f) const {
#define MOONGATE_ZT_VISIT(name) f(#name, name);
    MOONGATE_ZT_COUNTERS(MOONGATE_ZT_VISIT)
#undef MOONGATE_ZT_VISIT
  }
};

}  // namespace moongate::zerotier
