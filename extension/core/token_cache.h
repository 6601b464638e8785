// A bounded cache of verified session tokens, per process (each PostgreSQL
// backend has its own). A client sends the same session token for its whole
// life (60 s at Clerk): verifying it again on every request repeats an RSA or
// ECDSA verification and two JSON parses whose answer cannot have changed,
// unless the configuration or the clock did.
//
// - Keyed by the SHA-256 of the whole token; a hit compares all 32 bytes.
// - Only successes are kept: a refused token is verified again every time.
// - An entry belongs to the configuration generation it was verified under
//   (key set, issuers, parties, leeway); another generation never hits.
// - Time claims are checked again on every hit with the rule of a full
//   verification (CheckTokenTimes), so a hit is accepted exactly when a full
//   verification would be: never once exp (plus the configured leeway) has
//   passed. A miss for that reason is verified in full, which names it.
// - Fixed capacity, direct-mapped: a token's slot is chosen by its hash and a
//   newcomer replaces the slot's entry. Memory is bounded by capacity times
//   the largest token kept (kMaxTokenBytes), its claims and their image (at
//   most kMaxImageBytes; a larger one is not kept).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "jwt.h"

namespace jnx::core {

inline constexpr size_t kTokenCacheSlots = 256;
inline constexpr size_t kMaxImageBytes = kMaxTokenBytes;

struct CachedToken {
  std::string claims;  // as VerifyToken wrote them
  TokenIdentity identity;
  // The claims in a form of the caller's, derived from `claims` once and kept
  // with them (the extension keeps the jsonb image it returns, so a hit needs
  // no JSON parse). Opaque here; empty until SetImage.
  std::string image;
};

class TokenCache {
 public:
  explicit TokenCache(size_t slots = kTokenCacheSlots);

  // The entry for `token` when it was verified under `generation` and its time
  // claims still hold at `now` with `leeway_seconds`; nullptr otherwise. The
  // pointer is valid until the next Insert or Clear; SetImage changes the
  // entry's image in place.
  const CachedToken *Find(std::string_view token, uint64_t generation, int64_t now,
                          int64_t leeway_seconds) const;
  // Keeps a token that VerifyToken accepted under `generation`.
  void Insert(std::string_view token, uint64_t generation, std::string claims,
              TokenIdentity identity);
  // Keeps `image` with the entry of `token` under `generation`, if there is
  // one (a newcomer may have taken its slot since: then nothing) and the
  // image is at most kMaxImageBytes.
  void SetImage(std::string_view token, uint64_t generation, std::string image);
  void Clear();
  size_t size() const;  // entries held

 private:
  using Digest = std::array<unsigned char, 32>;
  struct Slot {
    bool used = false;
    uint64_t generation = 0;
    Digest digest{};
    CachedToken value;
  };
  static bool Hash(std::string_view token, Digest *out);
  size_t SlotOf(const Digest &digest) const;

  std::vector<Slot> slots_;
};

}  // namespace jnx::core
