// Loading and validation: YAML text -> Config, or every error found.
//
// One pass over the document in a fixed order (interface, dataplane, ports,
// routes, peers, nat, policy) so that later sections can be checked against earlier ones
// (a route's port, a peer's key against the interface's own) whatever order
// the file uses; errors are sorted by position at the end. A value that
// fails is left at its default and checks that depend on it are skipped,
// so one mistake yields one error, not a cascade.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <initializer_list>
#include <map>
#include <new>
#include <system_error>
#include <utility>

#include "config/config.h"
#include "config/key.h"
#include "config/relay_keys.h"
#include "crypto/x25519.h"
#include "policy/compile.h"

namespace moongate::config {
namespace {

constexpr unsigned kMaxLcore = 1023;  // a sanity bound; the EAL checks the machine
constexpr std::size_t kMaxKeyFileBytes = 4096;

// A value and where it is. For `key:` with nothing after it yaml-cpp marks
// the empty value at the next token (often the next line), so errors about
// an empty value point at the key instead.
struct Field {
  YAML::Node node;
  YAML::Mark mark;
  YAML::Mark key_mark;  // the key's position; the item's own in a list
  std::string path;
};

std::string quote(std::string_view s) {
  constexpr std::size_t kMax = 60;
  std::string out = "'";
  out.append(s.substr(0, kMax));
  if (s.size() > kMax) out += "...";
  return out + "'";
}

std::string describe(const YAML::Node& n) {
  switch (n.Type()) {
    case YAML::NodeType::Scalar:
      return quote(n.Scalar());
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Map:
      return "a mapping";
    case YAML::NodeType::Null:
    case YAML::NodeType::Undefined:
      break;
  }
  return "nothing";
}

std::string key_path(const std::string& base, std::string_view key) {
  return base.empty() ? std::string(key) : base + "." + std::string(key);
}

std::string index_path(const std::string& base, std::size_t i) {
  return base + "[" + std::to_string(i) + "]";
}

// Optimal string alignment distance: edits, with a swap of two neighbours
// counting as one ("lsiten_port").
std::size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::vector<std::size_t>> d(a.size() + 1, std::vector<std::size_t>(b.size() + 1));
  for (std::size_t i = 0; i <= a.size(); ++i) d[i][0] = i;
  for (std::size_t j = 0; j <= b.size(); ++j) d[0][j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
    }
  }
  return d[a.size()][b.size()];
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(c >= 'A' && c <= 'Z' ? c | 0x20 : c);
  return out;
}

// The one candidate closest to word within distance 2, ignoring case
// ("MTU" -> "mtu"); empty when there is none or two are equally close (a
// guess would mislead).
std::string suggest(std::string_view word, const std::vector<std::string_view>& candidates) {
  const std::string w = lower(word);
  std::size_t best = 3;
  std::string_view pick;
  bool tie = false;
  for (std::string_view c : candidates) {
    const std::size_t dist = edit_distance(w, lower(c));
    if (dist < best) {
      best = dist;
      pick = c;
      tie = false;
    } else if (dist == best) {
      tie = true;
    }
  }
  return best <= 2 && !tie ? std::string(pick) : std::string();
}

std::string did_you_mean(std::string_view word, const std::vector<std::string_view>& candidates) {
  const std::string s = suggest(word, candidates);
  return s.empty() ? std::string() : " (did you mean '" + s + "'?)";
}

// Peer, tag and group names: a letter first, so that a name never reads as
// an address or CIDR in a policy rule, and no ':' (group:, tag: prefixes).
bool valid_peer_name(std::string_view s) {
  if (s.empty() || s.size() > 63) return false;
  if (!((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z'))) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '.' || c == '-';
  });
}

// Interface and port names: what Linux accepts for an interface name, so
// the same name can later be given to a TAP or KNI device.
bool valid_name(std::string_view s) {
  if (s.empty() || s.size() > 15 || s == "." || s == "..") return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '.' || c == '-';
  });
}

bool is_hex(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

bool all_hex(std::string_view s) { return !s.empty() && std::all_of(s.begin(), s.end(), is_hex); }

unsigned hex_value(std::string_view s) {
  unsigned v = 0;
  for (char c : s) {
    const char l = static_cast<char>(c | 0x20);
    v = v * 16 + static_cast<unsigned>(l <= '9' ? l - '0' : l - 'a' + 10);
  }
  return v;
}

// A PCI address as DPDK takes it, [DDDD:]BB:DD.F, normalised to
// "dddd:bb:dd.f" so that two spellings of one NIC compare equal.
std::optional<std::string> normalise_pci(std::string_view s) {
  std::string_view domain = "0000";
  if (std::count(s.begin(), s.end(), ':') == 2) {
    domain = s.substr(0, s.find(':'));
    s = s.substr(s.find(':') + 1);
  }
  if (domain.size() != 4 || !all_hex(domain) || s.size() != 7 || s[2] != ':' || s[5] != '.')
    return std::nullopt;
  const std::string_view bus = s.substr(0, 2), dev = s.substr(3, 2), fn = s.substr(6, 1);
  if (!all_hex(bus) || !all_hex(dev) || hex_value(dev) > 0x1f || fn[0] < '0' || fn[0] > '7')
    return std::nullopt;
  std::string out = std::string(domain) + ":" + std::string(s);
  for (char& c : out) c = static_cast<char>(c >= 'A' && c <= 'F' ? c | 0x20 : c);
  return out;
}

// A vdev string: net_<driver><n>[,key=value...]. Returns the device name
// (before the first comma), which DPDK requires to be unique.
std::optional<std::string> vdev_name(std::string_view s) {
  const std::size_t comma = s.find(',');
  const std::string_view name = s.substr(0, comma);
  if (name.size() <= 4 || name.substr(0, 4) != "net_") return std::nullopt;
  for (char c : name)
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')) return std::nullopt;
  if (comma != std::string_view::npos) {
    std::string_view args = s.substr(comma + 1);
    // Every argument non-empty and without blanks: DPDK's kvargs parser
    // would otherwise fail at start-up with a less helpful message.
    while (true) {
      const std::size_t next = args.find(',');
      const std::string_view arg = args.substr(0, next);
      if (arg.empty() || arg.find_first_of(" \t") != std::string_view::npos) return std::nullopt;
      if (next == std::string_view::npos) break;
      args = args.substr(next + 1);
    }
  }
  return std::string(name);
}

// EAL options that moongate derives from the configuration itself; given
// again in eal_args they would contradict it.
struct ReservedEalOption {
  std::string_view option;
  std::string_view field;
};
constexpr ReservedEalOption kReservedEal[] = {
    {"-l", "dataplane.lcores"},
    {"-c", "dataplane.lcores"},
    {"--lcores", "dataplane.lcores"},
    {"-m", "dataplane.memory_mb"},
    {"--socket-mem", "dataplane.memory_mb"},
    {"--no-huge", "dataplane.hugepages"},
    {"--vdev", "ports[].device"},
};

const ReservedEalOption* reserved_eal_option(std::string_view arg) {
  for (const ReservedEalOption& r : kReservedEal) {
    if (arg == r.option) return &r;
    const bool is_long = r.option.size() > 2;
    // "-l1-3" and "--lcores=1-3" carry the value in the same argument.
    if (!is_long && arg.size() > 2 && arg.substr(0, 2) == r.option) return &r;
    if (is_long && arg.size() > r.option.size() && arg.substr(0, r.option.size()) == r.option &&
        arg[r.option.size()] == '=')
      return &r;
  }
  return nullptr;
}

std::string errno_text(int err) { return std::generic_category().message(err); }

// Reads a key file as `wg genkey` writes it (base64 and a newline). The
// buffer is wiped: it holds a private key.
std::string read_key_file(const std::string& path, SecretKey& out) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) return "cannot read key file " + quote(path) + ": " + errno_text(errno);
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    return "cannot read key file " + quote(path) + ": " + errno_text(err);
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    return "cannot read key file " + quote(path) + ": " +
           (S_ISDIR(st.st_mode) ? "it is a directory" : "not a regular file");
  }
  char buf[kMaxKeyFileBytes + 1];
  std::size_t len = 0;
  std::string error;
  while (len < sizeof buf) {
    const ssize_t n = ::read(fd, buf + len, sizeof buf - len);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      error = "cannot read key file " + quote(path) + ": " + errno_text(errno);
      break;
    }
    if (n == 0) break;
    len += static_cast<std::size_t>(n);
  }
  ::close(fd);
  if (error.empty()) {
    std::string_view text(buf, len);
    const auto first = text.find_first_not_of(" \t\r\n");
    text = first == std::string_view::npos
               ? std::string_view{}
               : text.substr(first, text.find_last_not_of(" \t\r\n") - first + 1);
    if (len > kMaxKeyFileBytes) {
      error = "key file " + quote(path) + " is too large to hold a key";
    } else if (text.empty()) {
      error = "key file " + quote(path) + " is empty";
    } else if (!decode_key(text, out.data())) {
      error = "key file " + quote(path) +
              " does not hold a key: expected 44 base64 characters encoding 32 bytes, as "
              "'wg genkey' writes";
    }
  }
  crypto::secure_wipe(buf, sizeof buf);
  return error;
}

