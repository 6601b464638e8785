// libFuzzer target: the event minimizer (core/event_minimize.h) against
// jansson. When it strips, its output must parse (strictly, and with jansson)
// to the input's value without event_attributes.http_request; when it says
// there is nothing to remove, jansson must find nothing to remove; it may
// answer "unknown", or strip by structure alone, only for a text the strict
// reader refuses (and then a second pass finds nothing more).
#include <jansson.h>

#include <cstdint>
#include <cstdlib>
#include <string>

#include "core/event_minimize.h"
#include "core/json_scan.h"

using jnx::core::Minimized;
using jnx::core::MinimizeEvent;

namespace {

// The input as jansson reads it, with event_attributes.http_request removed;
// *had says whether there was one. nullptr when jansson refuses the text.
json_t *ExpectedValue(const std::string &text, bool *had) {
  json_error_t error;
  json_t *value = json_loadb(text.data(), text.size(), JSON_REJECT_DUPLICATES, &error);
  *had = false;
  if (value == nullptr) return nullptr;
  json_t *attributes = json_object_get(value, "event_attributes");
  if (json_is_object(attributes) && json_object_get(attributes, "http_request") != nullptr) {
    *had = true;
    json_object_del(attributes, "http_request");
  }
  return value;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const std::string text(reinterpret_cast<const char *>(data), size);
  std::string out;
  const Minimized result = MinimizeEvent(text, &out);
  jnx::core::JsonObjectReader strict;
  const bool strict_ok = strict.Parse(text);
  if (result == Minimized::kUnknown) {
    if (strict_ok) std::abort();
    return 0;
  }
  if (result == Minimized::kStrippedLeniently) {
    // Only for what the strict reader refuses; shorter, and a second pass
    // finds nothing left to remove.
    if (strict_ok || out.size() >= text.size()) std::abort();
    std::string again;
    const Minimized second = MinimizeEvent(out, &again);
    if (second == Minimized::kStripped || second == Minimized::kStrippedLeniently) std::abort();
    return 0;
  }
  if (!strict_ok) std::abort();  // kStripped and kUnchanged are only for valid events
  bool had = false;
  json_t *expected = ExpectedValue(text, &had);
  if (expected == nullptr) std::abort();  // the strict reader accepts only what jansson does
  if (result == Minimized::kUnchanged) {
    if (had) std::abort();
  } else {
    if (!had) std::abort();
    jnx::core::JsonObjectReader again;
    if (!again.Parse(out)) std::abort();
    json_error_t error;
    json_t *got = json_loadb(out.data(), out.size(), JSON_REJECT_DUPLICATES, &error);
    if (got == nullptr || !json_equal(got, expected)) std::abort();
    json_decref(got);
  }
  json_decref(expected);
  return 0;
}
