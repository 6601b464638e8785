// Module entry: magic block and one-time backend initialization.
#include "config.h"
#include "pg.h"

extern "C" {
PG_MODULE_MAGIC;

PGDLLEXPORT void _PG_init(void);
void _PG_init(void) {
  jnx::pg::InitConfigCache();
  jnx::pg::InitTokenCache();
}
}
