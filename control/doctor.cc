// The host checks of `moongatectl doctor`; the list is in doctor.h.
#include "control/doctor.h"

#include <sys/resource.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <optional>
#include <set>
#include <sstream>

namespace moongate::control {
namespace {

namespace fs = std::filesystem;
using Level = Finding::Level;

// Reads the host's files under a root directory.
class Host {
 public:
  explicit Host(std::string root) : root_(std::move(root)) {
    while (root_.size() > 1 && root_.back() == '/') root_.pop_back();
    if (root_ == "/") root_.clear();
  }

  std::optional<std::string> read(const std::string& path) const {
    std::ifstream in(root_ + path);
    if (!in) return std::nullopt;
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }
  // The first line, without its newline.
  std::optional<std::string> line(const std::string& path) const {
    auto s = read(path);
    if (!s) return std::nullopt;
    return s->substr(0, s->find('\n'));
  }
  std::optional<long> number(const std::string& path) const {
    auto s = line(path);
    if (!s || s->empty()) return std::nullopt;
    try {
      return std::stol(*s, nullptr, 0);
    } catch (const std::exception&) {
      return std::nullopt;
    }
  }
  bool exists(const std::string& path) const {
    std::error_code ec;
    return fs::exists(root_ + path, ec);
  }
  std::vector<std::string> list(const std::string& path) const {
    std::vector<std::string> out;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(root_ + path, ec)) out.push_back(e.path().filename().string());
    std::sort(out.begin(), out.end());
    return out;
  }
  // The last component of a symlink's target ("vfio-pci" for a driver link).
  std::string link_name(const std::string& path) const {
    std::error_code ec;
    const fs::path target = fs::read_symlink(root_ + path, ec);
    return ec ? std::string() : target.filename().string();
  }

 private:
  std::string root_;
};

// "0-3,8,10-11" -> {0,1,2,3,8,10,11}; empty on a parse error.
std::set<unsigned> cpu_list(const std::string& s) {
  std::set<unsigned> out;
  std::stringstream ss(s);
  std::string part;
  while (std::getline(ss, part, ',')) {
    part.erase(std::remove_if(part.begin(), part.end(), [](char c) { return c == ' ' || c == '\n'; }), part.end());
    if (part.empty()) continue;
    try {
      const auto dash = part.find('-');
      const unsigned a = static_cast<unsigned>(std::stoul(part.substr(0, dash)));
      const unsigned b = dash == std::string::npos ? a : static_cast<unsigned>(std::stoul(part.substr(dash + 1)));
      for (unsigned c = a; c <= b && c < 65536; ++c) out.insert(c);
    } catch (const std::exception&) {
      return {};
    }
  }
  return out;
}

std::string join(const std::vector<std::string>& v, const char* sep = ", ") {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : sep) + s;
  return out;
}

std::string list_text(const std::set<unsigned>& s) {
  std::vector<std::string> v;
  for (unsigned c : s) v.push_back(std::to_string(c));
  return v.empty() ? "none" : join(v, ",");
}

class Doctor {
 public:
  Doctor(const std::string& root, const config::Config* cfg) : host_(root), cfg_(cfg) {}

  DoctorReport run() {
    cpu();
    hugepages();
    iommu();
    nics();
    cores();
    mtu();
    memory();
    return std::move(report_);
  }

 private:
  void add(Level level, std::string area, std::string what, std::string fix = {}) {
    report_.findings.push_back(Finding{level, std::move(area), std::move(what), std::move(fix)});
  }

