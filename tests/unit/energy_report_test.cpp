// Energy and cost per local period, hand-computed. Zone rules as in
// calendar_test.cpp: Berlin springs forward on 2026-03-29 at 01:00Z (local
// 02:00 -> 03:00) and falls back on 2026-10-25 at 01:00Z (03:00 -> 02:00);
// Kolkata is +05:30 all year.
#include "query/energy_report.hpp"

#include <gtest/gtest.h>

#include <vector>

#include "core/time.hpp"

namespace meterhub::query {
namespace {

core::TimeMs at(std::string_view iso) { return core::parse_iso8601(iso).value(); }

TimeZone zone(std::string_view name) { return TimeZone::locate(name).value(); }

std::vector<core::TimeMs> days(const TimeZone& tz, std::string_view from, std::string_view to) {
  return period_boundaries(tz, Period::day, at(from), at(to), 1000).value();
}

// `n` buckets of `width` from `start`, `kwh` each.
std::vector<KwhBucket> buckets(core::TimeMs start, int n, core::TimeMs width, double kwh) {
  std::vector<KwhBucket> out;
  for (int i = 0; i < n; ++i) out.push_back({start + i * width, kwh});
  return out;
}

const core::Tariff kDayNight{"EUR", 0.18, {{7 * 60, 23 * 60, 0.30}}};

TEST(EnergyReport, BerlinDstDaysHave23And25HourlyKwh) {
  const TimeZone berlin = zone("Europe/Berlin");
  // 1 kWh in every UTC hour from 2026-03-27 23:00Z (Saturday 00:00 CET) to
  // 2026-03-30 22:00Z (Tuesday 00:00 CEST): 24 + 23 + 24 hours.
  auto spring_b = days(berlin, "2026-03-27T23:00:00Z", "2026-03-30T22:00:00Z");
  auto spring =
      energy_report(buckets(spring_b.front(), 71, kHourBucket, 1.0), spring_b, berlin, nullptr);
  ASSERT_EQ(spring.periods.size(), 3u);
  EXPECT_EQ(spring.periods[0].kwh, 24);
  EXPECT_EQ(spring.periods[1].kwh, 23);
  EXPECT_EQ(spring.periods[1].start, at("2026-03-28T23:00:00Z"));
  EXPECT_EQ(spring.periods[1].end, at("2026-03-29T22:00:00Z"));
  EXPECT_EQ(spring.periods[2].kwh, 24);
  EXPECT_EQ(spring.kwh, 71);
  EXPECT_FALSE(spring.cost);
  EXPECT_FALSE(spring.periods[1].cost);

  // Fall-back: 24 + 25 + 24 hours from 2026-10-23T22:00Z.
  auto fall_b = days(berlin, "2026-10-23T22:00:00Z", "2026-10-26T23:00:00Z");
  auto fall = energy_report(buckets(fall_b.front(), 73, kHourBucket, 1.0), fall_b, berlin, nullptr);
  ASSERT_EQ(fall.periods.size(), 3u);
  EXPECT_EQ(fall.periods[0].kwh, 24);
  EXPECT_EQ(fall.periods[1].kwh, 25);
  EXPECT_EQ(fall.periods[2].kwh, 24);
  EXPECT_EQ(fall.kwh, 73);
}

TEST(EnergyReport, TimeOfUseCostOnDstDays) {
  const TimeZone berlin = zone("Europe/Berlin");
  // Spring-forward day, 1 kWh per hour. Local hours: 00, 01, 03, 04, ..., 23
  // (23 of them). At 0.30: 07..22 = 16 hours -> 4.80. At 0.18: 00, 01, 03,
  // 04, 05, 06, 23 = 7 hours -> 1.26. Total 6.06.
  auto spring_b = days(berlin, "2026-03-28T23:00:00Z", "2026-03-29T22:00:00Z");
  auto spring =
      energy_report(buckets(spring_b.front(), 23, kHourBucket, 1.0), spring_b, berlin, &kDayNight);
  ASSERT_EQ(spring.periods.size(), 1u);
  EXPECT_EQ(spring.kwh, 23);
  ASSERT_TRUE(spring.periods[0].cost);
  EXPECT_NEAR(*spring.periods[0].cost, 6.06, 1e-9);
  ASSERT_TRUE(spring.cost);
  EXPECT_NEAR(*spring.cost, 6.06, 1e-9);

  // Fall-back day: local hours 00, 01, 02 (CEST), 02 (CET), 03, ..., 23 (25).
  // At 0.30: 07..22 = 16 hours -> 4.80. At 0.18: 00, 01, 02, 02, 03, 04, 05,
  // 06, 23 = 9 hours -> 1.62. Total 6.42.
  auto fall_b = days(berlin, "2026-10-24T22:00:00Z", "2026-10-25T23:00:00Z");
  auto fall =
      energy_report(buckets(fall_b.front(), 25, kHourBucket, 1.0), fall_b, berlin, &kDayNight);
  EXPECT_EQ(fall.kwh, 25);
  EXPECT_NEAR(*fall.cost, 6.42, 1e-9);
}

TEST(EnergyReport, WrappingNightWindow) {
  // 22:00-06:00 at 0.10, else 0.25, on an ordinary Berlin day (2026-01-15,
  // CET) with 2 kWh per hour: 8 night hours (22, 23, 00..05) -> 1.60 and 16
  // day hours -> 8.00.
  const TimeZone berlin = zone("Europe/Berlin");
  const core::Tariff night{"EUR", 0.25, {{22 * 60, 6 * 60, 0.10}}};
  auto b = days(berlin, "2026-01-14T23:00:00Z", "2026-01-15T23:00:00Z");
  auto r = energy_report(buckets(b.front(), 24, kHourBucket, 2.0), b, berlin, &night);
  EXPECT_EQ(r.kwh, 48);
  EXPECT_NEAR(*r.cost, 9.60, 1e-9);
}

TEST(EnergyReport, KolkataMinuteBucketsFollowTheHalfHourOffset) {
  // One IST day (2026-01-14T18:30Z .. 2026-01-15T18:30Z) of minute buckets
  // of 0.5 kWh: 720 kWh. 07:00-23:00 IST is 960 minutes at 0.30 -> 144.0;
  // the other 480 minutes at 0.18 -> 43.2. Total 187.2. Were the minutes
  // priced by UTC time of day instead, the window would be off by 5.5 hours.
  const TimeZone kolkata = zone("Asia/Kolkata");
  auto b = days(kolkata, "2026-01-15T00:00:00Z", "2026-01-15T01:00:00Z");
  ASSERT_EQ(b.size(), 2u);
  EXPECT_EQ(bucket_width_for(b, kolkata, &kDayNight), kMinuteBucket);
  auto r = energy_report(buckets(b.front(), 1440, kMinuteBucket, 0.5), b, kolkata, &kDayNight);
  EXPECT_NEAR(r.kwh, 720, 1e-9);
  EXPECT_NEAR(*r.cost, 187.2, 1e-9);

  // A uniform day hides a shifted window; single minutes around its edges do
  // not. 06:59 IST (01:29Z) 1 kWh at 0.18, 07:00 IST (01:30Z) 10 kWh at 0.30,
  // 22:59 IST (17:29Z) 100 kWh at 0.30, 23:00 IST (17:30Z) 1000 kWh at 0.18:
  // 0.18 + 3 + 30 + 180 = 213.18 (by UTC time of day it would be 331.98).
  const std::vector<KwhBucket> edges = {{at("2026-01-15T01:29:00Z"), 1},
                                        {at("2026-01-15T01:30:00Z"), 10},
                                        {at("2026-01-15T17:29:00Z"), 100},
                                        {at("2026-01-15T17:30:00Z"), 1000}};
  auto e = energy_report(edges, b, kolkata, &kDayNight);
  EXPECT_EQ(e.kwh, 1111);
  EXPECT_NEAR(*e.cost, 213.18, 1e-9);
}

TEST(EnergyReport, EmptyPeriodsArePresentAndOutsideBucketsIgnored) {
  const TimeZone utc = zone("UTC");
  auto b = days(utc, "2026-01-01T00:00:00Z", "2026-01-04T00:00:00Z");
  ASSERT_EQ(b.size(), 4u);
  std::vector<KwhBucket> rows = {
      {at("2025-12-31T23:00:00Z"), 100.0},  // before the first period: ignored
      {at("2026-01-02T05:00:00Z"), 1.5},
      {at("2026-01-02T06:00:00Z"), 2.5},
      {at("2026-01-04T00:00:00Z"), 100.0},  // at the end boundary: ignored
  };
  auto r = energy_report(rows, b, utc, &kDayNight);
  ASSERT_EQ(r.periods.size(), 3u);
  EXPECT_EQ(r.periods[0].kwh, 0);
  ASSERT_TRUE(r.periods[0].cost);
  EXPECT_EQ(*r.periods[0].cost, 0);
  EXPECT_EQ(r.periods[1].kwh, 4.0);
  // 05:00 is off-peak (0.18), 06:00 too: 4 * 0.18 = 0.72.
  EXPECT_NEAR(*r.periods[1].cost, 0.72, 1e-12);
  EXPECT_EQ(r.periods[2].kwh, 0);
  EXPECT_EQ(r.periods[2].start, at("2026-01-03T00:00:00Z"));
  EXPECT_EQ(r.periods[2].end, at("2026-01-04T00:00:00Z"));
  EXPECT_EQ(r.kwh, 4.0);
  EXPECT_NEAR(*r.cost, 0.72, 1e-12);
}

TEST(EnergyReport, NoBoundariesNoPeriods) {
  const TimeZone utc = zone("UTC");
  auto none = energy_report({}, {}, utc, nullptr);
  EXPECT_TRUE(none.periods.empty());
  EXPECT_EQ(none.kwh, 0);
  EXPECT_FALSE(none.cost);
  auto priced = energy_report({}, {}, utc, &kDayNight);
  ASSERT_TRUE(priced.cost);
  EXPECT_EQ(*priced.cost, 0);
}

TEST(EnergyReport, FlatTariffPricesEveryBucketAlike) {
  const TimeZone berlin = zone("Europe/Berlin");
  const core::Tariff flat{"EUR", 0.25, {}};
  auto b = days(berlin, "2026-03-28T23:00:00Z", "2026-03-29T22:00:00Z");
  auto r = energy_report(buckets(b.front(), 23, kHourBucket, 2.0), b, berlin, &flat);
  EXPECT_NEAR(*r.cost, 46 * 0.25, 1e-9);
}

TEST(EnergyReport, BucketWidth) {
  const TimeZone berlin = zone("Europe/Berlin");
  const TimeZone kolkata = zone("Asia/Kolkata");
  const TimeZone utc = zone("UTC");
  auto berlin_days = days(berlin, "2026-03-01T00:00:00Z", "2026-04-01T00:00:00Z");
  auto kolkata_days = days(kolkata, "2026-03-01T00:00:00Z", "2026-04-01T00:00:00Z");
  const core::Tariff half_past{"EUR", 0.18, {{7 * 60 + 30, 23 * 60, 0.30}}};
  const core::Tariff flat{"EUR", 0.25, {}};

  // Berlin days start on whole UTC hours (offsets +1/+2, changed at 01:00Z).
  EXPECT_EQ(bucket_width_for(berlin_days, berlin, nullptr), kHourBucket);
  EXPECT_EQ(bucket_width_for(berlin_days, berlin, &flat), kHourBucket);
  EXPECT_EQ(bucket_width_for(berlin_days, berlin, &kDayNight), kHourBucket);
  // A 07:30 window edge splits a UTC hour.
  EXPECT_EQ(bucket_width_for(berlin_days, berlin, &half_past), kMinuteBucket);
  // Kolkata days start at 18:30Z, whatever the tariff.
  EXPECT_EQ(bucket_width_for(kolkata_days, kolkata, nullptr), kMinuteBucket);
  // UTC day boundaries but windows read in Kolkata time: 07:00 IST is
  // 01:30Z, inside a UTC hour.
  auto utc_days = days(utc, "2026-03-01T00:00:00Z", "2026-04-01T00:00:00Z");
  EXPECT_EQ(bucket_width_for(utc_days, kolkata, &kDayNight), kMinuteBucket);
  EXPECT_EQ(bucket_width_for(utc_days, kolkata, &flat), kHourBucket);
}

}  // namespace
}  // namespace meterhub::query
