// The appliance's configuration: a YAML file (reference: docs/config.md)
// loaded into plain structs with every value already parsed and checked,
// so the data plane and the control process never see text.
//
// Loading never throws (except std::bad_alloc): it returns either a Config
// or every error found in one pass, each as
//   source:line:column: path: message
// so an operator can fix them all at once.
//
// No DPDK and no WireGuard core here: the control process links this too.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/address.h"
#include "crypto/secret.h"
#include "crypto/x25519.h"
#include "nat/timeouts.h"
#include "policy/spec.h"

namespace moongate::config {

using PublicKey = crypto::PublicKey;  // std::array<std::uint8_t, 32>
using SecretKey = crypto::SecretKey;  // wipes itself

inline constexpr std::uint16_t kDefaultListenPort = 51820;
inline constexpr std::uint16_t kDefaultTunnelMtu = 1420;
inline constexpr std::uint16_t kDefaultPortMtu = 1500;
inline constexpr std::uint16_t kMinMtu = 576;
inline constexpr std::uint16_t kMinMtuIpv6 = 1280;  // RFC 8200 section 5
inline constexpr std::uint16_t kMaxMtu = 9000;
inline constexpr std::uint32_t kDefaultMaxPeers = 100000;
inline constexpr std::uint32_t kMaxMaxPeers = 1000000;
inline constexpr std::uint16_t kDefaultBurst = 32;
inline constexpr std::uint16_t kMaxBurst = 128;  // crypto::AeadBurst's limit
inline constexpr std::uint32_t kDefaultMemoryMb = 512;
inline constexpr std::uint32_t kMinMemoryMb = 64;
inline constexpr std::uint32_t kMaxMemoryMb = 1u << 20;

struct Interface {
  std::string name;              // [a-zA-Z0-9_.-]{1,15}
  SecretKey private_key;         // as written (X25519 clamps when it uses it)
  std::string private_key_file;  // the file it was read from, resolved; empty when inline
  PublicKey public_key{};        // derived from private_key
  std::uint16_t listen_port = kDefaultListenPort;
  std::vector<IpPrefix> addresses;  // own tunnel addresses, host bits kept
  std::uint16_t mtu = kDefaultTunnelMtu;

  friend bool operator==(const Interface&, const Interface&) noexcept;
};

enum class PortRole : std::uint8_t { kWan, kLan };
enum class DeviceKind : std::uint8_t { kVdev, kPci };

struct Port {
  std::string name;
  PortRole role = PortRole::kWan;
  std::string device;  // "net_af_packet0,iface=veth0" or "0000:03:00.0"
  DeviceKind device_kind = DeviceKind::kVdev;
  std::vector<IpPrefix> addresses;  // YAML `address`: own addresses, host bits kept
  std::vector<IpAddress> gateways;  // YAML `gateway`: at most one per family
  std::uint16_t mtu = kDefaultPortMtu;
  // YAML `kernel_interface`: a TAP the data plane creates for traffic to the
  // port's addresses that it does not answer itself (SSH, management);
  // empty = none, such traffic is dropped and counted.
  std::string kernel_interface;
  // YAML `internet` (wan ports): the destinations that count as internet
  // for exit-node peers, NAT'ed (IPv4) or routed (IPv6) out of this port.
  // nullopt: everything that leaves through the port (0.0.0.0/0 and ::/0
  // minus what the tunnel, the LAN subnets and the routes already claim).
  std::optional<std::vector<IpPrefix>> internet;
  // YAML `routed_prefixes` (wan ports): IPv6 prefixes the upstream routes
  // to this gateway, from which exit-node peers get their global addresses
  // (IPv6 exit is routed, not NAT66: docs/exit-node.md). Off the port's own
  // subnets (no ND proxy).
  std::vector<IpPrefix> routed_prefixes;

  // The gateway of a family (4 or 6), if any.
  const IpAddress* gateway(std::uint8_t family) const noexcept;

  friend bool operator==(const Port&, const Port&) = default;
};

struct Route {
  IpPrefix prefix;             // host bits zero
  IpAddress via;               // inside one of the port's subnets
  std::string port;            // a port name
  std::size_t port_index = 0;  // index of that port in Config::ports

  friend bool operator==(const Route&, const Route&) = default;
};

struct Peer {
  PublicKey public_key{};
  std::optional<SecretKey> preshared_key;
  std::string preshared_key_file;     // resolved; empty when inline or absent
  std::vector<IpPrefix> allowed_ips;  // host bits zero; unique across peers
  std::optional<Endpoint> endpoint;
  std::uint16_t persistent_keepalive = 0;  // seconds, 0 = off
  // For the access policy and operators: a unique name (a letter, then
  // letters, digits, _ . -; up to 63) and tags declared in policy.tags.
  std::string name;
  std::vector<std::string> tags;
  // May use this gateway as its exit to the internet (NAT44 / routed IPv6).
  bool exit_node = false;

