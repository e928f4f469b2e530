// The NAT44 flow, per packet, on the lcore that owns the flow:
//
// Outbound (tunnel -> internet), on the peer's lcore:
//   1. Validate the IPv4 header (a bad one: drop malformed); a fragment is
//      dropped and counted (no reassembly, and only a first fragment has
//      ports).
//   2. TCP, UDP, ICMP echo request: look the inside key up; on a miss
//      create the flow (TCP only from a SYN) with an external address
//      picked by inside host (a host keeps one address of a pool) and a
//      port from this lcore's slice, tried from a keyed-random start.
//      ICMP error from an inside host about a packet that came in: step 4
//      mirrored. Anything else: drop.
//   3. Rewrite source address and port/id with incremental checksums;
//      step the TCP state; stamp the expiry.
// Inbound (internet -> tunnel), on any lcore first:
//   4. Not to one of our external addresses, or to a port outside the NAT
//      range, or ICMP that is neither an echo reply nor an error about our
//      packet: kNotNat (the gateway's own traffic: WireGuard, SSH, ping).
//   5. The port (or the quoted source port) names the owning lcore: on any
//      other, kHandOff, untouched.
//   6. On the owner: look the outside key up (an ICMP error: the key of the
//      quoted packet); a miss is a counted drop (spoofed return traffic,
//      errors about unknown flows). Rewrite destination (and the quote)
//      back to the inside host; step the TCP state; stamp the expiry.
// Expiry runs from expire() on the owner's loop (flow_table.h).
#include "nat/nat44.h"

#include <stdexcept>

#include "dataplane/net/bytes.h"
#include "dataplane/net/icmp.h"
#include "dataplane/net/ipv4.h"
#include "nat/icmp_error.h"
#include "nat/packet.h"
#include "nat/tcp_state.h"

