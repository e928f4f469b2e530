// The keys of the `relay:` section (docs/relay.md), in one list for the two
// readers of a site.yaml that has one: config/'s loader, which checks the
// names (an unknown key is an error there as everywhere in the file), and
// moongate-relay (relay/options.cc), which parses the values. Written with
// '_'; both accept '-' in their place, as the flags are spelt.
#pragma once

#include <array>
#include <string_view>

namespace moongate::config {

inline constexpr std::array<std::string_view, 25> kRelayKeys = {
    "addr",          "hostname",  "certdir",       "plain",      "http_port",  "stun_port",
    "shards",        "conn_table", "key_file",  "mesh_key_file", "mesh_with",  "mesh_insecure", "admission",
    "rate_limit",    "rate_burst", "migrate", "migrate_share", "migrate_min_packets", "migrate_hold",
    "migrate_margin", "migrate_margin_min", "verbose",      "moon_config", "bootstrap_dns_names",
    "unpublished_bootstrap_dns_names"};

// Keys taking true or false, and keys taking a list (or one value).
constexpr bool relay_key_is_boolean(std::string_view key) {
  return key == "plain" || key == "mesh_insecure" || key == "verbose";
}
constexpr bool relay_key_is_list(std::string_view key) {
  return key == "mesh_with" || key == "bootstrap_dns_names" || key == "unpublished_bootstrap_dns_names";
}

}  // namespace moongate::config
