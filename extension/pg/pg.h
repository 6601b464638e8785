// The one place C++ meets PostgreSQL's headers. Everything in extension/pg
// includes this instead of postgres.h directly.
#pragma once

// We build with -fvisibility=hidden; PostgreSQL 15 leaves PGDLLEXPORT empty on
// ELF platforms, so make it export the fmgr symbols and _PG_init.
#ifndef PGDLLEXPORT
#define PGDLLEXPORT __attribute__((visibility("default")))
#endif

extern "C" {
#include "postgres.h"

#include "fmgr.h"
#include "utils/builtins.h"
}

// Declares a V1 SQL-callable function with C linkage.
#define JNX_FUNCTION(name)   \
  extern "C" {               \
  PG_FUNCTION_INFO_V1(name); \
  }                          \
  extern "C" PGDLLEXPORT Datum name(PG_FUNCTION_ARGS)
