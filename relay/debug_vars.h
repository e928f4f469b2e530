// /debug/vars: the counters of /debug/varz as one JSON object, as derper's
// expvar page serves them (loopback clients only, like /debug/varz).
//
// Made from the Prometheus text itself, so the two pages cannot disagree:
// every sample `name value` becomes `"name": value`; samples with labels
// (`name{shard="1"} value`) become one object per name keyed by the labels
// without quotes (`"name": {"shard=1": value}`). Comments are skipped; a
// value that is not a JSON number (NaN, +Inf) is written as a string.
#pragma once

#include <string>
#include <string_view>

namespace moongate::relay {

std::string vars_json(std::string_view prometheus_text);
// The HTTP response around vars_json's output.
std::string vars_response(std::string_view json);

}  // namespace moongate::relay