  friend bool operator==(const Peer&, const Peer&) noexcept;
};

inline constexpr std::uint32_t kDefaultMaxFlows = 1000000;
inline constexpr std::uint32_t kMaxMaxFlows = 16000000;
inline constexpr std::uint32_t kMaxNatTimeout = 30 * 24 * 3600;  // seconds
inline constexpr std::uint16_t kMinNatPort = 1024;

// YAML `nat`: NAT44 for exit-node traffic (docs/exit-node.md).
struct Nat {
  // Translate to the first IPv4 address of the wan port the traffic leaves
  // through (true) or to `pool` (false; then pool is non-empty).
  bool masquerade = true;
  std::vector<IpAddress> pool;  // IPv4, unique
  std::uint16_t port_min = kMinNatPort;
  std::uint16_t port_max = 65535;
  std::uint32_t max_flows = kDefaultMaxFlows;  // over all worker lcores
  nat::Timeouts timeouts;                      // seconds, conntrack's defaults

  friend bool operator==(const Nat&, const Nat&) = default;
};

inline constexpr std::uint16_t kDefaultMoonPort = 9993;

// YAML `moon`: the ZeroTier moon hosted by the data plane on the wan
// port's addresses (docs/moon.md). The moon's own settings (identity,
// World, budgets) stay in its file, read with zerotier/moon_config.h by
// the data plane: this library links no ZeroTier code.
struct Moon {
  std::string config;  // the moon's YAML file (its `moon:` section), resolved
  std::uint16_t port = kDefaultMoonPort;  // UDP, on the wan port's addresses

  friend bool operator==(const Moon&, const Moon&) = default;
};

struct Dataplane {
  std::vector<unsigned> lcores{1};  // worker lcores, unique
  bool busy_poll = false;
  std::uint32_t max_peers = kDefaultMaxPeers;
  std::uint16_t burst = kDefaultBurst;
  bool hugepages = true;
  std::uint32_t memory_mb = kDefaultMemoryMb;
  std::vector<std::string> eal_args;

  friend bool operator==(const Dataplane&, const Dataplane&) = default;
};

// One key of the `relay:` section as written: the key (with '_' or '-'),
// its value, or a list key's items (`list`: written as a YAML list).
struct RelaySetting {
  std::string key;
  std::vector<std::string> values;
  bool list = false;

  friend bool operator==(const RelaySetting&, const RelaySetting&) = default;
};

struct Config {
  Interface interface;
  std::vector<Port> ports;
  std::vector<Route> routes;
  std::vector<Peer> peers;
  Dataplane dataplane;
  std::optional<Nat> nat;  // absent: no exit node
  // Absent: no policy, everything routed is allowed. Present (even with no
  // rules): default deny. Checked against the peers at load time.
  std::optional<policy::PolicySpec> policy;
  std::optional<Moon> moon;  // absent: no moon in the data plane
  // The `relay:` section, for moongate-relay reading the same file
  // (docs/relay.md): key names and value shapes are checked here
  // (config/relay_keys.h), the values' meaning by the relay. Kept so dump()
  // writes it back; control and the data plane ignore it.
  std::optional<std::vector<RelaySetting>> relay;

  const Port* find_port(std::string_view name) const noexcept;

  friend bool operator==(const Config&, const Config&) = default;
};

struct Error {
  std::string source;  // file name (or the name given to load_string)
  int line = 0;        // 1-based; 0 when the error has no position (unreadable file)
  int column = 0;      // 1-based
  std::string path;    // "peers[3].allowed_ips[1]"; empty for the document itself
  std::string message;

  // "source:line:column: path: message", leaving out what is empty or 0.
  std::string to_string() const;
};

// Either a Config or at least one Error.
class Result {
 public:
  static Result success(Config config);
  static Result failure(std::vector<Error> errors);

  bool ok() const noexcept { return config_.has_value(); }
  explicit operator bool() const noexcept { return ok(); }

  // Only when ok().
  const Config& config() const& { return *config_; }
  Config& config() & { return *config_; }
  Config&& config() && { return std::move(*config_); }

  // Sorted by position; empty when ok().
  const std::vector<Error>& errors() const noexcept { return errors_; }
  // Every error's to_string(), one a line.
  std::string error_text() const;

 private:
  std::optional<Config> config_;
  std::vector<Error> errors_;
};

// Reads and validates a file. Relative key file paths are taken from the
// directory holding the file.
Result load_file(const std::string& path);

// Validates YAML text; source_name is what errors show as the file.
// Relative key file paths are taken from the current directory.
Result load_string(const std::string& yaml, const std::string& source_name);

struct DumpOptions {
  // false: inline private and pre-shared keys print as "(hidden)" (the
  // output is for eyes and logs). true: they print in full, so the output
  // loads back to an equal Config.
  bool reveal_secrets = false;
};

// Canonical YAML: every field in schema order, defaults spelled out,
// addresses in canonical form; the interface's public key as a comment.
std::string dump(const Config& config, DumpOptions options = {});

std::string_view to_string(PortRole role) noexcept;  // "wan" / "lan"

// The peers as the policy compiler sees them: id = index in peers + 1 (0
// is "not from a peer"), name, base64 key, tags.
std::vector<policy::PeerInfo> policy_peers(const Config& config);

}  // namespace moongate::config
