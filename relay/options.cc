// Command-line flags of moongate-relay.
#include "relay/options.h"

#include "config/relay_keys.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>

#include "crypto/secret.h"

namespace moongate::relay {
namespace {

template <class T>
bool number(const std::string& s, T& out) {
  auto r = std::from_chars(s.data(), s.data() + s.size(), out);
  return r.ec == std::errc() && r.ptr == s.data() + s.size();
}

bool split_host_port(const std::string& s, std::string& host, std::uint16_t& port) {
  std::size_t colon;
  if (!s.empty() && s[0] == '[') {
    const std::size_t close = s.find(']');
    if (close == std::string::npos || close + 1 >= s.size() || s[close + 1] != ':') return false;
    host = s.substr(1, close - 1);
    colon = close + 1;
  } else {
    colon = s.rfind(':');
    if (colon == std::string::npos) return false;
    host = s.substr(0, colon);
  }
  return number(s.substr(colon + 1), port);
}

// The whole file, read without a stream buffer of its own (which would
// keep an unwiped copy).
bool read_text(const char* path, std::string& out) {
  const int fd = ::open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) return false;
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return false;
  }
  out.reserve(static_cast<std::size_t>(st.st_size) + 1);
  char buf[4096];
  bool ok = true;
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      ok = n == 0;
      break;
    }
    out.append(buf, static_cast<std::size_t>(n));
  }
  crypto::secure_wipe(buf, sizeof buf);
  ::close(fd);
  return ok;
}

}  // namespace

bool parse_options_only(int argc, char** argv, Options& o, std::string& error);

std::string usage() {
  return R"(usage: moongate-relay [flags]
  --addr HOST:PORT        DERP listener (default :443; port 0 = ephemeral)
  --http-port N           plain-HTTP listener with derper's port-80 pages (default off)
  --plain                 no TLS on the DERP listener (debug mode)
  --certdir DIR           certificates: DIR/<hostname>.crt and .key (default .)
  --hostname NAME         certificate name; an IP address with no files gets a
                          self-signed certificate and its sha256-raw: pin is printed
  --stun-port N           STUN on UDP N (default 3478; -1 = off, 0 = ephemeral)
  --shards N              io_uring threads (default: one per CPU)
  --conn-table N          connections each shard holds in io_uring's registered-file
                          table, outside the descriptor table (default 65536, capped
                          at RLIMIT_NOFILE); more are refused and counted; 0 = ordinary
                          descriptors
  --key-file FILE         server private key, 64 hex digits (created when missing)
  --mesh-key-file FILE    mesh key, 64 hex digits, shared by the region's relays
  --mesh-with PEER        another relay of the region (host:port or https://host[:port],
                          http:// for plain); repeatable
  --mesh-insecure         accept any certificate from mesh peers
  --admission MODE        open | keys:FILE | netmap:INTERFACE | url:http://HOST[:PORT]/PATH
  --rate-limit BYTES      per-client receive limit in bytes/s (default off)
  --rate-burst BYTES      its burst (default rate/10)
  --migrate on|off        move a client connection to the shard of the peers it talks
                          to (default on; needs 2+ shards; docs/relay.md, Migration)
  --migrate-share PCT     ... when at least PCT % of its packets in a second were with
                          clients on one other shard, all with lower keys (default 90)
  --migrate-min-packets N ... and it sent or received at least N packets in that second
                          (default 256)
  --migrate-hold S        ... and it has not moved in the last S seconds (5..86400,
                          default 10)
  --migrate-margin PCT    ... and that shard would hold no more than its fair share of
  --migrate-margin-min N  connections plus max(PCT % of it, N) (defaults 25, 4); else the
                          move is refused and counted
  --verbose               log connections
  --bootstrap-dns-names NAMES
                          serve /bootstrap-dns: these host names (comma-separated,
                          repeatable) and their addresses, looked up every 10 minutes
  --unpublished-bootstrap-dns-names NAMES
                          names answered only to /bootstrap-dns?q=NAME
  --moon-config FILE      also host a ZeroTier moon: the `moon:` section of a moongate-moon
                          YAML file (docs/moon.md); on shard 0 only
  --config FILE           read the `relay:` section of a YAML file first (flags win): the
                          relay's own file or the appliance's site.yaml
  --check                 check the configuration, print it is fine, exit
)";
}

