// Per-backend cache of the configured webhook secrets, decoded once and
// dropped whenever jnx.webhook_secrets changes (a statement trigger on that
// table sends a relcache invalidation, which every backend receives at commit).
#pragma once

#include <cstddef>
#include <string_view>

#include "pg.h"

extern "C" {
#include "datatype/timestamp.h"
}

namespace jnx::pg {

inline constexpr int kMaxWebhookSecrets = 16;

struct SecretKeys {
  std::string_view keys[kMaxWebhookSecrets];  // views into the cache's memory context
  int count = 0;
};

// Registers the invalidation callbacks; called once from _PG_init.
void InitConfigCache();
void InitTokenCache();

// The oid of table jnx.<name>; raises when the extension's table is missing.
Oid ConfigRelid(const char *name);

// Reading an owner-only table from any caller: switch to the table's owner
// and connect SPI; EndOwnerRead undoes both (an error undoes them too, with
// the (sub)transaction). Trivially destructible, so safe across ereport.
struct OwnerRead {
  Oid save_user;
  int save_sec;
};
OwnerRead BeginOwnerRead(Oid relid);
void EndOwnerRead(const OwnerRead &read);

// Unix seconds of a finite timestamptz (floor); raises 22008 for infinity.
int64 UnixSeconds(TimestampTz ts);

// The decoded keys, reading jnx.webhook_secrets as its owner when the cache is
// stale. May ereport: call it from a frame that holds no C++ object.
SecretKeys CurrentWebhookKeys();

}  // namespace jnx::pg
