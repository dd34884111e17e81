// Response and parameter helpers shared by the API's handler files
// (router.cpp, history.cpp). Internal to src/api.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "api/http_types.hpp"
#include "api/target.hpp"
#include "codec/json_writer.hpp"
#include "store/store.hpp"
#include "core/error.hpp"
#include "core/reading.hpp"

namespace meterhub::api {

Response json_response(unsigned status, std::string body);
// "application/json" or "application/json; charset=utf-8" (any case), or
// absent (many ESP32 sketches send none).
bool is_json_content_type(std::string_view ct);
// 415 unsupported_media_type unless the request's Content-Type is JSON (or absent).
std::optional<Response> require_json(const Request& req);
// 503 with Retry-After (seconds).
Response unavailable(const core::Error& e, const char* retry_after);
Response method_not_allowed(const char* allow);
Response from_store_error(const core::Error& e);
// 400 with the error's code, message and field.
Response bad_parameter(const core::Error& e);

// A meter as GET /api/v1/meters/{id} answers it.
void write_meter_json(codec::JsonWriter& w, const store::MeterInfo& m);

// A time bound from a query parameter: RFC 3339 text, or epoch s/ms digits.
core::Result<core::TimeMs> parse_time_param(std::string_view name, std::string_view v);

// True when the client asked for CSV: format=csv, or (without format) an
// Accept header preferring text/csv. Sets `error` for a bad format value.
bool wants_csv(const Request& req, const Target& t, std::string& error);

}  // namespace meterhub::api
