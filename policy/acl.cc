// The rte_acl classifier; acl.h has the field layout.
#include "policy/acl.h"

#include <rte_acl.h>
#include <rte_byteorder.h>

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstring>
#include <vector>

namespace moongate::policy {

namespace {

enum Field : std::uint8_t { kProto, kPeer, kSrc, kDst, kSport, kDport, kFieldCount };
RTE_ACL_RULE_DEF(PolicyAclRule, kFieldCount);

rte_acl_config make_config() {
  rte_acl_config c{};
  c.num_categories = 1;
  c.num_fields = kFieldCount;
  auto def = [&](Field f, std::uint8_t type, std::uint8_t size, std::uint8_t input,
                 std::uint32_t offset) {
    c.defs[f] = {type, size, f, input, offset};
  };
  def(kProto, RTE_ACL_FIELD_TYPE_BITMASK, 1, 0, offsetof(AclInput, proto));
  def(kPeer, RTE_ACL_FIELD_TYPE_BITMASK, 4, 1, offsetof(AclInput, peer_be));
  def(kSrc, RTE_ACL_FIELD_TYPE_MASK, 4, 2, offsetof(AclInput, src_be));
  def(kDst, RTE_ACL_FIELD_TYPE_MASK, 4, 3, offsetof(AclInput, dst_be));
  // The two ports share one 4-byte input word.
  def(kSport, RTE_ACL_FIELD_TYPE_RANGE, 2, 4, offsetof(AclInput, sport_be));
  def(kDport, RTE_ACL_FIELD_TYPE_RANGE, 2, 4, offsetof(AclInput, dport_be));
  return c;
}

enum Field6 : std::uint8_t {
  k6Proto, k6Peer, k6Src0, k6Src1, k6Src2, k6Src3, k6Dst0, k6Dst1, k6Dst2, k6Dst3, k6Sport, k6Dport,
  kField6Count
};
RTE_ACL_RULE_DEF(PolicyAclRule6, kField6Count);

rte_acl_config make_config6() {
  rte_acl_config c{};
  c.num_categories = 1;
  c.num_fields = kField6Count;
  auto def = [&](std::uint8_t f, std::uint8_t type, std::uint8_t size, std::uint8_t input,
                 std::uint32_t offset) {
    c.defs[f] = {type, size, f, input, offset};
  };
  def(k6Proto, RTE_ACL_FIELD_TYPE_BITMASK, 1, 0, offsetof(AclInput6, proto));
  def(k6Peer, RTE_ACL_FIELD_TYPE_BITMASK, 4, 1, offsetof(AclInput6, peer_be));
  for (std::uint8_t w = 0; w < 4; ++w) {
    def(static_cast<std::uint8_t>(k6Src0 + w), RTE_ACL_FIELD_TYPE_MASK, 4, static_cast<std::uint8_t>(2 + w),
        static_cast<std::uint32_t>(offsetof(AclInput6, src_be) + 4 * w));
    def(static_cast<std::uint8_t>(k6Dst0 + w), RTE_ACL_FIELD_TYPE_MASK, 4, static_cast<std::uint8_t>(6 + w),
        static_cast<std::uint32_t>(offsetof(AclInput6, dst_be) + 4 * w));
  }
  def(k6Sport, RTE_ACL_FIELD_TYPE_RANGE, 2, 10, offsetof(AclInput6, sport_be));
  def(k6Dport, RTE_ACL_FIELD_TYPE_RANGE, 2, 10, offsetof(AclInput6, dport_be));
  return c;
}

// The bits of a prefix of `len` that fall into 32-bit word `w`.
std::uint32_t word_len(std::uint8_t len, int w) noexcept {
  return static_cast<std::uint32_t>(std::clamp(static_cast<int>(len) - 32 * w, 0, 32));
}

std::atomic<unsigned> g_context_serial{0};  // rte_acl_create() shares contexts by name

// Creates a context for `rules` (already laid out), adds and builds them.
// nullptr and `error` on failure.
template <class AclRule>
rte_acl_ctx* make_context(const std::vector<AclRule>& rules, std::uint32_t fields,
                          const rte_acl_config& cfg, int socket, std::string& error) {
  if (rules.size() >= static_cast<std::size_t>(RTE_ACL_MAX_PRIORITY)) {
    error = "policy: too many flat rules for rte_acl";
    return nullptr;
  }
  const std::string name = "mg_policy_" + std::to_string(g_context_serial.fetch_add(1));
  rte_acl_param param{};
  param.name = name.c_str();
  param.socket_id = socket;
  param.rule_size = RTE_ACL_RULE_SZ(fields);
  param.max_rule_num = static_cast<std::uint32_t>(rules.size());
  rte_acl_ctx* ctx = rte_acl_create(&param);
  if (ctx == nullptr) {
    error = "policy: rte_acl_create failed (" + std::string(rte_strerror(rte_errno)) + ")";
    return nullptr;
  }
  int rc = rte_acl_add_rules(ctx, reinterpret_cast<const rte_acl_rule*>(rules.data()),
                             static_cast<std::uint32_t>(rules.size()));
  if (rc == 0) rc = rte_acl_build(ctx, &cfg);
  if (rc != 0) {
    error = "policy: rte_acl rejected the rules (" + std::string(rte_strerror(-rc)) + ")";
    rte_acl_free(ctx);
    return nullptr;
  }
  return ctx;
}

template <class Input>
void classify_with(const rte_acl_ctx* ctx, const Input* const* in, std::size_t n, int* rule) noexcept {
  if (ctx == nullptr) {
    for (std::size_t i = 0; i < n; ++i) rule[i] = -1;
    return;
  }
  std::uint32_t results[kClassifyBurst];
  const std::uint8_t* data[kClassifyBurst];
  for (std::size_t i = 0; i < n; ++i) data[i] = reinterpret_cast<const std::uint8_t*>(in[i]);
  rte_acl_classify(ctx, data, results, static_cast<std::uint32_t>(n), 1);
  for (std::size_t i = 0; i < n; ++i) rule[i] = static_cast<int>(results[i]) - 1;
}

}  // namespace

AclInput make_acl_input(const Packet& p) noexcept {
  AclInput in;
  in.proto = p.proto;
  in.peer_be = rte_cpu_to_be_32(p.peer);
  in.src_be = rte_cpu_to_be_32(p.src);
  in.dst_be = rte_cpu_to_be_32(p.dst);
  in.sport_be = rte_cpu_to_be_16(p.sport);
  in.dport_be = rte_cpu_to_be_16(p.dport);
  return in;
}

AclInput6 make_acl_input6(const Packet6& p) noexcept {
  AclInput6 in;
  in.proto = p.proto;
  in.peer_be = rte_cpu_to_be_32(p.peer);
  for (int w = 0; w < 4; ++w) {
    in.src_be[w] = rte_cpu_to_be_32(p.src[w]);
    in.dst_be[w] = rte_cpu_to_be_32(p.dst[w]);
  }
  in.sport_be = rte_cpu_to_be_16(p.sport);
  in.dport_be = rte_cpu_to_be_16(p.dport);
  return in;
}

std::unique_ptr<AclClassifier> AclClassifier::build(const CompiledPolicy& policy, int socket,
                                                    std::string& error) {
  std::unique_ptr<AclClassifier> c(new AclClassifier());
  c->flat_ = policy.flat.size();
  c->flat6_ = policy.flat6.size();
  // Lower rule index = higher priority: rte_acl returns the highest.
  auto common = [](rte_acl_rule_data& d, std::uint32_t rule) {
    d.category_mask = 1;
    d.priority = RTE_ACL_MAX_PRIORITY - static_cast<std::int32_t>(rule);
    d.userdata = rule + 1;
  };
  if (!policy.flat.empty()) {
    std::vector<PolicyAclRule> rules(policy.flat.size());
    for (std::size_t i = 0; i < policy.flat.size(); ++i) {
      const FlatRule& f = policy.flat[i];
      PolicyAclRule& r = rules[i];
      std::memset(&r, 0, sizeof r);
      common(r.data, f.rule);
      r.field[kProto].value.u8 = f.proto;
      r.field[kProto].mask_range.u8 = f.proto == kProtoAny ? 0 : 0xff;
      r.field[kPeer].value.u32 = f.peer;
      r.field[kPeer].mask_range.u32 = f.peer == 0 ? 0 : 0xffffffffu;
      r.field[kSrc].value.u32 = f.src;
      r.field[kSrc].mask_range.u32 = f.src_len;
      r.field[kDst].value.u32 = f.dst;
      r.field[kDst].mask_range.u32 = f.dst_len;
      r.field[kSport].value.u16 = 0;
      r.field[kSport].mask_range.u16 = 65535;
      r.field[kDport].value.u16 = f.dport_lo;
      r.field[kDport].mask_range.u16 = f.dport_hi;
    }
    c->ctx_ = make_context(rules, kFieldCount, make_config(), socket, error);
    if (c->ctx_ == nullptr) return nullptr;
  }
  if (!policy.flat6.empty()) {
    std::vector<PolicyAclRule6> rules(policy.flat6.size());
    for (std::size_t i = 0; i < policy.flat6.size(); ++i) {
      const FlatRule6& f = policy.flat6[i];
      PolicyAclRule6& r = rules[i];
      std::memset(&r, 0, sizeof r);
      common(r.data, f.rule);
      r.field[k6Proto].value.u8 = f.proto;
      r.field[k6Proto].mask_range.u8 = f.proto == kProtoAny ? 0 : 0xff;
      r.field[k6Peer].value.u32 = f.peer;
      r.field[k6Peer].mask_range.u32 = f.peer == 0 ? 0 : 0xffffffffu;
      for (int w = 0; w < 4; ++w) {
        r.field[k6Src0 + w].value.u32 = f.src[w];
        r.field[k6Src0 + w].mask_range.u32 = word_len(f.src_len, w);
        r.field[k6Dst0 + w].value.u32 = f.dst[w];
        r.field[k6Dst0 + w].mask_range.u32 = word_len(f.dst_len, w);
      }
      r.field[k6Sport].value.u16 = 0;
      r.field[k6Sport].mask_range.u16 = 65535;
      r.field[k6Dport].value.u16 = f.dport_lo;
      r.field[k6Dport].mask_range.u16 = f.dport_hi;
    }
    c->ctx6_ = make_context(rules, kField6Count, make_config6(), socket, error);
    if (c->ctx6_ == nullptr) return nullptr;  // ~AclClassifier frees ctx_
  }
  return c;
}

AclClassifier::~AclClassifier() {
  if (ctx_ != nullptr) rte_acl_free(ctx_);
  if (ctx6_ != nullptr) rte_acl_free(ctx6_);
}

void AclClassifier::classify(const AclInput* const* in, std::size_t n, int* rule) const noexcept {
  classify_with(ctx_, in, n, rule);
}

void AclClassifier::classify6(const AclInput6* const* in, std::size_t n, int* rule) const noexcept {
  classify_with(ctx6_, in, n, rule);
}

}  // namespace moongate::policy
