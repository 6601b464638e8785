// Time-ordered UUIDs (RFC 9562, version 7) for the primary keys of users,
// orgs and memberships. gen_random_uuid() (version 4) puts every new row's
// key on a random leaf page of the primary key index: after each checkpoint
// nearly every insert writes a full page image to the WAL, and at millions
// of rows the index no longer fits in memory. A version 7 UUID starts with
// the time in milliseconds, so new keys go to the index's right edge; the
// other 74 bits are random. The ids are not secrets (created_at beside them
// says the same time), so fewer random bits than version 4's 122 lose
// nothing; within one millisecond the order is random.
#pragma once

#include <array>
#include <cstdint>

namespace jnx::core {

using Uuid = std::array<uint8_t, 16>;
using UuidRandom = std::array<uint8_t, 10>;

// unix_ms: milliseconds since 1970-01-01 UTC (its low 48 bits are used);
// random: 10 bytes from a cryptographic generator, of which 74 bits are used.
Uuid UuidV7(uint64_t unix_ms, const UuidRandom &random);

}  // namespace jnx::core