std::string key_label(const PublicKey& k) { return encode_key(k.data()).substr(0, 8) + "..."; }

// Lines of text, without their '\n'.
template <typename F>
void for_each_line(std::string_view text, F&& f) {
  std::size_t pos = 0;
  int number = 1;
  while (pos <= text.size()) {
    std::size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    if (!f(text.substr(pos, end - pos), number)) return;
    pos = end + 1;
    ++number;
  }
}

// Neither blank nor a comment (nor a directive when directives count).
bool is_content(std::string_view line) {
  const std::size_t first = line.find_first_not_of(" \t\r");
  return first != std::string_view::npos && line[first] != '#';
}

bool has_content(std::string_view text) {
  bool found = false;
  for_each_line(text, [&](std::string_view line, int) { return !(found = is_content(line)); });
  return found;
}

// "---" or "..." at column 0, alone or followed by a blank: a document
// marker (inside any scalar such a line would have to be indented).
bool is_marker(std::string_view line, std::string_view marker) {
  return line.substr(0, 3) == marker &&
         (line.size() == 3 || line[3] == ' ' || line[3] == '\t' || line[3] == '\r');
}

// The line where a second document with content starts, or 0. yaml-cpp
// 0.7's LoadAll never returns on some inputs (a lone ","), so the document
// is read with Load, which stops after the first, and a second one is
// found here by its markers.
int second_document_line(std::string_view text) {
  bool content = false;  // the first document has begun
  bool ended = false;    // "..." closed it
  int second = 0;        // the marker line of a second document
  int found = 0;
  for_each_line(text, [&](std::string_view line, int number) {
    if (is_marker(line, "---")) {
      if (content || ended) {
        if (second == 0) second = number;
        if (is_content(line.substr(3))) found = second;
      } else {
        content = is_content(line.substr(3));
      }
    } else if (is_marker(line, "...")) {
      ended = ended || content;
    } else if (is_content(line) && line[0] != '%') {
      if (second != 0 || ended) found = second != 0 ? second : number;
      content = true;
    }
    return found == 0;
  });
  return found;
}

class Loader {
 public:
  Loader(std::string source, std::string base_dir)
      : source_(std::move(source)), base_dir_(std::move(base_dir)) {}

  Result run(const std::string& text);

 private:
  struct Map {
    YAML::Mark mark;
    std::string path;
    std::vector<std::pair<std::string, Field>> fields;
    // Known keys suggested for unknown ones: a typo is reported once, not
    // again as a missing required key.
    std::vector<std::string> suggested;

    std::optional<Field> get(std::string_view key) const {
      for (const auto& [k, f] : fields)
        if (k == key) return f;
      return std::nullopt;
    }
  };

  // Per-peer facts kept for cross-checks against later peers.
  struct PeerInfo {
    bool has_key = false;
  };

  void error(const YAML::Mark& mark, const std::string& path, std::string message);
  void error(const Field& f, std::string message) { error(f.mark, f.path, std::move(message)); }

  std::optional<Map> map(const Field& f, std::initializer_list<std::string_view> known);
  std::optional<Field> required(const Map& m, std::string_view key);
  // The items of a list; with scalar_ok a single value stands for a list of one.
  std::optional<std::vector<Field>> list(const Field& f, bool scalar_ok);
  std::optional<std::string> string(const Field& f);
  std::optional<std::int64_t> integer(const Field& f, std::int64_t min, std::int64_t max);
  std::optional<bool> boolean(const Field& f);
  template <typename T>
  void integer_into(const std::optional<Field>& f, T& out, std::int64_t min, std::int64_t max);
  void boolean_into(const std::optional<Field>& f, bool& out);

  std::optional<IpAddress> address(const Field& f);
  std::optional<IpPrefix> prefix(const Field& f, PrefixKind kind);
  // Own addresses of the interface or a port, no duplicates.
  std::vector<IpPrefix> own_addresses(const Field& f);
  bool secret_inline(const Field& f, SecretKey& out);
  bool secret_file(const Field& f, SecretKey& out, std::string& resolved);
  std::string resolve(const std::string& path) const;

  void parse_root(const Field& root);
  void parse_interface(const Field& f);
  void parse_dataplane(const Field& f);
  void parse_ports(const Field& f);
  void parse_port(const Field& f, std::size_t index);
  void parse_routes(const Field& f);
  void parse_route(const Field& f, std::size_t index);
  void parse_peers(const Field& f);
  void parse_peer(const Field& f, std::size_t index);
  std::string peer_label(std::size_t index) const;
  void parse_nat(const Field& f);
  void parse_policy(const Field& f);
  void parse_moon(const Field& f);
  void parse_relay(const Field& f);
  // A list of non-empty strings (policy members, rule sources...).
  std::vector<std::string> strings(const Field& f, bool scalar_ok);

  std::string source_;
  std::string base_dir_;
  std::vector<Error> errors_;
  Config cfg_;

  // Cross-check state.
  bool have_own_key_ = false;
  std::optional<Field> interface_mtu_;
  bool tunnel_uses_v6_ = false;
  std::map<std::string, std::size_t> port_names_;
  std::map<std::string, std::size_t> kernel_interfaces_;  // name -> port
  std::map<std::string, std::size_t> port_devices_;  // normalised device name -> port
  std::vector<bool> port_addresses_ok_;              // the port's addresses parsed cleanly
  bool port_role_unknown_ = false;                   // some port's role did not parse
  std::map<IpPrefix, std::size_t> route_prefixes_;
  std::vector<PeerInfo> peer_info_;
  std::map<PublicKey, std::size_t> peer_keys_;
  std::map<IpPrefix, std::size_t> allowed_ips_;
  std::map<std::string, std::size_t> peer_names_;
  // Peer tags with where they were written, checked against policy.tags
  // once the policy section is read.
  std::vector<std::pair<std::string, Field>> peer_tags_;
  // policy.* paths -> the field, so the policy compiler's errors (which
  // name a path) get a file position.
  std::map<std::string, Field> policy_fields_;
};

void Loader::error(const YAML::Mark& mark, const std::string& path, std::string message) {
  Error e;
  e.source = source_;
  if (!mark.is_null()) {
    e.line = mark.line + 1;
    e.column = mark.column + 1;
  }
  e.path = path;
  e.message = std::move(message);
  errors_.push_back(std::move(e));
}

