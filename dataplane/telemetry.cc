// Telemetry callbacks; see telemetry.h.
#include "dataplane/telemetry.h"

#include <rte_telemetry.h>

#include <atomic>
#include <cstdio>
#include <string>

#include "dataplane/gateway.h"

namespace moongate::dp {
namespace {

std::atomic<const Gateway*> g_gateway{nullptr};

// The lcore writes these without atomics; a relaxed atomic load keeps the
// read itself whole.
std::uint64_t read(const std::uint64_t& v) { return __atomic_load_n(&v, __ATOMIC_RELAXED); }

int stats_cb(const char*, const char*, rte_tel_data* d) {
  const Gateway* gw = g_gateway.load();
  if (gw == nullptr) return -1;
  const LcoreCounters c = gw->totals();
  rte_tel_data_start_dict(d);
  rte_tel_data_add_dict_u64(d, "decrypted", read(c.decrypted));
  rte_tel_data_add_dict_u64(d, "encrypted", read(c.encrypted));
  rte_tel_data_add_dict_u64(d, "handshakes_in", read(c.handshakes_in));
  rte_tel_data_add_dict_u64(d, "arp_replies", read(c.arp_replies));
  rte_tel_data_add_dict_u64(d, "icmp_echo_replies", read(c.icmp_echo_replies));
  rte_tel_data_add_dict_u64(d, "icmp_errors", read(c.icmp_errors));
  rte_tel_data_add_dict_u64(d, "icmp_errors_limited", read(c.icmp_errors_limited));
  rte_tel_data_add_dict_u64(d, "handoffs", read(c.handoffs_out));
  rte_tel_data_add_dict_u64(d, "to_kernel", read(c.to_kernel));
  rte_tel_data_add_dict_u64(d, "moon_in", read(c.moon_in));    // to the moon's thread (moon_host.h)
  rte_tel_data_add_dict_u64(d, "moon_out", read(c.moon_out));  // its packets sent out of the wan port
  rte_tel_data_add_dict_u64(d, "read_ahead", read(c.read_ahead));  // bursts read ahead: full load
  rte_tel_data_add_dict_u64(d, "workers", gw->worker_count());
  for (const Port& p : gw->ports()) {
    const std::string rx = "rx_" + p.name;
    const std::string tx = "tx_" + p.name;
    rte_tel_data_add_dict_u64(d, rx.c_str(), read(c.rx_packets[p.id % 8]));
    rte_tel_data_add_dict_u64(d, tx.c_str(), read(c.tx_packets[p.id % 8]));
  }
  for (std::size_t i = 0; i < kDpDropCount; ++i) {
    const std::string k = std::string("drop_") + dp_drop_name(static_cast<DpDrop>(i));
    rte_tel_data_add_dict_u64(d, k.c_str(), read(c.drops[i]));
  }
  const auto wg_drops = gw->wg_drops();
  for (std::size_t i = 0; i < wg::kDropCount; ++i) {
    if (i == static_cast<std::size_t>(wg::Drop::kOk)) continue;
    const std::string k = std::string("wg_drop_") + wg::drop_name(static_cast<wg::Drop>(i));
    rte_tel_data_add_dict_u64(d, k.c_str(), read(wg_drops[i]));
  }
  return 0;
}

int lcores_cb(const char*, const char*, rte_tel_data* d) {
  const Gateway* gw = g_gateway.load();
  if (gw == nullptr) return -1;
  rte_tel_data_start_dict(d);
  for (std::size_t i = 0; i < gw->worker_count(); ++i) {
    const LcoreCounters& c = gw->worker(i).counters();
    const std::string w = "worker" + std::to_string(i) + "_";
    rte_tel_data_add_dict_u64(d, (w + "rx").c_str(), c.rx_total());
    rte_tel_data_add_dict_u64(d, (w + "decrypted").c_str(), read(c.decrypted));
    rte_tel_data_add_dict_u64(d, (w + "encrypted").c_str(), read(c.encrypted));
    rte_tel_data_add_dict_u64(d, (w + "handshakes_in").c_str(), read(c.handshakes_in));
    rte_tel_data_add_dict_u64(d, (w + "handoffs_out").c_str(), read(c.handoffs_out));
    rte_tel_data_add_dict_u64(d, (w + "handoffs_in").c_str(), read(c.handoffs_in));
  }
  return 0;
}

int peers_cb(const char*, const char*, rte_tel_data* d) {
  const Gateway* gw = g_gateway.load();
  if (gw == nullptr) return -1;
  rte_tel_data_start_dict(d);
  // The owners' stats copies (a wg::Peer may be removed while this runs).
  std::size_t count = 0, shown = 0;
  for (std::size_t i = 0; i < gw->peer_slots(); ++i) {
    const PeerCtx* p = gw->peer(i);
    if (p == nullptr || p->peer == nullptr) continue;
    ++count;
    // A telemetry reply holds at most RTE_TEL_MAX_DICT_ENTRIES values.
    if (shown++ >= 80) continue;
    char key[32];
    std::snprintf(key, sizeof key, "peer%zu_rx", i);
    rte_tel_data_add_dict_u64(d, key, read(p->stats_rx));
    std::snprintf(key, sizeof key, "peer%zu_tx", i);
    rte_tel_data_add_dict_u64(d, key, read(p->stats_tx));
    std::snprintf(key, sizeof key, "peer%zu_handshakes", i);
    rte_tel_data_add_dict_u64(d, key, read(p->stats_handshakes));
  }
  rte_tel_data_add_dict_u64(d, "count", count);
  return 0;
}

int nat_cb(const char*, const char*, rte_tel_data* d) {
  const Gateway* gw = g_gateway.load();
  if (gw == nullptr) return -1;
  rte_tel_data_start_dict(d);
  nat::NatCounters n;
  std::uint64_t flows = 0;
  bool on = false;
  for (std::size_t i = 0; i < gw->worker_count(); ++i)
    if (const nat::Nat44* x = gw->worker(i).nat()) {
      on = true;
      n.add(x->counters());
      flows += x->flow_count();
    }
  rte_tel_data_add_dict_u64(d, "enabled", on ? 1 : 0);
  rte_tel_data_add_dict_u64(d, "flows", flows);
  rte_tel_data_add_dict_u64(d, "translated_out", n.translated_out);
  rte_tel_data_add_dict_u64(d, "translated_in", n.translated_in);
  rte_tel_data_add_dict_u64(d, "icmp_errors_in", n.icmp_errors_in);
  rte_tel_data_add_dict_u64(d, "flows_created", n.flows_created);
  rte_tel_data_add_dict_u64(d, "flows_expired", n.flows_expired);
  for (std::size_t i = 0; i < nat::kNatDropCount; ++i) {
    const std::string k = std::string("drop_") + nat::nat_drop_name(static_cast<nat::NatDrop>(i));
    rte_tel_data_add_dict_u64(d, k.c_str(), n.drops[i]);
  }
  return 0;
}

// The access policy: denied, established, accepted per rule (summed over
// the workers; the first RTE_TEL_MAX_DICT_ENTRIES - 3 rules).
int policy_cb(const char*, const char*, rte_tel_data* d) {
  const Gateway* gw = g_gateway.load();
  if (gw == nullptr) return -1;
  rte_tel_data_start_dict(d);
  std::uint64_t denied = 0, established = 0, flows = 0;
  std::size_t rules = 0;
  for (std::size_t i = 0; i < gw->worker_count(); ++i)
    if (const policy::RuleCounters* rc = gw->worker(i).rule_counters()) {
      denied += rc->denied();
      established += rc->established_count();
      flows += gw->worker(i).established()->size() + gw->worker(i).established6()->size();
      rules = rc->rules();
    }
  rte_tel_data_add_dict_u64(d, "denied", denied);
  rte_tel_data_add_dict_u64(d, "established", established);
  rte_tel_data_add_dict_u64(d, "flows", flows);
  for (std::size_t r = 0; r < rules && r + 3 < RTE_TEL_MAX_DICT_ENTRIES; ++r) {
    std::uint64_t n = 0;
    for (std::size_t i = 0; i < gw->worker_count(); ++i) n += gw->worker(i).rule_counters()->accepted(r);
    const std::string k = "rule" + std::to_string(r) + "_accepted";
    rte_tel_data_add_dict_u64(d, k.c_str(), n);
  }
  return 0;
}

}  // namespace

void register_telemetry(const Gateway* gw) {
  g_gateway.store(gw);
  rte_telemetry_register_cmd("/moongate/stats", stats_cb,
                             "Data-plane totals, per-port packets and drops by reason");
  rte_telemetry_register_cmd("/moongate/lcores", lcores_cb,
                             "Per worker lcore: packets received, decrypted, encrypted, handed over");
  rte_telemetry_register_cmd("/moongate/peers", peers_cb,
                             "Peer count; rx/tx bytes and handshakes of the first 80 peers");
  rte_telemetry_register_cmd("/moongate/nat", nat_cb,
                             "Exit node NAT44: active flows, translations, drops by reason (all workers)");
  rte_telemetry_register_cmd("/moongate/policy", policy_cb,
                             "Access policy: packets denied, let through as replies, accepted per rule");
}

}  // namespace moongate::dp
