// The relay's user-space TLS 1.3 record layer, differential against
// OpenSSL: an OpenSSL client (memory BIOs) handshakes with the relay's
// TlsConn, which then leaves OpenSSL; every record either side makes must be
// read by the other, for each of the three suites, across KeyUpdates in
// both directions. Bad records end the connection with a counted reason;
// records cut anywhere are buffered until whole.
#include <gtest/gtest.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "relay/tls.h"
#include "relay/tls_record.h"

namespace moongate::relay {
namespace {

struct Suite {
  const char* openssl_name;
  TlsSuite suite;
};
const Suite kSuites[] = {
    {"TLS_AES_128_GCM_SHA256", TlsSuite::kAes128Gcm},
    {"TLS_AES_256_GCM_SHA384", TlsSuite::kAes256Gcm},
    {"TLS_CHACHA20_POLY1305_SHA256", TlsSuite::kChaCha20Poly1305},
};

// The client's own traffic secrets, from its keylog callback: a second,
// hand-driven client record layer makes records OpenSSL never would.
struct ClientSecrets {
  std::vector<std::uint8_t> client, server;
};

std::vector<std::uint8_t> unhex(const char* p) {
  std::vector<std::uint8_t> out;
  for (; p[0] && p[1]; p += 2) {
    unsigned v = 0;
    std::sscanf(p, "%2x", &v);
    out.push_back(static_cast<std::uint8_t>(v));
  }
  return out;
}

void client_keylog(const SSL* ssl, const char* line) {
  auto* s = static_cast<ClientSecrets*>(SSL_get_ex_data(ssl, 0));
  const char* secret = std::strrchr(line, ' ');
  if (!s || !secret) return;
  if (std::strncmp(line, "CLIENT_TRAFFIC_SECRET_0 ", 24) == 0) s->client = unhex(secret + 1);
  if (std::strncmp(line, "SERVER_TRAFFIC_SECRET_0 ", 24) == 0) s->server = unhex(secret + 1);
}

std::vector<std::uint8_t> pattern(std::size_t n, unsigned seed) {
  std::vector<std::uint8_t> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = static_cast<std::uint8_t>(i * 131 + seed * 7 + (i >> 8));
  return v;
}

std::string as_string(const std::vector<std::uint8_t>& v) { return {v.begin(), v.end()}; }

class Pair {
 public:
  // tls12: the client offers only TLS 1.2 (the server must stay in OpenSSL).
  explicit Pair(const char* suite, bool tls12 = false) {
    std::string error;
    server_ctx_ = TlsContext::server("/nonexistent-tl-certdir", "127.0.0.1", error);
    EXPECT_TRUE(server_ctx_) << error;
    cctx_ = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_verify(cctx_, SSL_VERIFY_NONE, nullptr);
    if (tls12) {
      SSL_CTX_set_max_proto_version(cctx_, TLS1_2_VERSION);
    } else {
      SSL_CTX_set_min_proto_version(cctx_, TLS1_3_VERSION);
      SSL_CTX_set_ciphersuites(cctx_, suite);
    }
    SSL_CTX_set_keylog_callback(cctx_, client_keylog);
    client_ = SSL_new(cctx_);
    SSL_set_ex_data(client_, 0, &secrets);
    crbio_ = BIO_new(BIO_s_mem());
    cwbio_ = BIO_new(BIO_s_mem());
    SSL_set_bio(client_, crbio_, cwbio_);
    SSL_set_connect_state(client_);
    server = std::make_unique<TlsConn>(server_ctx_->ctx(), true, &out, &ciphers);
    scratch.resize(64 << 10);
  }
  ~Pair() {
    server.reset();
    SSL_free(client_);
    SSL_CTX_free(cctx_);
  }

