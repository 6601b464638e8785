// Included last by every file in extension/core: the core must build and be
// tested without PostgreSQL, and jansson's json_object clashes with its headers.
#pragma once
#if defined(POSTGRES_H) || defined(PG_VERSION_NUM)
#error "extension/core must not include PostgreSQL headers"
#endif