bool parse_mesh_peer(const std::string& in, MeshPeer& out) {
  std::string s = in;
  out = MeshPeer{};
  if (s.rfind("https://", 0) == 0) {
    s = s.substr(8);
  } else if (s.rfind("http://", 0) == 0) {
    s = s.substr(7);
    out.tls = false;
    out.port = 80;
  }
  if (auto slash = s.find('/'); slash != std::string::npos) s.resize(slash);
  if (s.find(':') == std::string::npos || (s[0] == '[' && s.back() == ']')) {
    out.host = s[0] == '[' ? s.substr(1, s.size() - 2) : s;
    return !out.host.empty();
  }
  return split_host_port(s, out.host, out.port) && !out.host.empty();
}

bool load_relay_yaml(const std::string& text, const std::string& source, Options& o,
                     std::string& error, bool* has_section) {
  if (has_section) *has_section = false;
  YAML::Node doc;
  try {
    doc = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    error = source + ":" + std::to_string(e.mark.line + 1) + ":" + std::to_string(e.mark.column + 1) +
            ": " + e.msg;
    return false;
  }
  if (!doc.IsMap() || !doc["relay"]) return true;
  if (has_section) *has_section = true;
  const YAML::Node relay = doc["relay"];
  auto where = [&](const YAML::Node& n, const std::string& key) {
    return source + ":" + std::to_string(n.Mark().line + 1) + ":" + std::to_string(n.Mark().column + 1) +
           ": relay" + (key.empty() ? "" : "." + key) + ": ";
  };
  if (relay.IsNull()) return true;  // `relay:` with everything commented out
  if (!relay.IsMap()) {
    error = where(relay, "") + "must be a mapping";
    return false;
  }
  // Each key becomes the flag of the same name, so the two stay one schema;
  // a value's error is reported at that value.
  auto apply = [&](const YAML::Node& at, const std::string& key, const std::string& flag,
                   const std::string* value) {
    std::vector<std::string> args = {"moongate-relay", "--" + flag};
    if (value) args.push_back(*value);
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    std::string e;
    if (parse_options_only(static_cast<int>(argv.size()), argv.data(), o, e)) return true;
    if (e.rfind("--" + flag + ": ", 0) == 0) e = e.substr(flag.size() + 4);  // the path names it
    error = where(at, key) + e;
    return false;
  };
  std::vector<std::string> seen;
  for (const auto& kv : relay) {
    if (!kv.first.IsScalar()) {
      error = where(kv.first, "") + "a key must be a name";
      return false;
    }
    const std::string key = kv.first.Scalar();
    std::string underscored = key, flag = key;  // the list's spelling, the flag's
    std::replace(underscored.begin(), underscored.end(), '-', '_');
    std::replace(flag.begin(), flag.end(), '_', '-');
    const YAML::Node& v = kv.second;
    if (std::find(config::kRelayKeys.begin(), config::kRelayKeys.end(), underscored) == config::kRelayKeys.end()) {
      error = where(kv.first, key) + "unknown key";
      return false;
    }
    // yaml-cpp keeps both copies of a repeated key; config/ refuses them too.
    if (std::find(seen.begin(), seen.end(), underscored) != seen.end()) {
      error = where(kv.first, key) + "duplicate key";
      return false;
    }
    seen.push_back(underscored);
    if (config::relay_key_is_boolean(underscored)) {
      bool b;
      if (!v.IsScalar() || !YAML::convert<bool>::decode(v, b)) {
        error = where(v, key) + "want true or false";
        return false;
      }
      if (b && !apply(v, key, flag, nullptr)) return false;
      continue;
    }
    const bool list = config::relay_key_is_list(underscored);
    if (list && v.IsSequence()) {
      for (const auto& item : v) {
        if (!item.IsScalar()) {
          error = where(item, key) + (flag == "mesh-with" ? "want a list of host:port or URLs"
                                                          : "want a list of host names");
          return false;
        }
        if (!apply(item, key, flag, &item.Scalar())) return false;
      }
      continue;
    }
    if (!v.IsScalar()) {
      error = where(v, key) + (list ? "want a list or a single value" : "want a single value");
      return false;
    }
    std::string value = v.Scalar();
    // A path in the file is relative to the file, as in moongate-moon's.
    if (flag == "moon-config" && !value.empty() && value[0] != '/' && source.find('/') != std::string::npos)
      value = source.substr(0, source.rfind('/') + 1) + value;
    if (!apply(v, key, flag, &value)) return false;
  }
  // Checks that need the whole configuration (TLS without a hostname) wait
  // for the command line.
  return true;
}