  // The client's output so far.
  std::string client_bytes() {
    std::string s;
    char buf[4096];
    int n;
    while ((n = BIO_read(cwbio_, buf, sizeof buf)) > 0) s.append(buf, static_cast<std::size_t>(n));
    return s;
  }
  // Feeds the server; what it delivers goes to `received`.
  bool to_server(const std::string& bytes) {
    return server->receive({reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size()}, scratch,
                           [&](std::span<const std::uint8_t> p) {
                             received.append(reinterpret_cast<const char*>(p.data()), p.size());
                             ++deliveries;
                             return true;
                           });
  }
  // The server's output into the client, which reads all it can.
  bool to_client() {
    if (!out.empty()) BIO_write(crbio_, out.data(), static_cast<int>(out.size()));
    out.clear();
    char buf[16384];
    for (;;) {
      const int n = SSL_read(client_, buf, sizeof buf);
      if (n > 0) {
        client_received.append(buf, static_cast<std::size_t>(n));
        continue;
      }
      const int e = SSL_get_error(client_, n);
      ERR_clear_error();
      return e == SSL_ERROR_WANT_READ;
    }
  }
  bool handshake() {
    for (int round = 0; round < 10; ++round) {
      const int r = SSL_do_handshake(client_);
      if (r != 1 && SSL_get_error(client_, r) != SSL_ERROR_WANT_READ) return false;
      if (!to_server(client_bytes())) return false;
      if (!out.empty()) {
        BIO_write(crbio_, out.data(), static_cast<int>(out.size()));
        out.clear();
      }
      if (r == 1 && server->handshake_done()) return true;
    }
    return false;
  }
  void client_write(const std::vector<std::uint8_t>& data) {
    std::size_t off = 0;
    while (off < data.size()) {
      const int n = SSL_write(client_, data.data() + off, static_cast<int>(data.size() - off));
      ASSERT_GT(n, 0);
      off += static_cast<std::size_t>(n);
    }
  }
  // A client-side record layer with the client's own keys, for records
  // OpenSSL would not make. Only for a client that has not written since the
  // handshake (its sequence numbers start at 0).
  std::unique_ptr<TlsRecords> forge(TlsSuite suite) {
    auto r = std::make_unique<TlsRecords>(client_ciphers, suite);
    EXPECT_TRUE(r->install(secrets.server, secrets.client));
    return r;
  }

  SSL* client() { return client_; }
  ClientSecrets secrets;
  RecordCiphers ciphers, client_ciphers;
  std::string out, received, client_received;
  std::size_t deliveries = 0;
  std::vector<std::uint8_t> scratch;
  std::unique_ptr<TlsConn> server;