std::optional<Loader::Map> Loader::map(const Field& f,
                                       std::initializer_list<std::string_view> known) {
  if (!f.node.IsMap()) {
    error(f, "expected a mapping, got " + describe(f.node));
    return std::nullopt;
  }
  const std::vector<std::string_view> known_keys(known);
  Map m{f.node.Mark(), f.path, {}};
  std::map<std::string, int> first_line;
  for (auto it = f.node.begin(); it != f.node.end(); ++it) {
    // Copies: it-> points into a proxy that dies with the full expression.
    const YAML::Node key = it->first;
    const YAML::Node value = it->second;
    if (!key.IsScalar()) {
      error(key.Mark(), f.path, "a key must be a plain name, got " + describe(key));
      continue;
    }
    const std::string& name = key.Scalar();
    if (std::find(known_keys.begin(), known_keys.end(), name) == known_keys.end()) {
      std::string guess = suggest(name, known_keys);
      error(key.Mark(), f.path,
            "unknown key " + quote(name) +
                (guess.empty() ? std::string() : " (did you mean '" + guess + "'?)"));
      if (!guess.empty()) m.suggested.push_back(std::move(guess));
      continue;
    }
    // yaml-cpp keeps both copies of a repeated key and lookups see the
    // first: refuse rather than guess which one the operator meant.
    if (const auto [pos, inserted] = first_line.emplace(name, key.Mark().line + 1); !inserted) {
      error(
          key.Mark(), f.path,
          "duplicate key " + quote(name) + " (first on line " + std::to_string(pos->second) + ")");
      continue;
    }
    Field field{value, value.IsNull() ? key.Mark() : value.Mark(), key.Mark(),
                key_path(f.path, name)};
    m.fields.emplace_back(name, std::move(field));
  }
  return m;
}

std::optional<Field> Loader::required(const Map& m, std::string_view key) {
  auto f = m.get(key);
  if (!f && std::find(m.suggested.begin(), m.suggested.end(), key) == m.suggested.end())
    error(m.mark, m.path, "missing required key " + quote(key));
  return f;
}

std::optional<std::vector<Field>> Loader::list(const Field& f, bool scalar_ok) {
  if (scalar_ok && f.node.IsScalar()) return std::vector<Field>{f};
  if (!f.node.IsSequence()) {
    error(f, std::string("expected a list") + (scalar_ok ? " or a single value" : "") + ", got " +
                 describe(f.node));
    return std::nullopt;
  }
  std::vector<Field> items;
  std::size_t i = 0;
  for (auto it = f.node.begin(); it != f.node.end(); ++it, ++i) {
    const YAML::Node item = *it;
    // An empty item ("- ") has no position of its own: use the list's.
    const YAML::Mark mark = item.Mark().is_null() ? f.mark : item.Mark();
    items.push_back(Field{item, mark, mark, index_path(f.path, i)});
  }
  return items;
}

std::optional<std::string> Loader::string(const Field& f) {
  if (!f.node.IsScalar()) {
    error(f, "expected a string, got " + describe(f.node));
    return std::nullopt;
  }
  return f.node.Scalar();
}

std::optional<std::int64_t> Loader::integer(const Field& f, std::int64_t min, std::int64_t max) {
  const std::string range = " between " + std::to_string(min) + " and " + std::to_string(max);
  if (!f.node.IsScalar()) {
    error(f, "expected an integer" + range + ", got " + describe(f.node));
    return std::nullopt;
  }
  const std::string& s = f.node.Scalar();
  // yaml-cpp tags quoted scalars "!": "51820" is a string, and accepting it
  // would make the types in the file mean nothing.
  if (f.node.Tag() == "!") {
    error(f, "expected an integer" + range + ", got the string " + quote(s) +
                 " (write it without quotes)");
    return std::nullopt;
  }
  const bool negative = !s.empty() && s[0] == '-';
  const std::string_view digits = std::string_view(s).substr(negative ? 1 : 0);
  const bool numeric = !digits.empty() && std::all_of(digits.begin(), digits.end(),
                                                      [](char c) { return c >= '0' && c <= '9'; });
  if (!numeric) {
    error(f, "expected an integer" + range + ", got " + quote(s));
    return std::nullopt;
  }
  // YAML 1.1 tools read 0755 as octal: refuse the ambiguity.
  if (digits.size() > 1 && digits[0] == '0') {
    error(f, "expected a decimal integer without leading zeros, got " + quote(s));
    return std::nullopt;
  }
  std::int64_t v = 0;
  bool overflow = digits.size() > 18;
  for (char c : digits.substr(0, 18)) v = v * 10 + (c - '0');
  if (negative) v = -v;
  if (overflow || v < min || v > max) {
    error(f, "must be" + range + ", got " + s);
    return std::nullopt;
  }
  return v;
}

std::optional<bool> Loader::boolean(const Field& f) {
  if (f.node.IsScalar() && f.node.Tag() != "!") {
    // YAML 1.2 core schema only: "yes", "on" and friends are YAML 1.1
    // booleans that other tools would read as strings.
    const std::string& s = f.node.Scalar();
    if (s == "true" || s == "True" || s == "TRUE") return true;
    if (s == "false" || s == "False" || s == "FALSE") return false;
  }
  error(f, "expected true or false, got " + describe(f.node));
  return std::nullopt;
}

template <typename T>
void Loader::integer_into(const std::optional<Field>& f, T& out, std::int64_t min,
                          std::int64_t max) {
  if (!f) return;
  if (const auto v = integer(*f, min, max)) out = static_cast<T>(*v);
}

void Loader::boolean_into(const std::optional<Field>& f, bool& out) {
  if (!f) return;
  if (const auto v = boolean(*f)) out = *v;
}

std::optional<IpAddress> Loader::address(const Field& f) {
  const auto s = string(f);
  if (!s) return std::nullopt;
  std::string why;
  auto a = parse_ip_address(*s, &why);
  if (!a) error(f, why);
  return a;
}

std::optional<IpPrefix> Loader::prefix(const Field& f, PrefixKind kind) {
  const auto s = string(f);
  if (!s) return std::nullopt;
  std::string why;
  auto p = parse_ip_prefix(*s, kind, &why);
  if (!p) error(f, why);
  return p;
}

std::vector<IpPrefix> Loader::own_addresses(const Field& f) {
  std::vector<IpPrefix> out;
  const auto items = list(f, true);
  if (!items) return out;
  for (const Field& item : *items) {
    const auto p = prefix(item, PrefixKind::kHostInSubnet);
    if (!p) continue;
    if (std::find_if(out.begin(), out.end(),
                     [&](const IpPrefix& o) { return o.addr == p->addr; }) != out.end()) {
      error(item, p->addr.to_string() + " is listed twice");
      continue;
    }
    out.push_back(*p);
  }
  return out;
}

std::string Loader::resolve(const std::string& path) const {
  if (path.empty() || path[0] == '/' || base_dir_.empty()) return path;
  return base_dir_ + "/" + path;
}

bool Loader::secret_inline(const Field& f, SecretKey& out) {
  // Never echo the value: it is a secret, and errors end up in logs.
  if (!f.node.IsScalar()) {
    error(f, "expected a base64 key, got " +
                 (f.node.IsNull() ? std::string("nothing") : describe(f.node)));
    return false;
  }
  const std::string& s = f.node.Scalar();
  if (!decode_key(s, out.data())) {
    error(f,
          "not a valid key: expected 44 base64 characters encoding 32 bytes (as 'wg genkey' "
          "prints), got " +
              std::to_string(s.size()) + " characters" +
              (s.size() == kKeyBase64Chars ? " that do not decode to 32 bytes" : ""));
    return false;
  }
  if (out.is_zero()) {
    error(f, "the key is all zeros");
    return false;
  }
  return true;
}

