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
// Leap seconds (":60") are rejected, and so is an instant outside
// [kMinTime, kMaxTime] ("0000-01-01T00:00:00+01:00" is in year -1).
Result<TimeMs> parse_iso8601(std::string_view text);

// Epoch seconds or milliseconds (by kEpochMsThreshold) to milliseconds.
// Fractions of a millisecond are truncated toward negative infinity. Outside
// [kMinTime, kMaxTime]: "invalid_timestamp".
Result<TimeMs> from_epoch_number(double value);

// What format_iso8601 can write as RFC 3339 (a four-digit year):
// 0000-01-01T00:00:00.000Z and 9999-12-31T23:59:59.999Z.
inline constexpr TimeMs kMinTime = -62'167'219'200'000;
inline constexpr TimeMs kMaxTime = 253'402'300'799'999;

// "2026-11-27T09:11:39.123Z": always UTC, always three fraction digits; ms
// must be within [kMinTime, kMaxTime] for the text to be RFC 3339.
std::string format_iso8601(TimeMs ms);
void append_iso8601(std::string& out, TimeMs ms);

// Current wall-clock time.
TimeMs now_ms();

}  // namespace meterhub::core
