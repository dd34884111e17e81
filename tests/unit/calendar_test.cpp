// Local calendar periods against hand-computed instants. The zone rules used
// (tzdata 2026, as shipped by Debian):
//   Europe/Berlin      CET +01:00, CEST +02:00 from the last Sunday of March
//                      01:00Z to the last Sunday of October 01:00Z.
//   America/New_York   EST -05:00, EDT -04:00 from the second Sunday of March
//                      02:00 local to the first Sunday of November 02:00 local.
//   Asia/Kolkata       IST +05:30 all year.
//   Australia/Adelaide ACST +09:30, ACDT +10:30 from the first Sunday of
//                      October 02:00 ACST to the first Sunday of April 03:00 ACDT.
//   America/Santiago   -04:00, -03:00 from the first Sunday on or after
//                      September 2 at 04:00Z (local midnight) to the first
//                      Sunday on or after April 2 at 03:00Z.
// Days of the week: 2026-01-01 is a Thursday, so 2026-03-01 is a Sunday
// (Feb 1 is a Sunday and February has 28 days), 2026-10-01 a Thursday,
// 2026-04-01 a Wednesday, 2026-09-01 a Tuesday, 2026-12-31 a Thursday.
#include "query/calendar.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "core/time.hpp"

namespace meterhub::query {
namespace {

constexpr std::size_t kMany = 100'000;
constexpr core::TimeMs kHour = 3'600'000;

core::TimeMs at(std::string_view iso) { return core::parse_iso8601(iso).value(); }

TimeZone zone(std::string_view name) { return TimeZone::locate(name).value(); }

std::vector<core::TimeMs> bounds(std::string_view tz, Period p, std::string_view from,
                                 std::string_view to, std::size_t max = kMany) {
  auto b = period_boundaries(zone(tz), p, at(from), at(to), max);
  EXPECT_TRUE(b) << (b ? "" : b.error().message);
  return b ? *b : std::vector<core::TimeMs>{};
}

std::vector<core::TimeMs> utc(std::initializer_list<std::string_view> isos) {
  std::vector<core::TimeMs> out;
  for (auto s : isos) out.push_back(at(s));
  return out;
}

std::vector<std::string> local(std::string_view tz, const std::vector<core::TimeMs>& ts) {
  std::vector<std::string> out;
  const TimeZone z = zone(tz);
  for (core::TimeMs t : ts) out.push_back(z.format_local(t));
  return out;
}

// --- Parsing names -----------------------------------------------------------

TEST(CalendarPeriod, ParsesTheFourNames) {
  EXPECT_EQ(*parse_period("hour"), Period::hour);
  EXPECT_EQ(*parse_period("day"), Period::day);
  EXPECT_EQ(*parse_period("week"), Period::week);
  EXPECT_EQ(*parse_period("month"), Period::month);
  for (Period p : {Period::hour, Period::day, Period::week, Period::month})
    EXPECT_EQ(*parse_period(period_name(p)), p);
}

TEST(CalendarPeriod, RejectsOtherNames) {
  for (const char* bad : {"", "Day", "days", "year", "1d", "hour ", "fortnight"}) {
    auto p = parse_period(bad);
    ASSERT_FALSE(p) << bad;
    EXPECT_EQ(p.error().code, "invalid_parameter");
    EXPECT_EQ(p.error().field, "period");
    EXPECT_NE(p.error().message.find("hour, day, week, month"), std::string::npos);
  }
}

TEST(CalendarZone, LocatesIanaNamesAndUtc) {
  EXPECT_EQ(zone("Europe/Berlin").name(), "Europe/Berlin");
  EXPECT_EQ(zone("UTC").name(), "UTC");
  EXPECT_EQ(zone("America/Argentina/Buenos_Aires").name(), "America/Argentina/Buenos_Aires");
  // POSIX sign convention: Etc/GMT+5 is five hours *behind* UTC.
  EXPECT_EQ(zone("Etc/GMT+5").offset_seconds(at("2026-06-01T00:00:00Z")), -5 * 3600);
  EXPECT_EQ(zone("UTC").offset_seconds(at("2026-06-01T00:00:00Z")), 0);
}

TEST(CalendarZone, RejectsUnknownAndOddNames) {
  auto e = TimeZone::locate("Foo/Bar");
  ASSERT_FALSE(e);
  EXPECT_EQ(e.error().code, "invalid_parameter");
  EXPECT_EQ(e.error().field, "tz");
  EXPECT_EQ(e.error().message,
            "unknown time zone \"Foo/Bar\" (use an IANA name such as Europe/Berlin)");
  const std::string bad_names[] = {"",
                                   "europe/berlin",
                                   "Europe/Berlin/",
                                   "localtime",
                                   "../etc/passwd",
                                   "Europe/Berlin\n",
                                   "Europe Berlin",
                                   "Europe/Berlin;x",
                                   "posixrules",
                                   std::string(65, 'A'),
                                   std::string("UTC\0x", 5)};
  for (const std::string& bad : bad_names) {
    auto r = TimeZone::locate(bad);
    ASSERT_FALSE(r) << bad;
    EXPECT_EQ(r.error().code, "invalid_parameter") << bad;
    EXPECT_EQ(r.error().field, "tz");
  }
}

// --- Local time --------------------------------------------------------------

TEST(CalendarZone, FormatsLocalTimeWithOffset) {
  const TimeZone berlin = zone("Europe/Berlin");
  EXPECT_EQ(berlin.format_local(at("2026-03-28T23:00:00Z")), "2026-03-29T00:00:00+01:00");
  EXPECT_EQ(berlin.format_local(at("2026-03-29T01:00:00Z")), "2026-03-29T03:00:00+02:00");
  EXPECT_EQ(berlin.format_local(at("2026-03-29T00:59:59.999Z")), "2026-03-29T01:59:59+01:00");
  EXPECT_EQ(zone("UTC").format_local(at("2026-01-01T00:00:00Z")), "2026-01-01T00:00:00+00:00");
  EXPECT_EQ(zone("Asia/Kolkata").format_local(at("2026-01-15T00:00:00Z")),
            "2026-01-15T05:30:00+05:30");
  EXPECT_EQ(zone("America/New_York").format_local(at("2026-01-15T03:04:05Z")),
            "2026-01-14T22:04:05-05:00");
  // Whole seconds, truncated toward the past, also before 1970.
  EXPECT_EQ(zone("UTC").format_local(-1), "1969-12-31T23:59:59+00:00");
  // Beyond Debian's listed transitions (2037) the library keeps the last
  // offset: July 2040 in Berlin prints as CET. A known limit, see calendar.hpp.
  EXPECT_EQ(berlin.format_local(at("2040-07-01T12:00:00Z")), "2040-07-01T13:00:00+01:00");
}

TEST(CalendarZone, OffsetMinuteOfDayAndWeekday) {
  const TimeZone berlin = zone("Europe/Berlin");
  EXPECT_EQ(berlin.offset_seconds(at("2026-03-29T00:59:59Z")), 3600);
  EXPECT_EQ(berlin.offset_seconds(at("2026-03-29T01:00:00Z")), 7200);
  // 01:00Z on 2026-03-29 is 03:00 CEST: the clock reading, 180, though only
  // two hours have passed since local midnight.
  EXPECT_EQ(berlin.minute_of_day(at("2026-03-29T01:00:00Z")), 180);
  EXPECT_EQ(berlin.minute_of_day(at("2026-03-28T23:00:00Z")), 0);
  const TimeZone kolkata = zone("Asia/Kolkata");
  EXPECT_EQ(kolkata.minute_of_day(at("2026-01-14T18:30:00Z")), 0);     // 00:00 IST
  EXPECT_EQ(kolkata.minute_of_day(at("2026-01-15T18:29:59Z")), 1439);  // 23:59:59 IST
  EXPECT_EQ(kolkata.minute_of_day(at("2026-01-15T01:45:00Z")), 435);   // 07:15 IST
  // 2026-03-28T23:00Z: Saturday in UTC, Sunday 00:00 in Berlin.
  EXPECT_EQ(zone("UTC").day_of_week(at("2026-03-28T23:00:00Z")), 5);
  EXPECT_EQ(berlin.day_of_week(at("2026-03-28T23:00:00Z")), 6);
  EXPECT_EQ(berlin.day_of_week(at("2026-12-28T12:00:00Z")), 0);  // Monday
}

// --- Days --------------------------------------------------------------------

TEST(CalendarDays, BerlinSpringForwardDayHas23Hours) {
  // 2026-03-29 00:00 CET = 03-28T23:00Z; 2026-03-30 00:00 CEST = 03-29T22:00Z.
  auto b = bounds("Europe/Berlin", Period::day, "2026-03-29T12:00:00Z", "2026-03-29T13:00:00Z");
  EXPECT_EQ(b, utc({"2026-03-28T23:00:00Z", "2026-03-29T22:00:00Z"}));
  ASSERT_EQ(b.size(), 2u);
  EXPECT_EQ(b[1] - b[0], 23 * kHour);
}

TEST(CalendarDays, BerlinFallBackDayHas25Hours) {
  // 2026-10-25 00:00 CEST = 10-24T22:00Z; 2026-10-26 00:00 CET = 10-25T23:00Z.
  auto b = bounds("Europe/Berlin", Period::day, "2026-10-24T12:00:00Z", "2026-10-26T12:00:00Z");
  EXPECT_EQ(b, utc({"2026-10-23T22:00:00Z", "2026-10-24T22:00:00Z", "2026-10-25T23:00:00Z",
                    "2026-10-26T23:00:00Z"}));
  EXPECT_EQ(local("Europe/Berlin", b),
            (std::vector<std::string>{"2026-10-24T00:00:00+02:00", "2026-10-25T00:00:00+02:00",
                                      "2026-10-26T00:00:00+01:00", "2026-10-27T00:00:00+01:00"}));
  ASSERT_EQ(b.size(), 4u);
  EXPECT_EQ(b[2] - b[1], 25 * kHour);
}

TEST(CalendarDays, NewYorkDstDays) {
  // 2026-03-08: 00:00 EST = 05:00Z; 2026-03-09 00:00 EDT = 04:00Z: 23 h.
  auto spring =
      bounds("America/New_York", Period::day, "2026-03-08T05:00:00Z", "2026-03-09T04:00:00Z");
  EXPECT_EQ(spring, utc({"2026-03-08T05:00:00Z", "2026-03-09T04:00:00Z"}));
  // 2026-11-01: 00:00 EDT = 04:00Z; 2026-11-02 00:00 EST = 05:00Z: 25 h.
  auto fall =
      bounds("America/New_York", Period::day, "2026-11-01T04:00:00Z", "2026-11-02T05:00:00Z");
  EXPECT_EQ(fall, utc({"2026-11-01T04:00:00Z", "2026-11-02T05:00:00Z"}));
}

TEST(CalendarDays, FromAndToOnBoundariesAndJustPast) {
  // `from` on a boundary starts there; `to` on a boundary ends there; one
  // millisecond further takes in the whole next day.
  auto exact = bounds("Europe/Berlin", Period::day, "2026-03-28T23:00:00Z", "2026-03-29T22:00:00Z");
  EXPECT_EQ(exact, utc({"2026-03-28T23:00:00Z", "2026-03-29T22:00:00Z"}));
  auto past = period_boundaries(zone("Europe/Berlin"), Period::day, at("2026-03-28T23:00:00Z"),
                                at("2026-03-29T22:00:00Z") + 1, kMany);
  ASSERT_TRUE(past);
  EXPECT_EQ(*past, utc({"2026-03-28T23:00:00Z", "2026-03-29T22:00:00Z", "2026-03-30T22:00:00Z"}));
  // One millisecond before local midnight belongs to the previous day.
  auto before =
      bounds("Europe/Berlin", Period::day, "2026-03-28T22:59:59.999Z", "2026-03-28T23:00:00Z");
  EXPECT_EQ(before, utc({"2026-03-27T23:00:00Z", "2026-03-28T23:00:00Z"}));
}

TEST(CalendarDays, KolkataDaysStartAt1830Utc) {
  auto b = bounds("Asia/Kolkata", Period::day, "2026-01-15T00:00:00Z", "2026-01-16T00:00:00Z");
  EXPECT_EQ(b, utc({"2026-01-14T18:30:00Z", "2026-01-15T18:30:00Z", "2026-01-16T18:30:00Z"}));
}

TEST(CalendarDays, AdelaideSouthernHemisphereDst) {
  // DST ends Sunday 2026-04-05 03:00 ACDT (16:30Z on the 4th):
  // 00:00 ACDT (+10:30) = 04-04T13:30Z, next midnight ACST (+09:30) =
  // 04-05T14:30Z: 25 h.
  auto end =
      bounds("Australia/Adelaide", Period::day, "2026-04-04T20:00:00Z", "2026-04-04T21:00:00Z");
  EXPECT_EQ(end, utc({"2026-04-04T13:30:00Z", "2026-04-05T14:30:00Z"}));
  // DST starts Sunday 2026-10-04 02:00 ACST (16:30Z on the 3rd):
  // 00:00 ACST = 10-03T14:30Z, next midnight ACDT = 10-04T13:30Z: 23 h.
  auto start =
      bounds("Australia/Adelaide", Period::day, "2026-10-03T20:00:00Z", "2026-10-03T21:00:00Z");
  EXPECT_EQ(start, utc({"2026-10-03T14:30:00Z", "2026-10-04T13:30:00Z"}));
  EXPECT_EQ(local("Australia/Adelaide", start),
            (std::vector<std::string>{"2026-10-04T00:00:00+09:30", "2026-10-05T00:00:00+10:30"}));
}

TEST(CalendarDays, MissingMidnightStartsTheDayAtItsFirstInstant) {
  // Santiago springs forward at local midnight: 2026-09-06 00:00 -04 is
  // 04:00Z, when the clock jumps to 01:00 -03. That day starts at 04:00Z and
  // ends at 2026-09-07 00:00 -03 = 03:00Z (23 h); the day before is 24 h.
  auto b = bounds("America/Santiago", Period::day, "2026-09-05T12:00:00Z", "2026-09-06T12:00:00Z");
  EXPECT_EQ(b, utc({"2026-09-05T04:00:00Z", "2026-09-06T04:00:00Z", "2026-09-07T03:00:00Z"}));
  EXPECT_EQ(local("America/Santiago", b),
            (std::vector<std::string>{"2026-09-05T00:00:00-04:00", "2026-09-06T01:00:00-03:00",
                                      "2026-09-07T00:00:00-03:00"}));
}

// --- Hours -------------------------------------------------------------------

TEST(CalendarHours, BerlinFallBackDayHas25DistinctHours) {
  // The day 10-24T22:00Z .. 10-25T23:00Z; every local hour starts on a whole
  // UTC hour (offsets +1 and +2), so the 25 hours start at 22:00Z, 23:00Z,
  // 00:00Z, ..., 22:00Z and the last ends at 23:00Z: 26 boundaries.
  auto b = bounds("Europe/Berlin", Period::hour, "2026-10-24T22:00:00Z", "2026-10-25T23:00:00Z");
  ASSERT_EQ(b.size(), 26u);
  for (std::size_t i = 0; i < b.size(); ++i)
    EXPECT_EQ(b[i], at("2026-10-24T22:00:00Z") + static_cast<core::TimeMs>(i) * kHour) << i;
  auto l = local("Europe/Berlin", b);
  EXPECT_EQ(l[0], "2026-10-25T00:00:00+02:00");
  EXPECT_EQ(l[1], "2026-10-25T01:00:00+02:00");
  EXPECT_EQ(l[2], "2026-10-25T02:00:00+02:00");  // the first 02:00 (CEST) ...
  EXPECT_EQ(l[3], "2026-10-25T02:00:00+01:00");  // ... and the second (CET)
  EXPECT_EQ(l[4], "2026-10-25T03:00:00+01:00");
  EXPECT_EQ(l[25], "2026-10-26T00:00:00+01:00");
}

TEST(CalendarHours, BerlinSpringForwardDayHas23Hours) {
  // Local 02:00-03:00 does not exist: 01:00 CET (00:00Z) is followed by
  // 03:00 CEST (01:00Z).
  auto b = bounds("Europe/Berlin", Period::hour, "2026-03-28T23:00:00Z", "2026-03-29T22:00:00Z");
  ASSERT_EQ(b.size(), 24u);
  auto l = local("Europe/Berlin", b);
  EXPECT_EQ(l[1], "2026-03-29T01:00:00+01:00");
  EXPECT_EQ(l[2], "2026-03-29T03:00:00+02:00");
  EXPECT_EQ(b[2], at("2026-03-29T01:00:00Z"));
  EXPECT_EQ(l[23], "2026-03-30T00:00:00+02:00");
}

TEST(CalendarHours, NewYorkFallBackRepeatsOneAm) {
  // 2026-11-01: 01:00 EDT = 05:00Z, 01:00 EST = 06:00Z, 02:00 EST = 07:00Z.
  auto b = bounds("America/New_York", Period::hour, "2026-11-01T05:30:00Z", "2026-11-01T06:30:00Z");
  EXPECT_EQ(b, utc({"2026-11-01T05:00:00Z", "2026-11-01T06:00:00Z", "2026-11-01T07:00:00Z"}));
  EXPECT_EQ(local("America/New_York", b),
            (std::vector<std::string>{"2026-11-01T01:00:00-04:00", "2026-11-01T01:00:00-05:00",
                                      "2026-11-01T02:00:00-05:00"}));
}

TEST(CalendarHours, KolkataHoursStartAtHalfPastUtc) {
  // 00:00Z is 05:30 IST, inside the 05:00 IST hour that started at 23:30Z;
  // 02:59:59.999Z (08:29 IST) lies in the hour that ends at 09:00 IST = 03:30Z.
  auto b = bounds("Asia/Kolkata", Period::hour, "2026-01-15T00:00:00Z", "2026-01-15T03:00:00Z");
  EXPECT_EQ(b, utc({"2026-01-14T23:30:00Z", "2026-01-15T00:30:00Z", "2026-01-15T01:30:00Z",
                    "2026-01-15T02:30:00Z", "2026-01-15T03:30:00Z"}));
}

TEST(CalendarHours, AdelaideFallBackRepeatsTwoAm) {
  // 2026-04-05 03:00 ACDT (16:30Z on the 4th) becomes 02:00 ACST: 02:00
  // ACDT = 15:30Z and 02:00 ACST = 16:30Z both start an hour.
  auto b =
      bounds("Australia/Adelaide", Period::hour, "2026-04-04T15:30:00Z", "2026-04-04T17:30:00Z");
  EXPECT_EQ(b, utc({"2026-04-04T15:30:00Z", "2026-04-04T16:30:00Z", "2026-04-04T17:30:00Z"}));
  EXPECT_EQ(local("Australia/Adelaide", b),
            (std::vector<std::string>{"2026-04-05T02:00:00+10:30", "2026-04-05T02:00:00+09:30",
                                      "2026-04-05T03:00:00+09:30"}));
}

// --- Weeks and months --------------------------------------------------------

TEST(CalendarWeeks, IsoWeekAcrossTheYearBoundary) {
  // Thursday 2026-12-31 is in the ISO week from Monday 2026-12-28 (00:00 CET
  // = 12-27T23:00Z) to Monday 2027-01-04 (= 2027-01-03T23:00Z).
  auto b = bounds("Europe/Berlin", Period::week, "2026-12-31T12:00:00Z", "2027-01-01T12:00:00Z");
  EXPECT_EQ(b, utc({"2026-12-27T23:00:00Z", "2027-01-03T23:00:00Z"}));
  EXPECT_EQ(local("Europe/Berlin", b),
            (std::vector<std::string>{"2026-12-28T00:00:00+01:00", "2027-01-04T00:00:00+01:00"}));
}

TEST(CalendarWeeks, WeekWithSpringForwardHas167Hours) {
  // Monday 2026-03-23 00:00 CET = 03-22T23:00Z; Monday 03-30 00:00 CEST =
  // 03-29T22:00Z: 7 * 24 - 1 hours.
  auto b = bounds("Europe/Berlin", Period::week, "2026-03-29T12:00:00Z", "2026-03-29T12:00:01Z");
  EXPECT_EQ(b, utc({"2026-03-22T23:00:00Z", "2026-03-29T22:00:00Z"}));
  EXPECT_EQ(b[1] - b[0], 167 * kHour);
}

TEST(CalendarMonths, LeapFebruary2028) {
  // Feb 2028 has 29 days: 02-01 00:00 CET = 01-31T23:00Z .. 03-01 00:00 CET
  // = 02-29T23:00Z.
  auto b = bounds("Europe/Berlin", Period::month, "2028-02-10T00:00:00Z", "2028-02-29T12:00:00Z");
  EXPECT_EQ(b, utc({"2028-01-31T23:00:00Z", "2028-02-29T23:00:00Z"}));
  EXPECT_EQ(b[1] - b[0], 29 * 24 * kHour);
  auto u = bounds("UTC", Period::month, "2028-02-01T00:00:00Z", "2028-03-01T00:00:00Z");
  EXPECT_EQ(u, utc({"2028-02-01T00:00:00Z", "2028-03-01T00:00:00Z"}));
}

TEST(CalendarMonths, AYearOfBerlinMonthsAndTheYearBoundary) {
  auto b = bounds("Europe/Berlin", Period::month, "2025-12-31T23:00:00Z", "2026-12-31T23:00:00Z");
  ASSERT_EQ(b.size(), 13u);
  EXPECT_EQ(b[0], at("2025-12-31T23:00:00Z"));   // Jan 1, CET
  EXPECT_EQ(b[2], at("2026-02-28T23:00:00Z"));   // Mar 1, CET
  EXPECT_EQ(b[3], at("2026-03-31T22:00:00Z"));   // Apr 1, CEST
  EXPECT_EQ(b[9], at("2026-09-30T22:00:00Z"));   // Oct 1, CEST
  EXPECT_EQ(b[10], at("2026-10-31T23:00:00Z"));  // Nov 1, CET
  EXPECT_EQ(b[12], at("2026-12-31T23:00:00Z"));  // 2027-01-01, CET
  auto u = bounds("UTC", Period::month, "2026-12-15T00:00:00Z", "2027-01-15T00:00:00Z");
  EXPECT_EQ(u, utc({"2026-12-01T00:00:00Z", "2027-01-01T00:00:00Z", "2027-02-01T00:00:00Z"}));
}

// --- Guards ------------------------------------------------------------------

TEST(CalendarGuards, RangeTooLarge) {
  // 2026 in Berlin: 365 * 24 = 8760 local hours (one lost in March, one
  // gained in October).
  const TimeZone berlin = zone("Europe/Berlin");
  const core::TimeMs from = at("2025-12-31T23:00:00Z"), to = at("2026-12-31T23:00:00Z");
  auto ok = period_boundaries(berlin, Period::hour, from, to, 8760);
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->size(), 8761u);
  auto over = period_boundaries(berlin, Period::hour, from, to, 8759);
  ASSERT_FALSE(over);
  EXPECT_EQ(over.error().code, "range_too_large");
  // Far too large is refused before any work.
  auto huge = period_boundaries(berlin, Period::hour, at("0001-01-01T00:00:00Z"),
                                at("9999-01-01T00:00:00Z"), 1000);
  ASSERT_FALSE(huge);
  EXPECT_EQ(huge.error().code, "range_too_large");
}

TEST(CalendarGuards, EmptyOrOutOfRangeRangesAreRejected) {
  const TimeZone berlin = zone("Europe/Berlin");
  const core::TimeMs t = at("2026-01-01T00:00:00Z");
  for (auto [from, to] : {std::pair{t, t}, std::pair{t, t - 1}, std::pair{kCalendarMin - 1, t},
                          std::pair{t, kCalendarMax + 2}}) {
    auto r = period_boundaries(berlin, Period::day, from, to, kMany);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, "invalid_parameter");
  }
  // The extremes themselves work.
  auto first = period_boundaries(zone("UTC"), Period::month, kCalendarMin, kCalendarMin + 1, 10);
  ASSERT_TRUE(first);
  EXPECT_EQ(first->front(), kCalendarMin);
  auto last = period_boundaries(zone("UTC"), Period::month, kCalendarMax, kCalendarMax + 1, 10);
  ASSERT_TRUE(last);
  EXPECT_EQ(last->front(), at("9999-12-01T00:00:00Z"));
  EXPECT_EQ(last->back(), kCalendarMax + 1);
}

