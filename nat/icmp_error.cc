// Parsing and translating ICMP errors; icmp_error.h says what changes.
#include "nat/icmp_error.h"

#include <algorithm>
#include <cstring>

#include "dataplane/net/bytes.h"
#include "dataplane/net/checksum.h"
#include "dataplane/net/ipv4.h"

namespace moongate::nat {

namespace {
constexpr std::uint8_t kIcmpParameterProblem = 12;
constexpr std::size_t kIcmpHeader = 8;
constexpr std::size_t kIcmpChecksumOffset = 2;
// Quoted bytes a translation can change: the quoted IPv4 header (<= 60)
// and the L4 header up to the TCP checksum (18).
constexpr std::size_t kMaxChangedQuote = 60 + 18;
}  // namespace

bool is_icmp_error_type(std::uint8_t type) noexcept {
  return type == 3 || type == 11 || type == kIcmpParameterProblem;
}

IcmpErrorParse parse_icmp_error(const std::uint8_t* ip, std::size_t ihl, std::size_t total_len,
                                QuotedPacket& out) noexcept {
  if (total_len < ihl + kIcmpHeader) return IcmpErrorParse::kMalformed;
  const std::uint8_t* icmp = ip + ihl;
  const std::size_t icmp_len = total_len - ihl;
  if (!is_icmp_error_type(icmp[0])) return IcmpErrorParse::kNotError;
  if (net::internet_checksum(icmp, icmp_len) != 0) return IcmpErrorParse::kBadChecksum;

  // The quoted header: version 4, a sane IHL, within the message. Its own
  // checksum and total length are not checked: a router may quote a
  // truncated packet, and we fix the checksum incrementally either way.
  const std::uint8_t* q = icmp + kIcmpHeader;
  const std::size_t q_len = icmp_len - kIcmpHeader;
  if (q_len < net::kIpv4HeaderLen || (q[0] >> 4) != 4) return IcmpErrorParse::kMalformed;
  const std::size_t q_ihl = static_cast<std::size_t>(q[0] & 0x0f) * 4;
  if (q_ihl < net::kIpv4HeaderLen || q_len < q_ihl + kQuotedL4Min)
    return IcmpErrorParse::kMalformed;
  // Only a first fragment quotes the L4 header.
  if ((net::load_be16(q + 6) & 0x1fff) != 0) return IcmpErrorParse::kMalformed;
  const std::uint16_t q_total = net::load_be16(q + 2);
  std::size_t l4_avail = q_len - q_ihl;
  if (q_total >= q_ihl) l4_avail = std::min<std::size_t>(l4_avail, q_total - q_ihl);
  if (l4_avail < kQuotedL4Min) return IcmpErrorParse::kMalformed;

  out.offset = ihl + kIcmpHeader;
  out.ihl = q_ihl;
  out.l4_avail = l4_avail;
  out.tuple = L4Tuple{};
  if (!read_l4(q[9], q + q_ihl, l4_avail, out.tuple)) return IcmpErrorParse::kNotTracked;
  out.tuple.src = net::load_be32(q + net::kIpv4SrcOffset);
  out.tuple.dst = net::load_be32(q + net::kIpv4DstOffset);
  return IcmpErrorParse::kOk;
}

void translate_icmp_error(std::uint8_t* ip, std::size_t ihl, const QuotedPacket& q,
                          Side side_outer, std::uint32_t new_addr,
                          std::uint16_t new_port) noexcept {
  std::uint8_t* quoted = ip + q.offset;
  // Everything the quoted rewrite may change lies in the first `span`
  // bytes of the quote; sum the difference into the ICMP checksum once.
  const std::size_t span = std::min(q.ihl + q.l4_avail, kMaxChangedQuote);
  std::uint8_t before[kMaxChangedQuote];
  std::memcpy(before, quoted, span);
  const Side quoted_side = side_outer == Side::kDestination ? Side::kSource : Side::kDestination;
  rewrite_side(quoted, q.ihl, q.l4_avail, q.tuple.proto, quoted_side, new_addr, new_port);
  std::uint8_t* c = ip + ihl + kIcmpChecksumOffset;
  // The quote starts 8 bytes into the ICMP message: an even offset.
  net::store_be16(c, net::checksum_update_bytes(net::load_be16(c), 0, before, quoted, span));
  rewrite_address(ip, side_outer, new_addr);
}

}  // namespace moongate::nat