  // IPsec-MB picks its code path from the CPU (intel-ipsec-mb.h
  // IMB_CPUFLAGS_*): AVX-512 is its fastest ChaCha20-Poly1305.
  void cpu() {
    const auto info = host_.read("/proc/cpuinfo");
    if (!info) return add(Level::kWarn, "cpu", "/proc/cpuinfo unreadable: CPU features not checked");
    std::set<std::string> flags;
    std::stringstream ss(*info);
    std::string l;
    while (std::getline(ss, l)) {
      if (l.rfind("flags", 0) != 0) continue;
      std::stringstream fl(l.substr(l.find(':') == std::string::npos ? l.size() : l.find(':') + 1));
      std::string f;
      while (fl >> f) flags.insert(f);
      break;
    }
    auto has_all = [&](std::initializer_list<const char*> need, std::vector<std::string>* missing = nullptr) {
      bool all = true;
      for (const char* n : need)
        if (!flags.count(n)) {
          all = false;
          if (missing) missing->push_back(n);
        }
      return all;
    };
    std::vector<std::string> sse_missing;
    const bool sse = has_all({"sse4_2", "cmov", "aes", "pclmulqdq"}, &sse_missing);
    const bool avx = sse && has_all({"avx"});
    const bool avx2 = avx && has_all({"avx2", "bmi2"});
    const bool avx512 = avx2 && has_all({"avx512f", "avx512dq", "avx512cd", "avx512bw", "avx512vl"});
    if (avx512)
      add(Level::kOk, "cpu", "AVX-512 (avx512f/dq/cd/bw/vl): IPsec-MB runs its AVX-512 ChaCha20-Poly1305");
    else if (avx2)
      add(Level::kOk, "cpu", "AVX2: IPsec-MB runs its AVX2 ChaCha20-Poly1305 (AVX-512 CPUs are about twice as fast per core)");
    else if (avx)
      add(Level::kWarn, "cpu", "AVX without AVX2: IPsec-MB's AVX ChaCha20-Poly1305, well below the AVX2/AVX-512 speed",
          "use a CPU (or a VM CPU model) exposing AVX2 or AVX-512; on ESXi/KVM pass the host CPU model through");
    else if (sse)
      add(Level::kWarn, "cpu", "SSE4.2 only: IPsec-MB's SSE ChaCha20-Poly1305 (the slowest path)",
          "use a CPU (or a VM CPU model) exposing AVX2 or AVX-512; on ESXi/KVM pass the host CPU model through");
    else
      add(Level::kFail, "cpu", "missing " + join(sse_missing) + ": IPsec-MB has no code path for this CPU",
          "the data plane needs at least SSE4.2, AES-NI and PCLMULQDQ; check the VM's CPU model");
  }

  void hugepages() {
    // Free pages per size (bytes), over all sizes the kernel offers.
    std::uint64_t free_bytes = 0, total_bytes = 0;
    std::vector<std::string> sizes;
    for (const auto& d : host_.list("/sys/kernel/mm/hugepages")) {
      // "hugepages-2048kB"
      const auto dash = d.find('-');
      if (dash == std::string::npos) continue;
      const std::uint64_t kb = std::strtoull(d.c_str() + dash + 1, nullptr, 10);
      const long total = host_.number("/sys/kernel/mm/hugepages/" + d + "/nr_hugepages").value_or(0);
      const long freep = host_.number("/sys/kernel/mm/hugepages/" + d + "/free_hugepages").value_or(0);
      total_bytes += static_cast<std::uint64_t>(total) * kb * 1024;
      free_bytes += static_cast<std::uint64_t>(freep) * kb * 1024;
      const std::string size = kb >= 1024 * 1024 ? std::to_string(kb / 1024 / 1024) + " GB" : std::to_string(kb / 1024) + " MB";
      sizes.push_back(size + ": " + std::to_string(total) + " reserved, " + std::to_string(freep) + " free");
    }
    bool mounted = false;
    if (auto mounts = host_.read("/proc/mounts")) {
      std::stringstream ss(*mounts);
      std::string dev, dir, type;
      std::string rest;
      while (ss >> dev >> dir >> type) {
        if (type == "hugetlbfs") mounted = true;
        std::getline(ss, rest);
      }
    }
    const std::string found = sizes.empty() ? "no huge page sizes in /sys/kernel/mm/hugepages" : join(sizes, "; ");
    const std::string reserve_fix =
        "reserve them at boot (moongate-hugepages.service reads /etc/default/moongate-hugepages, or "
        "hugepagesz=1G hugepages=N on the kernel command line) or now: "
        "echo 1024 > /sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages (2 GiB)";
    const bool wants = cfg_ == nullptr || cfg_->dataplane.hugepages;
    if (cfg_ != nullptr && wants) {
      const std::uint64_t need = std::uint64_t{cfg_->dataplane.memory_mb} << 20;
      if (free_bytes < need)
        add(Level::kFail, "hugepages",
            found + ": " + std::to_string(free_bytes >> 20) + " MiB free, dataplane.memory_mb needs " +
                std::to_string(cfg_->dataplane.memory_mb) + " MiB",
            reserve_fix + "; or set dataplane.hugepages: false (tests only: slower, memory not pinned)");
      else
        add(Level::kOk, "hugepages", found + ": enough for dataplane.memory_mb " +
                                         std::to_string(cfg_->dataplane.memory_mb) + " MiB");
    } else if (total_bytes == 0) {
      add(wants ? Level::kWarn : Level::kOk, "hugepages", found + (wants ? ": none reserved" : " (config: hugepages off)"),
          wants ? reserve_fix : std::string());
    } else {
      add(Level::kOk, "hugepages", found + " (" + std::to_string(free_bytes >> 20) + " MiB free)");
    }
    if (total_bytes > 0 && !mounted)
      add(Level::kOk, "hugepages",
          "no hugetlbfs mounted: the data plane runs with --in-memory (pages from memfd), which needs none");
  }