// --- Whole-hour offsets ------------------------------------------------------

TEST(CalendarOffsets, WholeHourOffsets) {
  const core::TimeMs from = at("2026-01-01T00:00:00Z"), to = at("2027-01-01T00:00:00Z");
  EXPECT_TRUE(whole_hour_offsets(zone("Europe/Berlin"), from, to));
  EXPECT_TRUE(whole_hour_offsets(zone("America/New_York"), from, to));
  EXPECT_TRUE(whole_hour_offsets(zone("UTC"), from, to));
  EXPECT_FALSE(whole_hour_offsets(zone("Asia/Kolkata"), from, to));
  EXPECT_FALSE(whole_hour_offsets(zone("Australia/Adelaide"), from, to));
  // Lord Howe: +10:30 in winter, +11:00 in summer (DST of half an hour).
  EXPECT_FALSE(whole_hour_offsets(zone("Australia/Lord_Howe"), from, to));
  // Only the range counts: Kathmandu has been +05:45 since 1986, +05:30 before.
  EXPECT_FALSE(whole_hour_offsets(zone("Asia/Kathmandu"), from, to));
  EXPECT_TRUE(whole_hour_offsets(zone("Asia/Kolkata"), from, from));  // empty range
}

}  // namespace
}  // namespace meterhub::query
