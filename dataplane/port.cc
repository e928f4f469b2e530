// Port bring-up: probe, configure, queues, start.
#include "dataplane/port.h"

#include <rte_bus.h>
#include <rte_dev.h>
#include <rte_errno.h>
#include <rte_ethdev.h>

#include <arpa/inet.h>

namespace moongate::dp {
namespace {

constexpr std::uint16_t kRxDesc = 1024;
constexpr std::uint16_t kTxDesc = 1024;

bool is_pci_address(const std::string& s) {
  // 0000:03:00.0 or 03:00.0
  return s.find(':') != std::string::npos && s.rfind("net_", 0) != 0;
}

std::string errstr(int err) { return rte_strerror(err < 0 ? -err : err); }

}  // namespace

std::string open_port(Port& port, std::uint16_t queues, rte_mempool* pool) {
  // A vdev is created here rather than by an EAL --vdev argument so the
  // config alone says which devices exist; PCI devices are found by name.
  std::string name = port.device;
  const auto comma = name.find(',');
  std::string devname = name.substr(0, comma);
  std::uint16_t existing = 0;
  // A device that already exists (made by the embedding program, e.g. a
  // benchmark's rte_eth_from_rings) is used as it is.
  const bool exists = rte_eth_dev_get_port_by_name(devname.c_str(), &existing) == 0;
  if (!exists && !is_pci_address(port.device)) {
    std::string args = comma == std::string::npos ? "" : name.substr(comma + 1);
    // af_packet takes its queue count at creation: one socket per queue,
    // spread by the kernel's flow hash (PACKET_FANOUT), so each worker
    // gets its own. Other vdevs take it at configure time.
    if (queues > 1 && devname.rfind("net_af_packet", 0) == 0 && args.find("qpairs=") == std::string::npos)
      args += (args.empty() ? "" : ",") + std::string("qpairs=") + std::to_string(queues);
    if (int rc = rte_eal_hotplug_add("vdev", devname.c_str(), args.c_str()); rc != 0)
      return "cannot create " + port.device + ": " + errstr(rc);
  }
  std::uint16_t id = 0;
  if (int rc = rte_eth_dev_get_port_by_name(devname.c_str(), &id); rc != 0)
    return "no DPDK port named " + devname + " (is the NIC bound to vfio-pci?): " + errstr(rc);
  port.id = id;

  rte_eth_dev_info info{};
  if (int rc = rte_eth_dev_info_get(id, &info); rc != 0) return "dev_info: " + errstr(rc);
  if (queues > info.max_rx_queues || queues > info.max_tx_queues)
    return port.device + " supports " + std::to_string(info.max_rx_queues) + " RX queues, " +
           std::to_string(queues) + " needed";

  rte_eth_conf conf{};
  if (queues > 1 && info.flow_type_rss_offloads != 0) {
    conf.rxmode.mq_mode = RTE_ETH_MQ_RX_RSS;
    conf.rx_adv_conf.rss_conf.rss_hf =
        (RTE_ETH_RSS_IP | RTE_ETH_RSS_UDP) & info.flow_type_rss_offloads;
  }
  if (int rc = rte_eth_dev_configure(id, queues, queues, &conf); rc != 0)
    return "configure " + port.device + ": " + errstr(rc);
  std::uint16_t rxd = kRxDesc, txd = kTxDesc;
  rte_eth_dev_adjust_nb_rx_tx_desc(id, &rxd, &txd);
  const int socket = rte_eth_dev_socket_id(id);
  for (std::uint16_t q = 0; q < queues; ++q) {
    if (int rc = rte_eth_rx_queue_setup(id, q, rxd, socket < 0 ? 0 : socket, nullptr, pool);
        rc != 0)
      return "rx queue " + std::to_string(q) + ": " + errstr(rc);
    if (int rc = rte_eth_tx_queue_setup(id, q, txd, socket < 0 ? 0 : socket, nullptr); rc != 0)
      return "tx queue " + std::to_string(q) + ": " + errstr(rc);
  }
  if (int rc = rte_eth_macaddr_get(id, &port.mac); rc != 0) return "mac: " + errstr(rc);
  if (int rc = rte_eth_dev_start(id); rc != 0) return "start " + port.device + ": " + errstr(rc);
  // Promiscuous so that frames to our MAC arrive on PMDs (af_packet) that
  // report a MAC of their own; unicast filtering is done in software.
  rte_eth_promiscuous_enable(id);
  return {};
}

}  // namespace moongate::dp
