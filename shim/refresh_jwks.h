// `jnx-shim refresh-jwks`: a one-shot command, run by a timer, that fetches the
// Clerk instance's JWKS over HTTPS (JNX_JWKS_URL) and, when it differs from
// what jnx.token_config holds, sets it with jnx.set_jwks as the extension owner
// (JNX_ADMIN_DATABASE_URL). The serving shim never reads either variable and
// never calls jnx.set_jwks: only this command holds owner credentials.
#pragma once

namespace jnx::shim {

// Exit codes of `jnx-shim refresh-jwks` (docs/API.md, "Configuration").
enum RefreshExit : int {
  kRefreshOk = 0,        // the key set was updated, or was already current
  kRefreshConfig = 2,    // a variable is missing or invalid; an unknown command
  kRefreshFetch = 3,     // connect, TLS, certificate, timeout, HTTP status, size
  kRefreshDocument = 4,  // not a JSON object with a non-empty "keys" array, or refused (JX110)
  kRefreshDatabase = 5,  // connecting, permission, statement, commit
};

// Runs the command named by argv[1] and returns the process's exit code. Only
// "refresh-jwks" exists; any other argument is refused with kRefreshConfig, so
// that a mistyped command never starts a server.
int RunCommand(int argc, char **argv);

}  // namespace jnx::shim
