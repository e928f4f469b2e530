// Setting up the exception path's TAP; kernel_interface.h describes the path.
#include "dataplane/kernel_interface.h"

#include <arpa/inet.h>
#include <linux/if_addr.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdio>
#include <cstring>

namespace moongate::dp {
namespace {

std::string errno_text(const char* what) { return std::string(what) + ": " + std::strerror(errno); }

// One RTM_NEWADDR request, acknowledged (NLM_F_ACK) so a refusal comes back
// as an error rather than silence.
std::string add_address(int nl, unsigned ifindex, int family, const void* addr, unsigned prefix_len) {
  struct {
    nlmsghdr nh;
    ifaddrmsg ifa;
    char attrs[64];
  } req{};
  const std::size_t alen = family == AF_INET ? 4 : 16;
  req.nh.nlmsg_type = RTM_NEWADDR;
  req.nh.nlmsg_flags = NLM_F_REQUEST | NLM_F_CREATE | NLM_F_REPLACE | NLM_F_ACK;
  req.nh.nlmsg_seq = 1;
  req.ifa.ifa_family = static_cast<unsigned char>(family);
  req.ifa.ifa_prefixlen = static_cast<unsigned char>(prefix_len);
  // The data plane answers ND for the address already: no DAD.
  req.ifa.ifa_flags = family == AF_INET6 ? IFA_F_NODAD : 0;
  req.ifa.ifa_index = ifindex;
  std::size_t off = 0;
  for (unsigned short type : {static_cast<unsigned short>(IFA_LOCAL), static_cast<unsigned short>(IFA_ADDRESS)}) {
    auto* rta = reinterpret_cast<rtattr*>(req.attrs + off);
    rta->rta_type = type;
    rta->rta_len = static_cast<unsigned short>(RTA_LENGTH(alen));
    std::memcpy(reinterpret_cast<char*>(rta) + RTA_LENGTH(0), addr, alen);
    off += RTA_SPACE(alen);
  }
  req.nh.nlmsg_len = static_cast<std::uint32_t>(offsetof(decltype(req), attrs) + off);
  if (send(nl, &req, req.nh.nlmsg_len, 0) < 0) return errno_text("netlink send");
  char buf[512];
  const ssize_t n = recv(nl, buf, sizeof buf, 0);
  if (n < 0) return errno_text("netlink recv");
  const auto* nh = reinterpret_cast<const nlmsghdr*>(buf);
  constexpr std::size_t kHdr = NLMSG_ALIGN(sizeof(nlmsghdr));
  if (static_cast<std::size_t>(n) >= kHdr + sizeof(nlmsgerr) && nh->nlmsg_type == NLMSG_ERROR) {
    const auto* err = reinterpret_cast<const nlmsgerr*>(buf + kHdr);
    if (err->error != 0) {
      errno = -err->error;
      return errno_text("add address");
    }
  }
  return {};
}

}  // namespace

std::string kernel_interface_device(const Port& port, unsigned n) {
  char mac[RTE_ETHER_ADDR_FMT_SIZE];
  rte_ether_format_addr(mac, sizeof mac, &port.mac);
  return "net_tap" + std::to_string(n) + ",iface=" + port.kernel_interface + ",mac=" + mac;
}

std::string configure_kernel_interface(const std::string& ifname, const Port& port, std::uint16_t mtu) {
  const unsigned ifindex = if_nametoindex(ifname.c_str());
  if (ifindex == 0) return errno_text(("no interface " + ifname).c_str());
  const int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return errno_text("socket");
  ifreq ifr{};
  std::snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "%s", ifname.c_str());
  ifr.ifr_mtu = mtu;
  std::string err;
  if (ioctl(fd, SIOCSIFMTU, &ifr) < 0) err = errno_text("set MTU");
  if (err.empty() && ioctl(fd, SIOCGIFFLAGS, &ifr) < 0) err = errno_text("get flags");
  ifr.ifr_flags = static_cast<short>(ifr.ifr_flags | IFF_UP);
  if (err.empty() && ioctl(fd, SIOCSIFFLAGS, &ifr) < 0) err = errno_text("bring up");
  close(fd);
  if (!err.empty()) return ifname + ": " + err;

  const int nl = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
  if (nl < 0) return errno_text("netlink socket");
  for (const auto& a : port.v4) {
    if (err.empty()) err = add_address(nl, ifindex, AF_INET, &a.addr, a.prefix_len);
  }
  for (const auto& a : port.v6) {
    if (err.empty()) err = add_address(nl, ifindex, AF_INET6, a.addr.data(), a.prefix_len);
  }
  close(nl);
  return err.empty() ? err : ifname + ": " + err;
}

}  // namespace moongate::dp