  void iommu() {
    const auto groups = host_.list("/sys/kernel/iommu_groups");
    const bool vfio = host_.exists("/sys/module/vfio_pci") || host_.exists("/sys/bus/pci/drivers/vfio-pci");
    const bool noiommu = host_.line("/sys/module/vfio/parameters/enable_unsafe_noiommu_mode").value_or("N") == "Y";
    const std::string cmdline = host_.line("/proc/cmdline").value_or("");
    if (groups.empty()) {
      std::string what = "no IOMMU groups: vfio-pci cannot give a NIC to the data plane safely";
      if (noiommu) what += " (vfio's unsafe no-IOMMU mode is on)";
      add(Level::kWarn, "iommu", what,
          "enable VT-d / AMD-Vi in the firmware (on ESXi: the VM's \"Expose IOMMU\" for passthrough) and boot "
          "with intel_iommu=on iommu=pt (Intel) or amd_iommu=on iommu=pt (AMD); af_packet/tap ports work "
          "without it");
    } else {
      add(Level::kOk, "iommu",
          std::to_string(groups.size()) + " IOMMU groups" +
              (cmdline.find("iommu=pt") != std::string::npos ? " (passthrough mode)" : ""));
    }
    if (vfio)
      add(Level::kOk, "iommu", "vfio-pci loaded");
    else
      add(Level::kWarn, "iommu", "vfio-pci not loaded", "modprobe vfio-pci (deploy/modules-load.d/moongate.conf loads it at boot)");
  }

  struct Nic {
    std::string address, vendor, device, driver, netdev;
    bool vf = false;
    long vfs = 0, total_vfs = 0;
  };

  static bool dpdk_driver(const std::string& driver) {
    return driver == "vfio-pci" || driver == "uio_pci_generic" || driver == "igb_uio";
  }
  // Mellanox NICs stay on their kernel driver: DPDK's mlx5 PMD works
  // alongside it (bifurcated).
  static bool bifurcated(const Nic& n) { return n.vendor == "0x15b3" && n.driver == "mlx5_core"; }

  static std::string nic_name(const Nic& n) {
    if (n.vendor == "0x15ad" && n.device == "0x07b0") return "VMware vmxnet3";
    if (n.vendor == "0x1af4") return "virtio-net";
    if (n.vendor == "0x8086") return "Intel";
    if (n.vendor == "0x15b3") return "Mellanox/NVIDIA";
    if (n.vendor == "0x14e4") return "Broadcom";
    return "PCI network";
  }

  std::vector<Nic> find_nics() const {
    std::vector<Nic> out;
    for (const auto& a : host_.list("/sys/bus/pci/devices")) {
      const std::string base = "/sys/bus/pci/devices/" + a;
      const auto cls = host_.line(base + "/class");
      if (!cls || cls->rfind("0x02", 0) != 0) continue;  // 0x02xxxx: network controller
      Nic n;
      n.address = a;
      n.vendor = host_.line(base + "/vendor").value_or("?");
      n.device = host_.line(base + "/device").value_or("?");
      n.driver = host_.link_name(base + "/driver");
      n.vf = host_.exists(base + "/physfn");
      n.vfs = host_.number(base + "/sriov_numvfs").value_or(0);
      n.total_vfs = host_.number(base + "/sriov_totalvfs").value_or(0);
      auto nets = host_.list(base + "/net");
      // virtio: the netdev hangs under the virtio device
      if (nets.empty())
        for (const auto& sub : host_.list(base))
          if (sub.rfind("virtio", 0) == 0) nets = host_.list(base + "/" + sub + "/net");
      if (!nets.empty()) n.netdev = nets.front();
      out.push_back(std::move(n));
    }
    return out;
  }

