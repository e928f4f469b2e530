// The rte_acl classifier; acl.h has the field layout.
#include "policy/acl.h"

#include <rte_acl.h>
#include <rte_byteorder.h>

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

std::atomic<unsigned> g_context_serial{0};  // rte_acl_create() shares contexts by name

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

std::unique_ptr<AclClassifier> AclClassifier::build(const CompiledPolicy& policy, int socket,
                                                    std::string& error) {
  std::unique_ptr<AclClassifier> c(new AclClassifier());
  c->flat_ = policy.flat.size();
  if (policy.flat.empty()) return c;
  if (policy.flat.size() >= static_cast<std::size_t>(RTE_ACL_MAX_PRIORITY)) {
    error = "policy: too many flat rules for rte_acl";
    return nullptr;
  }
  const std::string name = "mg_policy_" + std::to_string(g_context_serial.fetch_add(1));
  rte_acl_param param{};
  param.name = name.c_str();
  param.socket_id = socket;
  param.rule_size = RTE_ACL_RULE_SZ(kFieldCount);
  param.max_rule_num = static_cast<std::uint32_t>(policy.flat.size());
  c->ctx_ = rte_acl_create(&param);
  if (c->ctx_ == nullptr) {
    error = "policy: rte_acl_create failed (" + std::string(rte_strerror(rte_errno)) + ")";
    return nullptr;
  }
  std::vector<PolicyAclRule> rules(policy.flat.size());
  for (std::size_t i = 0; i < policy.flat.size(); ++i) {
    const FlatRule& f = policy.flat[i];
    PolicyAclRule& r = rules[i];
    std::memset(&r, 0, sizeof r);
    r.data.category_mask = 1;
    // Lower rule index = higher priority: rte_acl returns the highest.
    r.data.priority = RTE_ACL_MAX_PRIORITY - static_cast<std::int32_t>(f.rule);
    r.data.userdata = f.rule + 1;
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
  int rc = rte_acl_add_rules(c->ctx_, reinterpret_cast<const rte_acl_rule*>(rules.data()),
                             static_cast<std::uint32_t>(rules.size()));
  if (rc == 0) {
    const rte_acl_config cfg = make_config();
    rc = rte_acl_build(c->ctx_, &cfg);
  }
  if (rc != 0) {
    error = "policy: rte_acl rejected the rules (" + std::string(rte_strerror(-rc)) + ")";
    return nullptr;
  }
  return c;
}

AclClassifier::~AclClassifier() {
  if (ctx_ != nullptr) rte_acl_free(ctx_);
}

void AclClassifier::classify(const AclInput* const* in, std::size_t n, int* rule) const noexcept {
  if (ctx_ == nullptr) {
    for (std::size_t i = 0; i < n; ++i) rule[i] = -1;
    return;
  }
  std::uint32_t results[kClassifyBurst];
  const std::uint8_t* data[kClassifyBurst];
  for (std::size_t i = 0; i < n; ++i) data[i] = reinterpret_cast<const std::uint8_t*>(in[i]);
  rte_acl_classify(ctx_, data, results, static_cast<std::uint32_t>(n), 1);
  for (std::size_t i = 0; i < n; ++i) rule[i] = static_cast<int>(results[i]) - 1;
}

}  // namespace moongate::policy
