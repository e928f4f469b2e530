// ARP neighbour table over rte_hash.
#include "dataplane/neighbor.h"

#include <rte_errno.h>
#include <rte_hash.h>
#include <rte_jhash.h>
#include <rte_malloc.h>
#include <rte_mbuf.h>

namespace moongate::dp {

NeighborTable::~NeighborTable() {
  if (entries_ != nullptr) {
    for (std::uint32_t i = 0; i < capacity_; ++i)
      if (entries_[i].pending) rte_pktmbuf_free(entries_[i].pending);
    rte_free(entries_);
  }
  if (hash_ != nullptr) rte_hash_free(hash_);
}

bool NeighborTable::init(const char* name, std::uint32_t capacity, int socket,
                         std::uint32_t key_len) {
  rte_hash_parameters p{};
  p.name = name;
  p.entries = capacity;
  p.key_len = key_len;
  p.hash_func = rte_jhash;
  p.socket_id = socket;
  if (key_len > sizeof last_key_) {
    rte_errno = EINVAL;
    return false;
  }
  key_len_ = key_len;
  hash_ = rte_hash_create(&p);
  if (hash_ == nullptr) return false;
  // rte_hash positions range over its (possibly rounded-up) entry count.
  capacity_ = static_cast<std::uint32_t>(rte_hash_max_key_id(hash_)) + 1;
  entries_ = static_cast<Entry*>(rte_zmalloc(name, sizeof(Entry) * capacity_, 64));
  if (entries_ == nullptr) {
    rte_errno = ENOMEM;
    return false;
  }
  return true;
}

NeighborTable::Entry* NeighborTable::get_slow(const void* addr) noexcept {
  int pos = rte_hash_lookup(hash_, addr);
  if (pos < 0) {
    pos = rte_hash_add_key(hash_, addr);
    if (pos < 0 || static_cast<std::uint32_t>(pos) >= capacity_) return nullptr;
    entries_[pos] = Entry{};
  }
  last_ = &entries_[pos];
  std::memcpy(last_key_, addr, key_len_);
  return last_;
}

const NeighborTable::Entry* NeighborTable::find(const void* addr) const noexcept {
  const int pos = rte_hash_lookup(hash_, addr);
  return pos < 0 ? nullptr : &entries_[pos];
}

}  // namespace moongate::dp
