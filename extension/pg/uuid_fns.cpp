// jnx._uuid_v7(): the default of the uuid primary keys (core/uuid.h says
// why). Trivially destructible data only: every call here may ereport.
#include "pg.h"

extern "C" {
#include "datatype/timestamp.h"
#include "utils/timestamp.h"
#include "utils/uuid.h"
}

#include "core/uuid.h"

JNX_FUNCTION(jnx_uuid_v7) {
  jnx::core::UuidRandom random;
  if (!pg_strong_random(random.data(), random.size())) {
    ereport(ERROR, (errcode(ERRCODE_INTERNAL_ERROR), errmsg("could not generate random values")));
  }
  // The wall clock, not the transaction's start: rows of concurrent
  // transactions are ordered as they are written.
  constexpr int64 kUnixEpochInPgMs =
      int64{POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE} * SECS_PER_DAY * 1000;
  const int64 unix_ms = GetCurrentTimestamp() / 1000 + kUnixEpochInPgMs;
  const jnx::core::Uuid u =
      jnx::core::UuidV7(unix_ms > 0 ? static_cast<uint64_t>(unix_ms) : 0, random);
  auto *result = static_cast<pg_uuid_t *>(palloc(sizeof(pg_uuid_t)));
  static_assert(sizeof result->data == std::tuple_size<jnx::core::Uuid>::value);
  memcpy(result->data, u.data(), u.size());
  PG_RETURN_UUID_P(result);
}
