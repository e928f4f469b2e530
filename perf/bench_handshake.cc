// Handshake cost on one core: how many initiations a responder consumes
// (and answers) per second, and how many it turns away with cookie replies
// under load.
//
//   consume+respond  Device::receive_handshake on a valid initiation:
//                    mac1, Noise consume (2 DH), response (2 DH), keypair
//   cookie reply     the same message under load without mac2: mac1 check
//                    and an XChaCha20-Poly1305 cookie reply, no DH
//
// Initiations come from distinct peers (timestamps and flood limits are
// per peer), made before timing starts; each repetition uses a fresh
// responder with the same key so every initiation is new to it.
#include <x86intrin.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <memory>
#include <vector>

#include "crypto/x25519.h"
#include "wireguard/clock.h"
#include "wireguard/device.h"

using namespace moongate;

namespace {

struct CaptureHost final : wg::DeviceHost {
  std::vector<std::uint8_t> last;
  std::size_t sent = 0;
  bool send_handshake(wg::Peer*, const wg::Endpoint&, const std::uint8_t* msg,
                      std::size_t len) override {
    last.assign(msg, msg + len);
    ++sent;
    return true;
  }
  void flush_staged(wg::Peer&, bool) override {}
  void purge_staged(wg::Peer&) override {}
};

wg::Endpoint endpoint_of(std::size_t i) {
  const std::uint8_t a[4] = {10, static_cast<std::uint8_t>(i >> 16),
                             static_cast<std::uint8_t>(i >> 8), static_cast<std::uint8_t>(i)};
  return wg::Endpoint::v4(a, 51820);
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  const std::size_t peers = argc > 1 ? std::strtoul(argv[1], nullptr, 10) : 2000;
  const int reps = argc > 2 ? std::atoi(argv[2]) : 5;
  wg::ManualClock clock;

  crypto::SecretKey responder_priv;
  crypto::PublicKey responder_pub;
  crypto::x25519_generate(responder_priv, responder_pub);

  // One initiator device per peer, each producing one initiation.
  std::vector<crypto::PublicKey> initiator_keys(peers);
  std::vector<std::vector<std::uint8_t>> initiations(peers);
  {
    CaptureHost host;
    for (std::size_t i = 0; i < peers; ++i) {
      wg::Device dev(1, host);
      crypto::SecretKey priv;
      crypto::x25519_generate(priv, initiator_keys[i]);
      dev.set_private_key(priv);
      wg::Peer* p = dev.add_peer(responder_pub);
      p->endpoint = endpoint_of(1);
      if (dev.initiate_handshake(*p, clock.now()) != wg::Drop::kOk) {
        std::fprintf(stderr, "could not create initiation %zu\n", i);
        return 1;
      }
      initiations[i] = host.last;
    }
  }

  auto run = [&](bool under_load, std::uint64_t& cycles) {
    CaptureHost host;
    wg::Device responder(peers, host);
    responder.set_private_key(responder_priv);
    for (const auto& k : initiator_keys) responder.add_peer(k);
    responder.set_under_load(under_load);
    const wg::Drop expect = under_load ? wg::Drop::kCookieSent : wg::Drop::kOk;
    const auto t0 = std::chrono::steady_clock::now();
    const std::uint64_t c0 = __rdtsc();
    for (std::size_t i = 0; i < peers; ++i) {
      if (responder.receive_handshake(initiations[i].data(), initiations[i].size(),
                                      endpoint_of(i), clock.now()) != expect) {
        std::fprintf(stderr, "unexpected verdict at %zu\n", i);
        std::exit(1);
      }
    }
    cycles = (__rdtsc() - c0) / peers;
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (host.sent != peers) std::exit(1);
    return static_cast<double>(peers) / s;
  };

  // The ceiling: a responder does 4 scalar multiplications per handshake
  // (es; ephemeral generation, ee, se; ss is precomputed per peer).
  auto x25519_rate = [&]() {
    crypto::SecretKey priv, shared;
    crypto::PublicKey pub;
    crypto::x25519_generate(priv, pub);
    const int n = 2000;
    const auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < n; ++i) {
      if (!crypto::x25519(shared, priv, initiator_keys[static_cast<std::size_t>(i) % peers]))
        std::exit(1);
    }
    return n / std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  };

  std::vector<double> full, cookie, x25519;
  std::vector<double> full_cyc, cookie_cyc;
  for (int r = 0; r < reps; ++r) {
    x25519.push_back(x25519_rate());
    std::uint64_t c = 0;
    full.push_back(run(false, c));
    full_cyc.push_back(static_cast<double>(c));
    cookie.push_back(run(true, c));
    cookie_cyc.push_back(static_cast<double>(c));
  }
  std::printf("| work per initiation | handshakes/s (one core, median of %d) | TSC cycles each |\n",
              reps);
  std::printf("|---|---|---|\n");
  std::printf("| consume + respond (4 X25519) | %.0f | %.0f |\n", median(full), median(full_cyc));
  std::printf("| cookie reply under load (no DH) | %.0f | %.0f |\n", median(cookie),
              median(cookie_cyc));
  std::printf("| ceiling: X25519 rate / 4 | %.0f | |\n", median(x25519) / 4);
  std::printf("\nconsume + respond = %.0f%% of the X25519 ceiling; %zu distinct initiating peers per repetition\n",
              100.0 * median(full) / (median(x25519) / 4), peers);
  return 0;
}
