// Per-backend cache of the configured webhook secrets, decoded once and
// dropped whenever jnx.webhook_secrets changes (a statement trigger on that
// table sends a relcache invalidation, which every backend receives at commit).
#pragma once

#include <cstddef>
#include <string_view>

#include "pg.h"

namespace jnx::pg {

inline constexpr int kMaxWebhookSecrets = 16;

struct SecretKeys {
  std::string_view keys[kMaxWebhookSecrets];  // views into the cache's memory context
  int count = 0;
};

// Registers the invalidation callbacks; called once from _PG_init.
void InitConfigCache();
void InitTokenCache();

// The owner of a relation (for reading owner-only configuration). May ereport.
Oid RelationOwner(Oid relid);

// The decoded keys, reading jnx.webhook_secrets as its owner when the cache is
// stale. May ereport: call it from a frame that holds no C++ object.
SecretKeys CurrentWebhookKeys();

}  // namespace jnx::pg
