#include "core/uuid.h"

#include <cstddef>

#include "core/no_postgres.h"

namespace jnx::core {

// Layout (RFC 9562, section 5.7): unix_ts_ms (48 bits, big-endian), ver (4
// bits, 0111), rand_a (12 bits), var (2 bits, 10), rand_b (62 bits).
Uuid UuidV7(uint64_t unix_ms, const UuidRandom &random) {
  Uuid u{};
  for (std::size_t i = 0; i < 6; ++i) {
    u[i] = static_cast<uint8_t>(unix_ms >> (8 * (5 - i)));
  }
  u[6] = static_cast<uint8_t>(0x70 | (random[0] & 0x0F));
  u[7] = random[1];
  u[8] = static_cast<uint8_t>(0x80 | (random[2] & 0x3F));
  for (std::size_t i = 9; i < 16; ++i) u[i] = random[i - 6];
  return u;
}

}  // namespace jnx::core
