// Strict RFC 4648 base64 (standard alphabet, padded) for webhook secrets and
// signatures. Decoding accepts only the canonical encoding: no whitespace, no
// missing padding, no non-zero unused bits.
#pragma once

#include <string>
#include <string_view>

namespace jnx::core {

std::string Base64Encode(std::string_view in);

// Appends the decoded bytes to *out; returns false (and leaves *out as it
// was) when `in` is not canonical padded base64.
bool Base64Decode(std::string_view in, std::string *out);

}  // namespace jnx::core
