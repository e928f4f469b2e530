// The TCP tracker as a pure function: the handshake, both close orders,
// RST from either side in every state, reuse after TIME_WAIT, and the
// timeout of each state (conntrack's defaults).
#include "nat/tcp_state.h"

#include <gtest/gtest.h>

namespace moongate::nat {
namespace {

constexpr bool kOut = true;
constexpr bool kIn = false;

TcpTrack step(TcpTrack t, std::uint8_t flags, bool out) { return tcp_next(t, flags, out); }

TEST(TcpState, HandshakeThenInsideClosesFirst) {
  TcpTrack t;
  EXPECT_EQ(t.state, TcpState::kSynSent);
  t = step(t, kTcpSyn, kOut);
  EXPECT_EQ(t.state, TcpState::kSynSent);  // retransmitted SYN
  t = step(t, kTcpSyn | kTcpAck, kIn);
  EXPECT_EQ(t.state, TcpState::kSynReceived);
  t = step(t, kTcpAck, kOut);
  EXPECT_EQ(t.state, TcpState::kEstablished);
  t = step(t, kTcpAck, kIn);
  EXPECT_EQ(t.state, TcpState::kEstablished);
  t = step(t, kTcpFin | kTcpAck, kOut);
  EXPECT_EQ(t.state, TcpState::kFinWait);
  EXPECT_TRUE(t.inside_closed_first);
  t = step(t, kTcpAck, kOut);  // the closer's own ACKs change nothing
  EXPECT_EQ(t.state, TcpState::kFinWait);
  t = step(t, kTcpAck, kIn);
  EXPECT_EQ(t.state, TcpState::kCloseWait);
  t = step(t, kTcpFin | kTcpAck, kIn);
  EXPECT_EQ(t.state, TcpState::kLastAck);
  t = step(t, kTcpAck, kIn);  // not the side that must ACK
  EXPECT_EQ(t.state, TcpState::kLastAck);
  t = step(t, kTcpAck, kOut);
  EXPECT_EQ(t.state, TcpState::kTimeWait);
  // Same 4-tuple, new connection.
  t = step(t, kTcpSyn, kOut);
  EXPECT_EQ(t.state, TcpState::kSynSent);
}

TEST(TcpState, RemoteClosesFirstWithSimultaneousFin) {
  TcpTrack t{TcpState::kEstablished, false};
  t = step(t, kTcpFin | kTcpAck, kIn);
  EXPECT_EQ(t.state, TcpState::kFinWait);
  EXPECT_FALSE(t.inside_closed_first);
  t = step(t, kTcpFin | kTcpAck, kOut);  // FIN straight away: no CLOSE_WAIT
  EXPECT_EQ(t.state, TcpState::kLastAck);
  t = step(t, kTcpAck, kOut);
  EXPECT_EQ(t.state, TcpState::kLastAck);
  t = step(t, kTcpAck, kIn);
  EXPECT_EQ(t.state, TcpState::kTimeWait);
}

TEST(TcpState, RstClosesFromEveryStateAndEitherSide) {
  for (int s = 0; s <= static_cast<int>(TcpState::kClose); ++s) {
    for (bool out : {kOut, kIn}) {
      const TcpTrack t{static_cast<TcpState>(s), false};
      EXPECT_EQ(step(t, kTcpRst, out).state, TcpState::kClose) << to_string(t.state);
      EXPECT_EQ(step(t, kTcpRst | kTcpAck, out).state, TcpState::kClose);
    }
  }
}

TEST(TcpState, UnexpectedPacketsLeaveTheStateAlone) {
  // An inbound SYN (no ACK) in SynSent, an inbound ACK in SynSent, an
  // outbound SYN+ACK: none fits the client-side handshake.
  TcpTrack t;
  EXPECT_EQ(step(t, kTcpSyn, kIn).state, TcpState::kSynSent);
  EXPECT_EQ(step(t, kTcpAck, kIn).state, TcpState::kSynSent);
  EXPECT_EQ(step(t, kTcpSyn | kTcpAck, kOut).state, TcpState::kSynSent);
  // A SYN on an established connection does not reset it.
  const TcpTrack e{TcpState::kEstablished, false};
  EXPECT_EQ(step(e, kTcpSyn, kOut).state, TcpState::kEstablished);
}

TEST(TcpState, TimeoutsAreConntracksDefaults) {
  const Timeouts t;
  EXPECT_EQ(tcp_timeout(t, TcpState::kSynSent), 120u);
  EXPECT_EQ(tcp_timeout(t, TcpState::kSynReceived), 60u);
  EXPECT_EQ(tcp_timeout(t, TcpState::kEstablished), 432000u);
  EXPECT_EQ(tcp_timeout(t, TcpState::kFinWait), 120u);
  EXPECT_EQ(tcp_timeout(t, TcpState::kCloseWait), 60u);
  EXPECT_EQ(tcp_timeout(t, TcpState::kLastAck), 30u);
  EXPECT_EQ(tcp_timeout(t, TcpState::kTimeWait), 120u);
  EXPECT_EQ(tcp_timeout(t, TcpState::kClose), 10u);
  EXPECT_EQ(t.udp, 30u);
  EXPECT_EQ(t.udp_stream, 120u);
  EXPECT_EQ(t.icmp, 30u);
}

}  // namespace
}  // namespace moongate::nat
