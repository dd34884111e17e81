#include "core/time.hpp"

#include <chrono>
#include <cmath>
#include <cstdio>

namespace meterhub::core {
namespace {

namespace chr = std::chrono;

// Reads exactly n ASCII digits at s[pos]; advances pos.
bool digits(std::string_view s, std::size_t& pos, int n, int& out) {
  if (pos + static_cast<std::size_t>(n) > s.size()) return false;
  int v = 0;
  for (int i = 0; i < n; ++i) {
    char c = s[pos + static_cast<std::size_t>(i)];
    if (c < '0' || c > '9') return false;
    v = v * 10 + (c - '0');
  }
  pos += static_cast<std::size_t>(n);
  out = v;
  return true;
}

bool expect(std::string_view s, std::size_t& pos, char c) {
  if (pos >= s.size() || s[pos] != c) return false;
  ++pos;
  return true;
}

std::unexpected<Error> bad_time(std::string_view text, std::string_view why) {
  std::string shown(text.substr(0, 40));
  return fail("invalid_timestamp", "timestamp \"" + shown + "\" " + std::string(why) +
                                       " (expected RFC 3339, e.g. 2026-11-27T09:11:39.123Z)");
}

}  // namespace

Result<TimeMs> parse_iso8601(std::string_view s) {
  std::size_t p = 0;
  int y = 0, mo = 0, d = 0, h = 0, mi = 0, sec = 0;
  if (!digits(s, p, 4, y) || !expect(s, p, '-') || !digits(s, p, 2, mo) || !expect(s, p, '-') ||
      !digits(s, p, 2, d))
    return bad_time(s, "has no valid date YYYY-MM-DD");
  if (p >= s.size() || (s[p] != 'T' && s[p] != 't' && s[p] != ' '))
    return bad_time(s, "has no time part");
  ++p;
  if (!digits(s, p, 2, h) || !expect(s, p, ':') || !digits(s, p, 2, mi))
    return bad_time(s, "has no valid time HH:MM");
  int frac_ms = 0;
  if (p < s.size() && s[p] == ':') {
    ++p;
    if (!digits(s, p, 2, sec)) return bad_time(s, "has invalid seconds");
    if (p < s.size() && (s[p] == '.' || s[p] == ',')) {
      ++p;
      std::size_t start = p;
      int scale = 100;
      while (p < s.size() && s[p] >= '0' && s[p] <= '9') {
        frac_ms += (s[p] - '0') * scale;
        scale /= 10;
        ++p;
      }
      if (p == start) return bad_time(s, "has an empty fraction");
    }
  }
  if (h > 23 || mi > 59 || sec > 59) return bad_time(s, "has an out-of-range time of day");
  int offset_min = 0;
  if (p < s.size() && (s[p] == 'Z' || s[p] == 'z')) {
    ++p;
  } else if (p < s.size() && (s[p] == '+' || s[p] == '-')) {
    int sign = s[p] == '-' ? -1 : 1;
    ++p;
    int oh = 0, om = 0;
    if (!digits(s, p, 2, oh)) return bad_time(s, "has an invalid UTC offset");
    if (p < s.size() && s[p] == ':') ++p;
    if (!digits(s, p, 2, om) || oh > 23 || om > 59) return bad_time(s, "has an invalid UTC offset");
    offset_min = sign * (oh * 60 + om);
  } else {
    return bad_time(s, "has no UTC offset ('Z' or +HH:MM)");
  }
  if (p != s.size()) return bad_time(s, "has trailing characters");
  chr::year_month_day ymd{chr::year{y}, chr::month{static_cast<unsigned>(mo)},
                          chr::day{static_cast<unsigned>(d)}};
  if (!ymd.ok()) return bad_time(s, "is not a calendar date");
  auto days = chr::sys_days{ymd}.time_since_epoch().count();
  std::int64_t secs = static_cast<std::int64_t>(days) * 86400 + h * 3600 + mi * 60 + sec -
                      static_cast<std::int64_t>(offset_min) * 60;
  TimeMs ms = secs * 1000 + frac_ms;
  // A year-0000 time east of UTC (or a year-9999 time west of it) is an
  // instant that has no four-digit-year form in UTC; format_iso8601 could not
  // write it back (found by fuzz/time_fuzz.cpp).
  if (ms < kMinTime || ms > kMaxTime) return bad_time(s, "is out of range in UTC");
  return ms;
}

Result<TimeMs> from_epoch_number(double v) {
  if (!std::isfinite(v)) return fail("invalid_timestamp", "timestamp must be a finite number");
  double ms = std::fabs(v) < kEpochMsThreshold ? v * 1000.0 : v;
  // Years 0000..9999 only: what format_iso8601 can write back (beyond, up to
  // 9e15 ms, it wrote five- and six-digit years; found by fuzz/time_fuzz.cpp).
  // The bounds are well inside +-2^53 ms, where a double holds whole ms.
  const double floored = std::floor(ms);
  if (floored < static_cast<double>(kMinTime) || floored > static_cast<double>(kMaxTime))
    return fail("invalid_timestamp", "timestamp is out of range (years 0000 to 9999)");
  return static_cast<TimeMs>(floored);
}

void append_iso8601(std::string& out, TimeMs ms) {
  auto tp = chr::sys_time<chr::milliseconds>{chr::milliseconds{ms}};
  auto day = chr::floor<chr::days>(tp);
  chr::year_month_day ymd{day};
  chr::hh_mm_ss<chr::milliseconds> tod{tp - day};
  char buf[40];
  int n = std::snprintf(
      buf, sizeof buf, "%04d-%02u-%02uT%02d:%02d:%02d.%03dZ", static_cast<int>(ymd.year()),
      static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()),
      static_cast<int>(tod.hours().count()), static_cast<int>(tod.minutes().count()),
      static_cast<int>(tod.seconds().count()), static_cast<int>(tod.subseconds().count()));
  out.append(buf, static_cast<std::size_t>(n));
}

std::string format_iso8601(TimeMs ms) {
  std::string s;
  append_iso8601(s, ms);
  return s;
}

TimeMs now_ms() {
  return chr::duration_cast<chr::milliseconds>(chr::system_clock::now().time_since_epoch()).count();
}

}  // namespace meterhub::core