  void nics() {
    const auto found = find_nics();
    int usable = 0;
    for (const auto& n : found) {
      std::string what = n.address + " " + nic_name(n) + " (" + n.vendor.substr(2) + ":" + n.device.substr(2) +
                         (n.vf ? ", SR-IOV VF" : "") + "), driver " + (n.driver.empty() ? "none" : n.driver);
      if (!n.netdev.empty()) what += ", kernel interface " + n.netdev;
      if (n.total_vfs > 0) what += ", " + std::to_string(n.vfs) + " of " + std::to_string(n.total_vfs) + " VFs";
      if (dpdk_driver(n.driver) || bifurcated(n)) {
        ++usable;
        add(Level::kOk, "nics", what + ": DPDK can use it");
      } else {
        add(Level::kOk, "nics", what + ": kernel-owned");
      }
    }
    if (usable == 0)
      add(Level::kWarn, "nics",
          found.empty() ? "no PCI network device" : "no NIC bound to a driver DPDK can use (vfio-pci)",
          "bind a NIC (or an SR-IOV VF) to vfio-pci with moongate-bind-nic (deploy/scripts), or use "
          "net_af_packet/net_tap ports for tests; never the NIC you manage the host through");
    if (cfg_ == nullptr) return;
    for (const auto& p : cfg_->ports) {
      if (p.device_kind != config::DeviceKind::kPci) continue;
      const auto it = std::find_if(found.begin(), found.end(), [&](const Nic& n) { return n.address == p.device; });
      if (it == found.end()) {
        add(Level::kFail, "nics", "port " + p.name + ": no PCI network device " + p.device,
            "check the address with lspci -D, or create the VF first (moongate-sriov)");
      } else if (!dpdk_driver(it->driver) && !bifurcated(*it)) {
        add(Level::kFail, "nics",
            "port " + p.name + ": " + p.device + " is bound to " + (it->driver.empty() ? "no driver" : it->driver) +
                ", not vfio-pci",
            "moongate-bind-nic " + p.device);
      } else {
        add(Level::kOk, "nics", "port " + p.name + ": " + p.device + " ready (" + it->driver + ")");
      }
    }
  }

  void cores() {
    const auto online = cpu_list(host_.line("/sys/devices/system/cpu/online").value_or(""));
    const auto isolated = cpu_list(host_.line("/sys/devices/system/cpu/isolated").value_or(""));
    const auto nohz = cpu_list(host_.line("/sys/devices/system/cpu/nohz_full").value_or(""));
    std::string what = std::to_string(online.size()) + " CPUs online (" + list_text(online) + "), isolated: " +
                       list_text(isolated);
    if (!nohz.empty()) what += ", nohz_full: " + list_text(nohz);
    const std::string isolate_fix =
        "boot with isolcpus=<worker cpus> nohz_full=<worker cpus> rcu_nocbs=<worker cpus> and list them in "
        "dataplane.lcores; keep CPU 0 for the kernel and moongate-control";
    if (cfg_ == nullptr) {
      add(isolated.empty() ? Level::kWarn : Level::kOk, "cores", what, isolated.empty() ? isolate_fix : "");
      return;
    }
    std::set<unsigned> missing, shared;
    for (unsigned c : cfg_->dataplane.lcores) {
      if (!online.count(c)) missing.insert(c);
      else if (!isolated.count(c)) shared.insert(c);
    }
    if (!missing.empty()) {
      add(Level::kFail, "cores", what + "; dataplane.lcores " + list_text(missing) + " not online",
          "list only online CPUs in dataplane.lcores");
    } else if (!shared.empty() && cfg_->dataplane.busy_poll) {
      add(Level::kWarn, "cores",
          what + "; busy-polling lcores " + list_text(shared) + " are not isolated: the kernel schedules other work there",
          isolate_fix);
    } else {
      add(Level::kOk, "cores", what + "; dataplane.lcores fit" +
                                   (cfg_->dataplane.busy_poll ? "" : " (idle back-off on: cores are shared)"));
    }
  }

  static std::string af_packet_iface(const std::string& device) {
    if (device.rfind("net_af_packet", 0) != 0) return {};
    const auto at = device.find("iface=");
    if (at == std::string::npos) return {};
    const auto end = device.find(',', at);
    return device.substr(at + 6, end == std::string::npos ? std::string::npos : end - at - 6);
  }

