// Encodings of bucketed series and raw readings for the history endpoints:
// columnar JSON (one array per column, what chart libraries such as uPlot
// take directly) and CSV (RFC 4180, one row per bucket or reading, for
// spreadsheets). docs/api.md shows both.
#pragma once

#include <span>
#include <string>
#include <string_view>

#include "core/aggregate.hpp"
#include "core/error.hpp"
#include "core/reading.hpp"

namespace meterhub::codec {

// Which columns a series answer carries (bit set).
enum SeriesField : unsigned {
  kVoltage = 1,
  kCurrent = 2,
  kPower = 4,
  kFrequency = 8,
  kPowerFactor = 16,
  kEnergy = 32,
  kAllFields = 63,
};

// "power,voltage" -> bits; names as in readings (voltage, current, power,
// frequency, power_factor, energy).
core::Result<unsigned> parse_series_fields(std::string_view list);

struct SeriesMeta {
  std::string meter_id;
  core::TimeMs from = 0, to = 0;  // the bucket-aligned range answered
  core::TimeMs step_ms = 0;
  std::string source;  // "raw", "rollup_1m", "rollup_1h"
};

std::string encode_series_json(const SeriesMeta& meta, std::span<const core::Aggregate> buckets,
                               unsigned fields);
std::string encode_series_csv(std::span<const core::Aggregate> buckets, unsigned fields);
std::string encode_readings_csv(std::span<const core::Reading> readings);

}  // namespace meterhub::codec