bool Loader::secret_file(const Field& f, SecretKey& out, std::string& resolved) {
  const auto path = string(f);
  if (!path) return false;
  if (path->empty()) {
    error(f, "expected a file name, got an empty string");
    return false;
  }
  resolved = resolve(*path);
  if (std::string why = read_key_file(resolved, out); !why.empty()) {
    error(f, why);
    return false;
  }
  if (out.is_zero()) {
    error(f, "key file " + quote(resolved) + " holds an all-zero key");
    return false;
  }
  return true;
}

// Offset of the first byte that is not part of valid UTF-8, or npos. YAML
// is UTF-8; yaml-cpp would keep stray bytes in strings but write them back
// as U+FFFD, so a configuration would not survive its own dump.
static std::size_t invalid_utf8_at(const std::string& s) {
  std::size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    std::size_t n = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xe ? 3 : (c >> 3) == 0x1e ? 4 : 0;
    if (n == 0 || i + n > s.size()) return i;
    std::uint32_t cp = n == 1 ? c : c & (0x7f >> n);
    for (std::size_t k = 1; k < n; ++k) {
      const auto cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xc0) != 0x80) return i;
      cp = (cp << 6) | (cc & 0x3f);
    }
    // Overlong forms, surrogates and values past U+10FFFF are not UTF-8.
    if ((n == 2 && cp < 0x80) || (n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) ||
        (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
      return i;
    i += n;
  }
  return std::string::npos;
}

Result Loader::run(const std::string& text) {
  if (const std::size_t bad = invalid_utf8_at(text); bad != std::string::npos) {
    int line = 1, column = 1;
    for (std::size_t i = 0; i < bad; ++i) {
      if (text[i] == '\n') {
        ++line;
        column = 1;
      } else if ((static_cast<unsigned char>(text[i]) & 0xc0) != 0x80) {
        ++column;
      }
    }
    return Result::failure({Error{source_, line, column, "", "not valid UTF-8 (a configuration is UTF-8 text)"}});
  }
  YAML::Node doc;
  try {
    doc = YAML::Load(text);
  } catch (const YAML::ParserException& e) {
    std::string hint;
    // The one syntax error the schema invites: [v6]:port unquoted starts a
    // YAML flow list.
    if (e.msg == YAML::ErrorMsg::END_OF_MAP || e.msg == YAML::ErrorMsg::END_OF_MAP_FLOW ||
        e.msg == YAML::ErrorMsg::END_OF_SEQ_FLOW) {
      std::size_t line_start = 0;
      for (int l = 0; l < e.mark.line && line_start != std::string::npos; ++l) {
        line_start = text.find('\n', line_start);
        if (line_start != std::string::npos) ++line_start;
      }
      if (line_start != std::string::npos) {
        const std::string line = text.substr(line_start, text.find('\n', line_start) - line_start);
        if (line.find("endpoint") != std::string::npos && line.find("]:") != std::string::npos)
          hint = " (an IPv6 endpoint must be quoted: endpoint: \"[2001:db8::1]:51820\")";
      }
    }
    error(e.mark, "", "YAML syntax error: " + e.msg + hint);
    return Result::failure(std::move(errors_));
  }

  if (doc.IsNull()) {
    Error e{source_, 1, 1, "",
            std::string(has_content(text) ? "" : "the configuration is empty: ") +
                "expected a mapping with 'interface', 'ports' and 'peers'"};
    return Result::failure({e});
  }
  if (const int line = second_document_line(text); line > 0) {
    YAML::Mark mark;
    mark.line = line - 1;
    error(mark, "", "a configuration is a single YAML document; another one starts here");
  }
  parse_root(Field{doc, doc.Mark(), doc.Mark(), ""});

  if (!errors_.empty()) {
    std::stable_sort(errors_.begin(), errors_.end(), [](const Error& a, const Error& b) {
      return std::pair(a.line, a.column) < std::pair(b.line, b.column);
    });
    return Result::failure(std::move(errors_));
  }
  return Result::success(std::move(cfg_));
}

void Loader::parse_root(const Field& root) {
  const auto m = map(root, {"interface", "ports", "routes", "peers", "dataplane", "nat", "policy", "moon",
                            "relay"});
  if (!m) return;

  // An optional section left empty (`routes:` with every entry commented
  // out) means what leaving it out means.
  auto optional = [&](std::string_view key) {
    auto f = m->get(key);
    if (f && f->node.IsNull()) f.reset();
    return f;
  };
  if (const auto f = required(*m, "interface")) parse_interface(*f);
  if (const auto f = optional("dataplane")) parse_dataplane(*f);
  const auto ports = required(*m, "ports");
  if (ports) parse_ports(*ports);
  if (const auto f = optional("routes")) parse_routes(*f);
  // peers may be absent: a hub that the control process fills at run time.
  const auto peers = optional("peers");
  if (peers) parse_peers(*peers);
  if (const auto f = m->get("nat")) parse_nat(*f);
  if (const auto f = m->get("policy")) {
    parse_policy(*f);
  } else {
    for (const auto& [tag, field] : peer_tags_)
      error(field, "tag " + quote(tag) + " needs a policy section that declares it in policy.tags");
  }

  if (const auto f = m->get("moon")) parse_moon(*f);
  if (const auto f = m->get("relay")) parse_relay(*f);

  if (interface_mtu_ && tunnel_uses_v6_ && cfg_.interface.mtu < kMinMtuIpv6) {
    error(*interface_mtu_,
          "must be at least " + std::to_string(kMinMtuIpv6) +
              " when the tunnel carries IPv6 (an IPv6 address or allowed IP), got " +
              std::to_string(cfg_.interface.mtu));
  }
  if (peers && cfg_.peers.size() > cfg_.dataplane.max_peers) {
    error(peers->key_mark, "peers",
          std::to_string(cfg_.peers.size()) + " peers, more than dataplane.max_peers (" +
              std::to_string(cfg_.dataplane.max_peers) + ")");
  }
}

// The relay's section is moongate-relay's to parse (relay/options.h). Here
// the key names are checked against the one list both use, and each
// value's shape (a boolean, a string, or for the list keys a list of
// strings), so a typo fails the data plane's --check too; what a string
// means (a port, an address, a host name) is the relay's to check.
void Loader::parse_relay(const Field& f) {
  if (f.node.IsNull()) return;  // `relay:` with every key commented out
  if (!f.node.IsMap()) {
    error(f, "expected a mapping, got " + describe(f.node));
    return;
  }
  const std::vector<std::string_view> known(kRelayKeys.begin(), kRelayKeys.end());
  std::map<std::string, int> first_line;
  std::vector<RelaySetting> settings;
  bool ok = true;
  for (auto it = f.node.begin(); it != f.node.end(); ++it) {
    const YAML::Node key = it->first;
    const YAML::Node value = it->second;
    if (!key.IsScalar()) {
      error(key.Mark(), f.path, "a key must be a plain name, got " + describe(key));
      ok = false;
      continue;
    }
    std::string name = key.Scalar();
    std::replace(name.begin(), name.end(), '-', '_');  // the flags' spelling is fine too
    if (std::find(known.begin(), known.end(), name) == known.end()) {
      const std::string guess = suggest(name, known);
      error(key.Mark(), f.path,
            "unknown key " + quote(key.Scalar()) +
                (guess.empty() ? std::string() : " (did you mean '" + guess + "'?)"));
      ok = false;
      continue;
    }
    if (const auto [pos, inserted] = first_line.emplace(name, key.Mark().line + 1); !inserted) {
      error(key.Mark(), f.path,
            "duplicate key " + quote(key.Scalar()) + " (first on line " + std::to_string(pos->second) + ")");
      ok = false;
      continue;
    }
    const Field field{value, value.IsNull() ? key.Mark() : value.Mark(), key.Mark(),
                      key_path(f.path, key.Scalar())};
    RelaySetting setting{key.Scalar(), {}, false};
    if (relay_key_is_boolean(name)) {
      const auto b = boolean(field);
      if (b) setting.values.push_back(*b ? "true" : "false");
    } else if (relay_key_is_list(name)) {
      setting.list = value.IsSequence();
      if (const auto items = list(field, true)) {
        for (const Field& item : *items)
          if (const auto v = string(item)) setting.values.push_back(*v);
        if (setting.values.size() != items->size()) setting.values.clear();
      }
    } else if (const auto v = string(field)) {
      setting.values.push_back(*v);
    }
    if (setting.values.empty() && !(setting.list && value.size() == 0)) {
      ok = false;  // the helpers said why
      continue;
    }
    settings.push_back(std::move(setting));
  }
  if (ok) cfg_.relay = std::move(settings);
}

