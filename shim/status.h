// SQLSTATE -> HTTP: one table for every route.
#pragma once

#include "db.h"

namespace jnx::shim {

// Which routes a rule applies to.
enum class Scope { kAny, kWebhook, kSession };

struct Answer {
  enum class Extra { kNone, kRetryAfter, kInvalidToken, kBearerRealm };
  int status = 500;
  const char *reason = "internal_error";
  Extra extra = Extra::kNone;
};

// The answer to a database call that did not succeed, on a route of `scope`.
Answer AnswerFor(Scope scope, const DbResult &result);

}  // namespace jnx::shim
