// JSON <-> core::Reading for the meterhub format (HTTP body, WebSocket
// message). Decoding is all-or-nothing: the first invalid reading fails the
// whole body, and the error names its index and field.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.hpp"
#include "core/reading.hpp"

namespace meterhub::codec {

struct DecodeOptions {
  std::size_t max_readings = 5000;  // per body
  core::TimeMs now = 0;             // ts for readings that carry none
  core::TimeMs future_tolerance_ms = 300'000;
};

// Accepts one reading object, an array of them, or {"readings": [...]}.
// Unknown keys inside a reading are ignored; null optional fields are absent.
core::Result<std::vector<core::Reading>> decode_readings(std::string_view body,
                                                         const DecodeOptions& opts);

// {"meter_id":..,"ts":"..Z","voltage":..,"current":..,"power":..,"energy":..
//  [,"frequency":..][,"power_factor":..]}
void append_reading_json(std::string& out, const core::Reading& r);
std::string encode_reading(const core::Reading& r);

// {"error":{"code":..,"message":..[,"index":..][,"field":..]}}
std::string encode_error(const core::Error& e);

}  // namespace meterhub::codec
