// The keys of the `relay:` section (docs/relay.md), in one list for the two
// readers of a site.yaml that has one: config/'s loader, which checks the
// names (an unknown key is an error there as everywhere in the file), and
// moongate-relay (relay/options.cc), which parses the values. Written with
// '_'; both accept '-' in their place, as the flags are spelt.
#pragma once

#include <array>
#include <string_view>

namespace moongate::config {

inline constexpr std::array<std::string_view, 18> kRelayKeys = {
    "addr",          "hostname",  "certdir",       "plain",      "http_port",  "stun_port",
    "shards",        "key_file",  "mesh_key_file", "mesh_with",  "mesh_insecure", "admission",
    "rate_limit",    "rate_burst", "verbose",      "moon_config", "bootstrap_dns_names",
    "unpublished_bootstrap_dns_names"};

}  // namespace moongate::config