void Loader::parse_interface(const Field& f) {
  const auto m =
      map(f, {"name", "private_key", "private_key_file", "listen_port", "addresses", "mtu"});
  if (!m) return;
  Interface& itf = cfg_.interface;

  if (const auto name = required(*m, "name")) {
    if (const auto s = string(*name)) {
      if (valid_name(*s)) {
        itf.name = *s;
      } else {
        error(*name,
              quote(*s) + " is not a valid name: 1 to 15 of the characters a-z A-Z 0-9 _ . -");
      }
    }
  }

  const auto key = m->get("private_key");
  const auto key_file = m->get("private_key_file");
  if (key && key_file) {
    const Field& later = key->key_mark.line > key_file->key_mark.line ? *key : *key_file;
    error(later.key_mark, m->path, "set private_key or private_key_file, not both");
  } else if (!key && !key_file) {
    const auto& typos = m->suggested;
    if (std::find(typos.begin(), typos.end(), "private_key") == typos.end() &&
        std::find(typos.begin(), typos.end(), "private_key_file") == typos.end())
      error(m->mark, m->path, "missing required key 'private_key' (or 'private_key_file')");
  } else if (key) {
    have_own_key_ = secret_inline(*key, itf.private_key);
  } else {
    have_own_key_ = secret_file(*key_file, itf.private_key, itf.private_key_file);
  }
  if (have_own_key_) crypto::x25519_public(itf.public_key, itf.private_key);

  integer_into(m->get("listen_port"), itf.listen_port, 1, 65535);
  if (const auto a = m->get("addresses")) {
    itf.addresses = own_addresses(*a);
    for (const IpPrefix& p : itf.addresses) tunnel_uses_v6_ |= p.addr.is_v6();
  }
  interface_mtu_ = m->get("mtu");
  integer_into(interface_mtu_, itf.mtu, kMinMtu, kMaxMtu);
}

void Loader::parse_dataplane(const Field& f) {
  const auto m =
      map(f, {"lcores", "busy_poll", "max_peers", "burst", "hugepages", "memory_mb", "eal_args"});
  if (!m) return;
  Dataplane& d = cfg_.dataplane;

  if (const auto lcores = m->get("lcores")) {
    if (const auto items = list(*lcores, false)) {
      if (items->empty()) error(*lcores, "at least one worker lcore is needed");
      std::vector<unsigned> out;
      for (const Field& item : *items) {
        const auto v = integer(item, 0, kMaxLcore);
        if (!v) continue;
        const auto lcore = static_cast<unsigned>(*v);
        if (std::find(out.begin(), out.end(), lcore) != out.end()) {
          error(item, "lcore " + std::to_string(lcore) + " is listed twice");
          continue;
        }
        out.push_back(lcore);
      }
      if (!out.empty()) d.lcores = std::move(out);
    }
  }
  boolean_into(m->get("busy_poll"), d.busy_poll);
  integer_into(m->get("max_peers"), d.max_peers, 1, kMaxMaxPeers);
  integer_into(m->get("burst"), d.burst, 1, kMaxBurst);
  boolean_into(m->get("hugepages"), d.hugepages);
  integer_into(m->get("memory_mb"), d.memory_mb, kMinMemoryMb, kMaxMemoryMb);
  if (const auto args = m->get("eal_args")) {
    if (const auto items = list(*args, false)) {
      for (const Field& item : *items) {
        const auto s = string(item);
        if (!s) continue;
        if (const ReservedEalOption* r = reserved_eal_option(*s)) {
          error(item, quote(*s) + " is set by moongate from " + std::string(r->field) +
                          "; change that instead");
          continue;
        }
        d.eal_args.push_back(*s);
      }
    }
  }
}

void Loader::parse_ports(const Field& f) {
  const auto items = list(f, false);
  if (!items) return;
  for (std::size_t i = 0; i < items->size(); ++i) parse_port((*items)[i], i);
  const bool has_wan = std::any_of(cfg_.ports.begin(), cfg_.ports.end(),
                                   [](const Port& p) { return p.role == PortRole::kWan; });
  // A port whose role is missing or misspelt may be the wan port: that
  // error is already reported.
  if (!has_wan && !port_role_unknown_) {
    error(f, "at least one port needs role 'wan' (the side WireGuard runs on)");
  }
}

