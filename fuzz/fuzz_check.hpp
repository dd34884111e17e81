// What every fuzz target checks besides "no crash, no sanitizer report": the
// contracts of the codec headers that are cheap to test on each input. A
// broken invariant prints what broke and aborts, so libFuzzer saves the
// input as a crash (docs/testing.md, "Fuzzing and sanitizers").
#pragma once

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "codec/reading_codec.hpp"
#include "core/error.hpp"
#include "core/reading.hpp"
#include "core/validate.hpp"

namespace meterhub::fuzz {

// A fixed "now" (2026-05-28T...Z) so that a saved input reproduces.
inline constexpr core::TimeMs kNow = 1'780'000'000'000;

[[noreturn]] inline void violated(const char* what, std::string_view detail) {
  std::fprintf(stderr, "fuzz invariant violated: %s\n  %.*s\n", what,
               static_cast<int>(detail.size()), detail.data());
  std::abort();
}

#define FUZZ_CHECK(cond, detail) \
  do {                           \
    if (!(cond)) ::meterhub::fuzz::violated(#cond, (detail)); \
  } while (0)

inline std::string_view as_text(const std::uint8_t* data, std::size_t size) {
  return {reinterpret_cast<const char*>(data), size};
}

// Splits off the first `n` lines of `text` (without their '\n'); `text`
// keeps the rest. Missing lines are empty. Lets one input carry several
// arguments while staying readable in the corpus.
inline std::vector<std::string_view> take_lines(std::string_view& text, std::size_t n) {
  std::vector<std::string_view> out;
  for (std::size_t i = 0; i < n; ++i) {
    auto nl = text.find('\n');
    out.push_back(text.substr(0, nl));
    text = nl == std::string_view::npos ? std::string_view{} : text.substr(nl + 1);
  }
  return out;
}

inline codec::DecodeOptions decode_options() {
  codec::DecodeOptions o;
  o.now = kNow;
  return o;
}

// The text must be one JSON value (Boost.JSON's parser is the reference).
inline boost::json::value must_parse_json(std::string_view text) {
  boost::system::error_code ec;
  auto v = boost::json::parse(text, ec);
  FUZZ_CHECK(!ec, "not JSON: " + std::string(text));
  return v;
}

// An error must have a code and a message and encode to
// {"error":{"code":..,"message":..}}.
inline void check_error(const core::Error& e) {
  FUZZ_CHECK(!e.code.empty(), e.message);
  FUZZ_CHECK(!e.message.empty(), e.code);
  auto text = codec::encode_error(e);
  auto v = must_parse_json(text);
  const auto* err = v.is_object() ? v.as_object().if_contains("error") : nullptr;
  FUZZ_CHECK(err && err->is_object() && err->as_object().contains("code") &&
                 err->as_object().contains("message"),
             text);
}

inline std::string describe(const core::Reading& r) { return codec::encode_reading(r); }

// a == b, or its neighbour: Boost.JSON 1.81 (Debian 12) parses numbers of
// more than 15 significant digits or with an exponent beyond its exact fast
// path ("9e-71") to within one ulp, not correctly rounded
// (parse_options::numbers = precise came in 1.83), so the shortest
// round-trip text json_writer writes may read back one ulp off. Meter values
// (a few decimals, no exponent) take the exact path.
inline bool within_ulp(double a, double b) {
  return a == b || std::nextafter(a, b) == b;
}
inline bool within_ulp(std::optional<double> a, std::optional<double> b) {
  return a.has_value() == b.has_value() && (!a || within_ulp(*a, *b));
}
inline bool same_reading(const core::Reading& a, const core::Reading& b) {
  return a.meter_id == b.meter_id && a.ts == b.ts && within_ulp(a.voltage, b.voltage) &&
         within_ulp(a.current, b.current) && within_ulp(a.power, b.power) &&
         within_ulp(a.energy, b.energy) && within_ulp(a.frequency, b.frequency) &&
         within_ulp(a.power_factor, b.power_factor);
}

// Every reading a decoder accepts is valid (core::check_reading), finite, and
// survives encode_reading -> decode_readings unchanged.
inline void check_readings(const core::Result<std::vector<core::Reading>>& res,
                           const codec::DecodeOptions& opts) {
  if (!res) return check_error(res.error());
  FUZZ_CHECK(res->size() <= opts.max_readings, std::to_string(res->size()));
  for (const auto& r : *res) {
    auto bad = core::check_reading(r, opts.now, opts.future_tolerance_ms);
    FUZZ_CHECK(!bad, describe(r) + " -> " + (bad ? bad->message : ""));
    FUZZ_CHECK(std::isfinite(r.voltage) && std::isfinite(r.current) && std::isfinite(r.power) &&
                   std::isfinite(r.energy) && (!r.frequency || std::isfinite(*r.frequency)) &&
                   (!r.power_factor || std::isfinite(*r.power_factor)),
               describe(r));
    auto text = codec::encode_reading(r);
    must_parse_json(text);
    auto again = codec::decode_readings(text, opts);
    FUZZ_CHECK(again && again->size() == 1 && same_reading((*again)[0], r),
               text + " -> " + (again ? (again->empty() ? "[]" : describe((*again)[0]))
                                      : again.error().message));
  }
}

}  // namespace meterhub::fuzz
