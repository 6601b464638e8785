// The error bridge between C++ and PostgreSQL.
//
// ereport(ERROR) longjmps: it skips C++ destructors and must never unwind
// through a frame that owns a C++ object. So every entry point is split in two:
//   1. a C-style frame that reads arguments and calls PostgreSQL (may ereport),
//      holding only trivially destructible data;
//   2. a noexcept worker, run through Guard(), that does the C++ work and
//      reports failure in a Failure (plain data), never by throwing.
// Only after the worker has returned (all its objects destroyed) does the
// C-style frame call RaiseFailure().
#pragma once

#include <exception>
#include <new>
#include <type_traits>

#include "core/jwt.h"
#include "core/webhook.h"
#include "pg.h"

namespace jnx::pg {

// SQLSTATE class JX is ours (classes starting I-Z are for implementations and
// PostgreSQL uses none starting with J). docs/API.md lists every code.
inline constexpr int kWebhookMalformedHeader = MAKE_SQLSTATE('J', 'X', '0', '0', '1');
inline constexpr int kWebhookBadSignature = MAKE_SQLSTATE('J', 'X', '0', '0', '2');
inline constexpr int kWebhookStaleTimestamp = MAKE_SQLSTATE('J', 'X', '0', '0', '3');
inline constexpr int kWebhookNoSecret = MAKE_SQLSTATE('J', 'X', '0', '0', '4');
inline constexpr int kWebhookInvalidSecret = MAKE_SQLSTATE('J', 'X', '0', '0', '5');
inline constexpr int kTokenMalformed = MAKE_SQLSTATE('J', 'X', '1', '0', '1');
inline constexpr int kTokenUnknownKey = MAKE_SQLSTATE('J', 'X', '1', '0', '2');
inline constexpr int kTokenAlgorithm = MAKE_SQLSTATE('J', 'X', '1', '0', '3');
inline constexpr int kTokenBadSignature = MAKE_SQLSTATE('J', 'X', '1', '0', '4');
inline constexpr int kTokenExpired = MAKE_SQLSTATE('J', 'X', '1', '0', '5');
inline constexpr int kTokenNotYetValid = MAKE_SQLSTATE('J', 'X', '1', '0', '6');
inline constexpr int kTokenWrongIssuer = MAKE_SQLSTATE('J', 'X', '1', '0', '7');
inline constexpr int kTokenWrongParty = MAKE_SQLSTATE('J', 'X', '1', '0', '8');
inline constexpr int kTokenNotConfigured = MAKE_SQLSTATE('J', 'X', '1', '0', '9');
inline constexpr int kTokenInvalidJwks = MAKE_SQLSTATE('J', 'X', '1', '1', '0');
inline constexpr int kTokenWrongType = MAKE_SQLSTATE('J', 'X', '1', '1', '1');
inline constexpr int kNotAuthenticated = MAKE_SQLSTATE('J', 'X', '2', '0', '1');
inline constexpr int kNotAuthorized = MAKE_SQLSTATE('J', 'X', '2', '0', '2');
inline constexpr int kInternalFailure = MAKE_SQLSTATE('J', 'X', '9', '0', '0');
inline constexpr int kConfigInParallelMode = MAKE_SQLSTATE('J', 'X', '9', '0', '1');

struct Failure {
  int sqlstate = 0;  // 0: no failure
  char message[256] = {};
  char detail[256] = {};
  char hint[256] = {};

  bool failed() const { return sqlstate != 0; }
  void Set(int code, const char *msg, const char *det = nullptr, const char *hnt = nullptr) {
    sqlstate = code;
    strlcpy(message, msg, sizeof message);
    strlcpy(detail, det != nullptr ? det : "", sizeof detail);
    strlcpy(hint, hnt != nullptr ? hnt : "", sizeof hint);
  }
};
static_assert(std::is_trivially_destructible_v<Failure>);

// Runs `work` and turns any escaping exception into a Failure.
template <typename F>
void Guard(Failure *failure, F &&work) noexcept {
  try {
    work();
  } catch (const std::bad_alloc &) {
    failure->Set(ERRCODE_OUT_OF_MEMORY, "out of memory in jnx_auth");
  } catch (...) {
    failure->Set(kInternalFailure, "internal failure in jnx_auth");
  }
}

// Fills `failure` with the SQLSTATE and message for a token error.
void SetTokenFailure(Failure *failure, core::TokenError err, const char *detail = nullptr);

// Fills `failure` with the SQLSTATE and message for a webhook error.
void SetWebhookFailure(Failure *failure, core::WebhookError err, const char *detail = nullptr);

// ereport(ERROR) from a frame that holds no C++ object. Does not return.
[[noreturn]] void RaiseFailure(const Failure &failure);

}  // namespace jnx::pg
