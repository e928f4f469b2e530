// Snapshot encoding and checked decoding; snapshot.h has the layout.
#include "netmap/snapshot.h"

#include <cstring>
#include <limits>

#include "crypto/secret.h"

namespace moongate::netmap {
namespace {

void put16(std::uint8_t* p, std::uint16_t v) noexcept {
  p[0] = static_cast<std::uint8_t>(v);
  p[1] = static_cast<std::uint8_t>(v >> 8);
}
void put32(std::uint8_t* p, std::uint32_t v) noexcept {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<std::uint8_t>(v >> (8 * i));
}
void put64(std::uint8_t* p, std::uint64_t v) noexcept {
  for (int i = 0; i < 8; ++i) p[i] = static_cast<std::uint8_t>(v >> (8 * i));
}
std::uint16_t get16(const std::uint8_t* p) noexcept {
  return static_cast<std::uint16_t>(p[0] | (p[1] << 8));
}
std::uint32_t get32(const std::uint8_t* p) noexcept {
  std::uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}
std::uint64_t get64(const std::uint8_t* p) noexcept {
  std::uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

// FNV-1a, 32-bit, over the whole snapshot except the checksum field
// (bytes 36..39): catches corruption anywhere (the segment's sequence
// numbers catch concurrent writes; this catches bugs and bit rot).
std::uint32_t checksum(const std::uint8_t* p, std::size_t n) noexcept {
  std::uint32_t h = 2166136261u;
  for (std::size_t i = 0; i < n; ++i)
    if (i < 36 || i >= 40) h = (h ^ p[i]) * 16777619u;
  return h;
}

enum PeerFlags : std::uint8_t { kHasPsk = 1, kHasEndpoint = 2, kExitNode = 4 };
enum HeaderFlags : std::uint16_t { kHasKey = 1, kHasPolicy = 2 };

// Bytes of a peer's labels (snapshot.h), or 0 when one is out of bounds
// (an empty peer still takes 4: two zero counts).
std::size_t label_bytes(const config::Peer& p) noexcept {
  if (p.name.size() > kSnapshotMaxLabel || p.tags.size() > kSnapshotMaxTags) return 0;
  std::size_t n = 2 + p.name.size() + 2;
  for (const auto& t : p.tags) {
    if (t.size() > kSnapshotMaxLabel) return 0;
    n += 2 + t.size();
  }
  return n;
}

std::size_t label_total(const Netmap& n) noexcept {
  std::size_t c = 0;
  for (const auto& p : n.peers) {
    const std::size_t b = label_bytes(p);
    // Out of bounds: counted as if within them, so that encoded_size stays
    // a pure function; encode() refuses the netmap.
    c += b != 0 ? b : 4;
  }
  return c;
}

std::uint8_t* put_label(std::uint8_t* p, const std::string& s) noexcept {
  put16(p, static_cast<std::uint16_t>(s.size()));
  std::memcpy(p + 2, s.data(), s.size());
  return p + 2 + s.size();
}

bool has_control_byte(const std::string& s) noexcept {
  for (unsigned char c : s)
    if (c < 0x20 || c == 0x7f) return true;
  return false;
}

// Reads one label of [p, end) of at most `max` bytes; nullptr when it does
// not fit or is not text a configuration could hold (no control bytes).
const std::uint8_t* get_label(const std::uint8_t* p, const std::uint8_t* end, std::string& s,
                              std::size_t max = kSnapshotMaxLabel) {
  if (end - p < 2) return nullptr;
  const std::size_t len = get16(p);
  p += 2;
  if (len > max || static_cast<std::size_t>(end - p) < len) return nullptr;
  for (std::size_t i = 0; i < len; ++i)
    if (p[i] < 0x20 || p[i] == 0x7f) return nullptr;
  s.assign(reinterpret_cast<const char*>(p), len);
  return p + len;
}

// --- the policy section (snapshot.h) ---

// "" when the policy fits the section's bounds, else what does not.
std::string policy_unencodable(const policy::PolicySpec& pol) {
  auto text = [](const std::string& s, const std::string& where) -> std::string {
    if (s.size() > kSnapshotMaxPolicyText)
      return where + ": longer than " + std::to_string(kSnapshotMaxPolicyText) + " characters";
    if (has_control_byte(s)) return where + ": a control character";
    return {};
  };
  auto list = [](std::size_t n, std::size_t max, const std::string& where) -> std::string {
    if (n > max) return where + ": " + std::to_string(n) + " entries, the snapshot holds " + std::to_string(max);
    return {};
  };
  std::string e = list(pol.tags.size(), kSnapshotMaxPolicyList, "policy.tags");
  for (std::size_t i = 0; e.empty() && i < pol.tags.size(); ++i)
    e = text(pol.tags[i], "policy.tags[" + std::to_string(i) + "]");
  if (e.empty()) e = list(pol.groups.size(), kSnapshotMaxPolicyList, "policy.groups");
  for (auto g = pol.groups.begin(); e.empty() && g != pol.groups.end(); ++g) {
    e = text(g->first, "policy.groups." + g->first.substr(0, 64));
    if (e.empty()) e = list(g->second.size(), kSnapshotMaxPolicyList, "policy.groups." + g->first);
    for (std::size_t i = 0; e.empty() && i < g->second.size(); ++i)
      e = text(g->second[i], "policy.groups." + g->first + "[" + std::to_string(i) + "]");
  }
  if (e.empty()) e = list(pol.rules.size(), kSnapshotMaxRules, "policy.rules");
  for (std::size_t r = 0; e.empty() && r < pol.rules.size(); ++r) {
    const policy::RuleSpec& rule = pol.rules[r];
    const std::string at = "policy.rules[" + std::to_string(r) + "]";
    e = text(rule.proto, at + ".proto");
    if (e.empty()) e = list(rule.src.size(), kSnapshotMaxPolicyList, at + ".src");
    for (std::size_t i = 0; e.empty() && i < rule.src.size(); ++i)
      e = text(rule.src[i], at + ".src[" + std::to_string(i) + "]");
    if (e.empty()) e = list(rule.dst.size(), kSnapshotMaxPolicyList, at + ".dst");
    for (std::size_t i = 0; e.empty() && i < rule.dst.size(); ++i)
      e = text(rule.dst[i], at + ".dst[" + std::to_string(i) + "]");
  }
  return e;
}

std::size_t texts_size(const std::vector<std::string>& v) noexcept {
  std::size_t n = 2;
  for (const auto& s : v) n += 2 + s.size();
  return n;
}

std::size_t policy_size(const std::optional<policy::PolicySpec>& pol) noexcept {
  if (!pol) return 0;
  std::size_t n = texts_size(pol->tags) + 2;
  for (const auto& [name, members] : pol->groups) n += 2 + name.size() + texts_size(members);
  n += 2;
  for (const auto& r : pol->rules) n += 2 + r.proto.size() + texts_size(r.src) + texts_size(r.dst);
  return n;
}

std::uint8_t* put_texts(std::uint8_t* p, const std::vector<std::string>& v) noexcept {
  put16(p, static_cast<std::uint16_t>(v.size()));
  p += 2;
  for (const auto& s : v) p = put_label(p, s);
  return p;
}

std::uint8_t* put_policy(std::uint8_t* p, const policy::PolicySpec& pol) noexcept {
  p = put_texts(p, pol.tags);
  put16(p, static_cast<std::uint16_t>(pol.groups.size()));
  p += 2;
  for (const auto& [name, members] : pol.groups) p = put_texts(put_label(p, name), members);
  put16(p, static_cast<std::uint16_t>(pol.rules.size()));
  p += 2;
  for (const auto& r : pol.rules) p = put_texts(put_texts(put_label(p, r.proto), r.src), r.dst);
  return p;
}

// Reads a list's count: at most `max`, and no more items than the bytes
// left could hold (each takes at least 2), so a lying count allocates
// nothing. nullptr when it does not fit.
const std::uint8_t* get_count(const std::uint8_t* p, const std::uint8_t* end, std::size_t max, std::size_t& n) {
  if (end - p < 2) return nullptr;
  n = get16(p);
  p += 2;
  if (n > max || n * 2 > static_cast<std::size_t>(end - p)) return nullptr;
  return p;
}

const std::uint8_t* get_texts(const std::uint8_t* p, const std::uint8_t* end, std::vector<std::string>& v) {
  std::size_t n = 0;
  if ((p = get_count(p, end, kSnapshotMaxPolicyList, n)) == nullptr) return nullptr;
  v.resize(n);
  for (auto& s : v)
    if ((p = get_label(p, end, s, kSnapshotMaxPolicyText)) == nullptr) return nullptr;
  return p;
}

// "" or why the policy section [p, end) is not one policy, exactly.
std::string get_policy(const std::uint8_t* p, const std::uint8_t* const end, policy::PolicySpec& pol) {
  if ((p = get_texts(p, end, pol.tags)) == nullptr) return "policy tags malformed";
  std::size_t groups = 0;
  if ((p = get_count(p, end, kSnapshotMaxPolicyList, groups)) == nullptr) return "policy groups malformed";
  for (std::size_t g = 0; g < groups; ++g) {
    std::string name;
    std::vector<std::string> members;
    if ((p = get_label(p, end, name, kSnapshotMaxPolicyText)) == nullptr ||
        (p = get_texts(p, end, members)) == nullptr)
      return "policy group malformed";
    if (!pol.groups.emplace(std::move(name), std::move(members)).second) return "policy group named twice";
  }
  std::size_t rules = 0;
  if ((p = get_count(p, end, kSnapshotMaxRules, rules)) == nullptr) return "policy rules malformed";
  pol.rules.resize(rules);
  for (auto& r : pol.rules)
    if ((p = get_label(p, end, r.proto, kSnapshotMaxPolicyText)) == nullptr ||
        (p = get_texts(p, end, r.src)) == nullptr || (p = get_texts(p, end, r.dst)) == nullptr)
      return "policy rule malformed";
  if (p != end) return "policy section longer than its policy";
  return {};
}

void put_prefix(std::uint8_t* p, const config::IpPrefix& x) noexcept {
  p[0] = x.addr.family;
  p[1] = x.len;
  std::memcpy(p + 4, x.addr.bytes, 16);
}

// "" or why the prefix record is not sound.
std::string get_prefix(const std::uint8_t* p, config::IpPrefix& x) {
  x.addr.family = p[0];
  x.len = p[1];
  std::memcpy(x.addr.bytes, p + 4, 16);
  if (x.addr.family != 4 && x.addr.family != 6) return "prefix with address family " + std::to_string(p[0]);
  if (x.len > x.addr.bits()) return "prefix length " + std::to_string(x.len) + " too long";
  if (x.addr.family == 4)
    for (int i = 4; i < 16; ++i)
      if (x.addr.bytes[i] != 0) return "IPv4 prefix with bytes past the address";
  return {};
}

std::size_t prefix_count(const Netmap& n) noexcept {
  std::size_t c = 0;
  for (const auto& p : n.peers) c += p.allowed_ips.size();
  return c;
}

}  // namespace

std::size_t encoded_size(const Netmap& n) noexcept {
  return kSnapshotHeaderLen + 32 + n.peers.size() * kSnapshotPeerLen + prefix_count(n) * kSnapshotPrefixLen +
         n.routes.size() * kSnapshotRouteLen + label_total(n) + policy_size(n.policy);
}

std::size_t encode(const Netmap& n, std::span<std::uint8_t> out) noexcept {
  const std::size_t size = encoded_size(n);
  if (out.size() < size || size > std::numeric_limits<std::uint32_t>::max()) return 0;
  for (const auto& peer : n.peers)
    if (label_bytes(peer) == 0) return 0;
  if (n.policy && !policy_unencodable(*n.policy).empty()) return 0;
  std::uint8_t* const base = out.data();
  std::memset(base, 0, size);
  std::uint8_t* p = base + kSnapshotHeaderLen;
  if (n.has_private_key) std::memcpy(p, n.private_key.data(), 32);
  p += 32;
  std::uint8_t* prefixes = p + n.peers.size() * kSnapshotPeerLen;
  std::uint32_t next_prefix = 0;
  std::uint8_t* const labels = prefixes + prefix_count(n) * kSnapshotPrefixLen + n.routes.size() * kSnapshotRouteLen;
  std::uint8_t* label = labels;
  for (const auto& peer : n.peers) {
    std::memcpy(p, peer.public_key.data(), 32);
    std::uint8_t flags = 0;
    if (peer.preshared_key) {
      std::memcpy(p + 32, peer.preshared_key->data(), 32);
      flags |= kHasPsk;
    }
    if (peer.endpoint) {
      flags |= kHasEndpoint;
      p[65] = peer.endpoint->addr.family;
      put16(p + 66, peer.endpoint->port);
      std::memcpy(p + 68, peer.endpoint->addr.bytes, 16);
    }
    if (peer.exit_node) flags |= kExitNode;
    p[64] = flags;
    put16(p + 84, peer.persistent_keepalive);
    put32(p + 88, next_prefix);
    put32(p + 92, static_cast<std::uint32_t>(peer.allowed_ips.size()));
    for (const auto& a : peer.allowed_ips) {
      put_prefix(prefixes + std::size_t{next_prefix} * kSnapshotPrefixLen, a);
      ++next_prefix;
    }
    std::uint8_t* const first_label = label;
    label = put_label(label, peer.name);
    put16(label, static_cast<std::uint16_t>(peer.tags.size()));
    label += 2;
    for (const auto& t : peer.tags) label = put_label(label, t);
    put32(p + 96, static_cast<std::uint32_t>(first_label - labels));
    put32(p + 100, static_cast<std::uint32_t>(label - first_label));
    p += kSnapshotPeerLen;
  }
  p = prefixes + std::size_t{next_prefix} * kSnapshotPrefixLen;
  for (const auto& r : n.routes) {
    put_prefix(p, r.prefix);
    p[20] = r.via.family;
    put16(p + 22, static_cast<std::uint16_t>(r.port_index));
    std::memcpy(p + 24, r.via.bytes, 16);
    p += kSnapshotRouteLen;
  }
  std::uint8_t* const policy_end = n.policy ? put_policy(label, *n.policy) : label;
  put32(base, kSnapshotMagic);
  put32(base + 4, kSnapshotFormat);
  put64(base + 8, n.generation);
  put32(base + 16, static_cast<std::uint32_t>(size));
  put32(base + 20, static_cast<std::uint32_t>(n.peers.size()));
  put32(base + 24, next_prefix);
  put32(base + 28, static_cast<std::uint32_t>(n.routes.size()));
  put16(base + 32, n.listen_port);
  put16(base + 34, static_cast<std::uint16_t>((n.has_private_key ? kHasKey : 0) | (n.policy ? kHasPolicy : 0)));
  put32(base + 40, static_cast<std::uint32_t>(label - labels));
  put32(base + 44, static_cast<std::uint32_t>(policy_end - label));
  put32(base + 36, checksum(base, size));
  return size;
}

std::string encodable(const Netmap& n) {
  for (const auto& p : n.peers)
    if (label_bytes(p) == 0)
      return "peer " + (p.name.empty() ? std::string("without a name") : "'" + p.name.substr(0, 64) + "'") +
             ": name, tag or tag count beyond the snapshot's bounds (" + std::to_string(kSnapshotMaxLabel) +
             " characters, " + std::to_string(kSnapshotMaxTags) + " tags)";
  if (n.policy) return policy_unencodable(*n.policy);
  return {};
}

std::uint64_t peek_generation(std::span<const std::uint8_t> in) noexcept {
  if (in.size() < kSnapshotHeaderLen || get32(in.data()) != kSnapshotMagic) return 0;
  return get64(in.data() + 8);
}

std::string decode(std::span<const std::uint8_t> in, Netmap& out) {
  const std::uint8_t* const base = in.data();
  if (in.size() < kSnapshotHeaderLen + 32) return "snapshot shorter than its header";
  if (get32(base) != kSnapshotMagic) return "not a netmap snapshot (bad magic)";
  if (get32(base + 4) != kSnapshotFormat)
    return "snapshot format " + std::to_string(get32(base + 4)) + ", this program reads " +
           std::to_string(kSnapshotFormat);
  const std::uint64_t size = get32(base + 16);
  const std::uint64_t peers = get32(base + 20), prefixes = get32(base + 24), routes = get32(base + 28);
  const std::uint64_t label_len = get32(base + 40), policy_len = get32(base + 44);
  const std::uint64_t want = kSnapshotHeaderLen + 32 + peers * kSnapshotPeerLen + prefixes * kSnapshotPrefixLen +
                             routes * kSnapshotRouteLen + label_len + policy_len;
  if (size != want) return "snapshot size " + std::to_string(size) + " does not match its counts";
  if (size > in.size()) return "snapshot of " + std::to_string(size) + " bytes in a buffer of " + std::to_string(in.size());
  if (get32(base + 36) != checksum(base, size)) return "snapshot checksum mismatch";

  Netmap n;
  n.generation = get64(base + 8);
  n.listen_port = get16(base + 32);
  const std::uint16_t header_flags = get16(base + 34);
  if ((header_flags & ~(kHasKey | kHasPolicy)) != 0) return "snapshot with unknown flags";
  n.has_private_key = (header_flags & kHasKey) != 0;
  if ((header_flags & kHasPolicy) == 0 && policy_len != 0) return "policy bytes without a policy";
  const std::uint8_t* p = base + kSnapshotHeaderLen;
  if (n.has_private_key) n.private_key.assign(std::span<const std::uint8_t, 32>(p, 32));
  p += 32;
  const std::uint8_t* prefix_base = p + peers * kSnapshotPeerLen;
  const std::uint8_t* const label_base = prefix_base + prefixes * kSnapshotPrefixLen + routes * kSnapshotRouteLen;
  n.peers.resize(peers);
  std::uint64_t expected_first = 0, expected_label = 0;
  for (auto& peer : n.peers) {
    std::memcpy(peer.public_key.data(), p, 32);
    const std::uint8_t flags = p[64];
    if ((flags & ~(kHasPsk | kHasEndpoint | kExitNode)) != 0) return "peer with unknown flags";
    peer.exit_node = (flags & kExitNode) != 0;
    if (flags & kHasPsk) peer.preshared_key.emplace(std::span<const std::uint8_t, 32>(p + 32, 32));
    if (flags & kHasEndpoint) {
      config::Endpoint e;
      e.addr.family = p[65];
      e.port = get16(p + 66);
      std::memcpy(e.addr.bytes, p + 68, 16);
      if (e.addr.family != 4 && e.addr.family != 6) return "peer endpoint with address family " + std::to_string(p[65]);
      if (e.port == 0) return "peer endpoint with port 0";
      peer.endpoint = e;
    }
    peer.persistent_keepalive = get16(p + 84);
    const std::uint64_t first = get32(p + 88), count = get32(p + 92);
    // Prefixes are laid out peer after peer: anything else is corruption.
    if (first != expected_first || first + count > prefixes) return "peer prefix range out of bounds";
    expected_first += count;
    peer.allowed_ips.resize(count);
    for (std::uint64_t i = 0; i < count; ++i)
      if (std::string err = get_prefix(prefix_base + (first + i) * kSnapshotPrefixLen, peer.allowed_ips[i]);
          !err.empty())
        return err;
    // Labels too are laid out peer after peer, and a peer's must be
    // exactly its name, its tag count and its tags.
    const std::uint64_t label_at = get32(p + 96), label_n = get32(p + 100);
    if (label_at != expected_label || label_n > label_len - label_at) return "peer labels out of bounds";
    expected_label += label_n;
    const std::uint8_t* l = label_base + label_at;
    const std::uint8_t* const l_end = l + label_n;
    if ((l = get_label(l, l_end, peer.name)) == nullptr || l_end - l < 2) return "peer name malformed";
    const std::size_t tags = get16(l);
    l += 2;
    if (tags > kSnapshotMaxTags) return "peer with too many tags";
    peer.tags.resize(tags);
    for (auto& t : peer.tags)
      if ((l = get_label(l, l_end, t)) == nullptr) return "peer tag malformed";
    if (l != l_end) return "peer labels longer than its name and tags";
    p += kSnapshotPeerLen;
  }
  if (expected_first != prefixes) return "prefixes not owned by any peer";
  if (expected_label != label_len) return "labels not owned by any peer";
  p = prefix_base + prefixes * kSnapshotPrefixLen;
  n.routes.resize(routes);
  for (auto& r : n.routes) {
    if (std::string err = get_prefix(p, r.prefix); !err.empty()) return "route: " + err;
    r.via.family = p[20];
    if (r.via.family != r.prefix.addr.family) return "route next hop of another family";
    r.port_index = get16(p + 22);
    std::memcpy(r.via.bytes, p + 24, 16);
    p += kSnapshotRouteLen;
  }
  if (header_flags & kHasPolicy) {
    const std::uint8_t* const policy_base = label_base + label_len;
    if (std::string err = get_policy(policy_base, policy_base + policy_len, n.policy.emplace()); !err.empty())
      return err;
  }
  out = std::move(n);
  return {};
}

}  // namespace moongate::netmap
