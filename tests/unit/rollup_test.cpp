// Rollups maintained write by write (in order, late, duplicated, in random
// batches) equal the aggregation of the raw readings; the migration that
// creates them fills them from existing readings; retention deletes old raw
// rows and minute rollups in batches while hourly rollups stay.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <limits>
#include <random>

#include "query/series.hpp"
#include "store/sqlite/sqlite_store.hpp"
#include "store_test_util.hpp"
#include "test_util.hpp"

namespace meterhub::store {
namespace {

using meterhub::testing::kT0;
using meterhub::testing::all_raw;
using meterhub::testing::expect_same;
using meterhub::testing::open_store;
using meterhub::testing::TempDir;

constexpr core::TimeMs kMin = 60'000, kHour = 3'600'000;

// The oracle: every bucket computed from all raw readings at once.
std::vector<core::Aggregate> from_raw(Store& s, const std::string& meter, core::TimeMs step) {
  auto rs = all_raw(s, meter);
  return query::bucketize(rs, {}, std::nullopt, step, {});
}

void expect_rollups_match_raw(Store& s, const std::string& meter) {
  const auto lo = std::numeric_limits<core::TimeMs>::min();
  const auto hi = std::numeric_limits<core::TimeMs>::max();
  const auto minutes = s.read_rollup(meter, Rollup::minute, lo, hi).value();
  expect_same(minutes, from_raw(s, meter, kMin), "1m");
  expect_same(*s.read_rollup(meter, Rollup::hour, lo, hi), from_raw(s, meter, kHour), "1h");
  // The light kWh-only read gives the same rows.
  const auto kwh = s.read_kwh(meter, Rollup::minute, lo, hi).value();
  ASSERT_EQ(kwh.size(), minutes.size());
  for (std::size_t i = 0; i < kwh.size(); ++i) {
    EXPECT_EQ(kwh[i].first, minutes[i].start);
    EXPECT_EQ(kwh[i].second, minutes[i].kwh);
  }
}

// A household meter over ~5 hours at irregular 5-40 s intervals, with the
// troubles real meters have: reboot zeros, garbage spikes, resets, a 16-bit
// wrap, a gap of two hours, optional frequency/power factor.
std::vector<core::Reading> messy_series(std::mt19937& rng, const std::string& meter) {
  std::vector<core::Reading> rs;
  double e = 1234.5;
  core::TimeMs t = kT0 + 17'000;
  std::uniform_real_distribution<double> u(0, 1);
  for (int i = 0; i < 700; ++i) {
    t += 5'000 + static_cast<core::TimeMs>(u(rng) * 35'000);
    if (i == 350) t += 2 * kHour;  // offline
    double p = 50 + u(rng) * 3000;
    e += p / 1000.0 * 20.0 / 3600.0;
    if (i == 200) e = 0.3;    // counter reset
    if (i == 500) e = 65.53;  // about to wrap
    if (i == 520) e = 0.01;   // wrapped
    core::Reading r;
    r.meter_id = meter;
    r.ts = t;
    r.voltage = 225 + u(rng) * 10;
    r.power = p;
    r.current = p / r.voltage;
    r.energy = e;
    if (i % 97 == 13) r.energy = 0;      // a rebooting sensor
    if (i % 131 == 7) r.energy = 9.9e6;  // garbage
    if (u(rng) < 0.7) r.frequency = 49.9 + u(rng) * 0.2;
    if (u(rng) < 0.5) r.power_factor = u(rng);
    rs.push_back(r);
  }
  return rs;
}

TEST(Rollups, InOrderSingleWritesEqualRaw) {
  TempDir dir;
  auto s = open_store(dir.file("m.db"));
  std::mt19937 rng(1);
  for (const auto& r : messy_series(rng, "m")) ASSERT_TRUE(s->write({&r, 1}, kT0));
  expect_rollups_match_raw(*s, "m");
}

TEST(Rollups, RandomOrderRandomBatchesWithDuplicatesEqualRaw) {
  for (unsigned seed : {2u, 3u, 4u, 5u}) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    TempDir dir;
    auto s = open_store(dir.file("m.db"));
    std::mt19937 rng(seed);
    auto a = messy_series(rng, "a");
    auto b = messy_series(rng, "b");
    std::vector<core::Reading> all = a;
    all.insert(all.end(), b.begin(), b.end());
    // mostly in order with late readings: shuffle within windows, plus a
    // fully random tail, plus re-sent duplicates
    for (std::size_t i = 0; i + 50 < all.size(); i += 50)
      std::shuffle(all.begin() + static_cast<std::ptrdiff_t>(i),
                   all.begin() + static_cast<std::ptrdiff_t>(i + 50), rng);
    std::shuffle(all.end() - 300, all.end(), rng);
    for (int i = 0; i < 100; ++i) all.push_back(all[rng() % all.size()]);
    std::size_t i = 0;
    while (i < all.size()) {
      std::size_t n = 1 + rng() % (seed == 2 ? 3 : 200);
      n = std::min(n, all.size() - i);
      ASSERT_TRUE(s->write(std::span(all).subspan(i, n), kT0));
      i += n;
    }
    expect_rollups_match_raw(*s, "a");
    expect_rollups_match_raw(*s, "b");
  }
}