void Loader::parse_port(const Field& f, std::size_t index) {
  // Pushed first so indexes match the file even when this port has errors;
  // a role-less port must not count as the wan port, so start it as lan.
  cfg_.ports.emplace_back();
  cfg_.ports.back().role = PortRole::kLan;
  port_addresses_ok_.push_back(false);
  const auto m = map(f, {"name", "role", "device", "address", "gateway", "mtu", "kernel_interface",
                         "internet", "routed_prefixes"});
  if (!m) {
    port_role_unknown_ = true;
    return;
  }
  Port& port = cfg_.ports.back();

  if (const auto name = required(*m, "name")) {
    if (const auto s = string(*name)) {
      if (!valid_name(*s)) {
        error(*name,
              quote(*s) + " is not a valid name: 1 to 15 of the characters a-z A-Z 0-9 _ . -");
      } else if (const auto [pos, inserted] = port_names_.emplace(*s, index); !inserted) {
        error(*name, "duplicate port name " + quote(*s) + " (also ports[" +
                         std::to_string(pos->second) + "])");
      } else {
        port.name = *s;
      }
    }
  }

  bool role_ok = false;
  if (const auto role = required(*m, "role")) {
    if (const auto s = string(*role)) {
      if (*s == "wan" || *s == "lan") {
        port.role = *s == "wan" ? PortRole::kWan : PortRole::kLan;
        role_ok = true;
      } else {
        error(*role, "expected 'wan' or 'lan', got " + quote(*s));
      }
    }
  }
  port_role_unknown_ |= !role_ok;

  if (const auto device = required(*m, "device")) {
    if (const auto s = string(*device)) {
      std::optional<std::string> id;
      if (auto pci = normalise_pci(*s)) {
        port.device_kind = DeviceKind::kPci;
        id = std::move(pci);
      } else {
        port.device_kind = DeviceKind::kVdev;
        id = vdev_name(*s);
      }
      if (!id) {
        error(*device, quote(*s) +
                           " is not a DPDK device: write a PCI address (0000:03:00.0) or a vdev "
                           "(net_<driver><n>[,key=value,...], e.g. net_af_packet0,iface=eth1)");
      } else if (const auto [pos, inserted] = port_devices_.emplace(*id, index); !inserted) {
        error(*device,
              "device " + quote(*id) + " is already ports[" + std::to_string(pos->second) + "]");
      } else {
        port.device = *s;
      }
    }
  }

  if (const auto address = required(*m, "address")) {
    const std::size_t errors_before = errors_.size();
    port.addresses = own_addresses(*address);
    if (port.addresses.empty() && errors_.size() == errors_before)
      error(*address, "at least one address is needed");
    for (const IpPrefix& p : port.addresses) {
      // Each subnet on one port: otherwise which port reaches a neighbour
      // would depend on table order.
      for (std::size_t other = 0; other < index; ++other) {
        for (const IpPrefix& q : cfg_.ports[other].addresses) {
          if (p.overlaps(q)) {
            error(*address, "subnet " + p.network().to_string() + " overlaps " +
                                q.network().to_string() + " of ports[" + std::to_string(other) +
                                "] (" + cfg_.ports[other].name + ")");
          }
        }
      }
    }
    port_addresses_ok_.back() = errors_.size() == errors_before;
  }

  if (const auto gateway = m->get("gateway")) {
    if (const auto items = list(*gateway, true)) {
      for (const Field& item : *items) {
        const auto g = address(item);
        if (!g) continue;
        const char* family = g->is_v4() ? "IPv4" : "IPv6";
        if (port.gateway(g->family) != nullptr) {
          error(item, std::string("a port has at most one ") + family + " gateway");
          continue;
        }
        const bool own = std::any_of(port.addresses.begin(), port.addresses.end(),
                                     [&](const IpPrefix& p) { return p.addr == *g; });
        const bool on_link = std::any_of(port.addresses.begin(), port.addresses.end(),
                                         [&](const IpPrefix& p) { return p.contains(*g); });
        if (own) {
          error(item, "gateway " + g->to_string() + " is the port's own address");
          continue;
        }
        if (!on_link && port_addresses_ok_.back()) {
          std::string subnets;
          for (const IpPrefix& p : port.addresses) {
            if (p.addr.family != g->family) continue;
            subnets += (subnets.empty() ? "" : ", ") + p.network().to_string();
          }
          error(item,
                "gateway " + g->to_string() + " is not in the port's " +
                    (subnets.empty() ? std::string("addresses (it has no ") + family + " address)"
                                     : "subnets (" + subnets + ")"));
          continue;
        }
        port.gateways.push_back(*g);
      }
    }
  }

  if (const auto kif = m->get("kernel_interface")) {
    if (const auto s = string(*kif)) {
      if (!valid_name(*s)) {
        error(*kif, quote(*s) + " is not a valid interface name: 1 to 15 of the characters a-z A-Z 0-9 _ . -");
      } else if (const auto [pos, inserted] = kernel_interfaces_.emplace(*s, index); !inserted) {
        error(*kif, "kernel interface " + quote(*s) + " is already ports[" + std::to_string(pos->second) + "]'s");
      } else {
        port.kernel_interface = *s;
      }
    }
  }

  // Exit-node settings: only where traffic leaves for the internet.
  for (const char* key : {"internet", "routed_prefixes"}) {
    const auto field = m->get(key);
    if (!field) continue;
    if (role_ok && port.role != PortRole::kWan) {
      error(field->key_mark, key_path(m->path, key), std::string(key) + " is only for wan ports");
      continue;
    }
    const bool routed = std::string_view(key) == "routed_prefixes";
    std::vector<IpPrefix> out;
    if (const auto items = list(*field, true)) {
      for (const Field& item : *items) {
        const auto p = prefix(item, PrefixKind::kNetwork);
        if (!p) continue;
        if (std::find(out.begin(), out.end(), *p) != out.end()) {
          error(item, p->to_string() + " is listed twice");
          continue;
        }
        if (routed && !p->addr.is_v6()) {
          error(item, p->to_string() + ": IPv4 exit traffic is NAT'ed (nat:), only IPv6 prefixes are routed");
          continue;
        }
        if (routed) {
          bool on_link = false;
          for (const IpPrefix& a : port.addresses) on_link |= a.overlaps(*p);
          if (on_link) {
            error(item, p->to_string() + " overlaps the port's own subnet: a routed prefix must be routed to "
                        "this gateway by the upstream, not on-link (no ND proxy)");
            continue;
          }
        }
        out.push_back(*p);
      }
    }
    if (routed)
      port.routed_prefixes = std::move(out);
    else
      port.internet = std::move(out);
  }

  const auto mtu = m->get("mtu");
  integer_into(mtu, port.mtu, kMinMtu, kMaxMtu);
  const bool has_v6 = std::any_of(port.addresses.begin(), port.addresses.end(),
                                  [](const IpPrefix& p) { return p.addr.is_v6(); });
  if (mtu && has_v6 && port.mtu < kMinMtuIpv6) {
    error(*mtu, "must be at least " + std::to_string(kMinMtuIpv6) +
                    " on a port with an IPv6 address, got " + std::to_string(port.mtu));
  }
}

void Loader::parse_routes(const Field& f) {
  const auto items = list(f, false);
  if (!items) return;
  for (std::size_t i = 0; i < items->size(); ++i) parse_route((*items)[i], i);
}

void Loader::parse_route(const Field& f, std::size_t index) {
  const auto m = map(f, {"prefix", "via", "port"});
  if (!m) return;
  Route route;
  std::optional<IpPrefix> prefix_value;
  if (const auto p = required(*m, "prefix")) {
    prefix_value = prefix(*p, PrefixKind::kNetwork);
    if (prefix_value) {
      if (const auto [pos, inserted] = route_prefixes_.emplace(*prefix_value, index); !inserted) {
        error(*p, prefix_value->to_string() + " is already routes[" + std::to_string(pos->second) +
                      "]");
      } else {
        route.prefix = *prefix_value;
      }
    }
  }
  std::optional<IpAddress> via;
  const auto via_field = required(*m, "via");
  if (via_field) via = address(*via_field);
  const Port* port = nullptr;
  if (const auto p = required(*m, "port")) {
    if (const auto s = string(*p)) {
      if (const auto it = port_names_.find(*s); it != port_names_.end()) {
        port = &cfg_.ports[it->second];
        route.port = *s;
        route.port_index = it->second;
      } else {
        std::vector<std::string_view> names;
        for (const auto& [name, i] : port_names_) names.push_back(name);
        error(*p, "no port named " + quote(*s) + did_you_mean(*s, names));
      }
    }
  }
  if (via && prefix_value && via->family != prefix_value->addr.family) {
    error(*via_field, "next hop " + via->to_string() + " is not of the same family as " +
                          prefix_value->to_string());
  } else if (via && port != nullptr && port_addresses_ok_[route.port_index]) {
    const bool own = std::any_of(port->addresses.begin(), port->addresses.end(),
                                 [&](const IpPrefix& a) { return a.addr == *via; });
    const bool on_link = std::any_of(port->addresses.begin(), port->addresses.end(),
                                     [&](const IpPrefix& a) { return a.contains(*via); });
    if (own) {
      error(*via_field, "next hop " + via->to_string() + " is " + port->name + "'s own address");
    } else if (!on_link) {
      std::string subnets;
      for (const IpPrefix& a : port->addresses)
        subnets += (subnets.empty() ? "" : ", ") + a.network().to_string();
      error(*via_field, "next hop " + via->to_string() + " is not in a subnet of port " +
                            port->name + " (" + subnets + ")");
    }
  }
  if (via) route.via = *via;
  cfg_.routes.push_back(std::move(route));
}

void Loader::parse_peers(const Field& f) {
  const auto items = list(f, false);
  if (!items) return;
  cfg_.peers.reserve(items->size());
  for (std::size_t i = 0; i < items->size(); ++i) parse_peer((*items)[i], i);
}

std::string Loader::peer_label(std::size_t index) const {
  std::string s = "peers[" + std::to_string(index) + "]";
  if (index < peer_info_.size() && peer_info_[index].has_key)
    s += " (" + key_label(cfg_.peers[index].public_key) + ")";
  return s;
}