bool parse_options(int argc, char** argv, Options& o, std::string& error) {
  // --config first, so the command line overrides the file.
  for (int i = 1; i + 1 < argc; ++i) {
    if (std::string(argv[i]) != "--config") continue;
    std::string text;
    if (!read_text(argv[i + 1], text)) {
      error = std::string("--config: cannot read ") + argv[i + 1];
      return false;
    }
    bool has_section = false;
    const bool loaded = load_relay_yaml(text, argv[i + 1], o, error, &has_section);
    // A site.yaml may hold the site's WireGuard key inline: this copy of
    // the text is wiped (yaml-cpp's own are not: docs/relay.md).
    crypto::secure_wipe(text.data(), text.size());
    if (!loaded) return false;
    // An appliance file without the section is a mistake, not a relay with defaults.
    if (!has_section) {
      error = std::string(argv[i + 1]) + ": no relay: section (docs/relay.md)";
      return false;
    }
  }
  if (!parse_options_only(argc, argv, o, error)) return false;
  if (!o.plain && o.hostname.empty()) {
    error = "--hostname is needed for TLS (or --plain for the debug mode)";
    return false;
  }
  return true;
}

bool parse_options_only(int argc, char** argv, Options& o, std::string& error) {
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&](std::string& v) {
      if (i + 1 >= argc) {
        error = a + ": missing value";
        return false;
      }
      v = argv[++i];
      return true;
    };
    std::string v;
    if (a == "--help" || a == "-h") {
      error = "help";
      return false;
    } else if (a == "--plain") {
      o.plain = true;
    } else if (a == "--verbose") {
      o.verbose = true;
    } else if (a == "--check") {
      o.check = true;
    } else if (a == "--config") {
      ++i;  // read by parse_options before the flags
    } else if (a == "--mesh-insecure") {
      o.mesh_insecure = true;
    } else if (a == "--addr") {
      if (!value(v)) return false;
      if (!split_host_port(v, o.addr, o.port)) {
        error = "--addr: want HOST:PORT, got " + v;
        return false;
      }
    } else if (a == "--http-port" || a == "--stun-port") {
      if (!value(v)) return false;
      int n;
      if (!number(v, n) || n < -1 || n > 65535) {
        error = a + ": not a port: " + v;
        return false;
      }
      (a == "--http-port" ? o.http_port : o.stun_port) = n;
    } else if (a == "--certdir") {
      if (!value(o.certdir)) return false;
    } else if (a == "--hostname") {
      if (!value(o.hostname)) return false;
    } else if (a == "--shards") {
      if (!value(v)) return false;
      if (!number(v, o.shards) || o.shards > 256) {
        error = "--shards: want 0..256, got " + v;
        return false;
      }
    } else if (a == "--conn-table") {
      if (!value(v)) return false;
      if (!number(v, o.conn_table) || o.conn_table < 0 || o.conn_table > kMaxConnTable) {
        error = "--conn-table: want 0.." + std::to_string(kMaxConnTable) + ", got " + v;
        return false;
      }
    } else if (a == "--bootstrap-dns-names" || a == "--unpublished-bootstrap-dns-names") {
      if (!value(v)) return false;
      auto& list = a == "--bootstrap-dns-names" ? o.bootstrap_dns.names : o.bootstrap_dns.unpublished;
      // Comma-separated, as derper's flag; repeating the flag adds more.
      std::string_view rest = v;
      for (;;) {
        const std::size_t comma = rest.find(',');
        const std::string name(rest.substr(0, comma));
        rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
        if (!valid_dns_name(name)) {
          error = a + ": not a host name: \"" + name + "\"";
          return false;
        }
        if (std::find(list.begin(), list.end(), name) != list.end()) {
          error = a + ": " + name + " is listed twice";
          return false;
        }
        list.push_back(name);
        if (comma == std::string_view::npos) break;
      }
    } else if (a == "--moon-config") {
      if (!value(o.moon_config)) return false;
    } else if (a == "--key-file") {
      if (!value(o.key_file)) return false;
    } else if (a == "--mesh-key-file") {
      if (!value(o.mesh_key_file)) return false;
    } else if (a == "--mesh-with") {
      if (!value(v)) return false;
      MeshPeer p;
      if (!parse_mesh_peer(v, p)) {
        error = "--mesh-with: want host:port or https://host[:port], got " + v;
        return false;
      }
      o.mesh_with.push_back(p);
    } else if (a == "--admission") {
      if (!value(v)) return false;
      if (v == "open") {
        o.admission.mode = AdmissionMode::kOpen;
      } else if (v.rfind("keys:", 0) == 0) {
        o.admission.mode = AdmissionMode::kKeys;
        o.admission.keys_file = v.substr(5);
      } else if (v.rfind("netmap:", 0) == 0) {
        o.admission.mode = AdmissionMode::kNetmap;
        o.admission.netmap_interface = v.substr(7);
      } else if (v.rfind("url:", 0) == 0) {
        o.admission.mode = AdmissionMode::kUrl;
        o.admission.url = v.substr(4);
      } else {
        error = "--admission: want open, keys:FILE, netmap:INTERFACE or url:URL, got " + v;
        return false;
      }
    } else if (a == "--rate-limit" || a == "--rate-burst") {
      if (!value(v)) return false;
      std::uint32_t n;
      if (!number(v, n)) {
        error = a + ": not a byte count: " + v;
        return false;
      }
      (a == "--rate-limit" ? o.rate_bytes_per_second : o.rate_burst_bytes) = n;
    } else if (a == "--migrate") {
      if (!value(v)) return false;
      if (v == "on" || v == "true") {
        o.migrate.enabled = true;
      } else if (v == "off" || v == "false") {
        o.migrate.enabled = false;
      } else {
        error = "--migrate: want on or off, got " + v;
        return false;
      }
    } else if (a == "--migrate-share" || a == "--migrate-margin") {
      if (!value(v)) return false;
      std::uint32_t n;
      const std::uint32_t max = a == "--migrate-share" ? 100 : 1000;
      if (!number(v, n) || n > max || (a == "--migrate-share" && n < 51)) {
        error = a + ": want " + (a == "--migrate-share" ? "51" : "0") + ".." + std::to_string(max) +
                " (percent), got " + v;
        return false;
      }
      (a == "--migrate-share" ? o.migrate.share_pct : o.migrate.margin_pct) = n;
    } else if (a == "--migrate-min-packets" || a == "--migrate-margin-min") {
      if (!value(v)) return false;
      std::uint32_t n;
      if (!number(v, n)) {
        error = a + ": not a count: " + v;
        return false;
      }
      (a == "--migrate-min-packets" ? o.migrate.min_packets : o.migrate.margin_min) = n;
    } else if (a == "--migrate-hold") {
      if (!value(v)) return false;
      std::uint32_t n;
      // Not below the 5 s a shard passes on packets for a key that moved
      // away (shard.cc): a key cannot move twice while they are on their way.
      if (!number(v, n) || n < 5 || n > 86400) {
        error = "--migrate-hold: want 5..86400 seconds, got " + v;
        return false;
      }
      o.migrate.hold_ns = std::uint64_t{n} * 1'000'000'000ull;
    } else {
      error = "unknown flag " + a;
      return false;
    }
  }
  return true;
}

}  // namespace moongate::relay
