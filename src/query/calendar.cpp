#include "query/calendar.hpp"

#include <date/date.h>
#include <date/tz.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstdlib>
#include <exception>
#include <optional>
#include <stdexcept>

namespace meterhub::query {
namespace {

namespace chr = std::chrono;
using core::Error;
using core::TimeMs;
using SysMs = date::sys_time<chr::milliseconds>;
using LocalMs = date::local_time<chr::milliseconds>;

constexpr std::size_t kMaxZoneName = 64;  // the longest IANA name has 32 characters

SysMs sys_of(TimeMs t) { return SysMs{chr::milliseconds{t}}; }

TimeMs ms_of(date::sys_seconds s) {
  return chr::duration_cast<chr::milliseconds>(s.time_since_epoch()).count();
}

std::unexpected<Error> bad_parameter(std::string field, std::string message) {
  return std::unexpected(
      Error{"invalid_parameter", std::move(message), std::nullopt, std::move(field)});
}

bool zone_name_char(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '/' ||
         c == '_' || c == '+' || c == '-';
}

LocalMs local_of(const date::time_zone& z, TimeMs t) { return z.to_local(sys_of(t)); }

// --- Local period labels: the local time at which a period starts. ---------

date::local_seconds floor_period(Period p, LocalMs lt) {
  const date::local_days day = date::floor<date::days>(lt);
  switch (p) {
    case Period::hour:
      return date::floor<chr::hours>(lt);
    case Period::day:
      return day;
    case Period::week:  // back to Monday; iso_encoding() is 1 for Monday .. 7 for Sunday
      return day - date::days{date::weekday{day}.iso_encoding() - 1};
    case Period::month: {
      const date::year_month_day ymd{day};
      return date::local_days{ymd.year() / ymd.month() / 1};
    }
  }
  return day;
}

date::local_seconds step_period(Period p, date::local_seconds label, int n) {
  switch (p) {
    case Period::hour:
      return label + chr::hours{n};
    case Period::day:
      return label + date::days{n};
    case Period::week:
      return label + date::days{7 * n};
    case Period::month: {
      const date::year_month_day ymd{date::floor<date::days>(label)};
      const date::year_month ym = ymd.year() / ymd.month() + date::months{n};
      return date::local_days{ym / 1};
    }
  }
  return label;
}

// How many labels lie in [first, last).
long long label_count(Period p, date::local_seconds first, date::local_seconds last) {
  switch (p) {
    case Period::hour:
      return chr::duration_cast<chr::hours>(last - first).count();
    case Period::day:
      return chr::duration_cast<date::days>(last - first).count();
    case Period::week:
      return chr::duration_cast<date::weeks>(last - first).count();
    case Period::month: {
      const date::year_month_day a{date::floor<date::days>(first)};
      const date::year_month_day b{date::floor<date::days>(last)};
      return ((b.year() / b.month()) - (a.year() / a.month())).count();
    }
  }
  return 0;
}

// Appends the UTC instants at which the period labelled `label` starts. A
// label the clock skips starts at the transition that skips it (the period's
// first instant). A label the clock shows twice starts at its first showing;
// for hours, the second showing starts a second period, so that the repeated
// hour of a fall-back is two hours.
void append_starts(const date::time_zone& z, Period p, date::local_seconds label,
                   std::vector<TimeMs>& out) {
  const date::local_info i = z.get_info(label);
  const auto at = [&](chr::seconds offset) {
    return ms_of(date::sys_seconds{(label - offset).time_since_epoch()});
  };
  switch (i.result) {
    case date::local_info::unique:
      out.push_back(at(i.first.offset));
      break;
    case date::local_info::nonexistent:
      out.push_back(ms_of(i.first.end));
      break;
    case date::local_info::ambiguous:
      out.push_back(at(i.first.offset));
      if (p == Period::hour) out.push_back(at(i.second.offset));
      break;
  }
}

void append_2(std::string& out, int v) {  // 0 <= v <= 99
  out += static_cast<char>('0' + v / 10);
  out += static_cast<char>('0' + v % 10);
}

}  // namespace

core::Result<Period> parse_period(std::string_view text) {
  for (Period p : {Period::hour, Period::day, Period::week, Period::month}) {
    if (text == period_name(p)) return p;
  }
  std::string shown(text.substr(0, 32));
  return bad_parameter("period",
                       "period must be one of hour, day, week, month; got \"" + shown + "\"");
}

std::string_view period_name(Period p) {
  switch (p) {
    case Period::hour:
      return "hour";
    case Period::day:
      return "day";
    case Period::week:
      return "week";
    case Period::month:
      return "month";
  }
  return "?";
}

// --- TimeZone ----------------------------------------------------------------

core::Result<void> TimeZone::load_database() {
  try {
    (void)date::get_tzdb();
    return {};
  } catch (const std::exception& e) {
    return core::fail("tz_unavailable",
                      std::string("cannot load the time zone database: ") + e.what());
  }
}

core::Result<TimeZone> TimeZone::locate(std::string_view name) {
  if (name.empty()) return bad_parameter("tz", "tz must not be empty (e.g. Europe/Berlin)");
  if (name.size() > kMaxZoneName) {
    return bad_parameter("tz", "time zone name is longer than " + std::to_string(kMaxZoneName) +
                                   " characters (use an IANA name such as Europe/Berlin)");
  }
  if (!std::all_of(name.begin(), name.end(), zone_name_char)) {
    return bad_parameter("tz",
                         "time zone name may only hold letters, digits and / _ + - "
                         "(use an IANA name such as Europe/Berlin)");
  }
  auto unknown = [&] {
    return bad_parameter("tz", "unknown time zone \"" + std::string(name) +
                                   "\" (use an IANA name such as Europe/Berlin)");
  };
  // In OS-database mode the library lists /usr/share/zoneinfo, where Debian
  // keeps a "localtime" link to /etc/localtime: not an IANA name.
  if (name == "localtime") return unknown();
  if (auto loaded = load_database(); !loaded) return std::unexpected(loaded.error());

  const date::time_zone* zone = nullptr;
  try {
    // The free function: Debian's libdate-tz.so does not export the member
    // tzdb::locate_zone (declared without DATE_API, so hidden).
    zone = date::locate_zone(name);
  } catch (const std::runtime_error&) {  // "... not found in timezone database"
    return unknown();
  }
  // The library reads a zone's file on its first use and throws if it cannot;
  // do that here, so every later call on the zone is exception-free.
  try {
    (void)zone->get_info(date::sys_seconds{});
  } catch (const std::exception& e) {
    return core::fail("tz_unavailable",
                      "cannot read time zone \"" + std::string(name) + "\": " + e.what());
  }
  return TimeZone(zone);
}

std::string TimeZone::name() const { return zone_->name(); }

int TimeZone::offset_seconds(core::TimeMs t) const {
  return static_cast<int>(zone_->get_info(sys_of(t)).offset.count());
}

std::string TimeZone::format_local(core::TimeMs t) const {
  const date::sys_seconds s = date::floor<chr::seconds>(sys_of(t));
  const date::sys_info info = zone_->get_info(s);
  const date::local_seconds lt{(s + info.offset).time_since_epoch()};
  const date::local_days day = date::floor<date::days>(lt);
  const date::year_month_day ymd{day};
  const date::hh_mm_ss<chr::seconds> hms{lt - day};

  std::string out;
  out.reserve(25);
  char year[8];
  const int y = static_cast<int>(ymd.year());
  if (y < 0) out += '-';
  auto [end, ec] = std::to_chars(year, year + sizeof year, std::abs(y));
  (void)ec;  // 5 digits at most (date::year is within +-32767)
  out.append(static_cast<std::size_t>(std::max<long>(0, 4 - (end - year))), '0');
  out.append(year, end);
  out += '-';
  append_2(out, static_cast<int>(static_cast<unsigned>(ymd.month())));
  out += '-';
  append_2(out, static_cast<int>(static_cast<unsigned>(ymd.day())));
  out += 'T';
  append_2(out, static_cast<int>(hms.hours().count()));
  out += ':';
  append_2(out, static_cast<int>(hms.minutes().count()));
  out += ':';
  append_2(out, static_cast<int>(hms.seconds().count()));
  // RFC 3339 offsets have no seconds: the local-mean-time offsets of the
  // 19th century (Berlin +00:53:28) print truncated to minutes.
  const long off = info.offset.count();
  out += off < 0 ? '-' : '+';
  append_2(out, static_cast<int>(std::labs(off) / 3600));
  out += ':';
  append_2(out, static_cast<int>(std::labs(off) % 3600 / 60));
  return out;
}

int TimeZone::minute_of_day(core::TimeMs t) const {
  const LocalMs lt = local_of(*zone_, t);
  return static_cast<int>(
      chr::duration_cast<chr::minutes>(lt - date::floor<date::days>(lt)).count());
}

int TimeZone::day_of_week(core::TimeMs t) const {
  const date::weekday wd{date::floor<date::days>(local_of(*zone_, t))};
  return static_cast<int>(wd.iso_encoding()) - 1;
}

// --- Periods -----------------------------------------------------------------

core::Result<std::vector<core::TimeMs>> period_boundaries(const TimeZone& tz, Period period,
                                                          core::TimeMs from, core::TimeMs to,
                                                          std::size_t max_periods) {
  if (from < kCalendarMin || from > kCalendarMax)
    return bad_parameter("from", "from must lie within the years 0001 to 9999");
  if (to < kCalendarMin || to > kCalendarMax + 1)
    return bad_parameter("to", "to must lie within the years 0001 to 9999");
  if (from >= to) return bad_parameter("to", "to must be later than from");
  const date::time_zone& z = *tz.zone();

  // Candidate starts from one label before the one holding `from` to two
  // after the one holding `to`: enough for the first start <= from and the
  // first start >= to to be among them (a skipped label still yields a
  // candidate, the transition). Some may be out of order (with a fall-back,
  // the second 02:00 comes after the first 03:00 of a clock that went back
  // two hours), hence the sort.
  const date::local_seconds first =
      step_period(period, floor_period(period, local_of(z, from)), -1);
  const date::local_seconds last = step_period(period, floor_period(period, local_of(z, to)), 2);
  // Labels and periods differ only by the few labels a DST change skips or
  // repeats, so this rejects huge ranges before any work; the exact check
  // comes below.
  constexpr long long kSlack = 64;
  const long long labels = label_count(period, first, last);
  const auto too_large = [&] {
    return core::fail("range_too_large", "the range spans more than " +
                                             std::to_string(max_periods) + " " +
                                             std::string(period_name(period)) +
                                             "s; shorten it or use a longer period");
  };
  if (labels > kSlack && static_cast<unsigned long long>(labels - kSlack) > max_periods) {
    return too_large();
  }

  std::vector<TimeMs> starts;
  starts.reserve(static_cast<std::size_t>(labels) + 4);
  for (date::local_seconds l = first; l <= last; l = step_period(period, l, 1)) {
    append_starts(z, period, l, starts);
  }
  std::sort(starts.begin(), starts.end());
  starts.erase(std::unique(starts.begin(), starts.end()), starts.end());

  auto lo = std::upper_bound(starts.begin(), starts.end(), from);  // first start > from
  auto hi = std::lower_bound(starts.begin(), starts.end(), to);    // first start >= to
  if (lo == starts.begin() || hi == starts.end()) {
    throw std::logic_error("period_boundaries: candidate starts do not cover the range");
  }
  --lo;  // last start <= from
  if (static_cast<std::size_t>(hi - lo) > max_periods) return too_large();
  return std::vector<TimeMs>(lo, hi + 1);
}

bool whole_hour_offsets(const TimeZone& tz, core::TimeMs from, core::TimeMs to) {
  const date::time_zone& z = *tz.zone();
  const SysMs end = sys_of(to);
  date::sys_seconds t = date::floor<chr::seconds>(sys_of(from));
  std::optional<chr::seconds> previous;
  while (t < end) {
    const date::sys_info i = z.get_info(t);
    if (i.offset.count() % 3600 != 0) return false;
    // Ranges also change with only the abbreviation or the DST flag; only a
    // change of offset moves the local clock.
    if (previous && *previous != i.offset && i.begin.time_since_epoch().count() % 3600 != 0)
      return false;
    previous = i.offset;
    if (i.end <= t) break;  // no later range (cannot happen; guards the loop)
    t = i.end;
  }
  return true;
}

}  // namespace meterhub::query
