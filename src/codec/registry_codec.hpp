// Bodies of the device-registry endpoints (docs/api.md, "Registering
// meters", "API tokens"): strict — unknown fields, wrong types and
// out-of-range values are errors naming the field (code invalid_parameter),
// a body that is not a JSON object is malformed_json.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "core/error.hpp"
#include "store/store.hpp"

namespace meterhub::codec {

inline constexpr std::size_t kMeterNameMax = 100;
inline constexpr std::size_t kMeterLocationMax = 200;
inline constexpr std::int64_t kMeterIntervalMax = 86'400;  // seconds

// POST /api/v1/meters: {"meter_id", "name"?, "location"?, "interval_s"?}.
core::Result<store::NewMeter> decode_new_meter(std::string_view body);

// PATCH /api/v1/meters/{id}: any of name, location, interval_s (null
// clears), tariff (object, or null to remove).
struct MeterPatchDoc {
  store::MeterPatch patch;
  // Unset: tariff untouched; set to nullopt: remove; set to text: the tariff
  // object's JSON, to validate with decode_tariff().
  std::optional<std::optional<std::string>> tariff;
};
core::Result<MeterPatchDoc> decode_meter_patch(std::string_view body);

// POST /api/v1/tokens: {"name", "scope": "read"|"admin"}.
struct NewTokenDoc {
  std::string name;
  store::Scope scope = store::Scope::read;
};
core::Result<NewTokenDoc> decode_new_token(std::string_view body);

}  // namespace meterhub::codec
