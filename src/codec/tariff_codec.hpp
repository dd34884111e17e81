// JSON <-> core::Tariff, the document of the tariff endpoints (and what the
// store keeps verbatim):
//
//   {"currency":"EUR","price_per_kwh":0.30}
//   {"currency":"EUR","price_per_kwh":0.18,
//    "windows":[{"from":"07:00","to":"23:00","price_per_kwh":0.30}]}
//
// Window times are local "HH:MM", 00:00 to 23:59 for "from" and 00:00 to
// 24:00 for "to"; a window with from > to wraps midnight.
#pragma once

#include <string>
#include <string_view>

#include "core/error.hpp"
#include "core/tariff.hpp"

namespace meterhub::codec {

// Parses and validates (core::validate_tariff) a tariff document. Errors:
// "empty_body" and "malformed_json" as for readings; "invalid_tariff" for a
// wrong type, a missing or unknown field (at the top level and inside a
// window) or a failed validation, with `field` naming it ("windows[1].from").
// "windows" may be absent or null: no windows.
core::Result<core::Tariff> decode_tariff(std::string_view body);

// The document decode_tariff reads, always with "windows" (possibly []), so
// decode_tariff(encode_tariff(t)) == t for every t that validate_tariff accepts
// (the only kind this may be given) — to within one ulp of a price with an
// extreme exponent such as 9e-71, which Boost.JSON 1.81 does not parse
// correctly rounded (docs/testing.md, "What fuzzing found").
std::string encode_tariff(const core::Tariff& tariff);

}  // namespace meterhub::codec
