// One time base: int64 milliseconds since the Unix epoch, UTC. Text at the
// edges is ISO-8601 / RFC 3339; numbers on input are epoch seconds or epoch
// milliseconds, told apart by magnitude (see kEpochMsThreshold).
#pragma once

#include <string>
#include <string_view>

#include "core/error.hpp"
#include "core/reading.hpp"

namespace meterhub::core {

// A numeric timestamp whose absolute value is below this is epoch *seconds*
// (1e11 s is the year 5138); at or above it, epoch *milliseconds* (1e11 ms is
// 1973-03-03, before any plausible reading).
inline constexpr double kEpochMsThreshold = 1e11;

// Parses RFC 3339 / ISO-8601 with a mandatory offset: "2026-11-27T09:11:39Z",
// "2026-11-27T10:11:39.123+01:00", "...+0100", 'T' or a space between date and
// time, optional seconds, fraction of any length (truncated to milliseconds).
// Leap seconds (":60") are rejected.
Result<TimeMs> parse_iso8601(std::string_view text);

// Epoch seconds or milliseconds (by kEpochMsThreshold) to milliseconds.
// Fractions of a millisecond are truncated toward negative infinity.
Result<TimeMs> from_epoch_number(double value);

// "2026-11-27T09:11:39.123Z": always UTC, always three fraction digits.
std::string format_iso8601(TimeMs ms);
void append_iso8601(std::string& out, TimeMs ms);

// Current wall-clock time.
TimeMs now_ms();

}  // namespace meterhub::core
