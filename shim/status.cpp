#include "status.h"

#include <cstring>

namespace jnx::shim {
namespace {

using Extra = Answer::Extra;

struct Rule {
  const char *sqlstate;  // five characters, or a two-character class
  Scope scope;
  Answer answer;
};

// First match wins. docs/API.md lists the same mapping.
constexpr Rule kRules[] = {
    // Webhook verification: the sender's fault.
    {"JX001", Scope::kWebhook, {400, "malformed_headers", Extra::kNone}},
    {"JX002", Scope::kWebhook, {400, "bad_signature", Extra::kNone}},
    {"JX003", Scope::kWebhook, {400, "stale_timestamp", Extra::kNone}},
    // Our configuration, not the sender's fault: let Svix retry until fixed.
    {"JX004", Scope::kWebhook, {503, "webhook_secret_not_configured", Extra::kRetryAfter}},
    {"JX005", Scope::kWebhook, {503, "webhook_secret_not_configured", Extra::kRetryAfter}},
    // Session tokens.
    {"JX101", Scope::kSession, {401, "invalid_token", Extra::kInvalidToken}},
    {"JX102", Scope::kSession, {401, "invalid_token", Extra::kInvalidToken}},
    {"JX103", Scope::kSession, {401, "invalid_token", Extra::kInvalidToken}},
    {"JX104", Scope::kSession, {401, "invalid_token", Extra::kInvalidToken}},
    {"JX105", Scope::kSession, {401, "invalid_token", Extra::kInvalidToken}},
    {"JX106", Scope::kSession, {401, "invalid_token", Extra::kInvalidToken}},
    {"JX107", Scope::kSession, {401, "invalid_token", Extra::kInvalidToken}},
    {"JX108", Scope::kSession, {401, "invalid_token", Extra::kInvalidToken}},
    {"JX109", Scope::kSession, {503, "sessions_not_configured", Extra::kRetryAfter}},
    {"JX110", Scope::kSession, {503, "sessions_not_configured", Extra::kRetryAfter}},
    {"JX111", Scope::kSession, {401, "invalid_token", Extra::kInvalidToken}},
    {"JX201", Scope::kSession, {401, "not_authenticated", Extra::kBearerRealm}},
    {"JX202", Scope::kSession, {403, "forbidden", Extra::kNone}},
    // The caller's user was deleted (or erased) in Clerk: the token outlives
    // the account by up to a minute.
    {"JX203", Scope::kSession, {403, "user_deleted", Extra::kNone}},
    // Paging arguments of /api/admin/users.
    {"JX350", Scope::kSession, {400, "invalid_limit", Extra::kNone}},
    {"JX351", Scope::kSession, {400, "invalid_cursor", Extra::kNone}},
    // Our statement_timeout, or the shim gave up and cancelled: the query
    // held its connection too long; retrying later may find it free.
    {"57014", Scope::kAny, {503, "statement_timeout", Extra::kRetryAfter}},
    // Extension missing or privileges wrong: not ready, retry later.
    {"42883", Scope::kAny, {503, "database_not_ready", Extra::kRetryAfter}},
    {"3F000", Scope::kAny, {503, "database_not_ready", Extra::kRetryAfter}},
    {"42P01", Scope::kAny, {503, "database_not_ready", Extra::kRetryAfter}},
    {"42501", Scope::kAny, {503, "database_not_ready", Extra::kRetryAfter}},
    // Insufficient resources (out of memory, disk full, too many connections).
    {"53", Scope::kAny, {503, "database_unavailable", Extra::kRetryAfter}},
    // Data exceptions that only the request's own values can cause (every
    // parameter we bind comes from the request): invalid or untranslatable
    // characters, a value that is not of its type, out of range or too long.
    // Others in class 22 (division by zero, ...) would be our bug: 500.
    {"22021", Scope::kAny, {400, "bad_request", Extra::kNone}},
    {"22P05", Scope::kAny, {400, "bad_request", Extra::kNone}},
    {"22P02", Scope::kAny, {400, "bad_request", Extra::kNone}},
    {"22001", Scope::kAny, {400, "bad_request", Extra::kNone}},
    {"22003", Scope::kAny, {400, "bad_request", Extra::kNone}},
    {"22007", Scope::kAny, {400, "bad_request", Extra::kNone}},
    {"22008", Scope::kAny, {400, "bad_request", Extra::kNone}},
    {"22023", Scope::kAny, {400, "bad_request", Extra::kNone}},
};

bool Matches(const Rule &rule, Scope scope, const std::string &sqlstate) {
  if (rule.scope != Scope::kAny && rule.scope != scope) return false;
  const size_t n = std::strlen(rule.sqlstate);
  return sqlstate.size() == 5 && sqlstate.compare(0, n, rule.sqlstate) == 0;
}

}  // namespace

Answer AnswerFor(Scope scope, const DbResult &result) {
  for (const Rule &rule : kRules) {
    if (Matches(rule, scope, result.sqlstate)) return rule.answer;
  }
  if (result.kind == DbResult::Kind::kUnavailable) {
    return {503, "database_unavailable", Extra::kRetryAfter};
  }
  return {};
}

}  // namespace jnx::shim