void Loader::parse_peer(const Field& f, std::size_t index) {
  cfg_.peers.emplace_back();
  peer_info_.emplace_back();
  const auto m = map(f, {"public_key", "preshared_key", "preshared_key_file", "allowed_ips",
                         "endpoint", "persistent_keepalive", "name", "tags", "exit_node"});
  if (!m) return;
  Peer& peer = cfg_.peers.back();

  if (const auto key = required(*m, "public_key")) {
    if (const auto s = string(*key)) {
      PublicKey k{};
      if (!decode_key(*s, k.data())) {
        error(*key,
              "not a valid public key: expected 44 base64 characters encoding 32 bytes (as "
              "'wg pubkey' prints), got " +
                  quote(*s));
      } else if (std::all_of(k.begin(), k.end(), [](std::uint8_t b) { return b == 0; })) {
        error(*key, "the key is all zeros");
      } else if (have_own_key_ && k == cfg_.interface.public_key) {
        error(*key, "this is the interface's own public key (derived from its private key)");
      } else if (const auto [pos, inserted] = peer_keys_.emplace(k, index); !inserted) {
        error(*key, "duplicate public key: same as peers[" + std::to_string(pos->second) + "]");
      } else {
        peer.public_key = k;
        peer_info_.back().has_key = true;
      }
    }
  }

  const auto psk = m->get("preshared_key");
  const auto psk_file = m->get("preshared_key_file");
  if (psk && psk_file) {
    const Field& later = psk->key_mark.line > psk_file->key_mark.line ? *psk : *psk_file;
    error(later.key_mark, m->path, "set preshared_key or preshared_key_file, not both");
  } else if (psk) {
    SecretKey k;
    if (secret_inline(*psk, k)) peer.preshared_key = std::move(k);
  } else if (psk_file) {
    SecretKey k;
    if (secret_file(*psk_file, k, peer.preshared_key_file)) peer.preshared_key = std::move(k);
  }

  if (const auto allowed = required(*m, "allowed_ips")) {
    if (const auto items = list(*allowed, true)) {
      for (const Field& item : *items) {
        const auto p = prefix(item, PrefixKind::kNetwork);
        if (!p) continue;
        if (const auto r = route_prefixes_.find(*p); r != route_prefixes_.end()) {
          error(item, p->to_string() + " is also routes[" + std::to_string(r->second) +
                          "]: a prefix leads to one place only");
          continue;
        }
        if (const auto [pos, inserted] = allowed_ips_.emplace(*p, index); !inserted) {
          if (pos->second == index) {
            error(item, p->to_string() + " is listed twice");
          } else {
            error(item, p->to_string() + " is claimed by both " + peer_label(pos->second) +
                            " and " + peer_label(index) + ": a prefix leads to one peer only");
          }
          continue;
        }
        tunnel_uses_v6_ |= p->addr.is_v6();
        peer.allowed_ips.push_back(*p);
      }
    }
  }

  if (const auto endpoint = m->get("endpoint")) {
    if (endpoint->node.IsSequence()) {
      // `endpoint: [2001:db8::1]` without a port parses as a YAML list.
      error(*endpoint,
            "expected host:port, got a list (an IPv6 endpoint must be quoted: "
            "\"[2001:db8::1]:51820\")");
    } else if (const auto s = string(*endpoint)) {
      std::string why;
      if (auto e = parse_endpoint(*s, &why)) {
        peer.endpoint = *e;
      } else {
        error(*endpoint, why);
      }
    }
  }
  integer_into(m->get("persistent_keepalive"), peer.persistent_keepalive, 0, 65535);

  if (const auto name = m->get("name")) {
    if (const auto s = string(*name)) {
      if (!valid_peer_name(*s)) {
        error(*name, quote(*s) + " is not a valid peer name: a letter, then up to 62 of a-z A-Z 0-9 _ . -");
      } else if (const auto [pos, inserted] = peer_names_.emplace(*s, index); !inserted) {
        error(*name, "duplicate peer name " + quote(*s) + " (also peers[" + std::to_string(pos->second) + "])");
      } else {
        peer.name = *s;
      }
    }
  }
  if (const auto tags = m->get("tags")) {
    if (const auto items = list(*tags, true)) {
      for (const Field& item : *items) {
        const auto s = string(item);
        if (!s) continue;
        if (!valid_peer_name(*s)) {
          error(item, quote(*s) + " is not a valid tag: a letter, then up to 62 of a-z A-Z 0-9 _ . -");
        } else if (std::find(peer.tags.begin(), peer.tags.end(), *s) != peer.tags.end()) {
          error(item, "tag " + quote(*s) + " is listed twice");
        } else {
          peer.tags.push_back(*s);
          peer_tags_.emplace_back(*s, item);
        }
      }
    }
  }
  boolean_into(m->get("exit_node"), peer.exit_node);
}

std::vector<std::string> Loader::strings(const Field& f, bool scalar_ok) {
  std::vector<std::string> out;
  const auto items = list(f, scalar_ok);
  if (!items) return out;
  for (const Field& item : *items) {
    const auto s = string(item);
    if (!s) continue;
    if (s->empty()) {
      error(item, "expected a non-empty string");
      continue;
    }
    policy_fields_.emplace(item.path.substr(std::string_view("policy.").size()), item);
    out.push_back(*s);
  }
  return out;
}

void Loader::parse_nat(const Field& f) {
  Nat nat;
  if (f.node.IsNull()) {  // `nat:` alone: masquerade with every default
    cfg_.nat = nat;
    return;
  }
  const auto m = map(f, {"masquerade", "pool", "port_min", "port_max", "max_flows", "timeouts"});
  if (!m) return;
  const auto masq = m->get("masquerade");
  const auto pool = m->get("pool");
  if (masq && pool) {
    const Field& later = masq->key_mark.line > pool->key_mark.line ? *masq : *pool;
    error(later.key_mark, m->path, "set masquerade or pool, not both");
  } else if (masq) {
    if (const auto v = boolean(*masq)) {
      if (!*v) error(*masq, "masquerade: false needs a pool of addresses instead (pool: [...])");
    }
  } else if (pool) {
    nat.masquerade = false;
    if (const auto items = list(*pool, true)) {
      if (items->empty()) error(*pool, "at least one address is needed");
      for (const Field& item : *items) {
        const auto a = address(item);
        if (!a) continue;
        if (!a->is_v4()) {
          error(item, a->to_string() + ": NAT is IPv4 only (IPv6 exit is routed: routed_prefixes)");
        } else if (a->is_unspecified() || a->is_multicast() ||
                   (a->bytes[0] == 255 && a->bytes[1] == 255 && a->bytes[2] == 255 && a->bytes[3] == 255)) {
          error(item, a->to_string() + " cannot be a source address");
        } else if (std::find(nat.pool.begin(), nat.pool.end(), *a) != nat.pool.end()) {
          error(item, a->to_string() + " is listed twice");
        } else {
          nat.pool.push_back(*a);
        }
      }
    }
  }
  if (nat.masquerade) {
    bool wan_v4 = false;
    for (const Port& p : cfg_.ports)
      if (p.role == PortRole::kWan)
        for (const IpPrefix& a : p.addresses) wan_v4 |= a.addr.is_v4();
    if (!wan_v4 && !port_role_unknown_)
      error(masq ? masq->mark : m->mark, masq ? masq->path : m->path,
            "masquerade needs a wan port with an IPv4 address");
  }
  const auto pmin = m->get("port_min");
  const auto pmax = m->get("port_max");
  integer_into(pmin, nat.port_min, kMinNatPort, 65535);
  integer_into(pmax, nat.port_max, kMinNatPort, 65535);
  // Each worker lcore gets a slice of at least 64 ports (nat/port_partition.h).
  const std::uint32_t span = nat.port_max >= nat.port_min ? nat.port_max - nat.port_min + 1u : 0;
  const std::uint32_t need = 64u * static_cast<std::uint32_t>(cfg_.dataplane.lcores.size());
  if (span < need) {
    const Field& at = pmax ? *pmax : pmin ? *pmin : Field{f.node, m->mark, m->mark, m->path};
    error(at, "port_min..port_max (" + std::to_string(nat.port_min) + ".." + std::to_string(nat.port_max) +
                  ") must hold at least 64 ports per worker lcore (" + std::to_string(need) + ")");
  }
  integer_into(m->get("max_flows"), nat.max_flows, 1, kMaxMaxFlows);
  if (const auto t = m->get("timeouts")) {
    nat::Timeouts& to = nat.timeouts;
    const std::pair<const char*, std::uint32_t*> keys[] = {
        {"tcp_syn_sent", &to.tcp_syn_sent},     {"tcp_syn_received", &to.tcp_syn_received},
        {"tcp_established", &to.tcp_established}, {"tcp_fin_wait", &to.tcp_fin_wait},
        {"tcp_close_wait", &to.tcp_close_wait}, {"tcp_last_ack", &to.tcp_last_ack},
        {"tcp_time_wait", &to.tcp_time_wait},   {"tcp_close", &to.tcp_close},
        {"udp", &to.udp},                       {"udp_stream", &to.udp_stream},
        {"icmp", &to.icmp}};
    const auto tm = map(*t, {"tcp_syn_sent", "tcp_syn_received", "tcp_established", "tcp_fin_wait",
                             "tcp_close_wait", "tcp_last_ack", "tcp_time_wait", "tcp_close", "udp",
                             "udp_stream", "icmp"});
    if (tm)
      for (const auto& [key, out] : keys) integer_into(tm->get(key), *out, 1, kMaxNatTimeout);
  }
  cfg_.nat = std::move(nat);
}

