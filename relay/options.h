// moongate-relay's settings, from command-line flags (docs/relay.md).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "relay/admission.h"
#include "relay/bootstrap_dns.h"
#include "relay/migration.h"
#include "relay/udp_service.h"

namespace moongate::relay {

struct MeshPeer {
  std::string host;
  std::uint16_t port = 443;
  bool tls = true;
};

// Registered-file slots per shard unless --conn-table says otherwise: the
// kernel allocates 16 bytes per slot up front (a file pointer and a tag;
// 1 MiB per shard here), so the default is not the 1 048 576 descriptors
// the systemd unit allows.
inline constexpr int kDefaultConnTable = 65536;
inline constexpr int kMaxConnTable = 1 << 20;  // the kernel's IORING_MAX_FIXED_FILES

struct Options {
  std::string addr = "";          // bind address, "" = all (dual-stack)
  std::uint16_t port = 443;       // 0 = ephemeral (tests)
  int http_port = -1;             // plain-HTTP port (port 80 behaviour); -1 = off
  bool plain = false;             // no TLS on the DERP port (debug mode)
  std::string certdir = ".";
  std::string hostname;           // certificate name; an IP gets a self-signed cert
  int stun_port = 3478;           // -1 = off, 0 = ephemeral
  unsigned shards = 0;            // 0 = one per CPU
  // Slots of each shard's io_uring registered-file table, which holds the
  // accepted connections (not the process's descriptor table); -1 = the
  // default (kDefaultConnTable, capped at RLIMIT_NOFILE), 0 = ordinary
  // descriptors.
  int conn_table = -1;
  std::string key_file;           // server private key (hex); created when missing
  std::string mesh_key_file;      // 64 hex digits shared by the region's relays
  std::vector<MeshPeer> mesh_with;
  bool mesh_insecure = false;     // accept any certificate from mesh peers
  AdmissionConfig admission;
  std::uint32_t rate_bytes_per_second = 0;
  std::uint32_t rate_burst_bytes = 0;
  // Moving client connections to their peers' shard (relay/migration.h):
  // --migrate on|off and the rule's thresholds.
  MigrationConfig migrate;
  bool verbose = false;
  std::string moon_config;        // a moongate-moon YAML (`moon:` section): host the moon too
  BootstrapDnsConfig bootstrap_dns;  // /bootstrap-dns names (none: an empty answer)
  bool check = false;             // --check: validate the configuration and exit
  std::vector<UdpServiceSpec> udp_services;  // filled by main (STUN) and hosts
};

// Parses argv; false with `error` (or "help") on failure. `--config FILE`
// reads the file's `relay:` section first (load_relay_yaml); flags given on
// the command line override it wherever they appear. The file is the
// relay's own or the appliance's site.yaml (config/ accepts the section and
// leaves it to the relay); a file without the section is an error.
bool parse_options(int argc, char** argv, Options& out, std::string& error);

// Applies the `relay:` section of a YAML document (the keys are the flags'
// names without the dashes, with '_' or '-': addr, hostname, certdir, plain,
// http_port, stun_port, shards, conn_table, key_file, mesh_key_file, mesh_with (a list),
// mesh_insecure, admission, rate_limit, rate_burst, migrate, migrate_share, migrate_min_packets,
// migrate_hold, migrate_margin, migrate_margin_min, verbose, moon_config —
// relative to the YAML file —, bootstrap_dns_names and
// unpublished_bootstrap_dns_names: a list or a comma-separated string).
// Errors read `<source>:<line>:<col>: relay.<key>: <message>` at the value
// (the list item) at fault, as config/'s do; unknown keys are errors. A
// document without a `relay:` section changes nothing (`has_section` says
// whether there was one).
bool load_relay_yaml(const std::string& text, const std::string& source, Options& out,
                     std::string& error, bool* has_section = nullptr);
std::string usage();
// "host:port", "[v6]:port", "http(s)://host[:port]" -> MeshPeer.
bool parse_mesh_peer(const std::string& s, MeshPeer& out);

}  // namespace moongate::relay
