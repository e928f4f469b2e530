// /debug/vars (see debug_vars.h).
#include "relay/debug_vars.h"

#include <cctype>
#include <utility>
#include <vector>

#include "relay/json.h"

namespace moongate::relay {
namespace {

// JSON's number grammar: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
bool json_number(std::string_view s) {
  std::size_t i = 0;
  auto digits = [&] {
    const std::size_t from = i;
    while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) ++i;
    return i > from;
  };
  if (i < s.size() && s[i] == '-') ++i;
  if (i < s.size() && s[i] == '0') {
    ++i;
  } else if (!digits()) {
    return false;
  }
  if (i < s.size() && s[i] == '.') {
    ++i;
    if (!digits()) return false;
  }
  if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
    ++i;
    if (i < s.size() && (s[i] == '+' || s[i] == '-')) ++i;
    if (!digits()) return false;
  }
  return i == s.size();
}

void json_value(std::string& out, std::string_view v) {
  if (json_number(v)) out += v;
  else json_string(out, v);
}

// `shard="1",kind="x"` -> `shard=1,kind=x`
std::string label_key(std::string_view labels) {
  std::string k;
  bool escaped = false;
  for (const char c : labels) {
    if (escaped) {
      k += c;
      escaped = false;
    } else if (c == '\\') {
      escaped = true;
    } else if (c != '"') {
      k += c;
    }
  }
  return k;
}

struct Entry {
  std::string name;
  std::string value;                                     // unlabelled
  std::vector<std::pair<std::string, std::string>> sub;  // labelled
  bool labelled = false;
};

}  // namespace

std::string vars_json(std::string_view text) {
  std::vector<Entry> entries;
  auto find = [&](std::string_view name) -> Entry* {
    for (auto& e : entries)
      if (e.name == name) return &e;
    return nullptr;
  };
  while (!text.empty()) {
    const std::size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
    while (!line.empty() && (line.back() == ' ' || line.back() == '\r')) line.remove_suffix(1);
    if (line.empty() || line.front() == '#') continue;
    const std::size_t sp = line.rfind(' ');
    if (sp == std::string_view::npos || sp == 0) continue;
    const std::string_view value = line.substr(sp + 1);
    std::string_view series = line.substr(0, sp);
    while (!series.empty() && series.back() == ' ') series.remove_suffix(1);
    const std::size_t brace = series.find('{');
    if (brace == std::string_view::npos || series.back() != '}') {
      if (find(series)) continue;  // a repeated sample: the first one stands
      entries.push_back({std::string(series), std::string(value), {}, false});
      continue;
    }
    const std::string_view name = series.substr(0, brace);
    const std::string key = label_key(series.substr(brace + 1, series.size() - brace - 2));
    Entry* e = find(name);
    if (!e) {
      entries.push_back({std::string(name), "", {}, true});
      e = &entries.back();
    }
    if (!e->labelled) {
      // The same name with and without labels: keep the labelled one apart.
      entries.push_back({std::string(series), std::string(value), {}, false});
      continue;
    }
    e->sub.emplace_back(key, std::string(value));
  }
  std::string out = "{\n";
  for (std::size_t i = 0; i < entries.size(); ++i) {
    const Entry& e = entries[i];
    json_string(out, e.name);
    out += ": ";
    if (e.labelled) {
      out += '{';
      for (std::size_t j = 0; j < e.sub.size(); ++j) {
        if (j) out += ", ";
        json_string(out, e.sub[j].first);
        out += ": ";
        json_value(out, e.sub[j].second);
      }
      out += '}';
    } else {
      json_value(out, e.value);
    }
    out += i + 1 < entries.size() ? ",\n" : "\n";
  }
  out += "}\n";
  return out;
}

std::string vars_response(std::string_view json) {
  std::string s = "HTTP/1.1 200 OK\r\nContent-Type: application/json; charset=utf-8\r\nConnection: close\r\n";
  s += "Content-Length: " + std::to_string(json.size()) + "\r\n\r\n";
  s += json;
  return s;
}

}  // namespace moongate::relay
