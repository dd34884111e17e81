// Calendar arithmetic in a caller's time zone, for the energy-per-period
// report (GET /api/v1/meters/{id}/energy?period=day&tz=Europe/Berlin): which
// UTC instants start the local hours, days, ISO weeks and months of a range.
//
// All zone rules come from the OS tz database (/usr/share/zoneinfo) through
// Howard Hinnant's date/tz library; nothing here knows a DST rule. That
// library stays behind this header (TimeZone holds an opaque pointer), so
// including calendar.hpp costs no <date/tz.h>.
//
// Known limit of date/tz 3.0.1 in OS-database mode: it reads the explicit
// transitions of the TZif files and ignores their POSIX-rule footer, so zone
// rules are known up to the last listed transition (2037 with Debian's "fat"
// files); after it the last offset stays in force (Europe/Berlin: CET, no DST).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.hpp"
#include "core/reading.hpp"

namespace date {
class time_zone;  // <date/tz.h>; only calendar.cpp includes it
}  // namespace date

namespace meterhub::query {

enum class Period { hour, day, week, month };

// "hour", "day", "week" or "month" (exactly, lowercase). Error code
// "invalid_parameter", field "period".
core::Result<Period> parse_period(std::string_view text);
std::string_view period_name(Period p);

// The earliest and latest instants the calendar functions accept:
// 0001-01-01T00:00:00Z and 9999-12-31T23:59:59.999Z.
inline constexpr core::TimeMs kCalendarMin = -62'135'596'800'000;
inline constexpr core::TimeMs kCalendarMax = 253'402'300'799'999;

// An IANA time zone. A cheap value: it points into the process-wide tz
// database, which is loaded once and lives until exit, so copies may be kept
// and shared between threads freely.
class TimeZone {
 public:
  // Loads the tz database (a few ms: it lists /usr/share/zoneinfo) if that has
  // not happened yet. Optional; call it at start-up so that the first request
  // does not pay for it and a missing tzdata package shows at once. Error code
  // "tz_unavailable".
  static core::Result<void> load_database();

  // An IANA name ("Europe/Berlin", "America/New_York", "UTC", "Etc/GMT+5"),
  // case-sensitive. Error code "invalid_parameter", field "tz", for unknown
  // names, names longer than 64 characters or with characters other than
  // letters, digits and "/_+-"; "tz_unavailable" when the database cannot be
  // read. "localtime" (the server's own zone) is refused: results must not
  // depend on how the server is set up.
  static core::Result<TimeZone> locate(std::string_view name);

  std::string name() const;

  // The UTC offset in force at t (local = UTC + offset), e.g. 3600 for CET.
  int offset_seconds(core::TimeMs t) const;

  // RFC 3339 local time with the offset in force, whole seconds (t is
  // truncated toward the past): "2026-03-29T00:00:00+01:00"; "+00:00" for
  // UTC, never "Z".
  std::string format_local(core::TimeMs t) const;

  // The local wall-clock time of day at t in minutes, hh * 60 + mm (0..1439).
  // It is the clock reading, not the time elapsed since local midnight: at
  // 03:00 CEST on a spring-forward day it is 180.
  int minute_of_day(core::TimeMs t) const;

  // The local day of the week at t: 0 = Monday .. 6 = Sunday (ISO order).
  int day_of_week(core::TimeMs t) const;

  // For the calendar implementation; opaque to everyone else.
  const date::time_zone* zone() const { return zone_; }

 private:
  explicit TimeZone(const date::time_zone* zone) : zone_(zone) {}

  const date::time_zone* zone_;  // never null; owned by the tz database
};

// The UTC instants that start the local periods covering [from, to), sorted
// and distinct: the first is the start of the period containing `from`, the
// last is the end of the period containing `to - 1` (so `to` itself when it
// is a period start). Consecutive elements bound one period.
//
//   hour:  local clock hours. In a +05:30 zone they start at :30 UTC. On a
//          fall-back day the repeated hour is two periods (two starts at
//          local 02:00 in Europe/Berlin); a skipped hour is no period. If a
//          transition skips the start of an hour, that hour starts at the
//          transition. (Lord Howe's half-hour fall-back repeats 01:30-02:00
//          only; that half hour stays in the 01:00 hour, 90 minutes long.)
//   day:   local midnight to local midnight (23 h or 25 h on DST days). When
//          midnight does not exist, the day starts at its first instant (the
//          transition); when it occurs twice, at the first one.
//   week:  ISO weeks, Monday 00:00 local (the day rule above applies).
//   month: calendar months, the 1st at 00:00 local (likewise).
//
// Errors: "invalid_parameter" unless kCalendarMin <= from < to <= kCalendarMax
// + 1; "range_too_large" when the range spans more than `max_periods` periods.
core::Result<std::vector<core::TimeMs>> period_boundaries(const TimeZone& tz, Period period,
                                                          core::TimeMs from, core::TimeMs to,
                                                          std::size_t max_periods);

// True when every UTC offset in force during [from, to) is a whole number of
// hours and every change of offset within it falls on a full UTC hour: then
// local hour boundaries are UTC hour boundaries. Walks the zone's
// transitions, not the hours. True for an empty range.
bool whole_hour_offsets(const TimeZone& tz, core::TimeMs from, core::TimeMs to);

}  // namespace meterhub::query