TEST(Rollups, LateReadingCorrectsItsNeighboursConsumption) {
  TempDir dir;
  auto s = open_store(dir.file("m.db"));
  auto at = [](core::TimeMs ts, double e) {
    auto r = meterhub::testing::reading("m", ts);
    r.energy = e;
    return r;
  };
  // 10.0 at 00:00:30, 10.5 at 00:02:30: 0.5 kWh in minute 2.
  std::vector<core::Reading> first = {at(kT0 + 30'000, 10.0), at(kT0 + 150'000, 10.5)};
  ASSERT_TRUE(s->write(first, kT0));
  // A late 10.2 at 00:01:30: minute 1 gets 0.2, minute 2 keeps 0.3.
  auto late = at(kT0 + 90'000, 10.2);
  ASSERT_TRUE(s->write({&late, 1}, kT0));
  auto m = *s->read_rollup("m", Rollup::minute, kT0, kT0 + kHour);
  ASSERT_EQ(m.size(), 3u);
  EXPECT_DOUBLE_EQ(m[0].kwh, 0.0);
  EXPECT_NEAR(m[1].kwh, 0.2, 1e-12);
  EXPECT_NEAR(m[2].kwh, 0.3, 1e-12);
  auto h = *s->read_rollup("m", Rollup::hour, kT0, kT0 + kHour);
  ASSERT_EQ(h.size(), 1u);
  EXPECT_NEAR(h[0].kwh, 0.5, 1e-12);
  EXPECT_EQ(h[0].count, 3u);
  // The reboot zero that arrives late is an outlier once its successor exists.
  auto zero = at(kT0 + 120'000, 0.0);
  ASSERT_TRUE(s->write({&zero, 1}, kT0));
  h = *s->read_rollup("m", Rollup::hour, kT0, kT0 + kHour);
  EXPECT_NEAR(h[0].kwh, 0.5, 1e-12);
  expect_rollups_match_raw(*s, "m");
}

TEST(Rollups, MigrationFillsRollupsFromExistingReadings) {
  TempDir dir;
  const std::string path = dir.file("m.db");
  std::mt19937 rng(9);
  {
    auto s = open_store(path);
    auto rs = messy_series(rng, "m");
    ASSERT_TRUE(s->write(rs, kT0));
  }
  // Back to schema 1, as a database written by an older meterhub.
  const std::string cmd = "sqlite3 '" + path +
                          "' 'DROP TABLE rollup_1m; DROP TABLE rollup_1h; DROP TABLE tariff; "
                          "ALTER TABLE smart_meter DROP COLUMN raw_floor; "
                          "DROP TABLE credential; DROP TABLE registry_state; "
                          "ALTER TABLE smart_meter DROP COLUMN location; "
                          "ALTER TABLE smart_meter DROP COLUMN interval_s; "
                          "DROP TABLE alert_rule; DROP TABLE alert_event; "
                          "DELETE FROM schema_version WHERE version > 1;'";
  if (std::system(cmd.c_str()) != 0) GTEST_SKIP() << "sqlite3 CLI not available";
  auto s = open_store(path);
  ASSERT_TRUE(s);
  EXPECT_FALSE(
      s->read_rollup("m", Rollup::hour, 0, std::numeric_limits<core::TimeMs>::max())->empty());
  expect_rollups_match_raw(*s, "m");
}

TEST(Retention, DeletesOldRawAndMinuteRowsInBatchesKeepsHoursAndTheNewest) {
  TempDir dir;
  auto s = open_store(dir.file("m.db"));
  std::vector<core::Reading> rs;
  for (int i = 0; i < 500; ++i) {
    auto r = meterhub::testing::reading("m", kT0 + i * kMin);  // 500 minutes
    r.energy = 1 + i * 0.01;
    rs.push_back(r);
  }
  ASSERT_TRUE(s->write(rs, kT0));
  auto quiet = meterhub::testing::reading("q", kT0);  // a meter with one old reading
  ASSERT_TRUE(s->write({&quiet, 1}, kT0));
  const auto hours_before = *s->read_rollup("m", Rollup::hour, 0, kT0 * 2);

  RetentionPolicy p;
  p.raw_ms = 10 * kHour;     // now = kT0 + 1 day: raw before kT0 + 14 h goes
  p.minute_ms = 20 * kHour;  // minute rows before kT0 + 4 h go
  p.batch = 100;
  const core::TimeMs now = kT0 + 24 * kHour;
  int calls = 0;
  for (;;) {
    auto o = s->apply_retention(p, now);
    ASSERT_TRUE(o) << o.error().message;
    EXPECT_LE(o->raw_deleted, p.batch);
    EXPECT_LE(o->minute_deleted, p.batch);
    ++calls;
    if (!o->more) break;
    ASSERT_LT(calls, 100);
  }
  EXPECT_GE(calls, 3);  // 499 raw rows in batches of 100
  auto raw = all_raw(*s, "m");
  ASSERT_EQ(raw.size(), 1u);  // everything is older than 14 h but the newest
  EXPECT_EQ(raw[0].ts, kT0 + 499 * kMin);
  EXPECT_EQ(all_raw(*s, "q").size(), 1u);
  auto minutes = *s->read_rollup("m", Rollup::minute, 0, kT0 * 2);
  ASSERT_FALSE(minutes.empty());
  EXPECT_EQ(minutes.front().start, kT0 + 4 * kHour);
  expect_same(*s->read_rollup("m", Rollup::hour, 0, kT0 * 2), hours_before, "1h kept");
}

// After retention deleted a meter's oldest raw readings, the consumption
// stored in the rollups for the first readings still kept cannot be
// recomputed from raw rows: a late reading there must not count anything twice.
TEST(Retention, LateReadingBelowTheRetentionFloorCountsNothingTwice) {
  TempDir dir;
  auto s = open_store(dir.file("m.db"));
  auto at = [](core::TimeMs ts, double e) {
    auto r = meterhub::testing::reading("m", ts);
    r.energy = e;
    return r;
  };
  std::vector<core::Reading> rs;
  for (int i = 0; i <= 60; ++i) rs.push_back(at(kT0 + i * kMin, 2000.0 + i * 0.01));  // old
  const core::TimeMs recent = kT0 + 10 * 24 * kHour;
  for (int i = 0; i <= 60; ++i) rs.push_back(at(recent + i * kMin, 2001.1 + i * 0.01));
  ASSERT_TRUE(s->write(rs, kT0));
  auto total = [&] {
    const auto hours = s->read_rollup("m", Rollup::hour, 0, kT0 * 2);
    double t = 0;
    for (const auto& h : hours.value()) t += h.kwh;
    return t;
  };
  // 0.60 in the old hour, 0.50 across the gap + 0.60 in the recent hour
  EXPECT_NEAR(total(), 1.7, 1e-9);
  RetentionPolicy p;
  p.raw_ms = 5 * 24 * kHour;
  p.minute_ms = 0;
  ASSERT_TRUE(s->apply_retention(p, recent + kHour));
  ASSERT_EQ(all_raw(*s, "m").front().ts, recent);
  auto hour_kwh = [&](core::TimeMs start) {
    const auto rows = s->read_rollup("m", Rollup::hour, start, start + kHour);
    return rows.value().at(0).kwh;
  };
  const double recent_hour = hour_kwh(recent);

  // A late reading in the deleted range, and one between the first kept ones.
  auto late = at(kT0 + 70 * kMin, 2000.61);
  ASSERT_TRUE(s->write({&late, 1}, kT0));
  auto between = at(recent + 30'000, 2001.105);
  ASSERT_TRUE(s->write({&between, 1}, kT0));
  EXPECT_NEAR(total(), 1.7, 1e-9);
  EXPECT_NEAR(hour_kwh(recent), recent_hour, 1e-9);

  // A meter that went quiet: everything but its newest reading is deleted;
  // the next reading still counts from it.
  auto q = [](core::TimeMs ts, double e) {
    auto r = meterhub::testing::reading("q", ts);
    r.energy = e;
    return r;
  };
  std::vector<core::Reading> quiet = {q(kT0, 5.0), q(kT0 + kMin, 5.1)};
  ASSERT_TRUE(s->write(quiet, kT0));
  ASSERT_TRUE(s->apply_retention(p, recent + kHour));
  ASSERT_EQ(all_raw(*s, "q").size(), 1u);
  auto next = q(recent, 5.3);
  ASSERT_TRUE(s->write({&next, 1}, kT0));
  auto h = *s->read_rollup("q", Rollup::hour, recent, recent + kHour);
  ASSERT_EQ(h.size(), 1u);
  EXPECT_NEAR(h[0].kwh, 0.2, 1e-9);
}

TEST(Tariffs, StoredPerMeterAndServerWide) {
  TempDir dir;
  auto s = open_store(dir.file("m.db"));
  auto r = meterhub::testing::reading("m", kT0);
  ASSERT_TRUE(s->write({&r, 1}, kT0));
  EXPECT_FALSE(*s->tariff("m"));
  EXPECT_TRUE(*s->set_tariff("m", R"({"currency":"EUR","price_per_kwh":0.3})", kT0));
  EXPECT_TRUE(*s->set_tariff("", R"({"currency":"EUR","price_per_kwh":0.2})", kT0));
  EXPECT_EQ(**s->tariff("m"), R"({"currency":"EUR","price_per_kwh":0.3})");
  EXPECT_EQ(**s->tariff(""), R"({"currency":"EUR","price_per_kwh":0.2})");
  EXPECT_FALSE(*s->set_tariff("nope", R"({})", kT0));
  EXPECT_FALSE(*s->tariff("nope"));
  EXPECT_TRUE(*s->set_tariff("m", std::nullopt, kT0));
  EXPECT_FALSE(*s->tariff("m"));
}

}  // namespace
}  // namespace meterhub::store