  void mtu() {
    if (cfg_ == nullptr) return;
    // A full tunnel packet on the WAN: inner MTU + 32 (WireGuard) + 8 (UDP)
    // + 20 or 40 (IPv4/IPv6).
    for (const auto& p : cfg_->ports) {
      const bool v6 = std::any_of(p.addresses.begin(), p.addresses.end(), [](const auto& a) { return !a.addr.is_v4(); });
      const unsigned need = p.role == config::PortRole::kWan ? cfg_->interface.mtu + 40u + (v6 ? 40u : 20u) : 0u;
      if (need > p.mtu)
        add(Level::kWarn, "mtu",
            "port " + p.name + ": mtu " + std::to_string(p.mtu) + " is below a full tunnel packet (" +
                std::to_string(need) + " = interface mtu " + std::to_string(cfg_->interface.mtu) + " + overhead)",
            "raise the port's mtu (and the underlay's) or lower interface.mtu to " +
                std::to_string(p.mtu - 40 - (v6 ? 40 : 20)));
      const std::string iface = af_packet_iface(p.device);
      if (iface.empty()) continue;
      const auto kmtu = host_.number("/sys/class/net/" + iface + "/mtu");
      if (!kmtu)
        add(Level::kFail, "mtu", "port " + p.name + ": kernel interface " + iface + " not found",
            "create it first (af_packet attaches to an existing interface)");
      else if (*kmtu < p.mtu)
        add(Level::kFail, "mtu",
            "port " + p.name + ": " + iface + " has mtu " + std::to_string(*kmtu) + ", the port needs " +
                std::to_string(p.mtu),
            "ip link set " + iface + " mtu " + std::to_string(p.mtu));
      else
        add(Level::kOk, "mtu", "port " + p.name + ": " + iface + " mtu " + std::to_string(*kmtu));
    }
  }

  void memory() {
    // The limit of the process running doctor: the units set their own
    // (LimitMEMLOCK=infinity), so this only matters for manual runs.
    rlimit rl{};
    if (getrlimit(RLIMIT_MEMLOCK, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < (64u << 20))
      add(Level::kWarn, "memory",
          "locked-memory limit " + std::to_string(rl.rlim_cur >> 10) + " KiB: vfio-pci maps all DPDK memory",
          "run under the systemd units (LimitMEMLOCK=infinity) or ulimit -l unlimited");
    if (!host_.exists("/dev/shm"))
      add(Level::kFail, "memory", "no /dev/shm: the control process publishes the netmap there",
          "mount tmpfs on /dev/shm");
  }

  Host host_;
  const config::Config* cfg_;
  DoctorReport report_;
};

std::string json_string(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char b[8];
          std::snprintf(b, sizeof b, "\\u%04x", c);
          out += b;
        } else {
          out += c;
        }
    }
  }
  return out + "\"";
}

const char* level_name(Level l) {
  switch (l) {
    case Level::kOk: return "ok";
    case Level::kWarn: return "warn";
    case Level::kFail: return "FAIL";
  }
  return "?";
}

}  // namespace

int DoctorReport::count(Finding::Level level) const {
  return static_cast<int>(std::count_if(findings.begin(), findings.end(), [&](const Finding& f) { return f.level == level; }));
}

std::string DoctorReport::text() const {
  std::string out;
  for (const auto& f : findings) {
    char head[32];
    std::snprintf(head, sizeof head, "%-5s %-10s ", level_name(f.level), f.area.c_str());
    out += head + f.what + "\n";
    if (!f.fix.empty()) out += std::string(17, ' ') + "fix: " + f.fix + "\n";
  }
  out += std::to_string(count(Level::kFail)) + " failed, " + std::to_string(count(Level::kWarn)) + " warnings, " +
         std::to_string(count(Level::kOk)) + " ok\n";
  return out;
}

std::string DoctorReport::json() const {
  std::string out = "{\"findings\":[";
  for (std::size_t i = 0; i < findings.size(); ++i) {
    const auto& f = findings[i];
    std::string level = level_name(f.level);
    std::transform(level.begin(), level.end(), level.begin(), [](unsigned char c) { return std::tolower(c); });
    out += (i ? "," : "") + std::string("{\"level\":\"") + level + "\",\"area\":" + json_string(f.area) +
           ",\"what\":" + json_string(f.what) + ",\"fix\":" + json_string(f.fix) + "}";
  }
  out += "],\"failed\":" + std::to_string(count(Level::kFail)) + ",\"warnings\":" + std::to_string(count(Level::kWarn)) +
         "}\n";
  return out;
}

DoctorReport run_doctor(const std::string& root, const config::Config* cfg) { return Doctor(root, cfg).run(); }

}  // namespace moongate::control
