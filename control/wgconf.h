// WireGuard configuration files (wg(8) `setconf` / `showconf` syntax, and
// wg-quick's, whose extra [Interface] keys are reported and skipped).
//
// Used two ways: the control process persists the netmap it runs in this
// format (readable by `wg setconf`, diffable by hand), and operators import
// an existing wg-quick file (`moongatectl import`).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "netmap/netmap.h"

namespace moongate::control {

struct WgConfResult {
  netmap::Netmap netmap;
  std::vector<std::string> errors;    // "file:line: message"; the file is refused when not empty
  std::vector<std::string> ignored;   // wg-quick keys with no meaning here ("file:line: Key")
  std::vector<std::string> addresses; // wg-quick Address= values (for the import's YAML)
};

WgConfResult parse_wgconf(std::string_view text, const std::string& source);

// The netmap in `wg showconf` form (keys in base64; mode 0600 material).
std::string format_wgconf(const netmap::Netmap& n);

}  // namespace moongate::control
