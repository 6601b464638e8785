// Clerk sends, in every event, the IP address and user agent of the request
// that caused it (event_attributes.http_request). Nothing here needs them, so
// they are removed before an event is stored (docs/SECURITY.md, "Data
// protection"). Done on the bytes: the rest of the event stays exactly as
// Clerk sent it, and no JSON value is built or printed again.
#pragma once

#include <string>
#include <string_view>

namespace jnx::core {

enum class Minimized {
  kStripped,   // *out: the event without event_attributes.http_request
  kUnchanged,  // a valid event with nothing to remove
  kUnknown,    // a text the strict reader refuses, with nothing found by its structure
  // *out: as kStripped, from a text the strict reader (json_scan.h) refuses,
  // of which only the structure was followed (see Lenient in the .cpp)
  kStrippedLeniently,
};

// The event (a JSON object) without the member "http_request" of its
// top-level member "event_attributes", when that is an object holding one.
// Every other byte is kept; the member goes with the comma that separated it
// from its neighbour. *out is written only for the two kStripped results.
Minimized MinimizeEvent(std::string_view event, std::string *out);

}  // namespace jnx::core