namespace moongate::nat {

namespace {

// Tries at successive ports before giving up on a new flow: with the
// mapping keyed by the whole 5-tuple, a port is taken only if the same
// remote (address, port) already talks to it, so a few tries suffice
// unless one destination holds most of this lcore's slice.
constexpr unsigned kPortTries = 64;

using wg::mix64;

std::size_t per_lcore_capacity(const Nat44Config& c) {
  if (c.lcores == 0) throw std::invalid_argument("nat: no lcores");
  if (c.max_flows == 0) throw std::invalid_argument("nat: max_flows is 0");
  return (c.max_flows + c.lcores - 1) / c.lcores;
}

}  // namespace

Nat44::Nat44(const Nat44Config& config, unsigned lcore, std::uint64_t now_ns)
    : partition_(config.pool, config.lcores, config.port_min, config.port_max),
      timeouts_(config.timeouts),
      lcore_(lcore),
      ports_(partition_.range_of(lcore)),
      seed_(mix64(config.seed ^ (std::uint64_t{lcore} << 48))),
      table_(per_lcore_capacity(config), mix64(seed_ + 7), now_ns) {
  if (lcore >= config.lcores) throw std::invalid_argument("nat: lcore index out of range");
  for (const net::Ipv4Address& a : partition_.pool()) pool_.push_back(net::load_be32(a.data()));
  reserved_ = config.reserved_ports;
}

std::uint64_t Nat44::timeout_ns(const Flow& f) const noexcept {
  std::uint32_t s = timeouts_.icmp;
  if (f.proto == kProtoTcp)
    s = tcp_timeout(timeouts_, static_cast<TcpState>(f.tcp_state));
  else if (f.proto == kProtoUdp)
    s = f.replied ? timeouts_.udp_stream : timeouts_.udp;
  return std::uint64_t{s} * kNanosPerSecond;
}

void Nat44::track(Flow& f, std::uint8_t tcp_flags, bool outbound, std::uint64_t now) noexcept {
  if (!outbound) f.replied = true;
  if (f.proto == kProtoTcp) {
    const TcpTrack t = tcp_next({static_cast<TcpState>(f.tcp_state), f.inside_closed_first},
                                tcp_flags, outbound);
    f.tcp_state = static_cast<std::uint8_t>(t.state);
    f.inside_closed_first = t.inside_closed_first;
  }
  table_.set_expiry(f, now + timeout_ns(f));
}

Flow* Nat44::create_flow(const L4Tuple& t, std::uint64_t now, NatDrop& why) noexcept {
  if (table_.size() == table_.capacity()) {
    why = NatDrop::kTableFull;
    return nullptr;
  }
  Flow tuple;
  tuple.proto = t.proto;
  tuple.inside_addr = t.src;
  tuple.remote_addr = t.dst;
  tuple.inside_port = t.sport;
  tuple.remote_port = t.proto == kProtoIcmp ? 0 : t.dport;
  tuple.tcp_state = static_cast<std::uint8_t>(TcpState::kSynSent);
  // One external address per inside host (RFC 4787 "paired" pooling):
  // servers that tie a session to the client address keep working.
  tuple.ext_addr = pool_[mix64(std::uint64_t{t.src} ^ seed_) % pool_.size()];
  // Port: keyed-random start in this lcore's slice (RFC 6056), then the
  // next ones until the outside key is free.
  const std::uint64_t start =
      mix64(seed_ ^ (std::uint64_t{t.src} << 32 | t.dst) ^
          (std::uint64_t{t.sport} << 16 | t.dport) ^ (++allocations_ << 40));
  const std::uint32_t span = ports_.size();
  for (unsigned i = 0; i < kPortTries; ++i) {
    tuple.ext_port = static_cast<std::uint16_t>(ports_.first + (start + i) % span);
    if (reserved(tuple.ext_port) || table_.outside_taken(tuple.outside_key())) continue;
    Flow* f = table_.create(tuple, now + timeout_ns(tuple));
    if (f == nullptr) break;
    ++counters_.flows_created;
    return f;
  }
  why = NatDrop::kNoPort;
  return nullptr;
}

Result Nat44::translate(std::uint8_t* ip, std::size_t len, Direction dir,
                        std::uint64_t now_ns) noexcept {
  net::Ipv4Header h;
  if (net::parse_ipv4(ip, len, h) != net::Ipv4Status::kOk) {
    // Inbound garbage may well not be NAT traffic, but nothing else can use
    // a packet with a bad header either: count it here.
    return drop(NatDrop::kMalformed);
  }
  return translate(ip, h, dir, now_ns);
}

bool Nat44::lookup_key(const std::uint8_t* ip, std::size_t len, Direction dir,
                       FlowKey& key) const noexcept {
  if (len < 20 + 8) return false;
  const std::size_t ihl = static_cast<std::size_t>(ip[0] & 0x0f) * 4;
  if (ihl < 20 || len < ihl + 8) return false;
  const std::uint8_t proto = ip[9];
  const std::uint8_t* l4 = ip + ihl;
  const std::uint32_t src = net::load_be32(ip + net::kIpv4SrcOffset);
  const std::uint32_t dst = net::load_be32(ip + net::kIpv4DstOffset);
  std::uint16_t sport = 0, dport = 0;
  if (proto == kProtoTcp || proto == kProtoUdp) {
    sport = net::load_be16(l4);
    dport = net::load_be16(l4 + 2);
  } else if (proto == kProtoIcmp) {
    sport = net::load_be16(l4 + 4);  // echo id; errors are rare: not worth it
  } else {
    return false;
  }
  const bool icmp = proto == kProtoIcmp;
  if (dir == Direction::kOutbound)
    key = {src, dst, sport, icmp ? std::uint16_t{0} : dport, proto};
  else
    key = {dst, src, icmp ? sport : dport, icmp ? std::uint16_t{0} : sport, proto};
  return true;
}

void Nat44::prefetch(const std::uint8_t* ip, std::size_t len, Direction dir) const noexcept {
  FlowKey k;
  if (!lookup_key(ip, len, dir, k)) return;
  if (dir == Direction::kOutbound)
    table_.prefetch_inside(k);
  else
    table_.prefetch_outside(k);
}

void Nat44::prefetch_flow(const std::uint8_t* ip, std::size_t len, Direction dir) const noexcept {
  FlowKey k;
  if (lookup_key(ip, len, dir, k)) table_.prefetch_flow(k, dir == Direction::kOutbound);
}

Result Nat44::translate(std::uint8_t* ip, const net::Ipv4Header& h, Direction dir,
                        std::uint64_t now_ns) noexcept {
  if (dir == Direction::kInbound) {
    if (!is_external(net::load_be32(h.dst.data())))
      return {Verdict::kNotNat, NatDrop::kCount, kNoOwner};
    if (h.is_fragment()) return drop(NatDrop::kFragment);
    return inbound(ip, h.header_len, h.total_len, h.protocol, now_ns);
  }
  if (h.is_fragment()) return drop(NatDrop::kFragment);
  return outbound(ip, h.header_len, h.total_len, h.protocol, now_ns);
}

Result Nat44::outbound(std::uint8_t* ip, std::size_t ihl, std::size_t total, std::uint8_t proto,
                       std::uint64_t now) noexcept {
  const std::size_t l4_len = total - ihl;
  if (proto != kProtoTcp && proto != kProtoUdp && proto != kProtoIcmp)
    return drop(NatDrop::kUnsupportedProtocol);
  if (proto == kProtoIcmp && l4_len >= 1 && is_icmp_error_type(ip[ihl]))
    return outbound_icmp_error(ip, ihl, total, now);
  L4Tuple t;
  if (!read_l4(proto, ip + ihl, l4_len, t)) {
    if (l4_len < 8) return drop(NatDrop::kMalformed);
    return drop(NatDrop::kUnsupportedIcmp);  // ICMP other than echo / errors
  }
  if (proto == kProtoTcp && l4_len < 20) return drop(NatDrop::kMalformed);
  // Inside hosts answer no pings from the internet through the NAT: there
  // is no inbound mapping an echo reply could belong to.
  if (proto == kProtoIcmp && t.icmp_type != net::kIcmpEchoRequest)
    return drop(NatDrop::kUnsupportedIcmp);
  t.src = net::load_be32(ip + net::kIpv4SrcOffset);
  t.dst = net::load_be32(ip + net::kIpv4DstOffset);

  const FlowKey key{t.src, t.dst, t.sport, proto == kProtoIcmp ? std::uint16_t{0} : t.dport, proto};
  Flow* f = table_.find_inside(key, now);
  if (f == nullptr) {
    // Only a SYN opens a TCP mapping: a stray segment (after a restart, or
    // a scan) gets no port.
    if (proto == kProtoTcp && (t.tcp_flags & (kTcpSyn | kTcpAck | kTcpRst)) != kTcpSyn)
      return drop(NatDrop::kTcpNotSyn);
    NatDrop why = NatDrop::kCount;
    f = create_flow(t, now, why);
    if (f == nullptr) return drop(why);
  }
  rewrite_side(ip, ihl, l4_len, proto, Side::kSource, f->ext_addr, f->ext_port);
  track(*f, t.tcp_flags, true, now);
  ++counters_.translated_out;
  return {Verdict::kTranslated, NatDrop::kCount, kNoOwner};
}

Result Nat44::outbound_icmp_error(std::uint8_t* ip, std::size_t ihl, std::size_t total,
                                  std::uint64_t now) noexcept {
  // An inside host reports a problem with a packet that came in through a
  // flow (port unreachable for a UDP reply): the quote has the remote as
  // source and the inside host as destination.
  QuotedPacket q;
  switch (parse_icmp_error(ip, ihl, total, q)) {
    case IcmpErrorParse::kOk: break;
    case IcmpErrorParse::kBadChecksum: return drop(NatDrop::kIcmpBadChecksum);
    case IcmpErrorParse::kNotTracked: return drop(NatDrop::kIcmpUnknownFlow);
    case IcmpErrorParse::kNotError:
    case IcmpErrorParse::kMalformed: return drop(NatDrop::kMalformed);
  }
  const L4Tuple& t = q.tuple;
  const bool icmp = t.proto == kProtoIcmp;
  const FlowKey key{t.dst, t.src, t.dport, icmp ? std::uint16_t{0} : t.sport, t.proto};
  Flow* f = table_.find_inside(key, now);
  if (f == nullptr) return drop(NatDrop::kIcmpUnknownFlow);
  translate_icmp_error(ip, ihl, q, Side::kSource, f->ext_addr, f->ext_port);
  ++counters_.translated_out;
  return {Verdict::kTranslated, NatDrop::kCount, kNoOwner};
}

Result Nat44::inbound(std::uint8_t* ip, std::size_t ihl, std::size_t total, std::uint8_t proto,
                      std::uint64_t now) noexcept {
  constexpr Result kNotNat{Verdict::kNotNat, NatDrop::kCount, kNoOwner};
  const std::size_t l4_len = total - ihl;
  if (proto != kProtoTcp && proto != kProtoUdp && proto != kProtoIcmp) return kNotNat;
  if (proto == kProtoIcmp && l4_len >= 1 && is_icmp_error_type(ip[ihl]))
    return inbound_icmp_error(ip, ihl, total, now);
  L4Tuple t;
  if (!read_l4(proto, ip + ihl, l4_len, t)) {
    // A short TCP/UDP header to a NAT port is hostile; short or other ICMP
    // (echo requests to the gateway) is the gateway's business.
    if (proto != kProtoIcmp && l4_len >= 4) {
      const std::uint16_t dport = net::load_be16(ip + ihl + 2);
      if (partition_.in_range(dport) && !reserved(dport)) return drop(NatDrop::kMalformed);
    }
    return kNotNat;
  }
  if (proto == kProtoIcmp && t.icmp_type != net::kIcmpEchoReply) return kNotNat;
  if (!partition_.in_range(t.dport) || (proto != kProtoIcmp && reserved(t.dport))) return kNotNat;
  if (proto == kProtoTcp && l4_len < 20) return drop(NatDrop::kMalformed);
  t.src = net::load_be32(ip + net::kIpv4SrcOffset);
  t.dst = net::load_be32(ip + net::kIpv4DstOffset);
  if (!ports_.contains(t.dport)) {
    const int owner = partition_.owner_of(net::load_ipv4_address(ip + net::kIpv4DstOffset), proto,
                                          t.dport);
    return {Verdict::kHandOff, NatDrop::kCount, owner};
  }
  const FlowKey key{t.dst, t.src, t.dport, proto == kProtoIcmp ? std::uint16_t{0} : t.sport, proto};
  Flow* f = table_.find_outside(key, now);
  if (f == nullptr) return drop(NatDrop::kNoFlow);
  rewrite_side(ip, ihl, l4_len, proto, Side::kDestination, f->inside_addr, f->inside_port);
  track(*f, t.tcp_flags, false, now);
  ++counters_.translated_in;
  return {Verdict::kTranslated, NatDrop::kCount, kNoOwner};
}

Result Nat44::inbound_icmp_error(std::uint8_t* ip, std::size_t ihl, std::size_t total,
                                 std::uint64_t now) noexcept {
  constexpr Result kNotNat{Verdict::kNotNat, NatDrop::kCount, kNoOwner};
  QuotedPacket q;
  switch (parse_icmp_error(ip, ihl, total, q)) {
    case IcmpErrorParse::kOk: break;
    case IcmpErrorParse::kBadChecksum: return drop(NatDrop::kIcmpBadChecksum);
    case IcmpErrorParse::kMalformed: return drop(NatDrop::kMalformed);
    case IcmpErrorParse::kNotTracked:
    case IcmpErrorParse::kNotError: return kNotNat;  // about other traffic of ours
  }
  // The quote is a packet we sent: our external address and port as its
  // source. Anything else (an error about the gateway's own WireGuard
  // packets, a port below the NAT range) is for the gateway itself.
  const L4Tuple& t = q.tuple;
  const net::Ipv4Address quoted_src = net::load_ipv4_address(ip + q.offset + net::kIpv4SrcOffset);
  if (!is_external(t.src) || !partition_.in_range(t.sport) ||
      (t.proto != kProtoIcmp && reserved(t.sport)))
    return kNotNat;
  if (!ports_.contains(t.sport))
    return {Verdict::kHandOff, NatDrop::kCount, partition_.owner_of(quoted_src, t.proto, t.sport)};
  const bool icmp = t.proto == kProtoIcmp;
  const FlowKey key{t.src, t.dst, t.sport, icmp ? std::uint16_t{0} : t.dport, t.proto};
  Flow* f = table_.find_outside(key, now);
  if (f == nullptr) return drop(NatDrop::kIcmpUnknownFlow);
  translate_icmp_error(ip, ihl, q, Side::kDestination, f->inside_addr, f->inside_port);
  // An error does not refresh the flow: a dead destination must not keep
  // its mapping alive.
  ++counters_.translated_in;
  ++counters_.icmp_errors_in;
  return {Verdict::kTranslated, NatDrop::kCount, kNoOwner};
}

int Nat44::inbound_owner(const std::uint8_t* ip, std::size_t len) const noexcept {
  net::Ipv4Header h;
  if (net::parse_ipv4(ip, len, h) != net::Ipv4Status::kOk || h.is_fragment()) return kNoOwner;
  if (!is_external(net::load_be32(h.dst.data()))) return kNoOwner;
  const std::size_t l4_len = h.payload_len();
  const std::uint8_t* l4 = ip + h.header_len;
  if (h.protocol == kProtoIcmp && l4_len >= 1 && is_icmp_error_type(l4[0])) {
    QuotedPacket q;
    if (parse_icmp_error(ip, h.header_len, h.total_len, q) != IcmpErrorParse::kOk) return kNoOwner;
    if (q.tuple.proto != kProtoIcmp && reserved(q.tuple.sport)) return kNoOwner;
    return partition_.owner_of(net::load_ipv4_address(ip + q.offset + net::kIpv4SrcOffset),
                               q.tuple.proto, q.tuple.sport);
  }
  L4Tuple t;
  if (!read_l4(h.protocol, l4, l4_len, t)) return kNoOwner;
  if (h.protocol == kProtoIcmp && t.icmp_type != net::kIcmpEchoReply) return kNoOwner;
  if (h.protocol != kProtoIcmp && reserved(t.dport)) return kNoOwner;
  return partition_.owner_of(h.dst, h.protocol, t.dport);
}

std::size_t Nat44::expire(std::uint64_t now_ns, std::size_t budget) noexcept {
  const std::size_t n = table_.expire(now_ns, budget);
  counters_.flows_expired += n;
  return n;
}

}  // namespace moongate::nat
