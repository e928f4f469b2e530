// moongate-control's state and decisions, without its sockets (main.cc owns
// those), so tests drive it directly.
//
//   start    load the YAML; the netmap is the YAML's, unless the persisted
//            netmap (<state_dir>/<interface>.conf, written after every
//            change made through the UAPI) is newer than the YAML: then its
//            key, port and peers win (routes always come from the YAML).
//            Publish it to the shared segment (a restarted control process
//            republishes; the data plane sees an unchanged netmap).
//   uapi     a `wg` request; a change is persisted, then published (one
//            that would leave the policy naming a peer no longer there is
//            refused and changes nothing)
//   reload   (SIGHUP, inotify, `moongatectl reload`) read the YAML again; a
//            file with errors (a policy that does not compile among them,
//            with its file position) or one the segment cannot hold
//            changes nothing and the errors are returned;
//            otherwise the YAML becomes the netmap (run-time changes made
//            through `wg` since are dropped, as `wg syncconf` would)
//   events   drain the data plane's events into per-peer run-time state and
//            per-lcore counters; heartbeat
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"
#include "control/runtime.h"
#include "control/uapi.h"
#include "netmap/netmap.h"
#include "netmap/segment.h"

namespace moongate::control {

struct Options {
  std::string config_path;
  std::string state_dir = "/var/lib/moongate";
  std::string segment_name;  // default: netmap::Segment::name_for(interface)
};

class Controller {
 public:
  // "" or every error (config errors one per line, file:line:col first).
  std::string start(const Options& opts);
  std::string reload();
  UapiResult uapi(std::string_view request);
  // Drains up to `max` events; updates heartbeats. Call every ~100 ms.
  std::size_t poll_events(std::uint64_t mono_ns, std::size_t max = 65536);

  const config::Config& config() const noexcept { return config_; }
  const netmap::Netmap& netmap() const noexcept { return netmap_; }
  const RuntimeTable& runtime() const noexcept { return runtime_; }
  netmap::Segment& segment() noexcept { return *segment_; }
  const std::string& state_file() const noexcept { return state_file_; }
  // Per worker lcore, counter name -> value (the data plane's last report).
  const std::map<std::uint16_t, std::map<std::string, std::uint64_t>>& lcore_counters() const noexcept {
    return counters_;
  }
  std::uint64_t reloads() const noexcept { return reloads_; }
  std::uint64_t reload_failures() const noexcept { return reload_failures_; }
  std::uint64_t save_failures() const noexcept { return save_failures_; }

  // Operator views (moongatectl).
  std::string status_text(std::uint64_t now_wall_ns) const;
  std::string status_json(std::uint64_t now_wall_ns) const;
  std::string metrics_text() const;  // Prometheus exposition format
  // The netmap the data plane runs, secrets left out: a line per peer and
  // route, then the policy (its tags, groups and rules, one a line).
  std::string netmap_text() const;
  // The policy's counters as the data plane reports them: the rules of
  // the policy in force, and a rule's accepted packets summed over the
  // lcores (or of one).
  static constexpr std::uint16_t kAllLcores = 0xffff;
  std::size_t policy_rules() const;
  std::uint64_t rule_accepted(std::size_t rule, std::uint16_t lcore = kAllLcores) const;

  // "" when `n`'s policy (if any) compiles against n's peers, else the
  // compiler's first error.
  static std::string policy_problem(const netmap::Netmap& n);

 private:
  std::string publish_and_persist(bool persist);
  std::string persist() const;

  Options opts_;
  config::Config config_;
  netmap::Netmap netmap_;
  std::unique_ptr<netmap::Segment> segment_;
  std::unique_ptr<Uapi> uapi_;
  RuntimeTable runtime_;
  std::map<std::uint16_t, std::map<std::string, std::uint64_t>> counters_;
  std::string state_file_;
  std::uint64_t reloads_ = 0;
  std::uint64_t reload_failures_ = 0;
  std::uint64_t save_failures_ = 0;
  std::uint64_t events_ = 0;
};

}  // namespace moongate::control
