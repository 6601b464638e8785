// Per-backend caches of the extension's owner-only configuration tables
// (jnx.webhook_secrets, jnx.token_config).
//
// One cache type for both. A statement trigger on each table sends a relcache
// invalidation at every change, which every backend receives; our callback
// bumps the cache's generation. A load records the generation it started
// from and the cache is valid only while that is still the current one, so a
// load that fails half-way (lock timeout, cancel, a bad stored value) leaves
// the cache invalid, and an invalidation that arrives during a load makes the
// next call load again.
//
// Tables are read with the heap access methods and the latest snapshot, not
// through SPI: no SQL text is parsed, so no name (function, operator, type,
// cast) is resolved through the caller's search_path, and nothing runs with
// the owner's rights. The latest snapshot, because a cache outlives the
// transaction that filled it: a REPEATABLE READ snapshot older than a key
// removal would otherwise keep the removed key cached as valid.
#pragma once

#include <cstddef>
#include <string_view>

#include "pg.h"

extern "C" {
#include "datatype/timestamp.h"
}

namespace jnx::pg {

inline constexpr int kMaxWebhookSecrets = 16;

struct TableCache {
  const char *table;  // in schema jnx
  Oid relid;          // of the last load; InvalidOid before the first
  uint64 generation;  // bumped by every invalidation of the table
  uint64 loaded;      // the generation the cached contents belong to
  bool valid() const { return loaded == generation; }
};

// Registers the invalidation callback and the webhook-secrets cache; called
// once from _PG_init. Other caches register themselves there too.
void InitConfigCache();
void RegisterTableCache(TableCache *cache);

// Registers the token cache and the identity callbacks (token_fns.cpp).
void InitTokenCache();

// One column to read: its name and the type it must have.
struct ConfigColumn {
  const char *name;
  Oid type;
};

// What a scan tells the load: the generation its rows belong to.
struct LoadTicket {
  uint64 generation;
};

// Scans jnx.<cache->table> under AccessShareLock with the latest snapshot and
// calls row(values, isnull, arg) for each live row (values in column order,
// valid only during the call). Pass the ticket to MarkLoaded once everything
// read has been turned into the cached contents. May ereport (missing table,
// changed column type, lock timeout, JX901 in parallel mode): call it from a
// frame that holds no C++ object.
LoadTicket ScanConfigTable(TableCache *cache, const ConfigColumn *columns, int ncolumns,
                           void (*row)(const Datum *values, const bool *isnull, void *arg),
                           void *arg);
inline void MarkLoaded(TableCache *cache, LoadTicket ticket) {
  cache->loaded = ticket.generation;
}

// Whether the cache may be used as it is. Processes first the invalidations
// other backends have sent since this backend last looked: PostgreSQL does so
// only at transaction start and when it takes a new lock, so a transaction
// that has used a cache would otherwise keep accepting a key removed (and
// committed) while it runs. Cheap when nothing is queued for us: an unlocked
// flag test.
bool CacheIsCurrent(const TableCache &cache);

// Unix seconds of a finite timestamptz (floor); raises 22008 for infinity.
int64 UnixSeconds(TimestampTz ts);

struct SecretKeys {
  std::string_view keys[kMaxWebhookSecrets];  // views into the cache's memory context
  int count = 0;
};

// The decoded webhook keys, loading them when the cache is not valid.
// May ereport: call it from a frame that holds no C++ object.
SecretKeys CurrentWebhookKeys();

}  // namespace jnx::pg
