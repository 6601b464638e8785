// Strict RFC 4648 base64: the standard alphabet, padded (webhook secrets and
// signatures), and base64url unpadded (session tokens). Decoding accepts only the canonical
// encoding: no whitespace, no missing padding, no non-zero unused bits.
#pragma once

#include <string>
#include <string_view>

namespace jnx::core {

std::string Base64Encode(std::string_view in);

// Writes exactly Base64EncodedSize(in.size()) characters to out (no NUL).
constexpr size_t Base64EncodedSize(size_t n) {
  return (n + 2) / 3 * 4;
}
void Base64EncodeTo(std::string_view in, char *out);

// Appends the decoded bytes to *out; returns false (and leaves *out as it
// was) when `in` is not canonical padded base64.
bool Base64Decode(std::string_view in, std::string *out);

// Strict base64url without padding (RFC 7515, JWS): canonical, no '=' and no
// standard-alphabet characters.
bool Base64UrlDecode(std::string_view in, std::string *out);
std::string Base64UrlEncode(std::string_view in);

}  // namespace jnx::core
