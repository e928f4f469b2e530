// Port bring-up: probe, configure, queues, start.
#include "dataplane/port.h"

#include <rte_bus.h>
#include <rte_dev.h>
#include <rte_errno.h>
#include <rte_ethdev.h>

#include <arpa/inet.h>

#include <algorithm>
#include <cstdlib>
#include <string_view>

namespace moongate::dp {
namespace {

constexpr std::uint16_t kRxDesc = 1024;
constexpr std::uint16_t kTxDesc = 1024;

bool is_pci_address(const std::string& s) {
  // 0000:03:00.0 or 03:00.0
  return s.find(':') != std::string::npos && s.rfind("net_", 0) != 0;
}

std::string errstr(int err) { return rte_strerror(err < 0 ? -err : err); }

// Room after the frame for what encryption in place appends: padding to 16
// bytes and the 16-byte tag (the headers go into the headroom).
constexpr std::uint32_t kTailSlack = 64;

// af_packet: what a ring frame holds besides the packet (the TPACKET2
// header, the sockaddr_ll, the alignment of the MAC header), with margin.
constexpr std::uint32_t kAfPacketFrameOverhead = 128;
constexpr std::uint32_t kAfPacketDefaultFrame = 2048;  // the PMD's default framesz

// The value of `key=` in a vdev argument string, or `fallback`.
std::uint32_t vdev_arg(const std::string& args, const std::string& key, std::uint32_t fallback) {
  for (std::size_t at = 0; at < args.size();) {
    const std::size_t end = std::min(args.find(',', at), args.size());
    if (args.compare(at, key.size() + 1, key + "=") == 0)
      return static_cast<std::uint32_t>(std::strtoul(args.c_str() + at + key.size() + 1, nullptr, 10));
    at = end + 1;
  }
  return fallback;
}

// The largest MTU the device takes, by the rule rte_eth_dev_configure()
// applies (its eth_dev_validate_mtu): under max_mtu, and the MTU plus the
// device's overhead under max_rx_pktlen.
std::uint32_t device_max_mtu(const rte_eth_dev_info& info) {
  std::uint32_t overhead = RTE_ETHER_HDR_LEN + RTE_ETHER_CRC_LEN;
  if (info.max_mtu != UINT16_MAX && info.max_rx_pktlen > info.max_mtu) overhead = info.max_rx_pktlen - info.max_mtu;
  const std::uint32_t by_len = info.max_rx_pktlen > overhead ? info.max_rx_pktlen - overhead : 0;
  return std::min<std::uint32_t>(info.max_mtu, by_len);
}

bool is_af_packet(const std::string& device) { return device.rfind("net_af_packet", 0) == 0; }

std::string vdev_args_of(const std::string& device) {
  const auto comma = device.find(',');
  return comma == std::string::npos ? "" : device.substr(comma + 1);
}

// af_packet's ring frames are 2 KiB unless told otherwise, which caps its
// MTU near 1900. A jumbo port without `framesz` gets frames that hold its
// largest frame and the TPACKET header, a whole number of pages each: the
// PMD addresses frame i at i * framesz, which is where the kernel puts it
// only when the frames tile the blocks exactly (here one frame a block).
std::uint32_t af_packet_frame(const Port& port) {
  const std::string args = vdev_args_of(port.device);
  if (args.find("framesz=") != std::string::npos || port.mtu <= RTE_ETHER_MTU)
    return vdev_arg(args, "framesz", kAfPacketDefaultFrame);
  return RTE_ALIGN_CEIL(max_frame_size(port.mtu) + kAfPacketFrameOverhead, 4096u);
}

}  // namespace

std::uint16_t mbuf_data_room(const std::vector<Port>& ports) noexcept {
  std::uint32_t room = 0;
  for (const Port& p : ports) {
    room = std::max<std::uint32_t>(room, RTE_PKTMBUF_HEADROOM + max_frame_size(p.mtu) + kTailSlack);
    // The af_packet PMD refuses an RX queue whose mbufs cannot hold a
    // whole ring frame.
    if (is_af_packet(p.device)) room = std::max<std::uint32_t>(room, RTE_PKTMBUF_HEADROOM + af_packet_frame(p));
  }
  if (room <= RTE_MBUF_DEFAULT_BUF_SIZE) return RTE_MBUF_DEFAULT_BUF_SIZE;
  return static_cast<std::uint16_t>(RTE_ALIGN_CEIL(room, 1024u));
}

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
  std::string vdev_args;  // as given to the PMD
  if (!exists && !is_pci_address(port.device)) {
    std::string args = comma == std::string::npos ? "" : name.substr(comma + 1);
    // af_packet takes its queue count at creation: one socket per queue,
    // spread by the kernel's flow hash (PACKET_FANOUT), so each worker
    // gets its own. Other vdevs take it at configure time.
    const bool af_packet = is_af_packet(devname);
    if (queues > 1 && af_packet && args.find("qpairs=") == std::string::npos)
      args += (args.empty() ? "" : ",") + std::string("qpairs=") + std::to_string(queues);
    if (af_packet && args.find("framesz=") == std::string::npos && port.mtu > RTE_ETHER_MTU) {
      const std::uint32_t frame = af_packet_frame(port);
      args += (args.empty() ? "" : ",") + std::string("framesz=") + std::to_string(frame) +
              ",blocksz=" + std::to_string(frame);
    }
    vdev_args = args;
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

  // The MTU is the port's (the config's `mtu`, 1500 by default), set at
  // configure time so a NIC is programmed for it before it starts.
  std::uint32_t max_mtu = device_max_mtu(info);
  std::uint16_t ethdev_mtu = port.mtu;
  if (std::string_view(info.driver_name) == "net_af_packet") {
    // af_packet reports a 1518-byte max_rx_pktlen whatever its ring, and
    // its MTU is the kernel interface's: what limits it is the ring frame
    // size (framesz). The ethdev keeps the MTU it takes; the limit checked
    // is the frame's.
    const std::uint32_t frame = vdev_arg(vdev_args, "framesz", kAfPacketDefaultFrame);  // "" for an existing device
    const std::uint32_t overhead = kAfPacketFrameOverhead + max_frame_size(0);
    max_mtu = frame > overhead ? frame - overhead : 0;
    ethdev_mtu = static_cast<std::uint16_t>(std::min<std::uint32_t>(port.mtu, device_max_mtu(info)));
  }
  if (port.mtu > max_mtu) {
    if (port.role != PortRole::kKernel)
      return port.device + " takes an MTU of at most " + std::to_string(max_mtu) + ", the port's mtu is " +
             std::to_string(port.mtu);
    port.mtu = static_cast<std::uint16_t>(max_mtu);
    ethdev_mtu = port.mtu;
  }
  rte_eth_conf conf{};
  conf.rxmode.mtu = ethdev_mtu;
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
