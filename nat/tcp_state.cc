// The TCP tracker's transitions; tcp_state.h has the state diagram.
#include "nat/tcp_state.h"

namespace moongate::nat {

const char* to_string(TcpState s) noexcept {
  switch (s) {
    case TcpState::kSynSent: return "syn_sent";
    case TcpState::kSynReceived: return "syn_received";
    case TcpState::kEstablished: return "established";
    case TcpState::kFinWait: return "fin_wait";
    case TcpState::kCloseWait: return "close_wait";
    case TcpState::kLastAck: return "last_ack";
    case TcpState::kTimeWait: return "time_wait";
    case TcpState::kClose: return "close";
  }
  return "unknown";
}

TcpTrack tcp_next(TcpTrack t, std::uint8_t flags, bool outbound) noexcept {
  const bool syn = (flags & kTcpSyn) != 0;
  const bool ack = (flags & kTcpAck) != 0;
  const bool fin = (flags & kTcpFin) != 0;
  // RST ends the connection whatever the state: keep the mapping only long
  // enough for stragglers.
  if ((flags & kTcpRst) != 0) {
    t.state = TcpState::kClose;
    return t;
  }
  // A side that closed first is the one that must ACK the second FIN.
  const bool from_first_closer = outbound == t.inside_closed_first;
  switch (t.state) {
    case TcpState::kSynSent:
      if (!outbound && syn && ack) t.state = TcpState::kSynReceived;
      break;
    case TcpState::kSynReceived:
      if (outbound && ack && !syn) t.state = fin ? TcpState::kFinWait : TcpState::kEstablished;
      if (t.state == TcpState::kFinWait) t.inside_closed_first = true;
      break;
    case TcpState::kEstablished:
      if (fin) {
        t.state = TcpState::kFinWait;
        t.inside_closed_first = outbound;
      }
      break;
    case TcpState::kFinWait:
      if (!from_first_closer) {
        if (fin)
          t.state = TcpState::kLastAck;
        else if (ack)
          t.state = TcpState::kCloseWait;
      }
      break;
    case TcpState::kCloseWait:
      if (!from_first_closer && fin) t.state = TcpState::kLastAck;
      break;
    case TcpState::kLastAck:
      if (from_first_closer && ack && !fin) t.state = TcpState::kTimeWait;
      break;
    case TcpState::kTimeWait:
    case TcpState::kClose:
      // A new connection on the same 4-tuple reuses the mapping.
      if (outbound && syn && !ack) t = TcpTrack{};
      break;
  }
  return t;
}

std::uint32_t tcp_timeout(const Timeouts& t, TcpState s) noexcept {
  switch (s) {
    case TcpState::kSynSent: return t.tcp_syn_sent;
    case TcpState::kSynReceived: return t.tcp_syn_received;
    case TcpState::kEstablished: return t.tcp_established;
    case TcpState::kFinWait: return t.tcp_fin_wait;
    case TcpState::kCloseWait: return t.tcp_close_wait;
    case TcpState::kLastAck: return t.tcp_last_ack;
    case TcpState::kTimeWait: return t.tcp_time_wait;
    case TcpState::kClose: return t.tcp_close;
  }
  return t.tcp_close;
}

}  // namespace moongate::nat
