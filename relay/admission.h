// Who may use the relay (mesh-key holders always may; derp::Server checks
// that before asking here).
//
//   open     everyone
//   keys     keys listed in a file (hex or nodekey:hex, one a line, '#'
//            comments), re-read when it changes
//   netmap   keys of the peers in the netmap moongate-control publishes
//            (/dev/shm/moongate-<interface>), re-read every second
//   url      POST {"NodePublic":"nodekey:<hex>","Source":"<ip>"} to a URL
//            (plain http) that answers {"Allow":true}; anything else, or no
//            answer within 5 s, refuses
//
// The key set is an immutable snapshot swapped under a mutex by one loader
// thread; shards read it only during handshakes. URL checks run on one
// worker thread and come back through a callback (the shard's inbox).
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_set>

#include "derp/frame.h"
#include "derp/server.h"

namespace moongate::netmap {
class Segment;
}

namespace moongate::relay {

enum class AdmissionMode { kOpen, kKeys, kNetmap, kUrl };

struct AdmissionConfig {
  AdmissionMode mode = AdmissionMode::kOpen;
  std::string keys_file;
  std::string netmap_interface;  // segment moongate-<interface>
  std::string url;               // http://host:port/path
};

class Admitter {
 public:
  using Done = std::function<void(bool allow)>;

  explicit Admitter(AdmissionConfig cfg);
  ~Admitter();
  Admitter(const Admitter&) = delete;
  Admitter& operator=(const Admitter&) = delete;

  // Loads what the mode needs and starts the worker; "" or an error.
  std::string start();
  // kAllow/kDeny now, or kPending and `done` called later from the worker.
  derp::Admission check(const derp::Key& key, const std::string& source_ip, Done done);
  std::size_t known_keys() const;
  AdmissionMode mode() const noexcept { return cfg_.mode; }

 private:
  struct KeyHash {
    std::size_t operator()(const derp::Key& k) const noexcept;
  };
  using KeySet = std::unordered_set<derp::Key, KeyHash>;
  void run();
  bool reload();
  bool ask_url(const derp::Key& key, const std::string& source_ip);

  AdmissionConfig cfg_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::shared_ptr<const KeySet> keys_;
  struct Job {
    derp::Key key;
    std::string source;
    Done done;
  };
  std::deque<Job> jobs_;
  bool stop_ = false;
  std::thread worker_;
  std::int64_t keys_mtime_ = -1;
  std::uint64_t netmap_generation_ = 0;
  std::unique_ptr<netmap::Segment> segment_;  // kept mapped between checks
};

// Parses a keys file's text; false and `error` on a bad line.
bool parse_keys(const std::string& text, std::vector<derp::Key>& out, std::string& error);

}  // namespace moongate::relay
