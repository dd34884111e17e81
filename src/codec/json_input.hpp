// Internal to src/codec: the pieces every JSON decoder shares, so that the
// meterhub format (reading_codec.cpp) and the device formats (formats.cpp)
// parse bodies, read numbers and name errors the same way.
#pragma once

#include <boost/json/storage_ptr.hpp>
#include <boost/json/value.hpp>
#include <string>
#include <string_view>

#include "core/error.hpp"

namespace meterhub::codec {

// A JSON number (int64, uint64 or double) as a double; false for any other
// kind (strings, booleans, null). Boost.JSON refuses NaN and Infinity while
// parsing, but 1e999 parses as infinity: callers still check finiteness
// (core::check_field does).
bool as_number(const boost::json::value& v, double& out);

// False when a number in v (at any depth) is not finite: Boost.JSON 1.81
// reads 1e999 as infinity and serializes it as "Infinity", which is not JSON,
// so parsed JSON that is written out again must be checked first.
bool all_finite(const boost::json::value& v);

// Parses `text` (whitespace-only is "empty_body", a syntax error is
// "malformed_json" naming the byte) into storage `sp`, nesting at most
// `max_depth` deep. `what` names the input in messages ("body", "fulljson").
core::Result<boost::json::value> parse_json(std::string_view text, boost::json::storage_ptr sp,
                                            unsigned max_depth, std::string_view what);

}  // namespace meterhub::codec
