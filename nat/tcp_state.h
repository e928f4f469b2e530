// TCP connection tracking for NAT: which phase a translated connection is
// in, so its mapping is kept as long as the endpoints may still use it and
// freed soon after they are done. A pure function of (state, flags,
// direction): the flow table stores the state, the caller the timeout.
//
// The states and their timeouts follow Linux conntrack's (timeouts.h); the
// transitions are its main path, without sequence-window tracking:
//
//   SynSent      outbound SYN (the only way a TCP flow is created)
//   SynReceived  inbound SYN+ACK answers it
//   Established  the inside's ACK completes the handshake (data both ways)
//   FinWait      the first FIN, from either side
//   CloseWait    the other side ACKed that FIN but still sends
//   LastAck      the second FIN
//   TimeWait     the ACK of the second FIN, from the side that closed first
//   Close        an RST from either side, in any state
//
// An outbound SYN on a flow in TimeWait or Close reuses the mapping (a new
// connection on the same 4-tuple): back to SynSent. Packets that do not fit
// the expected step are still translated (conntrack marks them INVALID but
// NAT passes them) and leave the state alone.
//
// Not done: window tracking (conntrack's "be liberal" off). An RST guessed
// by an off-path host that knows the 4-tuple therefore closes the mapping
// after tcp_close seconds; the endpoints themselves check sequence numbers.
#pragma once

#include <cstdint>

#include "nat/timeouts.h"

namespace moongate::nat {

enum class TcpState : std::uint8_t {
  kSynSent,
  kSynReceived,
  kEstablished,
  kFinWait,
  kCloseWait,
  kLastAck,
  kTimeWait,
  kClose,
};
const char* to_string(TcpState s) noexcept;

inline constexpr std::uint8_t kTcpFin = 0x01;
inline constexpr std::uint8_t kTcpSyn = 0x02;
inline constexpr std::uint8_t kTcpRst = 0x04;
inline constexpr std::uint8_t kTcpAck = 0x10;

// What the tracker remembers besides the state: which side sent the first
// FIN (true = the inside), meaningful from FinWait on.
struct TcpTrack {
  TcpState state = TcpState::kSynSent;
  bool inside_closed_first = false;
};

// The step for one packet with TCP `flags`, `outbound` = from the inside.
TcpTrack tcp_next(TcpTrack t, std::uint8_t flags, bool outbound) noexcept;

// The idle timeout of a state, in seconds.
std::uint32_t tcp_timeout(const Timeouts& t, TcpState s) noexcept;

}  // namespace moongate::nat
