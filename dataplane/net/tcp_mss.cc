// TCP MSS clamping (see tcp_mss.h).
#include "dataplane/net/tcp_mss.h"

#include "dataplane/net/bytes.h"
#include "dataplane/net/checksum.h"
#include "dataplane/net/ip_protocol.h"
#include "dataplane/net/ipv4.h"
#include "dataplane/net/ipv6.h"

namespace moongate::net {
namespace {

constexpr std::size_t kTcpHeaderLen = 20;
constexpr std::size_t kTcpChecksumOffset = 16;
constexpr std::uint8_t kTcpFlagSyn = 0x02;
constexpr std::uint8_t kOptEol = 0;
constexpr std::uint8_t kOptNop = 1;
constexpr std::uint8_t kOptMss = 2;
constexpr std::size_t kOptMssLen = 4;
// 40 option bytes hold at most 10 four-byte MSS options.
constexpr std::size_t kMaxMssOptions = 10;

}  // namespace

const char* to_string(MssClampStatus s) noexcept {
  switch (s) {
    case MssClampStatus::kClamped: return "clamped";
    case MssClampStatus::kWithinLimit: return "within limit";
    case MssClampStatus::kNoMssOption: return "no MSS option";
    case MssClampStatus::kNotSyn: return "not SYN";
    case MssClampStatus::kNotTcp: return "not TCP";
    case MssClampStatus::kMalformed: return "malformed";
  }
  return "?";
}

MssClampStatus clamp_tcp_mss(std::uint8_t* tcp, std::size_t len, std::uint16_t max_mss) noexcept {
  if (len < kTcpHeaderLen) return MssClampStatus::kMalformed;
  if ((tcp[13] & kTcpFlagSyn) == 0) return MssClampStatus::kNotSyn;
  const std::size_t header_len = static_cast<std::size_t>(tcp[12] >> 4) * 4;
  if (header_len < kTcpHeaderLen || header_len > len) return MssClampStatus::kMalformed;

  // Pass 1: validate the whole list and note where the MSS options are.
  std::size_t mss_at[kMaxMssOptions];
  std::size_t n_mss = 0;
  std::size_t off = kTcpHeaderLen;
  while (off < header_len) {
    const std::uint8_t kind = tcp[off];
    if (kind == kOptEol) break;
    if (kind == kOptNop) {
      ++off;
      continue;
    }
    if (header_len - off < 2) return MssClampStatus::kMalformed;
    const std::size_t opt_len = tcp[off + 1];
    if (opt_len < 2 || opt_len > header_len - off) return MssClampStatus::kMalformed;
    if (kind == kOptMss) {
      if (opt_len != kOptMssLen) return MssClampStatus::kMalformed;
      mss_at[n_mss++] = off + 2;  // cannot overflow: 10 * 4 bytes fill the options
    }
    off += opt_len;
  }
  if (n_mss == 0) return MssClampStatus::kNoMssOption;

  // Pass 2: lower the values. An option may start at any byte, so the value
  // may sit at an odd offset: checksum_update_bytes handles the parity.
  bool clamped = false;
  std::uint16_t check = load_be16(tcp + kTcpChecksumOffset);
  for (std::size_t i = 0; i < n_mss; ++i) {
    std::uint8_t* value = tcp + mss_at[i];
    if (load_be16(value) <= max_mss) continue;
    std::uint8_t old_bytes[2] = {value[0], value[1]};
    store_be16(value, max_mss);
    check = checksum_update_bytes(check, mss_at[i], old_bytes, value, 2);
    clamped = true;
  }
  if (!clamped) return MssClampStatus::kWithinLimit;
  store_be16(tcp + kTcpChecksumOffset, check);
  return MssClampStatus::kClamped;
}

MssClampStatus clamp_tcp_mss_ipv4(std::uint8_t* ip, std::size_t len, std::uint16_t max_mss) noexcept {
  Ipv4Header h;
  if (parse_ipv4(ip, len, h) != Ipv4Status::kOk) return MssClampStatus::kMalformed;
  if (h.protocol != kIpProtoTcp || h.fragment_offset != 0) return MssClampStatus::kNotTcp;
  return clamp_tcp_mss(ip + h.header_len, h.payload_len(), max_mss);
}

MssClampStatus clamp_tcp_mss_ipv6(std::uint8_t* ip, std::size_t len, std::uint16_t max_mss) noexcept {
  Ipv6Header h;
  if (parse_ipv6(ip, len, h) != Ipv6Status::kOk) return MssClampStatus::kMalformed;
  if (h.protocol != kIpProtoTcp || h.fragment_offset != 0) return MssClampStatus::kNotTcp;
  return clamp_tcp_mss(ip + h.l4_offset, h.l4_len(), max_mss);
}

}  // namespace moongate::net
