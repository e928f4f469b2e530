// `moongatectl moon ...`: make a moon's identity and World, the equivalent
// of zerotier-idtool generate / initmoon / genmoon (docs/moon.md).
#pragma once

#include <string>
#include <vector>

namespace moongate::control {

// args are what follows "moon"; returns the process exit code.
int moon_command(const std::vector<std::string>& args);

}  // namespace moongate::control
