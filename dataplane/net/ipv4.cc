// IPv4 header parsing, building and forwarding (see ipv4.h).
#include "dataplane/net/ipv4.h"

#include <cstring>

#include "dataplane/net/bytes.h"
#include "dataplane/net/checksum.h"

namespace moongate::net {

const char* to_string(Ipv4Status s) noexcept {
  switch (s) {
    case Ipv4Status::kOk: return "ok";
    case Ipv4Status::kTruncated: return "truncated";
    case Ipv4Status::kBadVersion: return "bad version";
    case Ipv4Status::kBadHeaderLength: return "bad header length";
    case Ipv4Status::kBadTotalLength: return "bad total length";
    case Ipv4Status::kBadChecksum: return "bad checksum";
  }
  return "?";
}

Ipv4Status parse_ipv4(const std::uint8_t* p, std::size_t len, Ipv4Header& out) noexcept {
  if (len < kIpv4HeaderLen) return Ipv4Status::kTruncated;
  if ((p[0] >> 4) != 4) return Ipv4Status::kBadVersion;
  const std::size_t header_len = std::size_t{p[0] & 0x0fu} * 4;
  if (header_len < kIpv4HeaderLen) return Ipv4Status::kBadHeaderLength;
  if (header_len > len) return Ipv4Status::kTruncated;
  const std::uint16_t total_len = load_be16(p + 2);
  if (total_len < header_len || total_len > len) return Ipv4Status::kBadTotalLength;
  if (internet_checksum(p, header_len) != 0) return Ipv4Status::kBadChecksum;

  const std::uint16_t frag = load_be16(p + 6);
  out.header_len = static_cast<std::uint8_t>(header_len);
  out.tos = p[1];
  out.total_len = total_len;
  out.id = load_be16(p + 4);
  out.dont_fragment = (frag & 0x4000) != 0;
  out.more_fragments = (frag & 0x2000) != 0;
  out.fragment_offset = static_cast<std::uint16_t>((frag & 0x1fff) * 8);
  out.ttl = p[kIpv4TtlOffset];
  out.protocol = p[9];
  out.src = load_ipv4_address(p + kIpv4SrcOffset);
  out.dst = load_ipv4_address(p + kIpv4DstOffset);
  return Ipv4Status::kOk;
}

std::size_t write_ipv4_header(std::uint8_t* out, std::size_t cap, const Ipv4Params& params) noexcept {
  if (cap < kIpv4HeaderLen || params.payload_len > 0xffff - kIpv4HeaderLen) return 0;
  out[0] = 0x45;
  out[1] = params.tos;
  store_be16(out + 2, static_cast<std::uint16_t>(kIpv4HeaderLen + params.payload_len));
  store_be16(out + 4, params.id);
  store_be16(out + 6, params.dont_fragment ? 0x4000 : 0);
  out[kIpv4TtlOffset] = params.ttl;
  out[9] = params.protocol;
  store_be16(out + kIpv4ChecksumOffset, 0);
  std::memcpy(out + kIpv4SrcOffset, params.src.data(), 4);
  std::memcpy(out + kIpv4DstOffset, params.dst.data(), 4);
  store_be16(out + kIpv4ChecksumOffset, internet_checksum(out, kIpv4HeaderLen));
  return kIpv4HeaderLen;
}

}  // namespace moongate::net
