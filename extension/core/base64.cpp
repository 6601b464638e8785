#include "base64.h"

#include <array>
#include <cstdint>

#include "no_postgres.h"

namespace jnx::core {
namespace {

constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
constexpr char kUrlAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

// 0..63 for the alphabet's characters, 0xFF for everything else.
constexpr std::array<uint8_t, 256> MakeDecodeTable(const char *alphabet) {
  std::array<uint8_t, 256> table{};
  for (auto &v : table) v = 0xFF;
  for (uint8_t i = 0; i < 64; ++i) table[static_cast<uint8_t>(alphabet[i])] = i;
  return table;
}
constexpr std::array<uint8_t, 256> kDecode = MakeDecodeTable(kAlphabet);
constexpr std::array<uint8_t, 256> kUrlDecode = MakeDecodeTable(kUrlAlphabet);

}  // namespace

void Base64EncodeTo(std::string_view in, char *out) {
  const auto *p = reinterpret_cast<const uint8_t *>(in.data());
  size_t i = 0;
  for (; i + 3 <= in.size(); i += 3) {
    const uint32_t v = (uint32_t{p[i]} << 16) | (uint32_t{p[i + 1]} << 8) | p[i + 2];
    *out++ = kAlphabet[(v >> 18) & 63];
    *out++ = kAlphabet[(v >> 12) & 63];
    *out++ = kAlphabet[(v >> 6) & 63];
    *out++ = kAlphabet[v & 63];
  }
  const size_t rest = in.size() - i;
  if (rest == 0) return;
  const uint32_t v = (uint32_t{p[i]} << 16) | (rest == 2 ? uint32_t{p[i + 1]} << 8 : 0);
  *out++ = kAlphabet[(v >> 18) & 63];
  *out++ = kAlphabet[(v >> 12) & 63];
  *out++ = rest == 2 ? kAlphabet[(v >> 6) & 63] : '=';
  *out = '=';
}

std::string Base64Encode(std::string_view in) {
  std::string out(Base64EncodedSize(in.size()), '\0');
  Base64EncodeTo(in, out.data());
  return out;
}

bool Base64Decode(std::string_view in, std::string *out) {
  if (in.size() % 4 != 0) return false;
  size_t pad = 0;
  if (!in.empty() && in.back() == '=') pad = (in.size() >= 2 && in[in.size() - 2] == '=') ? 2 : 1;
  std::string decoded;
  decoded.reserve(in.size() / 4 * 3);
  for (size_t i = 0; i < in.size(); i += 4) {
    const bool last = i + 4 == in.size();
    const size_t data_chars = last ? 4 - pad : 4;
    uint32_t v = 0;
    for (size_t j = 0; j < 4; ++j) {
      uint8_t d = 0;
      if (j < data_chars) {
        d = kDecode[static_cast<uint8_t>(in[i + j])];
        if (d == 0xFF) return false;  // '=' inside the data, or a foreign byte
      }
      v = (v << 6) | d;
    }
    decoded.push_back(static_cast<char>((v >> 16) & 0xFF));
    if (data_chars >= 3) decoded.push_back(static_cast<char>((v >> 8) & 0xFF));
    if (data_chars == 4) decoded.push_back(static_cast<char>(v & 0xFF));
    // Canonical form: the bits that padding discards must be zero.
    if (data_chars == 2 && (v & 0xFFFF) != 0) return false;
    if (data_chars == 3 && (v & 0xFF) != 0) return false;
  }
  out->append(decoded);
  return true;
}

// Four characters (24 bits) at a time, written in place: a session token's
// three parts are decoded on every verification.
bool Base64UrlDecode(std::string_view in, std::string *out) {
  const size_t n = in.size();
  if (n % 4 == 1) return false;
  const size_t start = out->size();
  const size_t rest = n % 4;
  out->resize(start + n / 4 * 3 + (rest == 0 ? 0 : rest - 1));
  auto *dst = reinterpret_cast<uint8_t *>(out->data() + start);
  const auto *src = reinterpret_cast<const uint8_t *>(in.data());
  auto fail = [&] {
    out->resize(start);
    return false;
  };
  size_t i = 0;
  for (; i + 4 <= n; i += 4) {
    const uint32_t a = kUrlDecode[src[i]], b = kUrlDecode[src[i + 1]], c = kUrlDecode[src[i + 2]],
                   d = kUrlDecode[src[i + 3]];
    if (((a | b | c | d) & 0x80) != 0) return fail();  // 0xFF: not in the alphabet
    const uint32_t v = (a << 18) | (b << 12) | (c << 6) | d;
    *dst++ = static_cast<uint8_t>(v >> 16);
    *dst++ = static_cast<uint8_t>(v >> 8);
    *dst++ = static_cast<uint8_t>(v);
  }
  if (rest >= 2) {
    const uint32_t a = kUrlDecode[src[i]], b = kUrlDecode[src[i + 1]];
    const uint32_t c = rest == 3 ? kUrlDecode[src[i + 2]] : 0;
    if (((a | b | c) & 0x80) != 0) return fail();
    const uint32_t v = (a << 18) | (b << 12) | (c << 6);
    *dst++ = static_cast<uint8_t>(v >> 16);
    if (rest == 3) *dst = static_cast<uint8_t>(v >> 8);
    // Canonical only: the bits beyond the last byte must be zero.
    if ((v & (rest == 2 ? 0xFFFFu : 0xFFu)) != 0) return fail();
  }
  return true;
}

std::string Base64UrlEncode(std::string_view in) {
  std::string out;
  out.reserve((in.size() * 4 + 2) / 3);
  uint32_t acc = 0;
  int bits = 0;
  for (unsigned char c : in) {
    acc = (acc << 8) | c;
    bits += 8;
    while (bits >= 6) {
      bits -= 6;
      out.push_back(kUrlAlphabet[(acc >> bits) & 63]);
    }
  }
  if (bits > 0) out.push_back(kUrlAlphabet[(acc << (6 - bits)) & 63]);
  return out;
}

}  // namespace jnx::core