 private:
  std::unique_ptr<TlsContext> server_ctx_;
  SSL_CTX* cctx_ = nullptr;
  SSL* client_ = nullptr;
  BIO* crbio_ = nullptr;
  BIO* cwbio_ = nullptr;
};

const std::size_t kSizes[] = {0, 1, 2, 15, 16, 17, 255, 1199, 1200, 4096, 16383, 16384, 16385, 40000, 100000};

void PrintTo(const Suite& s, std::ostream* os) { *os << s.openssl_name; }

class TlsRecordTest : public ::testing::TestWithParam<Suite> {};

TEST_P(TlsRecordTest, HandshakeLeavesOpenSsl) {
  Pair p(GetParam().openssl_name);
  ASSERT_TRUE(p.handshake());
  ASSERT_TRUE(p.server->lean());
  EXPECT_EQ(p.server->records()->suite(), GetParam().suite);
  EXPECT_EQ(p.server->records()->read_seq(), 0u);
  EXPECT_EQ(p.server->records()->write_seq(), 0u);
}

TEST_P(TlsRecordTest, BothDirectionsManySizes) {
  Pair p(GetParam().openssl_name);
  ASSERT_TRUE(p.handshake());
  ASSERT_TRUE(p.server->lean());
  unsigned seed = 0;
  for (std::size_t n : kSizes) {
    // client -> relay: OpenSSL's records opened by ours
    const auto up = pattern(n, ++seed);
    p.client_write(up);
    p.received.clear();
    ASSERT_TRUE(p.to_server(p.client_bytes())) << n;
    EXPECT_EQ(p.received, as_string(up)) << n;
    // relay -> client: ours opened by OpenSSL
    const auto down = pattern(n, ++seed);
    p.client_received.clear();
    ASSERT_TRUE(p.server->write(down)) << n;
    EXPECT_EQ(p.out.size(), n + (n + kTlsMaxPlain - 1) / kTlsMaxPlain * 22) << n;
    ASSERT_TRUE(p.to_client()) << n;
    EXPECT_EQ(p.client_received, as_string(down)) << n;
  }
  // A zero-length application_data record, which TLS allows (writes of
  // nothing make none).
  p.client_received.clear();
  ASSERT_TRUE(p.server->records()->seal_content(23, {}, p.out));
  EXPECT_EQ(p.out.size(), 22u);
  ASSERT_TRUE(p.to_client());
  EXPECT_TRUE(p.client_received.empty());
  const auto after_empty = pattern(10, 99);
  ASSERT_TRUE(p.server->write(after_empty));
  ASSERT_TRUE(p.to_client());
  EXPECT_EQ(p.client_received, as_string(after_empty));
  // Gathered from iovecs, empty ones included, across record boundaries.
  std::vector<std::vector<std::uint8_t>> parts;
  for (std::size_t n : {0, 7, 0, 16380, 9, 0, 20000, 1200}) parts.push_back(pattern(n, ++seed));
  std::vector<iovec> iov;
  std::string expect;
  for (auto& v : parts) {
    iov.push_back({v.data(), v.size()});
    expect += as_string(v);
  }
  p.client_received.clear();
  ASSERT_TRUE(p.server->writev(iov.data(), iov.size(), p.scratch));
  ASSERT_TRUE(p.to_client());
  EXPECT_EQ(p.client_received, expect);
}

TEST_P(TlsRecordTest, PaddedAndEmptyRecordsFromTheClient) {
  Pair p(GetParam().openssl_name);
  ASSERT_TRUE(p.handshake());
  ASSERT_TRUE(p.server->lean());
  // OpenSSL pads every record to a multiple of 512 bytes.
  SSL_set_block_padding(p.client(), 512);
  const auto a = pattern(1000, 1);
  p.client_write(a);
  ASSERT_TRUE(p.to_server(p.client_bytes()));
  EXPECT_EQ(p.received, as_string(a));
}

TEST_P(TlsRecordTest, ForgedZeroLengthAndPaddedRecords) {
  Pair p(GetParam().openssl_name);
  ASSERT_TRUE(p.handshake());
  auto forged = p.forge(GetParam().suite);
  std::string wire;
  const std::uint8_t type_data = 23;
  // A zero-length application_data record (allowed), then content with
  // 300 bytes of zero padding (type byte, then zeros).
  ASSERT_TRUE(forged->seal_content(type_data, {}, wire));
  auto padded = pattern(100, 3);
  padded.push_back(type_data);
  padded.resize(padded.size() + 300, 0);
  // seal_content appends its own type byte: pass the inner plaintext minus
  // the last byte, whose type must then be 0 (padding) -> use type 0.
  ASSERT_TRUE(forged->seal_content(0, {padded.data(), padded.size() - 1}, wire));
  ASSERT_TRUE(p.to_server(wire));
  EXPECT_EQ(p.received, as_string(pattern(100, 3)));
  EXPECT_EQ(p.deliveries, 1u);  // the empty record delivers nothing
  EXPECT_EQ(p.server->records()->read_seq(), 2u);
}

TEST_P(TlsRecordTest, KeyUpdateFromTheClient) {
  for (int requested : {SSL_KEY_UPDATE_NOT_REQUESTED, SSL_KEY_UPDATE_REQUESTED}) {
    Pair p(GetParam().openssl_name);
    ASSERT_TRUE(p.handshake());
    ASSERT_TRUE(p.server->lean());
    for (int round = 0; round < 3; ++round) {
      const auto before = pattern(3000, static_cast<unsigned>(round));
      p.client_write(before);
      ASSERT_EQ(SSL_key_update(p.client(), requested), 1);
      const auto after = pattern(17000, static_cast<unsigned>(round + 10));
      p.client_write(after);  // the KeyUpdate goes out first
      p.received.clear();
      const std::uint64_t wseq = p.server->records()->write_seq();
      ASSERT_TRUE(p.to_server(p.client_bytes())) << requested << " " << round;
      EXPECT_EQ(p.received, as_string(before) + as_string(after));
      // New read key: its sequence restarted (the two records of `after`).
      EXPECT_EQ(p.server->records()->read_seq(), 2u);
      if (requested == SSL_KEY_UPDATE_REQUESTED) {
        // Our KeyUpdate is already out, sealed with the old key.
        EXPECT_EQ(p.out.size(), 5u + 5 + 1 + 16);
        EXPECT_EQ(p.server->records()->write_seq(), 0u);
      } else {
        EXPECT_TRUE(p.out.empty());
        EXPECT_EQ(p.server->records()->write_seq(), wseq);
      }
      // Data after it is read by the client under whichever key is current.
      const auto down = pattern(20000, static_cast<unsigned>(round + 20));
      ASSERT_TRUE(p.server->write(down));
      p.client_received.clear();
      ASSERT_TRUE(p.to_client());
      EXPECT_EQ(p.client_received, as_string(down));
    }
  }
}

TEST_P(TlsRecordTest, OurOwnKeyUpdateAfterManyRecords) {
  Pair p(GetParam().openssl_name);
  ASSERT_TRUE(p.handshake());
  ASSERT_TRUE(p.server->lean());
  // A limit of 3 records per key: 10 records cross three updates.
  p.server->records()->set_rekey_after(3);
  std::string expect;
  for (int i = 0; i < 10; ++i) {
    const auto d = pattern(500, static_cast<unsigned>(i));
    ASSERT_TRUE(p.server->write(d));
    expect += as_string(d);
  }
  EXPECT_EQ(p.server->records()->write_seq(), 1u);
  ASSERT_TRUE(p.to_client());
  EXPECT_EQ(p.client_received, expect);
}

TEST_P(TlsRecordTest, CutRecordsAreBuffered) {
  Pair p(GetParam().openssl_name);
  ASSERT_TRUE(p.handshake());
  std::string expect;
  for (std::size_t n : {1, 300, 16384, 5000}) {
    const auto d = pattern(n, static_cast<unsigned>(n));
    p.client_write(d);
    expect += as_string(d);
  }
  const std::string wire = p.client_bytes();
  // One byte at a time: nothing before a record is whole.
  for (std::size_t i = 0; i < wire.size(); ++i) {
    ASSERT_TRUE(p.to_server(wire.substr(i, 1)));
    if (i < 5 + 1 + 1 + 16 - 1) {
      EXPECT_TRUE(p.received.empty());
    }
  }
  EXPECT_EQ(p.received, expect);
  EXPECT_FALSE(p.server->records()->partial());
  // Cut at every kind of place: inside a header, inside a body, records
  // whole within one piece.
  for (std::size_t cut : {1, 3, 5, 6, 100, 16000, 16405, 16420}) {
    Pair q(GetParam().openssl_name);
    ASSERT_TRUE(q.handshake());
    for (std::size_t n : {1, 300, 16384, 5000}) q.client_write(pattern(n, static_cast<unsigned>(n)));
    const std::string w = q.client_bytes();
    ASSERT_TRUE(q.to_server(w.substr(0, cut)));
    EXPECT_TRUE(q.server->records()->partial()) << cut;
    EXPECT_FALSE(q.server->release_buffers()) << cut;  // a partial record is kept
    ASSERT_TRUE(q.to_server(w.substr(cut)));
    EXPECT_EQ(q.received, expect) << cut;
    EXPECT_TRUE(q.server->release_buffers());
  }
}

// A connection moving to another shard (relay/shard.h, Migration): its
// keys leave one shard's AEAD contexts for another's with a record cut
// across the move; both directions carry on, and the old shard's contexts
// are not used again.
TEST_P(TlsRecordTest, MovesToAnotherShardsCiphers) {
  RecordCiphers other;  // the new shard's: outlives the connection, as a shard's does
  Pair p(GetParam().openssl_name);
  ASSERT_TRUE(p.handshake());
  ASSERT_TRUE(p.server->lean());
  const auto before = pattern(3000, 1);
  p.client_write(before);
  ASSERT_TRUE(p.server->write(before));
  ASSERT_TRUE(p.to_client());
  const auto cut = pattern(5000, 2);
  p.client_write(cut);
  const std::string wire = p.client_bytes();
  p.received.clear();
  ASSERT_TRUE(p.to_server(wire.substr(0, 3100)));  // the first record and part of the second
  EXPECT_TRUE(p.server->records()->partial());

  p.server->detach_ciphers();
  const auto rekeys = p.ciphers.rekeys();
  p.server->attach_ciphers(&other);
  ASSERT_TRUE(p.to_server(wire.substr(3100)));
  EXPECT_EQ(p.received.substr(p.received.size() - cut.size()), as_string(cut));
  const auto after = pattern(7000, 3);
  p.client_received.clear();
  ASSERT_TRUE(p.server->write(after));
  ASSERT_TRUE(p.to_client());
  EXPECT_EQ(p.client_received, as_string(after));
  EXPECT_EQ(p.ciphers.rekeys(), rekeys);  // the old shard's contexts were not used again
  EXPECT_EQ(other.rekeys(), 2u);          // one key schedule per direction on the new one
}

TEST_P(TlsRecordTest, TamperedRecordsAreRejected) {
  // Any flipped bit: header (additional data), body or tag.
  for (std::size_t at : {1, 2, 5, 6, 50, 1200 + 5 + 1 + 15}) {
    Pair p(GetParam().openssl_name);
    ASSERT_TRUE(p.handshake());
    p.client_write(pattern(1200, 1));
    std::string w = p.client_bytes();
    w[at] = static_cast<char>(w[at] ^ 0x01);
    EXPECT_FALSE(p.to_server(w)) << at;
    EXPECT_EQ(p.server->close_reason(), TlsClose::kBadRecordMac) << at;
    EXPECT_TRUE(p.received.empty());
    // Closed for good.
    EXPECT_FALSE(p.to_server(w));
  }
  {
    Pair p(GetParam().openssl_name);
    ASSERT_TRUE(p.handshake());
    p.client_write(pattern(10, 1));
    std::string w = p.client_bytes();
    w[0] = 21;  // an unprotected alert record after the handshake
    EXPECT_FALSE(p.to_server(w));
    EXPECT_EQ(p.server->close_reason(), TlsClose::kBadRecordType);
  }
  {
    Pair p(GetParam().openssl_name);
    ASSERT_TRUE(p.handshake());
    const std::string w("\x17\x03\x03\x41\x01", 5);  // longer than 2^14 + 256
    EXPECT_FALSE(p.to_server(w));
    EXPECT_EQ(p.server->close_reason(), TlsClose::kRecordOverflow);
  }
}

TEST_P(TlsRecordTest, AlertsAndUnexpectedMessagesEndTheConnection) {
  {
    Pair p(GetParam().openssl_name);
    ASSERT_TRUE(p.handshake());
    ASSERT_EQ(SSL_shutdown(p.client()), 0);  // close_notify sent
    EXPECT_FALSE(p.to_server(p.client_bytes()));
    EXPECT_EQ(p.server->close_reason(), TlsClose::kCloseNotify);
  }
  struct Case {
    std::uint8_t type;
    std::vector<std::uint8_t> body;
    TlsClose why;
  };
  const Case cases[] = {
      {21, {2, 40}, TlsClose::kAlert},                       // handshake_failure
      {22, {4, 0, 0, 4, 0, 0, 0, 0}, TlsClose::kBadHandshake},  // NewSessionTicket from a client
      {22, {24, 0, 0, 1, 2}, TlsClose::kBadKeyUpdate},       // request_update = 2
      {22, {24, 0, 0, 2, 0, 0}, TlsClose::kBadKeyUpdate},    // wrong length
      {22, {24, 0, 0, 1, 0, 24, 0, 0, 1, 0}, TlsClose::kBadKeyUpdate},  // not at a record's end
      {20, {1}, TlsClose::kBadContentType},                  // change_cipher_spec, protected
      {0, {}, TlsClose::kBadContentType},                    // all padding, no type
      {23, std::vector<std::uint8_t>(kTlsMaxPlain + 1, 1), TlsClose::kRecordOverflow},
  };
  for (const Case& c : cases) {
    Pair p(GetParam().openssl_name);
    ASSERT_TRUE(p.handshake());
    auto forged = p.forge(GetParam().suite);
    std::string wire;
    ASSERT_TRUE(forged->seal_content(c.type, c.body, wire));
    EXPECT_FALSE(p.to_server(wire)) << int{c.type};
    EXPECT_EQ(p.server->close_reason(), c.why) << int{c.type} << " " << c.body.size();
  }
}

TEST_P(TlsRecordTest, GarbageEndsTheConnectionWithAReason) {
  // Random bytes after the handshake, in random pieces: the connection
  // either waits for more (a plausible header) or ends with a reason.
  std::uint32_t x = 12345;
  auto rnd = [&x] {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return x;
  };
  for (int round = 0; round < 40; ++round) {
    Pair p(GetParam().openssl_name);
    ASSERT_TRUE(p.handshake());
    std::string junk(1 + rnd() % 40000, '\0');
    for (char& ch : junk) ch = static_cast<char>(rnd());
    if (round % 2) junk[0] = 23;  // looks like application data
    bool open = true;
    for (std::size_t off = 0; off < junk.size() && open;) {
      const std::size_t n = std::min<std::size_t>(1 + rnd() % 5000, junk.size() - off);
      open = p.to_server(junk.substr(off, n));
      off += n;
    }
    if (!open) {
      EXPECT_NE(p.server->close_reason(), TlsClose::kCount);
    } else {
      EXPECT_TRUE(p.server->records()->partial());
    }
    EXPECT_TRUE(p.received.empty());
  }
}

TEST_P(TlsRecordTest, IdleConnectionKeepsOnlyKeys) {
  Pair p(GetParam().openssl_name);
  ASSERT_TRUE(p.handshake());
  p.client_write(pattern(16384, 1));
  const std::string w = p.client_bytes();
  ASSERT_TRUE(p.to_server(w.substr(0, 9000)));
  ASSERT_TRUE(p.to_server(w.substr(9000)));
  EXPECT_TRUE(p.server->release_buffers());
  EXPECT_FALSE(p.server->records()->partial());
  // The whole state of an idle lean connection is a few hundred bytes.
  EXPECT_LE(sizeof(TlsConn) + sizeof(TlsRecords), 512u);
}

std::string suite_name(const ::testing::TestParamInfo<Suite>& p) {
  switch (p.param.suite) {
    case TlsSuite::kAes128Gcm: return "Aes128Gcm";
    case TlsSuite::kAes256Gcm: return "Aes256Gcm";
    case TlsSuite::kChaCha20Poly1305: return "ChaCha20Poly1305";
  }
  return "unknown";
}

INSTANTIATE_TEST_SUITE_P(Suites, TlsRecordTest, ::testing::ValuesIn(kSuites), suite_name);

TEST(TlsRecord, Tls12StaysInOpenSsl) {
  Pair p("", true);
  ASSERT_TRUE(p.handshake());
  EXPECT_FALSE(p.server->lean());
  const auto up = pattern(5000, 1);
  p.client_write(up);
  ASSERT_TRUE(p.to_server(p.client_bytes()));
  EXPECT_EQ(p.received, as_string(up));
  const auto down = pattern(40000, 2);
  ASSERT_TRUE(p.server->write(down));
  ASSERT_TRUE(p.to_client());
  EXPECT_EQ(p.client_received, as_string(down));
}

TEST(TlsRecord, ServerPicksSuitesAsDerperDoes) {
  // OpenSSL's own offer (AES-256-GCM first): AES-128-GCM.
  Pair a("TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256");
  ASSERT_TRUE(a.handshake());
  ASSERT_TRUE(a.server->lean());
  EXPECT_EQ(a.server->records()->suite(), TlsSuite::kAes128Gcm);
  // A client without AES hardware lists ChaCha20-Poly1305 first: that.
  Pair c("TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256");
  ASSERT_TRUE(c.handshake());
  ASSERT_TRUE(c.server->lean());
  EXPECT_EQ(c.server->records()->suite(), TlsSuite::kChaCha20Poly1305);
}

TEST(TlsRecord, SharedCiphersRekeyOnlyOnChange) {
  // Two connections on one shard: each keeps its key schedule while it is
  // the only user of its slot.
  Pair a("TLS_AES_128_GCM_SHA256");
  ASSERT_TRUE(a.handshake());
  const std::uint64_t k0 = a.ciphers.rekeys();
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(a.server->write(pattern(100, 1)));
  EXPECT_EQ(a.ciphers.rekeys(), k0 + 1);
  ASSERT_TRUE(a.to_client());
  EXPECT_EQ(a.client_received.size(), 500u);
}

TEST(TlsRecord, HkdfExpandLabelRfc8448) {
  // RFC 8448 §3 (simple 1-RTT): server application traffic secret -> key, iv.
  const auto secret = unhex("a11af9f05531f856ad47116b45a950328204b4f44bfb6b3a4b4f1f3fcb631643");
  std::uint8_t key[16], iv[12];
  ASSERT_TRUE(hkdf_expand_label(TlsSuite::kAes128Gcm, secret, "key", key));
  ASSERT_TRUE(hkdf_expand_label(TlsSuite::kAes128Gcm, secret, "iv", iv));
  EXPECT_EQ(std::vector<std::uint8_t>(key, key + 16), unhex("9f02283b6c9c07efc26bb9f2ac92e356"));
  EXPECT_EQ(std::vector<std::uint8_t>(iv, iv + 12), unhex("cf782b88dd83549aadf1e984"));
}

}  // namespace
}  // namespace moongate::relay
