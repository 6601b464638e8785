// libFuzzer target: the token JSON reader (core/json_scan.h) against jansson,
// which it replaced for token headers and claims. For every input both must
// accept or both refuse (jansson with JSON_REJECT_DUPLICATES, an object at
// the top), but for one quirk of jansson's below; when they accept, the
// top-level members must be the same names, kinds, decoded strings and numbers.
#include <jansson.h>

#include <cstdint>
#include <cstdlib>
#include <string>

#include "core/json_scan.h"

using jnx::core::JsonKind;
using jnx::core::JsonMember;
using jnx::core::JsonObjectReader;

namespace {

JsonKind KindOf(const json_t *v) {
  switch (json_typeof(v)) {
    case JSON_OBJECT: return JsonKind::kObject;
    case JSON_ARRAY: return JsonKind::kArray;
    case JSON_STRING: return JsonKind::kString;
    case JSON_INTEGER:
    case JSON_REAL: return JsonKind::kNumber;
    case JSON_TRUE: return JsonKind::kTrue;
    case JSON_FALSE: return JsonKind::kFalse;
    default: return JsonKind::kNull;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const std::string text(reinterpret_cast<const char *>(data), size);
  json_error_t error;
  json_t *theirs = json_loadb(text.data(), text.size(), JSON_REJECT_DUPLICATES, &error);
  const bool jansson_ok = theirs != nullptr && json_is_object(theirs);
  JsonObjectReader ours;
  const bool ours_ok = ours.Parse(text);
  // One known difference: jansson skips a NUL byte that directly follows a
  // number or literal ({"n":1\0}); ours refuses every NUL outside a string
  // (one inside is a control character to both). Stricter, never looser.
  if (ours_ok && !jansson_ok) std::abort();
  if (!ours_ok && jansson_ok && text.find('\0') == std::string::npos) std::abort();
  if (!ours_ok || !jansson_ok) {
    if (theirs != nullptr) json_decref(theirs);
    return 0;
  }
  if (ours_ok) {
    const char *key = nullptr;
    json_t *value = nullptr;
    size_t count = 0;
    json_object_foreach(theirs, key, value) {
      ++count;
      const JsonMember *m = ours.Find(key);
      if (m == nullptr || m->kind != KindOf(value)) std::abort();
      if (m->kind == JsonKind::kString) {
        std::string decoded;
        if (!JsonObjectReader::DecodeString(m->raw, &decoded) ||
            decoded != std::string(json_string_value(value), json_string_length(value))) {
          std::abort();
        }
      }
      if (m->kind == JsonKind::kNumber &&
          std::strtod(std::string(m->raw).c_str(), nullptr) != json_number_value(value)) {
        std::abort();
      }
    }
    for (const char *probe : {"sub", "exp", "o", "alg"}) {
      if ((ours.Find(probe) != nullptr) != (json_object_get(theirs, probe) != nullptr)) {
        std::abort();
      }
    }
    (void)count;
  }
  if (theirs != nullptr) json_decref(theirs);
  return 0;
}
