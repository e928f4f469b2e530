// Receiver-index table: random indices over the shared OpenTable mechanics.
#include "wireguard/index_table.h"

#include "crypto/secret.h"

namespace moongate::wg {

namespace {

using Kind = IndexEntry::Kind;

// A random 32-bit index collides with a live one with probability
// live / 2^32; needing this many draws means the CSPRNG is broken, and
// failing the insert beats spinning on the packet path.
constexpr int kMaxIndexDraws = 64;

constexpr bool is_entry_kind(Kind k) noexcept {
  return k == Kind::kHandshake || k == Kind::kKeypair;
}

}  // namespace

IndexTable::IndexTable(std::size_t max_entries) : table_(max_entries, "IndexTable") {}

IndexTable::~IndexTable() = default;

bool IndexTable::insert(IndexEntry::Kind kind, Peer* peer, Keypair* keypair,
                        std::uint32_t& index_out) noexcept {
  if (!is_entry_kind(kind) || table_.size() >= table_.capacity()) return false;

  for (int draw = 0; draw < kMaxIndexDraws; ++draw) {
    std::uint32_t index = 0;
    crypto::random_bytes(&index, sizeof index);
    index = (index & ~tag_mask_) | tag_value_;
    if (index == 0) continue;

    switch (table_.insert(IndexEntry{index, kind, peer, keypair})) {
      case Table::InsertResult::kInserted:
        index_out = index;
        return true;
      case Table::InsertResult::kDuplicate:
        continue;  // draw again
      case Table::InsertResult::kFull:
        return false;
    }
  }
  return false;
}

bool IndexTable::replace(std::uint32_t index, IndexEntry::Kind kind, Peer* peer,
                         Keypair* keypair) noexcept {
  if (!is_entry_kind(kind) || index == 0) return false;
  IndexEntry* const e = table_.find(index);
  if (e == nullptr) return false;
  // Both kinds are live, so the slot stays live under the same index.
  e->kind = kind;
  e->peer = peer;
  e->keypair = keypair;
  return true;
}

void IndexTable::remove(std::uint32_t index) noexcept {
  if (const IndexEntry* const e = find(index)) table_.erase(*e);
}

}  // namespace moongate::wg