// The moon's own file is only found here; its content (identity, World,
// budgets) is checked by the data plane with zerotier/moon_config.h, which
// this library does not link (moongate-dataplane --check does both).
void Loader::parse_moon(const Field& f) {
  const auto m = map(f, {"config", "port"});
  if (!m) return;
  Moon moon;
  if (const auto c = required(*m, "config")) {
    if (const auto s = string(*c)) {
      if (s->empty()) {
        error(*c, "must name the moon's YAML file");
      } else {
        moon.config = resolve(*s);
        if (access(moon.config.c_str(), R_OK) != 0)
          error(*c, "cannot read " + quote(moon.config) + ": " + std::strerror(errno));
      }
    }
  }
  const auto port = m->get("port");
  integer_into(port, moon.port, 1, 65535);
  if (moon.port == cfg_.interface.listen_port)
    error(port ? port->mark : m->mark, port ? port->path : m->path,
          "port " + std::to_string(moon.port) + " is interface.listen_port (WireGuard's)");
  bool wan = false;
  for (const Port& p : cfg_.ports) wan |= p.role == PortRole::kWan && !p.addresses.empty();
  if (!wan && !port_role_unknown_) error(m->mark, m->path, "the moon needs a wan port with an address");
  cfg_.moon = std::move(moon);
}

void Loader::parse_policy(const Field& f) {
  policy::PolicySpec spec;
  if (f.node.IsNull()) {  // `policy:` alone: deny everything not established
    for (const auto& [tag, field] : peer_tags_)
      error(field, "tag " + quote(tag) + " is not declared in policy.tags");
    cfg_.policy = spec;
    return;
  }
  const auto m = map(f, {"groups", "tags", "rules"});
  if (!m) return;
  if (const auto t = m->get("tags")) spec.tags = strings(*t, true);
  for (const auto& [tag, field] : peer_tags_)
    if (std::find(spec.tags.begin(), spec.tags.end(), tag) == spec.tags.end())
      error(field, "tag " + quote(tag) + " is not declared in policy.tags");

  if (const auto g = m->get("groups"); g && g->node.IsMap()) {
    for (auto it = g->node.begin(); it != g->node.end(); ++it) {
      const YAML::Node key = it->first;
      const YAML::Node value = it->second;
      const std::string name = key.IsScalar() ? key.Scalar() : std::string();
      if (!valid_peer_name(name)) {
        error(key.Mark(), g->path, quote(name) + " is not a valid group name: a letter, then up to 62 of a-z A-Z 0-9 _ . -");
        continue;
      }
      if (spec.groups.count(name)) {
        error(key.Mark(), g->path, "duplicate group " + quote(name));
        continue;
      }
      const Field gf{value, value.IsNull() ? key.Mark() : value.Mark(), key.Mark(), key_path(g->path, name)};
      spec.groups[name] = strings(gf, true);
    }
  } else if (g) {
    error(*g, "expected a mapping of group name -> peers, got " + describe(g->node));
  }

  if (const auto r = m->get("rules")) {
    if (const auto items = list(*r, false)) {
      for (std::size_t i = 0; i < items->size(); ++i) {
        const Field& item = (*items)[i];
        spec.rules.emplace_back();
        policy::RuleSpec& rule = spec.rules.back();
        const std::string rel = "rules[" + std::to_string(i) + "]";
        policy_fields_.emplace(rel, item);
        const auto rm = map(item, {"action", "src", "dst", "proto"});
        if (!rm) continue;
        if (const auto a = required(*rm, "action")) {
          if (const auto s = string(*a); s && *s != "accept")
            error(*a, "only 'accept' rules exist: what no rule accepts is denied, got " + quote(*s));
        }
        if (const auto src = required(*rm, "src")) {
          policy_fields_.emplace(rel + ".src", *src);
          rule.src = strings(*src, true);
        } else {
          rule.src = {"*"};  // already reported; keep the compiler quiet
        }
        if (const auto dst = required(*rm, "dst")) {
          policy_fields_.emplace(rel + ".dst", *dst);
          rule.dst = strings(*dst, true);
        } else {
          rule.dst = {"*:*"};
        }
        if (const auto proto = rm->get("proto")) {
          policy_fields_.emplace(rel + ".proto", *proto);
          if (const auto s = string(*proto)) rule.proto = *s;
        }
      }
    }
  }

  // The compiler checks references and syntax; map its paths to positions.
  // Peers with an undeclared tag were reported above: compile without those.
  std::vector<policy::PeerInfo> peers = policy_peers(cfg_);
  for (policy::PeerInfo& p : peers)
    std::erase_if(p.tags, [&](const std::string& t) {
      return std::find(spec.tags.begin(), spec.tags.end(), t) == spec.tags.end();
    });
  const policy::CompileResult compiled = policy::compile(spec, peers);
  for (const policy::CompileError& e : compiled.errors) {
    const auto it = policy_fields_.find(e.path);
    if (it != policy_fields_.end())
      error(it->second.mark, "policy." + e.path, e.message);
    else
      error(m->mark, "policy." + e.path, e.message);
  }
  cfg_.policy = std::move(spec);
}

std::string directory_of(const std::string& path) {
  const std::size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

// Everything but running out of memory becomes an error in the result.
template <typename F>
Result guarded(const std::string& source, F&& f) {
  try {
    return f();
  } catch (const std::bad_alloc&) {
    throw;
  } catch (const std::exception& e) {
    return Result::failure({Error{source, 0, 0, "", std::string("internal error: ") + e.what()}});
  }
}

}  // namespace

Result load_string(const std::string& yaml, const std::string& source_name) {
  return guarded(source_name, [&] { return Loader(source_name, "").run(yaml); });
}

Result load_file(const std::string& path) {
  return guarded(path, [&] {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0)
      return Result::failure({Error{path, 0, 0, "", "cannot read: " + errno_text(errno)}});
    std::string text;
    struct stat st {};
    if (::fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
      ::close(fd);
      return Result::failure({Error{path, 0, 0, "", "cannot read: it is a directory"}});
    }
    char buf[65536];
    while (true) {
      const ssize_t n = ::read(fd, buf, sizeof buf);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        const int err = errno;
        ::close(fd);
        return Result::failure({Error{path, 0, 0, "", "cannot read: " + errno_text(err)}});
      }
      if (n == 0) break;
      text.append(buf, static_cast<std::size_t>(n));
    }
    ::close(fd);
    return Loader(path, directory_of(path)).run(text);
  });
}

}  // namespace moongate::config
