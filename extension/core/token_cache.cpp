#include "token_cache.h"

#include <openssl/evp.h>

#include <cstring>
#include <utility>

namespace jnx::core {

TokenCache::TokenCache(size_t slots) : slots_(slots == 0 ? 1 : slots) {}

bool TokenCache::Hash(std::string_view token, Digest *out) {
  // Fetched once per process: EVP_sha256() is fetched again on every digest,
  // a lock and a lookup, about 30% of a hit (make bench, bench_token). Should
  // that one fetch fail, every digest falls back to the implicit fetch.
  static EVP_MD *const fetched = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  const EVP_MD *sha256 = fetched != nullptr ? fetched : EVP_sha256();
  unsigned int len = 0;
  return EVP_Digest(token.data(), token.size(), out->data(), &len, sha256, nullptr) == 1 &&
         len == out->size();
}

size_t TokenCache::SlotOf(const Digest &digest) const {
  uint64_t index = 0;
  std::memcpy(&index, digest.data(), sizeof index);
  return static_cast<size_t>(index % slots_.size());
}

const CachedToken *TokenCache::Find(std::string_view token, uint64_t generation, int64_t now,
                                    int64_t leeway_seconds) const {
  Digest digest;
  if (!Hash(token, &digest)) return nullptr;
  const Slot &slot = slots_[SlotOf(digest)];
  if (!slot.used || slot.generation != generation || slot.digest != digest) return nullptr;
  if (CheckTokenTimes(slot.value.identity.times, now, leeway_seconds) != TokenError::kOk) {
    return nullptr;  // verified again, which names the reason
  }
  return &slot.value;
}

void TokenCache::Insert(std::string_view token, uint64_t generation, std::string claims,
                        TokenIdentity identity) {
  Digest digest;
  if (!Hash(token, &digest)) return;
  Slot &slot = slots_[SlotOf(digest)];
  slot.used = true;
  slot.generation = generation;
  slot.digest = digest;
  slot.value.claims = std::move(claims);
  slot.value.identity = std::move(identity);
  slot.value.image.clear();
}

void TokenCache::SetImage(std::string_view token, uint64_t generation, std::string image) {
  Digest digest;
  if (image.size() > kMaxImageBytes || !Hash(token, &digest)) return;
  Slot &slot = slots_[SlotOf(digest)];
  if (slot.used && slot.generation == generation && slot.digest == digest) {
    slot.value.image = std::move(image);
  }
}

void TokenCache::Clear() {
  for (Slot &slot : slots_) slot = Slot();
}

size_t TokenCache::size() const {
  size_t n = 0;
  for (const Slot &slot : slots_) n += slot.used ? 1 : 0;
  return n;
}

}  // namespace jnx::core
