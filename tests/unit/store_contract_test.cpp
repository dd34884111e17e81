// The store contract (store/store.hpp), one suite for every backend: the
// same cases with the same expected answers on SQLite (in unit_tests) and on
// PostgreSQL (in store_contract_tests, against the server of the ctest
// fixture `pg`; docs/testing.md). Ingest and duplicates, late and
// out-of-order data, rollups against an oracle computed from the raw rows,
// energy per local day across DST changes, retention, the device registry,
// credentials, tariffs and alerts. What only one backend has (SQLite's WAL
// checkpoints, file handling and migrations) is tested beside its code.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <latch>
#include <limits>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "core/time.hpp"
#include "query/calendar.hpp"
#include "query/energy_report.hpp"
#include "query/series.hpp"
#include "store_backends.hpp"
#include "store_test_util.hpp"
#include "test_util.hpp"

namespace meterhub::store {
namespace {

using meterhub::testing::device_key;
using meterhub::testing::token;

using meterhub::testing::all_raw;
using meterhub::testing::Backend;
using meterhub::testing::expect_rollups_match_raw;
using meterhub::testing::expect_same;
using meterhub::testing::kT0;
using meterhub::testing::messy_series;
using meterhub::testing::reading;
using meterhub::testing::StoreContract;

constexpr core::TimeMs kMin = 60'000, kHour = 3'600'000, kDay = 24 * kHour;
constexpr core::TimeMs kLo = std::numeric_limits<core::TimeMs>::min();
constexpr core::TimeMs kHi = std::numeric_limits<core::TimeMs>::max();

RangeQuery all_of(std::string meter) {
  RangeQuery q;
  q.meter_id = std::move(meter);
  q.from = kLo;
  q.to = kHi;
  q.limit = 1000000;
  return q;
}

core::Reading with_energy(std::string meter, core::TimeMs ts, double e) {
  auto r = reading(std::move(meter), ts);
  r.energy = e;
  return r;
}

// `n` readings of `meter` every `every` ms from `from`, the counter rising
// from `energy` by `step` kWh per reading.
std::vector<core::Reading> series(const std::string& meter, core::TimeMs from, core::TimeMs every,
                                  int n, double energy, double step, double power) {
  std::vector<core::Reading> rs;
  for (int i = 0; i < n; ++i) {
    core::Reading r = reading(meter, from + i * every, power + i % 7);
    r.energy = energy + i * step;
    if (i % 3 == 0) r.frequency = 50.0 + (i % 5) * 0.01;
    rs.push_back(r);
  }
  return rs;
}

const Credential* find_credential(const std::vector<Credential>& cs, const std::string& id) {
  for (const auto& c : cs)
    if (c.id == id) return &c;
  return nullptr;
}

std::size_t count_inserted(const WriteOutcome& w) {
  return static_cast<std::size_t>(std::count(w.inserted.begin(), w.inserted.end(), 1));
}

// ---------------------------------------------------------------------------
// Ingest and duplicates

TEST_P(StoreContract, StartsEmpty) {
  auto nothing = store().write({}, kT0);
  ASSERT_TRUE(nothing);
  EXPECT_TRUE(nothing->inserted.empty());
  EXPECT_TRUE(nothing->new_meters.empty());
  EXPECT_TRUE(store().list_meters().value().empty());
  EXPECT_TRUE(store().latest_per_meter().value().empty());
  EXPECT_TRUE(store().list_credentials().value().empty());
  EXPECT_FALSE(store().tariff("").value());
  EXPECT_TRUE(store().kwh_totals(Rollup::hour, kLo, kHi).value().empty());
}

TEST_P(StoreContract, WritesAreIdempotentPerMeterAndTs) {
  std::vector<core::Reading> batch = {reading("m1", kT0), reading("m1", kT0 + 1),
                                      reading("m1", kT0),  // duplicate inside the batch
                                      reading("m2", kT0)};
  auto w = store().write(batch, kT0 + 100);
  ASSERT_TRUE(w) << w.error().message;
  EXPECT_EQ(w->inserted, (std::vector<unsigned char>{1, 1, 0, 1}));
  EXPECT_EQ(w->new_meters, (std::vector<std::string>{"m1", "m2"}));
  auto again = store().write(batch, kT0 + 200);
  ASSERT_TRUE(again) << again.error().message;
  EXPECT_EQ(again->inserted, (std::vector<unsigned char>{0, 0, 0, 0}));
  EXPECT_TRUE(again->new_meters.empty());
  EXPECT_EQ(store().read_range(all_of("m1"))->size(), 2u);
}

TEST_P(StoreContract, DuplicateDoesNotOverwriteTheStoredValue) {
  ASSERT_TRUE(store().write(std::vector{reading("m", kT0, 100)}, kT0));
  ASSERT_TRUE(store().write(std::vector{reading("m", kT0, 999)}, kT0));
  EXPECT_EQ(store().read_range(all_of("m"))->at(0).power, 100);
}

// A batch with duplicates of stored rows and of its own earlier readings
// (with other values): only the new ones are stored, each reported as such,
// the first value wins, and the rollups count every reading once.
TEST_P(StoreContract, BatchWithDuplicatesInsideAndAgainstStoredRows) {
  std::vector<core::Reading> stored = {with_energy("m", kT0 + 10'000, 1.0),
                                       with_energy("m", kT0 + 70'000, 1.1)};
  ASSERT_TRUE(store().write(stored, kT0));
  std::vector<core::Reading> batch = {
      with_energy("m", kT0 + 40'000, 1.05),  // new, between the stored ones
      with_energy("m", kT0 + 10'000, 7.0),   // stored already, other value
      with_energy("m", kT0 + 40'000, 9.0),   // the batch's own first reading again
      with_energy("n", kT0 + 40'000, 3.0),   // another meter, same ts: new
      with_energy("m", kT0 + 70'000, 1.1),   // stored already, same value
      with_energy("m", kT0 + 130'000, 1.2),  // new
      with_energy("m", kT0 + 130'000, 1.2),  // again, same value
  };
  auto w = store().write(batch, kT0 + 1);
  ASSERT_TRUE(w) << w.error().message;
  EXPECT_EQ(w->inserted, (std::vector<unsigned char>{1, 0, 0, 1, 0, 1, 0}));
  EXPECT_EQ(w->new_meters, std::vector<std::string>{"n"});
  const auto raw = all_raw(store(), "m");
  ASSERT_EQ(raw.size(), 4u);
  EXPECT_EQ(raw[0].energy, 1.0);
  EXPECT_EQ(raw[1].energy, 1.05);
  EXPECT_EQ(raw[2].energy, 1.1);
  EXPECT_EQ(raw[3].energy, 1.2);
  EXPECT_EQ(all_raw(store(), "n").size(), 1u);
  expect_rollups_match_raw(store(), "m");
  const auto h = store().read_rollup("m", Rollup::hour, kLo, kHi).value();
  ASSERT_EQ(h.size(), 1u);
  EXPECT_EQ(h[0].count, 4u);
  EXPECT_NEAR(h[0].kwh, 0.2, 1e-12);
}

TEST_P(StoreContract, ValuesRoundTripExactly) {
  core::Reading r = reading("m", kT0 + 7, 0.1 + 0.2);
  r.voltage = 229.99999999999997;
  r.frequency = 49.98;
  r.power_factor = 0.5;
  core::Reading tiny = reading("m", kT0 + 8, 5e-324);  // the smallest subnormal
  tiny.energy = 987654.3210987654;
  tiny.current = -0.0;
  ASSERT_TRUE(store().write(std::vector{r, tiny}, kT0));
  auto back = store().read_range(all_of("m"));
  ASSERT_EQ(back->size(), 2u);
  EXPECT_EQ(back->at(0), r);
  EXPECT_EQ(back->at(1), tiny);
  EXPECT_FALSE(back->at(1).frequency);
  EXPECT_FALSE(back->at(1).power_factor);
}

TEST_P(StoreContract, RangesArePagedInTsOrder) {
  std::vector<core::Reading> batch;
  for (int i = 9; i >= 0; --i) batch.push_back(reading("m", kT0 + i * 1000));  // arrive reversed
  ASSERT_TRUE(store().write(batch, kT0));
  RangeQuery q = all_of("m");
  q.from = kT0 + 2000;
  q.to = kT0 + 6000;
  q.limit = 3;
  auto page = store().read_range(q);
  ASSERT_EQ(page->size(), 3u);
  EXPECT_EQ(page->at(0).ts, kT0 + 2000);
  EXPECT_EQ(page->at(2).ts, kT0 + 4000);
  q.descending = true;
  auto desc = store().read_range(q);
  ASSERT_EQ(desc->size(), 3u);
  EXPECT_EQ(desc->at(0).ts, kT0 + 5000);  // `to` is exclusive
  EXPECT_EQ(desc->at(2).ts, kT0 + 3000);
  EXPECT_TRUE(store().read_range(all_of("nope"))->empty());
}

TEST_P(StoreContract, LatestIsTheNewestTsNotTheLastWritten) {
  ASSERT_TRUE(store().write(std::vector{reading("m", kT0 + 50)}, kT0 + 1));
  ASSERT_TRUE(store().write(std::vector{reading("m", kT0 + 10)}, kT0 + 2));  // late
  auto m = store().find_meter("m");
  ASSERT_TRUE(m && *m);
  ASSERT_TRUE((*m)->latest);
  EXPECT_EQ((*m)->latest->ts, kT0 + 50);
  EXPECT_EQ(*(*m)->last_seen, kT0 + 2);
  EXPECT_EQ((*m)->created_at, kT0 + 1);
  auto all = store().latest_per_meter();
  ASSERT_EQ(all->size(), 1u);
  EXPECT_EQ(all->at(0).ts, kT0 + 50);
  EXPECT_FALSE(*store().find_meter("unknown"));
}

TEST_P(StoreContract, SurvivesReopen) {
  ASSERT_TRUE(store().write(std::vector{reading("m", kT0), reading("n", kT0)}, kT0));
  reopen();
  ASSERT_TRUE(store_);
  EXPECT_EQ(store().list_meters()->size(), 2u);
  // The meter-id cache is rebuilt: writing to a known meter does not recreate it.
  auto w = store().write(std::vector{reading("m", kT0 + 1)}, kT0);
  ASSERT_TRUE(w) << w.error().message;
  EXPECT_TRUE(w->new_meters.empty());
  EXPECT_EQ(store().read_range(all_of("m"))->size(), 2u);
}

TEST_P(StoreContract, ProbeWriteSucceeds) {
  auto p = store().probe_write(kT0);
  EXPECT_TRUE(p) << p.error().message;
  auto again = store().probe_write(kT0 + 1);  // the probe's row exists now
  EXPECT_TRUE(again) << again.error().message;
  EXPECT_TRUE(store().list_meters().value().empty()) << "a probe is not a meter";
}

// Readers run beside the writer and only ever see whole commits.
TEST_P(StoreContract, ReadersSeeOnlyWholeCommits) {
  constexpr int kBatches = 100, kPer = 50;
  std::atomic<bool> done{false};
  std::atomic<int> bad{0}, reads{0};
  std::thread reader([&] {
    while (!done) {
      auto r = store().read_range(all_of("m"));
      if (!r || r->size() % kPer != 0) ++bad;
      ++reads;
    }
  });
  for (int b = 0; b < kBatches; ++b) {
    std::vector<core::Reading> batch;
    for (int i = 0; i < kPer; ++i) batch.push_back(reading("m", kT0 + b * kPer + i));
    auto w = store().write(batch, kT0);
    EXPECT_TRUE(w) << w.error().message;
    if (!w) break;
  }
  done = true;
  reader.join();
  EXPECT_EQ(bad.load(), 0);
  EXPECT_GT(reads.load(), 0);
  EXPECT_EQ(store().read_range(all_of("m"))->size(), std::size_t{kBatches * kPer});
}

// 20 000 readings of three meters in one write (the ingest writer's groups
// reach 50 000): one transaction, every reading reported, the rollups right.
TEST_P(StoreContract, BigBatchInOneWrite) {
  std::vector<core::Reading> batch;
  for (int i = 0; i < 20'000; ++i) {
    const std::string meter = "big" + std::to_string(i % 3);
    auto r = with_energy(meter, kT0 + (i / 3) * 1'000, 500 + (i / 3) * 0.001);
    r.power = 100 + i % 1000;
    if (i % 5 == 0) r.frequency = 50.01;
    batch.push_back(r);
  }
  // The last 500 repeat earlier readings of the same batch.
  for (int i = 19'500; i < 20'000; ++i) batch[static_cast<std::size_t>(i)] = batch[i - 19'500];
  auto w = store().write(batch, kT0);
  ASSERT_TRUE(w) << w.error().message;
  ASSERT_EQ(w->inserted.size(), batch.size());
  EXPECT_EQ(count_inserted(*w), 19'500u);
  for (int i = 19'500; i < 20'000; ++i) EXPECT_EQ(w->inserted[static_cast<std::size_t>(i)], 0);
  auto news = w->new_meters;
  std::sort(news.begin(), news.end());
  EXPECT_EQ(news, (std::vector<std::string>{"big0", "big1", "big2"}));
  std::size_t total = 0;
  for (const char* m : {"big0", "big1", "big2"}) {
    SCOPED_TRACE(m);
    total += all_raw(store(), m).size();
    expect_rollups_match_raw(store(), m);
  }
  EXPECT_EQ(total, 19'500u);
  // All of it again: every reading a duplicate, nothing changes.
  auto again = store().write(batch, kT0 + 1);
  ASSERT_TRUE(again) << again.error().message;
  EXPECT_EQ(count_inserted(*again), 0u);
  EXPECT_TRUE(again->new_meters.empty());
  EXPECT_EQ(all_raw(store(), "big0").size(), 6'500u);
}

// Times are int64 ms over years 0000..9999 (core::parse_iso8601): before
// 1970 a bucket starts at the floor of ts, not at ts rounded toward zero.
TEST_P(StoreContract, TimesBefore1970AndNearYear9999BucketByTheirFloor) {
  const core::TimeMs year0 = core::parse_iso8601("0000-01-01T00:00:30Z").value();
  const core::TimeMs year9999 = core::parse_iso8601("9999-12-31T23:58:10Z").value();
  std::vector<core::Reading> rs = {with_energy("m", year0, 1.0),
                                   with_energy("m", -3'600'001, 2.0),
                                   with_energy("m", -90'000, 2.5),
                                   with_energy("m", -30'000, 3.0),
                                   with_energy("m", -1, 3.25),
                                   with_energy("m", 0, 3.5),
                                   with_energy("m", 30'000, 4.0),
                                   with_energy("m", year9999, 5.0),
                                   with_energy("m", year9999 + 60'000, 5.5)};
  ASSERT_TRUE(store().write(rs, kT0));
  const auto back = all_raw(store(), "m");
  ASSERT_EQ(back.size(), rs.size());
  for (std::size_t i = 0; i < rs.size(); ++i) EXPECT_EQ(back[i], rs[i]);
  const auto minutes = store().read_rollup("m", Rollup::minute, -7'200'000, 60'000).value();
  std::vector<core::TimeMs> starts;
  for (const auto& a : minutes) starts.push_back(a.start);
  EXPECT_EQ(starts, (std::vector<core::TimeMs>{-3'660'000, -120'000, -60'000, 0}));
  const auto hours = store().read_rollup("m", Rollup::hour, -7'200'000, 3'600'000).value();
  ASSERT_EQ(hours.size(), 3u);
  EXPECT_EQ(hours[0].start, -7'200'000);
  EXPECT_EQ(hours[1].start, -3'600'000);
  EXPECT_EQ(hours[1].count, 3u);
  EXPECT_EQ(hours[2].start, 0);
  expect_rollups_match_raw(store(), "m");
  auto m = store().find_meter("m").value();
  ASSERT_TRUE(m && m->latest);
  EXPECT_EQ(m->latest->ts, year9999 + 60'000);
}

// ---------------------------------------------------------------------------
// Late data, out-of-order batches, rollups

TEST_P(StoreContract, RollupsOfInOrderSingleWritesEqualRaw) {
  std::mt19937 rng(1);
  for (const auto& r : messy_series(rng, "m")) ASSERT_TRUE(store().write({&r, 1}, kT0));
  expect_rollups_match_raw(store(), "m");
}

TEST_P(StoreContract, RollupsOfRandomOrderRandomBatchesWithDuplicatesEqualRaw) {
  for (unsigned seed : {2u, 3u, 4u, 5u}) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    std::mt19937 rng(seed);
    // Each seed on meters of its own, in the same database.
    const std::string a_id = "a" + std::to_string(seed), b_id = "b" + std::to_string(seed);
    auto a = messy_series(rng, a_id);
    auto b = messy_series(rng, b_id);
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
      auto w = store().write(std::span(all).subspan(i, n), kT0);
      ASSERT_TRUE(w) << w.error().message;
      i += n;
    }
    expect_rollups_match_raw(store(), a_id);
    expect_rollups_match_raw(store(), b_id);
  }
}

// Whole batches that arrive out of order: a later hour first, then an
// earlier day in reverse, then readings that fall between stored ones, then
// a batch older than everything stored. After each step the rollups equal
// the raw rows.
TEST_P(StoreContract, OutOfOrderBatchesKeepRollupsEqualToRaw) {
  auto rs = series("m", kT0, 20'000, 3 * 180, 100, 0.004, 700);  // 3 hours every 20 s
  auto part = [&](std::size_t from, std::size_t to) {
    return std::vector<core::Reading>(rs.begin() + static_cast<std::ptrdiff_t>(from),
                                      rs.begin() + static_cast<std::ptrdiff_t>(to));
  };
  auto step = [&](std::vector<core::Reading> batch, const char* what) {
    SCOPED_TRACE(what);
    auto w = store().write(batch, kT0);
    ASSERT_TRUE(w) << w.error().message;
    EXPECT_EQ(count_inserted(*w), batch.size());
    expect_rollups_match_raw(store(), "m");
  };
  step(part(360, 540), "the third hour first");
  auto second = part(180, 360);
  std::reverse(second.begin(), second.end());
  step(second, "the second hour, newest first");
  std::vector<core::Reading> odd;
  for (std::size_t i = 1; i < 180; i += 2) odd.push_back(rs[i]);
  step(odd, "every other reading of the first hour");
  std::vector<core::Reading> even;
  for (std::size_t i = 0; i < 180; i += 2) even.push_back(rs[i]);
  std::shuffle(even.begin(), even.end(), std::mt19937(7));
  step(even, "the readings between them, shuffled");
  EXPECT_EQ(all_raw(store(), "m").size(), rs.size());
  // The consumption of the whole series, however it arrived.
  double total = 0;
  const auto hourly = store().read_kwh("m", Rollup::hour, kLo, kHi).value();
  for (const auto& [start, kwh] : hourly) total += kwh;
  EXPECT_NEAR(total, rs.back().energy - rs.front().energy, 1e-9);
  step({with_energy("m", kT0 - kDay, 99.0)}, "a reading a day older than all");
  auto m = store().find_meter("m").value();
  ASSERT_TRUE(m && m->latest);
  EXPECT_EQ(m->latest->ts, rs.back().ts);
}

TEST_P(StoreContract, LateReadingCorrectsItsNeighboursConsumption) {
  auto at = [](core::TimeMs ts, double e) { return with_energy("m", ts, e); };
  // 10.0 at 00:00:30, 10.5 at 00:02:30: 0.5 kWh in minute 2.
  std::vector<core::Reading> first = {at(kT0 + 30'000, 10.0), at(kT0 + 150'000, 10.5)};
  ASSERT_TRUE(store().write(first, kT0));
  // A late 10.2 at 00:01:30: minute 1 gets 0.2, minute 2 keeps 0.3.
  auto late = at(kT0 + 90'000, 10.2);
  ASSERT_TRUE(store().write({&late, 1}, kT0));
  auto m = *store().read_rollup("m", Rollup::minute, kT0, kT0 + kHour);
  ASSERT_EQ(m.size(), 3u);
  EXPECT_DOUBLE_EQ(m[0].kwh, 0.0);
  EXPECT_NEAR(m[1].kwh, 0.2, 1e-12);
  EXPECT_NEAR(m[2].kwh, 0.3, 1e-12);
  auto h = *store().read_rollup("m", Rollup::hour, kT0, kT0 + kHour);
  ASSERT_EQ(h.size(), 1u);
  EXPECT_NEAR(h[0].kwh, 0.5, 1e-12);
  EXPECT_EQ(h[0].count, 3u);
  // The reboot zero that arrives late is an outlier once its successor exists.
  auto zero = at(kT0 + 120'000, 0.0);
  ASSERT_TRUE(store().write({&zero, 1}, kT0));
  h = *store().read_rollup("m", Rollup::hour, kT0, kT0 + kHour);
  EXPECT_NEAR(h[0].kwh, 0.5, 1e-12);
  expect_rollups_match_raw(store(), "m");
}

TEST_P(StoreContract, KwhTotalsSumRollupRowsPerMeter) {
  ASSERT_TRUE(store().write(series("a", kT0, 60'000, 121, 10, 0.01, 500), kT0));  // 1.2 kWh
  ASSERT_TRUE(store().write(series("b", kT0, 60'000, 61, 20, 0.05, 500), kT0));   // 3.0 kWh
  ASSERT_TRUE(store().create_meter({"c", "", "", std::nullopt}, std::nullopt, kT0).value());
  for (Rollup t : {Rollup::hour, Rollup::minute}) {
    SCOPED_TRACE(t == Rollup::hour ? "hour" : "minute");
    const auto all = store().kwh_totals(t, kLo, kHi).value();
    ASSERT_EQ(all.size(), 2u);  // c has no rows
    EXPECT_EQ(all[0].first, "a");
    EXPECT_NEAR(all[0].second, 1.2, 1e-9);
    EXPECT_EQ(all[1].first, "b");
    EXPECT_NEAR(all[1].second, 3.0, 1e-9);
  }
  // Only buckets starting in [from, to): the first hour.
  const auto first = store().kwh_totals(Rollup::hour, kT0, kT0 + kHour).value();
  ASSERT_EQ(first.size(), 2u);
  EXPECT_NEAR(first[0].second, 0.59, 1e-9);
  EXPECT_NEAR(first[1].second, 2.95, 1e-9);
  const auto rows = store().read_rollup("a", Rollup::hour, kT0 + kHour, kT0 + 2 * kHour).value();
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].start, kT0 + kHour);
}

// ---------------------------------------------------------------------------
// Energy per local day across the DST changes of Europe/Berlin, as
// GET /meters/{id}/energy computes it (api/history.cpp): period boundaries
// of the local days, the kWh of hourly or minute rollup rows, summed.

// A meter drawing 0.12 kWh per hour: a reading every 5 minutes at hh:02:30,
// hh:07:30, …, the counter 0.01 kWh higher each time, from an hour before
// `from` to an hour after `to`. Written one local day after the other,
// newest day first, so most days arrive late.
void write_steady_meter(Store& s, core::TimeMs from, core::TimeMs to) {
  std::vector<core::Reading> all;
  int i = 0;
  for (core::TimeMs t = from - kHour + 150'000; t < to + kHour; t += 5 * kMin, ++i)
    all.push_back(with_energy("m", t, 1000.0 + i * 0.01));
  for (std::size_t end = all.size(); end > 0;) {
    const std::size_t begin = end > 288 ? end - 288 : 0;
    auto w = s.write(std::span(all).subspan(begin, end - begin), from);
    ASSERT_TRUE(w) << w.error().message;
    end = begin;
  }
}

std::vector<double> kwh_per_berlin_day(Store& s, const char* from, const char* to, Rollup table) {
  const auto berlin = query::TimeZone::locate("Europe/Berlin").value();
  const core::TimeMs lo = core::parse_iso8601(from).value();
  const core::TimeMs hi = core::parse_iso8601(to).value();
  const auto bounds = query::period_boundaries(berlin, query::Period::day, lo, hi, 100).value();
  std::vector<query::KwhBucket> kwh;
  const auto rows = s.read_kwh("m", table, bounds.front(), bounds.back()).value();
  for (const auto& [start, v] : rows) kwh.push_back({start, v});
  const auto report = query::energy_report(kwh, bounds, berlin, nullptr);
  std::vector<double> out;
  for (const auto& p : report.periods) out.push_back(p.kwh);
  return out;
}

void expect_days(const std::vector<double>& got, const std::vector<double>& want) {
  ASSERT_EQ(got.size(), want.size());
  for (std::size_t i = 0; i < want.size(); ++i) EXPECT_NEAR(got[i], want[i], 1e-9) << "day " << i;
}

TEST_P(StoreContract, EnergyPerLocalDayAcrossSpringForward) {
  // Saturday 2026-03-28 00:00 CET to Tuesday 00:00 CEST: 24 + 23 + 24 hours.
  write_steady_meter(store(), core::parse_iso8601("2026-03-27T23:00:00Z").value(),
                     core::parse_iso8601("2026-03-30T22:00:00Z").value());
  for (Rollup t : {Rollup::hour, Rollup::minute}) {
    SCOPED_TRACE(t == Rollup::hour ? "hourly rollups" : "minute rollups");
    expect_days(kwh_per_berlin_day(store(), "2026-03-27T23:00:00Z", "2026-03-30T22:00:00Z", t),
                {2.88, 2.76, 2.88});
  }
  expect_rollups_match_raw(store(), "m");
}

TEST_P(StoreContract, EnergyPerLocalDayAcrossFallBack) {
  // Saturday 2026-10-24 00:00 CEST to Tuesday 00:00 CET: 24 + 25 + 24 hours.
  write_steady_meter(store(), core::parse_iso8601("2026-10-23T22:00:00Z").value(),
                     core::parse_iso8601("2026-10-26T23:00:00Z").value());
  for (Rollup t : {Rollup::hour, Rollup::minute}) {
    SCOPED_TRACE(t == Rollup::hour ? "hourly rollups" : "minute rollups");
    expect_days(kwh_per_berlin_day(store(), "2026-10-23T22:00:00Z", "2026-10-26T23:00:00Z", t),
                {2.88, 3.00, 2.88});
  }
  expect_rollups_match_raw(store(), "m");
}

// ---------------------------------------------------------------------------
// Retention

TEST_P(StoreContract, RetentionDeletesOldRawAndMinuteRowsInBatchesKeepsHoursAndTheNewest) {
  std::vector<core::Reading> rs;
  for (int i = 0; i < 500; ++i) rs.push_back(with_energy("m", kT0 + i * kMin, 1 + i * 0.01));
  ASSERT_TRUE(store().write(rs, kT0));
  auto quiet = reading("q", kT0);  // a meter with one old reading
  ASSERT_TRUE(store().write({&quiet, 1}, kT0));
  const auto hours_before = *store().read_rollup("m", Rollup::hour, 0, kT0 * 2);

  RetentionPolicy p;
  p.raw_ms = 10 * kHour;     // now = kT0 + 1 day: raw before kT0 + 14 h goes
  p.minute_ms = 20 * kHour;  // minute rows before kT0 + 4 h go
  p.batch = 100;
  const core::TimeMs now = kT0 + 24 * kHour;
  int calls = 0;
  std::size_t raw_deleted = 0, minute_deleted = 0;
  for (;;) {
    auto o = store().apply_retention(p, now);
    ASSERT_TRUE(o) << o.error().message;
    EXPECT_LE(o->raw_deleted, p.batch);
    EXPECT_LE(o->minute_deleted, p.batch);
    if (calls == 0) {
      // 499 raw rows and 241 minute rows to delete: the first batch is full.
      EXPECT_EQ(o->raw_deleted, p.batch);
      EXPECT_TRUE(o->more);
    }
    raw_deleted += o->raw_deleted;
    minute_deleted += o->minute_deleted;
    ++calls;
    if (!o->more) break;
    ASSERT_LT(calls, 100);
  }
  EXPECT_GE(calls, 5);  // 499 raw rows in batches of 100
  EXPECT_EQ(raw_deleted, 499u);
  EXPECT_EQ(minute_deleted, 241u);  // m's first 240 minutes and q's only one
  auto raw = all_raw(store(), "m");
  ASSERT_EQ(raw.size(), 1u);  // everything is older than 14 h but the newest
  EXPECT_EQ(raw[0].ts, kT0 + 499 * kMin);
  EXPECT_EQ(all_raw(store(), "q").size(), 1u);
  auto minutes = *store().read_rollup("m", Rollup::minute, 0, kT0 * 2);
  ASSERT_FALSE(minutes.empty());
  EXPECT_EQ(minutes.front().start, kT0 + 4 * kHour);
  EXPECT_EQ(minutes.size(), 260u);
  expect_same(*store().read_rollup("m", Rollup::hour, 0, kT0 * 2), hours_before, "1h kept");
  // Nothing left to do.
  auto idle = store().apply_retention(p, now);
  ASSERT_TRUE(idle) << idle.error().message;
  EXPECT_EQ(idle->raw_deleted, 0u);
  EXPECT_EQ(idle->minute_deleted, 0u);
  EXPECT_FALSE(idle->more);
  // The newest reading is still the meter's latest.
  EXPECT_EQ(store().find_meter("m").value()->latest->ts, kT0 + 499 * kMin);
}

TEST_P(StoreContract, RetentionZeroKeepsEverything) {
  ASSERT_TRUE(store().write(series("m", kT0, kMin, 120, 1, 0.01, 100), kT0));
  RetentionPolicy p;
  p.raw_ms = 0;
  p.minute_ms = 0;
  auto o = store().apply_retention(p, kT0 + 1000 * kDay);
  ASSERT_TRUE(o) << o.error().message;
  EXPECT_EQ(o->raw_deleted, 0u);
  EXPECT_EQ(o->minute_deleted, 0u);
  EXPECT_FALSE(o->more);
  EXPECT_EQ(all_raw(store(), "m").size(), 120u);
  EXPECT_EQ(store().read_rollup("m", Rollup::minute, kLo, kHi).value().size(), 120u);
}

// After retention deleted a meter's oldest raw readings, the consumption
// stored in the rollups for the first readings still kept cannot be
// recomputed from raw rows: a late reading there must not count anything twice.
TEST_P(StoreContract, LateReadingBelowTheRetentionFloorCountsNothingTwice) {
  auto at = [](core::TimeMs ts, double e) { return with_energy("m", ts, e); };
  std::vector<core::Reading> rs;
  for (int i = 0; i <= 60; ++i) rs.push_back(at(kT0 + i * kMin, 2000.0 + i * 0.01));  // old
  const core::TimeMs recent = kT0 + 10 * 24 * kHour;
  for (int i = 0; i <= 60; ++i) rs.push_back(at(recent + i * kMin, 2001.1 + i * 0.01));
  ASSERT_TRUE(store().write(rs, kT0));
  auto total = [&] {
    const auto hours = store().read_rollup("m", Rollup::hour, 0, kT0 * 2);
    double t = 0;
    for (const auto& h : hours.value()) t += h.kwh;
    return t;
  };
  // 0.60 in the old hour, 0.50 across the gap + 0.60 in the recent hour
  EXPECT_NEAR(total(), 1.7, 1e-9);
  RetentionPolicy p;
  p.raw_ms = 5 * 24 * kHour;
  p.minute_ms = 0;
  ASSERT_TRUE(store().apply_retention(p, recent + kHour));
  ASSERT_EQ(all_raw(store(), "m").front().ts, recent);
  auto hour_kwh = [&](core::TimeMs start) {
    const auto rows = store().read_rollup("m", Rollup::hour, start, start + kHour);
    return rows.value().at(0).kwh;
  };
  const double recent_hour = hour_kwh(recent);

  // A late reading in the deleted range, and one between the first kept ones.
  auto late = at(kT0 + 70 * kMin, 2000.61);
  ASSERT_TRUE(store().write({&late, 1}, kT0));
  auto between = at(recent + 30'000, 2001.105);
  ASSERT_TRUE(store().write({&between, 1}, kT0));
  EXPECT_NEAR(total(), 1.7, 1e-9);
  EXPECT_NEAR(hour_kwh(recent), recent_hour, 1e-9);

  // A meter that went quiet: everything but its newest reading is deleted;
  // the next reading still counts from it.
  std::vector<core::Reading> quiet = {with_energy("q", kT0, 5.0),
                                      with_energy("q", kT0 + kMin, 5.1)};
  ASSERT_TRUE(store().write(quiet, kT0));
  ASSERT_TRUE(store().apply_retention(p, recent + kHour));
  ASSERT_EQ(all_raw(store(), "q").size(), 1u);
  auto next = with_energy("q", recent, 5.3);
  ASSERT_TRUE(store().write({&next, 1}, kT0));
  auto h = *store().read_rollup("q", Rollup::hour, recent, recent + kHour);
  ASSERT_EQ(h.size(), 1u);
  EXPECT_NEAR(h[0].kwh, 0.2, 1e-9);
}

// ---------------------------------------------------------------------------
// Two store objects on one database writing the same meter: two meterhub
// nodes on one PostgreSQL database (SQLite has one writer per file).

TEST_P(StoreContract, TwoStoresWritingTheSameMeterAlternately) {
  if (backend() == Backend::sqlite)
    GTEST_SKIP() << "SQLite has one writer per file: one meterhub process writes it";
  auto other = open();
  ASSERT_TRUE(other);
  // Readings every 15 s over two hours, dealt to the two stores in runs of
  // 1..5, so both keep writing into the same minutes and hours, and each
  // store's idea of the meter's last rollup row is often stale.
  const auto rs = series("m", kT0, 15'000, 480, 100, 0.003, 900);
  std::mt19937 rng(11);
  std::size_t i = 0;
  int turn = 0;
  while (i < rs.size()) {
    const std::size_t n = std::min<std::size_t>(1 + rng() % 5, rs.size() - i);
    Store& s = turn++ % 2 == 0 ? store() : *other;
    auto w = s.write(std::span(rs).subspan(i, n), kT0 + static_cast<core::TimeMs>(i));
    ASSERT_TRUE(w) << w.error().message;
    EXPECT_EQ(count_inserted(*w), n);
    EXPECT_EQ(w->new_meters.empty(), i != 0) << "the meter is new exactly once";
    i += n;
  }
  // Late ones and duplicates, from both.
  std::vector<core::Reading> late = {with_energy("m", kT0 + 7'500, 100.0015),
                                     with_energy("m", kT0 + kHour + 7'500, 100.7215)};
  ASSERT_EQ(count_inserted(other->write(late, kT0).value()), 2u);
  ASSERT_EQ(count_inserted(store().write(late, kT0).value()), 0u);
  for (Store* s : {&store(), other.get()}) {
    SCOPED_TRACE(s == other.get() ? "read by the other store" : "read by the first store");
    EXPECT_EQ(all_raw(*s, "m").size(), rs.size() + 2);
    expect_rollups_match_raw(*s, "m");
    EXPECT_EQ(s->list_meters().value().size(), 1u);
    EXPECT_EQ(s->find_meter("m").value()->latest->ts, rs.back().ts);
  }
}

TEST_P(StoreContract, TwoStoresWritingTheSameMeterConcurrently) {
  if (backend() == Backend::sqlite)
    GTEST_SKIP() << "SQLite has one writer per file: one meterhub process writes it";
  auto other = open();
  ASSERT_TRUE(other);
  // Each store writes every other reading, in small batches, at the same time.
  const auto rs = series("m", kT0, 10'000, 1200, 50, 0.002, 900);
  auto run = [&](Store& s, std::size_t parity, std::atomic<int>& failures) {
    std::vector<core::Reading> mine;
    for (std::size_t i = parity; i < rs.size(); i += 2) mine.push_back(rs[i]);
    for (std::size_t i = 0; i < mine.size(); i += 4) {
      auto w = s.write(std::span(mine).subspan(i, std::min<std::size_t>(4, mine.size() - i)), kT0);
      if (!w) {
        ++failures;
        ADD_FAILURE() << w.error().message;
        return;
      }
    }
  };
  std::atomic<int> failures{0};
  std::thread t1([&] { run(store(), 0, failures); });
  std::thread t2([&] { run(*other, 1, failures); });
  t1.join();
  t2.join();
  ASSERT_EQ(failures.load(), 0);
  EXPECT_EQ(all_raw(store(), "m").size(), rs.size());
  expect_rollups_match_raw(store(), "m");
  EXPECT_EQ(store().list_meters().value().size(), 1u);
}

// Two nodes receive the first readings of the same new meter at the same
// moment: both writes succeed, the meter is created once, and exactly one of
// them reports it as new.
TEST_P(StoreContract, TwoStoresCreatingTheSameMeterAtOnce) {
  if (backend() == Backend::sqlite)
    GTEST_SKIP() << "SQLite has one writer per file: one meterhub process writes it";
  auto other = open();
  ASSERT_TRUE(other);
  constexpr int kRounds = 30;
  for (int round = 0; round < kRounds; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    const std::string id = "new" + std::to_string(round);
    std::latch start(2);
    std::optional<core::Result<WriteOutcome>> got[2];
    auto run = [&](Store& s, int k) {
      const std::vector<core::Reading> rs = {with_energy(id, kT0 + k * 1'000, 1.0 + k),
                                             with_energy(id, kT0 + 10'000, 5.0)};  // shared
      start.arrive_and_wait();
      got[k] = s.write(rs, kT0);
    };
    std::thread t0([&] { run(store(), 0); });
    std::thread t1([&] { run(*other, 1); });
    t0.join();
    t1.join();
    ASSERT_TRUE(*got[0]) << got[0]->error().message;
    ASSERT_TRUE(*got[1]) << got[1]->error().message;
    const auto& w0 = got[0]->value();
    const auto& w1 = got[1]->value();
    EXPECT_EQ(w0.new_meters.size() + w1.new_meters.size(), 1u);
    EXPECT_EQ(w0.inserted[0] + w1.inserted[0], 2) << "each store's own reading is new";
    EXPECT_EQ(w0.inserted[1] + w1.inserted[1], 1) << "the shared reading is stored once";
    EXPECT_EQ(all_raw(store(), id).size(), 3u);
  }
  EXPECT_EQ(store().list_meters().value().size(), std::size_t{kRounds});
}

// ---------------------------------------------------------------------------
// Tariffs

TEST_P(StoreContract, TariffsStoredPerMeterAndServerWide) {
  auto r = reading("m", kT0);
  ASSERT_TRUE(store().write({&r, 1}, kT0));
  EXPECT_FALSE(*store().tariff("m"));
  EXPECT_TRUE(*store().set_tariff("m", R"({"currency":"EUR","price_per_kwh":0.3})", kT0));
  EXPECT_TRUE(*store().set_tariff("", R"({"currency":"EUR","price_per_kwh":0.2})", kT0));
  EXPECT_EQ(**store().tariff("m"), R"({"currency":"EUR","price_per_kwh":0.3})");
  EXPECT_EQ(**store().tariff(""), R"({"currency":"EUR","price_per_kwh":0.2})");
  // Replaced, not added.
  EXPECT_TRUE(*store().set_tariff("m", R"({"currency":"CHF","price_per_kwh":0.25})", kT0 + 1));
  EXPECT_EQ(**store().tariff("m"), R"({"currency":"CHF","price_per_kwh":0.25})");
  EXPECT_FALSE(*store().set_tariff("nope", R"({})", kT0));
  EXPECT_FALSE(*store().tariff("nope"));
  EXPECT_FALSE(store().find_meter("nope").value()) << "a tariff does not create a meter";
  EXPECT_TRUE(*store().set_tariff("m", std::nullopt, kT0));
  EXPECT_FALSE(*store().tariff("m"));
  EXPECT_EQ(**store().tariff(""), R"({"currency":"EUR","price_per_kwh":0.2})");
  EXPECT_TRUE(*store().set_tariff("", std::nullopt, kT0));
  EXPECT_FALSE(*store().tariff(""));
}

// ---------------------------------------------------------------------------
// Device registry and credentials

TEST_P(StoreContract, CreateMeterStoresItsDetailsAndKey) {
  Store& s = store();
  const Credential key = device_key("0123456789ab", "kitchen", kT0);
  ASSERT_TRUE(s.create_meter({"kitchen", "Kitchen", "ground floor", 10}, key, kT0).value());
  auto m = s.find_meter("kitchen").value();
  ASSERT_TRUE(m);
  EXPECT_EQ(m->meter_id, "kitchen");
  EXPECT_EQ(m->name, "Kitchen");
  EXPECT_EQ(m->location, "ground floor");
  EXPECT_EQ(m->interval_s, 10);
  EXPECT_EQ(m->created_at, kT0);
  EXPECT_FALSE(m->last_seen);
  EXPECT_FALSE(m->latest);
  auto creds = s.list_credentials().value();
  ASSERT_EQ(creds.size(), 1u);
  EXPECT_EQ(creds[0].id, "0123456789ab");
  EXPECT_EQ(creds[0].kind, CredentialKind::device);
  EXPECT_EQ(creds[0].meter_id, "kitchen");
  EXPECT_FALSE(creds[0].revoked_at);

  // Without a key, and with the optional fields absent.
  ASSERT_TRUE(s.create_meter({"bare", "", "", std::nullopt}, std::nullopt, kT0 + 1).value());
  auto bare = s.find_meter("bare").value();
  ASSERT_TRUE(bare);
  EXPECT_EQ(bare->name, "");
  EXPECT_EQ(bare->location, "");
  EXPECT_FALSE(bare->interval_s);
  EXPECT_EQ(s.list_credentials().value().size(), 1u);
  auto list = s.list_meters().value();
  ASSERT_EQ(list.size(), 2u);
  EXPECT_EQ(list[0].meter_id, "bare");
  EXPECT_EQ(list[1].meter_id, "kitchen");
  EXPECT_EQ(list[1].location, "ground floor");
  EXPECT_EQ(list[1].interval_s, 10);
  EXPECT_TRUE(s.latest_per_meter().value().empty()) << "no meter has a reading yet";

  // A registered meter is not created again by its first reading.
  const core::Reading r = reading("kitchen", kT0 + 5'000);
  auto w = s.write({&r, 1}, kT0 + 6'000);
  ASSERT_TRUE(w) << w.error().message;
  EXPECT_TRUE(w->new_meters.empty());
  m = s.find_meter("kitchen").value();
  EXPECT_EQ(m->created_at, kT0);
  EXPECT_EQ(m->last_seen, kT0 + 6'000);
  EXPECT_EQ(m->name, "Kitchen");
}

TEST_P(StoreContract, CreateMeterIsFalseForAnExistingIdAndStoresNothing) {
  Store& s = store();
  ASSERT_TRUE(s.create_meter({"kitchen", "Kitchen", "", 10}, std::nullopt, kT0).value());
  const core::Reading r = reading("auto", kT0);
  ASSERT_TRUE(s.write({&r, 1}, kT0));  // created by its first reading
  const auto before = s.registry_generation().value();
  for (const char* id : {"kitchen", "auto"}) {
    auto again = s.create_meter({id, "Other", "elsewhere", 99},
                                device_key(std::string("dup-") + id, id, kT0 + 1), kT0 + 1);
    ASSERT_TRUE(again) << again.error().message;
    EXPECT_FALSE(*again) << id;
  }
  EXPECT_TRUE(s.list_credentials().value().empty());  // the key went with the refusal
  auto m = s.find_meter("kitchen").value();
  EXPECT_EQ(m->name, "Kitchen");
  EXPECT_EQ(m->location, "");
  EXPECT_EQ(m->interval_s, 10);
  EXPECT_EQ(m->created_at, kT0);
  EXPECT_EQ(s.find_meter("auto").value()->name, "");
  EXPECT_EQ(s.registry_generation().value(), before);
  EXPECT_EQ(all_raw(s, "auto").size(), 1u);
}

TEST_P(StoreContract, UpdateMeterChangesOnlyTheGivenFields) {
  Store& s = store();
  ASSERT_TRUE(s.create_meter({"m", "Name", "Place", 60}, std::nullopt, kT0).value());
  const core::Reading r = reading("m", kT0 + 1'000);
  ASSERT_TRUE(s.write({&r, 1}, kT0 + 2'000));
  auto get = [&] { return s.find_meter("m").value().value(); };

  MeterPatch name;
  name.name = "New name";
  ASSERT_TRUE(s.update_meter("m", name).value());
  EXPECT_EQ(get().name, "New name");
  EXPECT_EQ(get().location, "Place");
  EXPECT_EQ(get().interval_s, 60);

  MeterPatch location;
  location.location = "Cellar";
  ASSERT_TRUE(s.update_meter("m", location).value());
  EXPECT_EQ(get().name, "New name");
  EXPECT_EQ(get().location, "Cellar");
  EXPECT_EQ(get().interval_s, 60);

  MeterPatch interval;
  interval.interval_s = std::optional<std::int64_t>(86'400);
  ASSERT_TRUE(s.update_meter("m", interval).value());
  EXPECT_EQ(get().interval_s, 86'400);
  EXPECT_EQ(get().location, "Cellar");

  MeterPatch clear;
  clear.interval_s = std::optional<std::int64_t>();  // set to null
  ASSERT_TRUE(s.update_meter("m", clear).value());
  EXPECT_FALSE(get().interval_s);
  EXPECT_EQ(get().name, "New name");

  MeterPatch all;
  all.name = "";
  all.location = "";
  all.interval_s = std::optional<std::int64_t>(5);
  ASSERT_TRUE(s.update_meter("m", all).value());
  EXPECT_EQ(get().name, "");
  EXPECT_EQ(get().location, "");
  EXPECT_EQ(get().interval_s, 5);

  // Nothing else of the meter changes.
  const MeterInfo m = get();
  EXPECT_EQ(m.created_at, kT0);
  EXPECT_EQ(m.last_seen, kT0 + 2'000);
  ASSERT_TRUE(m.latest);
  EXPECT_EQ(m.latest->ts, kT0 + 1'000);

  // A meter created by its first reading can be named too; an unknown one not.
  const core::Reading a = reading("auto", kT0);
  ASSERT_TRUE(s.write({&a, 1}, kT0));
  ASSERT_TRUE(s.update_meter("auto", name).value());
  EXPECT_EQ(s.find_meter("auto").value()->name, "New name");
  auto unknown = s.update_meter("nope", name);
  ASSERT_TRUE(unknown);
  EXPECT_FALSE(*unknown);
  EXPECT_FALSE(s.find_meter("nope").value());
}

TEST_P(StoreContract, DeleteMeterRemovesEverythingOfItAndNothingElse) {
  Store& s = store();
  for (const char* id : {"m", "n"}) {
    ASSERT_TRUE(
        s.create_meter({id, "x", "y", 10}, device_key(std::string("key-") + id, id, kT0), kT0)
            .value());
    const auto rs = series(id, kT0, 30'000, 240, 100, 0.01, 500);  // two hours
    ASSERT_TRUE(s.write(rs, kT0));
    ASSERT_TRUE(
        s.set_tariff(id, R"({"currency":"EUR","price_per_kwh":0.3,"windows":[]})", kT0).value());
    ASSERT_TRUE(s.set_alert_rules(id, R"({"rules":[]})", kT0).value());
    AlertRecord a;
    a.meter_id = id;
    a.kind = "offline";
    a.raised_at = kT0;
    a.message = "x";
    ASSERT_GT(s.raise_alert(a).value(), 0);
  }
  ASSERT_TRUE(
      s.set_tariff("", R"({"currency":"EUR","price_per_kwh":0.2,"windows":[]})", kT0).value());
  ASSERT_TRUE(s.add_credential(token("tok", "grafana", Scope::read, kT0), kT0).value());
  const auto n_minutes = s.read_rollup("n", Rollup::minute, kLo, kHi).value();
  const auto n_hours = s.read_rollup("n", Rollup::hour, kLo, kHi).value();
  ASSERT_FALSE(n_minutes.empty());

  auto deleted = s.delete_meter("m");
  ASSERT_TRUE(deleted) << deleted.error().message;
  ASSERT_TRUE(*deleted);
  EXPECT_EQ(**deleted, 240u);

  EXPECT_FALSE(s.find_meter("m").value());
  EXPECT_TRUE(all_raw(s, "m").empty());
  EXPECT_TRUE(s.read_rollup("m", Rollup::minute, kLo, kHi).value().empty());
  EXPECT_TRUE(s.read_rollup("m", Rollup::hour, kLo, kHi).value().empty());
  EXPECT_TRUE(s.read_kwh("m", Rollup::hour, kLo, kHi).value().empty());
  EXPECT_FALSE(s.tariff("m").value());
  EXPECT_FALSE(s.alert_rules("m").value());
  const auto totals = s.kwh_totals(Rollup::hour, kLo, kHi).value();
  EXPECT_EQ(totals.size(), 1u);
  for (const auto& [meter, kwh] : totals) EXPECT_EQ(meter, "n");
  const auto latest = s.latest_per_meter().value();
  EXPECT_EQ(latest.size(), 1u);
  for (const auto& r : latest) EXPECT_EQ(r.meter_id, "n");
  auto creds = s.list_credentials().value();
  EXPECT_FALSE(find_credential(creds, "key-m"));
  ASSERT_TRUE(find_credential(creds, "key-n"));
  EXPECT_FALSE(find_credential(creds, "key-n")->revoked_at);
  EXPECT_TRUE(find_credential(creds, "tok"));
  const auto alerts = s.list_alerts({}).value();
  ASSERT_EQ(alerts.size(), 1u);
  EXPECT_EQ(alerts[0].meter_id, "n");
  // The database holds no row of it anywhere (no orphans under another name).
  for (const char* table :
       {"meter_readings", "rollup_1m", "rollup_1h", "alert_rule", "alert_event"}) {
    EXPECT_EQ(query_int(std::string("SELECT count(*) FROM ") + table +
                        " WHERE meter_id NOT IN (SELECT id FROM smart_meter)"),
              0)
        << table;
  }
  EXPECT_EQ(query_int("SELECT count(*) FROM credential WHERE meter_id IS NOT NULL AND "
                      "meter_id NOT IN (SELECT id FROM smart_meter)"),
            0);
  EXPECT_EQ(query_int("SELECT count(*) FROM tariff WHERE meter_id <> 0 AND "
                      "meter_id NOT IN (SELECT id FROM smart_meter)"),
            0);

  // The other meter and the server tariff are untouched.
  EXPECT_EQ(all_raw(s, "n").size(), 240u);
  expect_same(s.read_rollup("n", Rollup::minute, kLo, kHi).value(), n_minutes, "n 1m");
  expect_same(s.read_rollup("n", Rollup::hour, kLo, kHi).value(), n_hours, "n 1h");
  EXPECT_TRUE(s.tariff("n").value());
  EXPECT_TRUE(s.tariff("").value());
  EXPECT_TRUE(s.alert_rules("n").value());
  EXPECT_EQ(s.find_meter("n").value()->name, "x");

  // Gone: a second delete finds nothing.
  auto again = s.delete_meter("m");
  ASSERT_TRUE(again);
  EXPECT_FALSE(*again);
  auto never = s.delete_meter("never");
  ASSERT_TRUE(never);
  EXPECT_FALSE(*never);
}

// After a delete, the same id written again is a new meter: its rollups hold
// only the new readings, even where they share minutes and hours with the
// deleted ones (and the writer's caches of the old meter are forgotten).
TEST_P(StoreContract, AMeterWrittenAfterItsDeletionStartsFresh) {
  Store& s = store();
  // Old data: two hours every 30 s, a counter near 100 kWh; and a later
  // reading, past the new ones.
  auto old = series("m", kT0, 30'000, 240, 100, 0.01, 800);
  old.push_back(reading("m", kT0 + 3 * kHour));
  old.back().energy = 103;
  ASSERT_TRUE(s.write(old, kT0));
  ASSERT_TRUE(
      s.set_tariff("m", R"({"currency":"EUR","price_per_kwh":0.3,"windows":[]})", kT0).value());
  ASSERT_EQ(s.delete_meter("m").value(), std::optional<std::size_t>(241));

  // New data, interleaved with the old times, a counter from 5 kWh, in
  // several batches (in order, one late one).
  const auto fresh = series("m", kT0 + 10'000, 45'000, 120, 5, 0.02, 300);
  const core::TimeMs again_at = kT0 + 10 * kHour;
  std::vector<core::Reading> first(fresh.begin(), fresh.begin() + 50);
  auto w = s.write(first, again_at);
  ASSERT_TRUE(w) << w.error().message;
  EXPECT_EQ(w->new_meters, std::vector<std::string>{"m"});
  EXPECT_EQ(count_inserted(*w), 50u);
  for (std::size_t i = 50; i < fresh.size(); i += 7) {
    std::vector<core::Reading> part(
        fresh.begin() + static_cast<std::ptrdiff_t>(i),
        fresh.begin() + static_cast<std::ptrdiff_t>(std::min(i + 7, fresh.size())));
    if (i == 64) std::reverse(part.begin(), part.end());
    auto wi = s.write(part, again_at);
    ASSERT_TRUE(wi) << wi.error().message;
    EXPECT_TRUE(wi->new_meters.empty());
  }

  auto m = s.find_meter("m").value();
  ASSERT_TRUE(m);
  EXPECT_EQ(m->created_at, again_at);
  EXPECT_EQ(m->name, "");
  EXPECT_FALSE(m->interval_s);
  ASSERT_TRUE(m->latest);
  EXPECT_EQ(m->latest->ts, fresh.back().ts);
  EXPECT_FALSE(s.tariff("m").value());
  const auto raw = all_raw(s, "m");
  ASSERT_EQ(raw.size(), fresh.size());
  for (std::size_t i = 0; i < raw.size(); ++i) {
    EXPECT_EQ(raw[i].ts, fresh[i].ts);
    EXPECT_EQ(raw[i].energy, fresh[i].energy);
  }
  // The rollups against a computation from the new readings alone.
  expect_same(s.read_rollup("m", Rollup::minute, kLo, kHi).value(),
              query::bucketize(fresh, {}, std::nullopt, kMin, {}), "1m");
  expect_same(s.read_rollup("m", Rollup::hour, kLo, kHi).value(),
              query::bucketize(fresh, {}, std::nullopt, kHour, {}), "1h");
  double total = 0;
  const auto hourly = s.read_kwh("m", Rollup::hour, kLo, kHi).value();
  for (const auto& [start, kwh] : hourly) total += kwh;
  EXPECT_NEAR(total, fresh.back().energy - fresh.front().energy, 1e-9);
}

// Another process (a second node on the same database, docs/api.md: "Changes
// made with the CLI, or by another node on the same database, take effect
// within one second") deletes a meter that this process's writer has written
// to. This process's next readings of that id must not vanish: they go to
// the meter registered again under that id, or create it afresh.
TEST_P(StoreContract, AMeterDeletedAndRegisteredAgainByAnotherProcessGetsThisProcesssReadings) {
  Store& a = store();
  auto b = open();
  ASSERT_TRUE(b);
  ASSERT_TRUE(a.write(series("m", kT0, 30'000, 10, 100, 0.01, 800), kT0));
  ASSERT_TRUE(a.write(series("n", kT0, 30'000, 10, 100, 0.01, 800), kT0));
  ASSERT_EQ(b->delete_meter("m").value(), std::optional<std::size_t>(10));
  ASSERT_TRUE(
      b->create_meter({"m", "again", "", std::nullopt}, device_key("k", "m", kT0), kT0).value());
  const auto fresh = series("m", kT0 + kHour, 30'000, 5, 5, 0.01, 300);
  auto w = a.write(fresh, kT0 + kHour);
  ASSERT_TRUE(w) << w.error().message;
  EXPECT_EQ(count_inserted(*w), 5u);
  EXPECT_EQ(all_raw(a, "m").size(), fresh.size()) << "readings written but not in meter \"m\"";
  auto m = a.find_meter("m").value();
  ASSERT_TRUE(m);
  EXPECT_EQ(m->name, "again");
  EXPECT_TRUE(m->latest) << "meter \"m\" has no latest reading after 5 were written";
  EXPECT_EQ(query_int("SELECT count(*) FROM meter_readings WHERE meter_id NOT IN "
                      "(SELECT id FROM smart_meter)"),
            0)
      << "readings stored under a deleted meter's row id";
}

TEST_P(StoreContract, AMeterDeletedByAnotherProcessIsCreatedAfreshByTheNextWrite) {
  Store& a = store();
  auto b = open();
  ASSERT_TRUE(b);
  ASSERT_TRUE(a.write(series("m", kT0, 30'000, 10, 100, 0.01, 800), kT0));
  ASSERT_EQ(b->delete_meter("m").value(), std::optional<std::size_t>(10));
  const auto fresh = series("m", kT0 + kHour, 30'000, 5, 5, 0.01, 300);
  auto w = a.write(fresh, kT0 + kHour);
  ASSERT_TRUE(w) << w.error().message;
  EXPECT_EQ(w->new_meters, std::vector<std::string>{"m"});
  EXPECT_TRUE(a.find_meter("m").value()) << "the readings were written, but no meter \"m\" exists";
  EXPECT_EQ(all_raw(a, "m").size(), fresh.size());
  expect_rollups_match_raw(a, "m");
  EXPECT_EQ(query_int("SELECT count(*) FROM meter_readings WHERE meter_id NOT IN "
                      "(SELECT id FROM smart_meter)"),
            0)
      << "readings stored under a deleted meter's row id";
}

TEST_P(StoreContract, WriterMissingMetersNamesTheUnknownOnes) {
  Store& s = store();
  ASSERT_TRUE(s.create_meter({"reg", "", "", std::nullopt}, std::nullopt, kT0).value());
  const core::Reading r = reading("auto", kT0);
  ASSERT_TRUE(s.write({&r, 1}, kT0));
  const std::vector<std::string> ids = {"reg", "ghost", "auto", "other"};
  auto missing = s.writer_missing_meters(ids).value();
  std::sort(missing.begin(), missing.end());
  EXPECT_EQ(missing, (std::vector<std::string>{"ghost", "other"}));
  EXPECT_TRUE(s.writer_missing_meters({}).value().empty());
  // Deleted by another process: missing as the writer sees it.
  auto b = open();
  ASSERT_TRUE(b);
  ASSERT_TRUE(b->delete_meter("reg").value());
  const std::vector<std::string> reg = {"reg"};
  EXPECT_EQ(s.writer_missing_meters(reg).value(), reg);
}

TEST_P(StoreContract, AddingADeviceKeyRevokesTheMetersPreviousOne) {
  Store& s = store();
  ASSERT_TRUE(s.create_meter({"m", "", "", std::nullopt}, device_key("k1", "m", kT0), kT0).value());
  ASSERT_TRUE(s.create_meter({"n", "", "", std::nullopt}, device_key("n1", "n", kT0), kT0).value());
  ASSERT_TRUE(s.add_credential(token("t1", "a", Scope::admin, kT0), kT0).value());

  ASSERT_TRUE(s.add_credential(device_key("k2", "m", kT0 + 10), kT0 + 10).value());
  auto cs = s.list_credentials().value();
  ASSERT_TRUE(find_credential(cs, "k1") && find_credential(cs, "k2"));
  EXPECT_EQ(find_credential(cs, "k1")->revoked_at, kT0 + 10);
  EXPECT_FALSE(find_credential(cs, "k2")->revoked_at);
  EXPECT_FALSE(find_credential(cs, "n1")->revoked_at);  // another meter's key
  EXPECT_FALSE(find_credential(cs, "t1")->revoked_at);  // tokens

  ASSERT_TRUE(s.add_credential(device_key("k3", "m", kT0 + 20), kT0 + 20).value());
  cs = s.list_credentials().value();
  EXPECT_EQ(find_credential(cs, "k1")->revoked_at, kT0 + 10);  // not revoked again
  EXPECT_EQ(find_credential(cs, "k2")->revoked_at, kT0 + 20);
  EXPECT_FALSE(find_credential(cs, "k3")->revoked_at);
  int active = 0;
  for (const auto& c : cs)
    active += c.kind == CredentialKind::device && c.meter_id == "m" && !c.revoked_at;
  EXPECT_EQ(active, 1);

  // Tokens never revoke each other.
  ASSERT_TRUE(s.add_credential(token("t2", "b", Scope::admin, kT0 + 30), kT0 + 30).value());
  cs = s.list_credentials().value();
  EXPECT_FALSE(find_credential(cs, "t1")->revoked_at);
  EXPECT_FALSE(find_credential(cs, "t2")->revoked_at);
  EXPECT_FALSE(find_credential(cs, "k3")->revoked_at);

  // A device key of a meter that does not exist is refused and not stored.
  const auto gen = s.registry_generation().value();
  auto ghost = s.add_credential(device_key("g1", "ghost", kT0 + 40), kT0 + 40);
  ASSERT_TRUE(ghost);
  EXPECT_FALSE(*ghost);
  EXPECT_FALSE(find_credential(s.list_credentials().value(), "g1"));
  EXPECT_FALSE(s.find_meter("ghost").value());
  EXPECT_EQ(s.registry_generation().value(), gen);
}

TEST_P(StoreContract, RevokeCredential) {
  Store& s = store();
  ASSERT_TRUE(s.add_credential(token("t1", "a", Scope::read, kT0), kT0).value());
  ASSERT_TRUE(s.add_credential(token("t2", "b", Scope::read, kT0), kT0).value());
  EXPECT_EQ(s.revoke_credential("t1", kT0 + 5).value(), Store::Revoke::revoked);
  auto cs = s.list_credentials().value();
  EXPECT_EQ(find_credential(cs, "t1")->revoked_at, kT0 + 5);
  EXPECT_FALSE(find_credential(cs, "t2")->revoked_at);
  // Already revoked, or unknown: false, and nothing changes.
  const auto gen = s.registry_generation().value();
  EXPECT_EQ(s.revoke_credential("t1", kT0 + 9).value(), Store::Revoke::unknown);
  EXPECT_EQ(s.revoke_credential("nope", kT0 + 9).value(), Store::Revoke::unknown);
  EXPECT_EQ(s.revoke_credential("", kT0 + 9).value(), Store::Revoke::unknown);
  cs = s.list_credentials().value();
  EXPECT_EQ(find_credential(cs, "t1")->revoked_at, kT0 + 5);
  EXPECT_FALSE(find_credential(cs, "t2")->revoked_at);
  EXPECT_EQ(s.registry_generation().value(), gen);
}

// The last active admin token cannot be revoked (nobody could administer the
// server any more); a second one can, and then the first is the last.
TEST_P(StoreContract, TheLastActiveAdminTokenIsNotRevoked) {
  Store& s = store();
  ASSERT_TRUE(s.add_credential(token("a1", "a", Scope::admin, kT0), kT0).value());
  ASSERT_TRUE(s.add_credential(token("r1", "r", Scope::read, kT0), kT0).value());
  EXPECT_EQ(s.revoke_credential("a1", kT0 + 1).value(), Store::Revoke::last_admin);
  EXPECT_FALSE(find_credential(s.list_credentials().value(), "a1")->revoked_at);
  ASSERT_TRUE(s.add_credential(token("a2", "b", Scope::admin, kT0 + 2), kT0 + 2).value());
  EXPECT_EQ(s.revoke_credential("a1", kT0 + 3).value(), Store::Revoke::revoked);
  EXPECT_EQ(s.revoke_credential("a2", kT0 + 4).value(), Store::Revoke::last_admin);
  EXPECT_EQ(s.revoke_credential("r1", kT0 + 5).value(), Store::Revoke::revoked);
}

TEST_P(StoreContract, ListCredentialsRoundTripsEveryByte) {
  ASSERT_TRUE(store().create_meter({"m", "", "", std::nullopt}, std::nullopt, kT0).value());
  Credential tok = token("aaaaaaaaaaaa", "Grafana — Küche \"quoted\"", Scope::admin, kT0 + 1);
  tok.salt = std::string("\0\x01\xff\0salt\x80\x7f\0\0\xfe\x10\0", 16);
  std::string hash;
  for (int i = 0; i < 32; ++i) hash.push_back(static_cast<char>(i % 3 == 0 ? 0 : 255 - i * 7));
  tok.hash = hash;
  Credential dev = device_key("bbbbbbbbbbbb", "m", kT0 + 2);
  dev.salt = std::string(16, '\0');  // all zero bytes
  dev.hash = std::string(31, '\0') + "\x01";
  Credential rd = token("cccccccccccc", "", Scope::read, kT0 + 3);
  ASSERT_TRUE(store().add_credential(tok, kT0).value());
  ASSERT_TRUE(store().add_credential(dev, kT0).value());
  ASSERT_TRUE(store().add_credential(rd, kT0).value());

  for (int pass = 0; pass < 2; ++pass) {
    SCOPED_TRACE(pass == 0 ? "same store" : "reopened");
    if (pass == 1) {
      reopen();
      ASSERT_TRUE(store_);
    }
    const auto cs = store().list_credentials().value();
    ASSERT_EQ(cs.size(), 3u);
    // Oldest first.
    EXPECT_EQ(cs[0].id, tok.id);
    EXPECT_EQ(cs[1].id, dev.id);
    EXPECT_EQ(cs[2].id, rd.id);
    for (const Credential* want : {&tok, &dev, &rd}) {
      const Credential* got = find_credential(cs, want->id);
      ASSERT_TRUE(got) << want->id;
      SCOPED_TRACE(want->id);
      EXPECT_EQ(got->kind, want->kind);
      EXPECT_EQ(got->meter_id, want->meter_id);
      EXPECT_EQ(got->name, want->name);
      EXPECT_EQ(got->scope, want->scope);
      EXPECT_EQ(got->salt.size(), want->salt.size());
      EXPECT_EQ(got->salt, want->salt);
      EXPECT_EQ(got->hash.size(), want->hash.size());
      EXPECT_EQ(got->hash, want->hash);
      EXPECT_EQ(got->created_at, want->created_at);
      EXPECT_FALSE(got->revoked_at);
    }
  }
}

TEST_P(StoreContract, RegistryGenerationMovesOnEveryChangeFromAnyProcess) {
  auto b = open();  // another process on the same database
  ASSERT_TRUE(b);
  Store& a = store();
  std::int64_t last = a.registry_generation().value();
  EXPECT_EQ(b->registry_generation().value(), last);
  // Every change, made by either store, is seen by both.
  auto moved = [&](const char* what) {
    const std::int64_t ga = a.registry_generation().value();
    const std::int64_t gb = b->registry_generation().value();
    EXPECT_GT(ga, last) << what;
    EXPECT_EQ(ga, gb) << what;
    last = ga;
  };
  MeterPatch p;
  p.name = "n";
  for (int round = 0; round < 2; ++round) {
    Store& s = round == 0 ? a : *b;
    const std::string r = std::to_string(round);
    SCOPED_TRACE(round == 0 ? "this process" : "another process");
    ASSERT_TRUE(s.create_meter({"m" + r, "", "", std::nullopt}, std::nullopt, kT0).value());
    moved("create_meter");
    ASSERT_TRUE(
        s.create_meter({"k" + r, "", "", std::nullopt}, device_key("d" + r, "k" + r, kT0), kT0)
            .value());
    moved("create_meter with a key");
    ASSERT_TRUE(s.update_meter("m" + r, p).value());
    moved("update_meter");
    ASSERT_TRUE(s.add_credential(device_key("e" + r, "m" + r, kT0), kT0).value());
    moved("add_credential (device)");
    ASSERT_TRUE(s.add_credential(device_key("f" + r, "m" + r, kT0), kT0).value());
    moved("add_credential (rotation)");
    ASSERT_TRUE(s.add_credential(token("t" + r, "x", Scope::read, kT0), kT0).value());
    moved("add_credential (token)");
    ASSERT_EQ(s.revoke_credential("t" + r, kT0).value(), Store::Revoke::revoked);
    moved("revoke_credential");
    ASSERT_TRUE(s.delete_meter("m" + r).value());
    moved("delete_meter");
  }
  // A meter created by a reading is no registry change.
  const core::Reading r = reading("auto", kT0);
  ASSERT_TRUE(a.write({&r, 1}, kT0));
  EXPECT_EQ(a.registry_generation().value(), last);
}

// Meters are listed, and kWh totalled, in the byte order of their ids (as
// SQLite compares text), whatever collation the database has; credentials
// created in the same millisecond likewise by id.
TEST_P(StoreContract, MetersAndCredentialsAreOrderedByTheBytesOfTheirIds) {
  const std::vector<std::string> ids = {"b", "B", "a-2", "a", "_x", "A1", "a.1", "a:1", "9z"};
  const std::vector<std::string> sorted = {"9z", "A1", "B", "_x", "a", "a-2", "a.1", "a:1", "b"};
  std::vector<core::Reading> rs;
  for (const auto& id : ids) {
    rs.push_back(with_energy(id, kT0, 1.0));
    rs.push_back(with_energy(id, kT0 + kMin, 1.5));
  }
  ASSERT_TRUE(store().write(rs, kT0));
  std::vector<std::string> listed;
  const auto meters = store().list_meters().value();
  for (const auto& m : meters) listed.push_back(m.meter_id);
  EXPECT_EQ(listed, sorted);
  std::vector<std::string> totalled;
  const auto totals = store().kwh_totals(Rollup::hour, kLo, kHi).value();
  for (const auto& [id, kwh] : totals) totalled.push_back(id);
  EXPECT_EQ(totalled, sorted);
  for (const auto& id : ids)
    ASSERT_TRUE(store().add_credential(token(id + "-token", "t", Scope::read, kT0), kT0).value());
  std::vector<std::string> creds;
  const auto credentials = store().list_credentials().value();
  for (const auto& c : credentials) creds.push_back(c.id);
  std::vector<std::string> want;
  for (const auto& id : ids) want.push_back(id + "-token");
  std::sort(want.begin(), want.end());  // std::string compares bytes
  EXPECT_EQ(creds, want);
}

// ---------------------------------------------------------------------------
// Alerts

TEST_P(StoreContract, AlertRulesAreStoredPerExistingMeter) {
  Store& s = store();
  ASSERT_TRUE(s.create_meter({"m1", "", "", std::nullopt}, std::nullopt, kT0).value());
  ASSERT_TRUE(s.create_meter({"m2", "", "", std::nullopt}, std::nullopt, kT0).value());
  EXPECT_FALSE(s.alert_rules("m1").value());
  EXPECT_TRUE(s.all_alert_rules().value().empty());
  const std::string doc1 = R"({"rules":[{"kind":"offline","after_s":60}]})";
  const std::string doc2 = R"({"rules":[{"kind":"over_current","threshold":10}]})";
  EXPECT_TRUE(s.set_alert_rules("m1", doc1, kT0).value());
  EXPECT_TRUE(s.set_alert_rules("m2", doc2, kT0).value());
  EXPECT_EQ(s.alert_rules("m1").value(), std::optional<std::string>(doc1));
  EXPECT_TRUE(s.set_alert_rules("m1", doc2, kT0 + 1).value());  // replaced
  EXPECT_EQ(s.alert_rules("m1").value(), std::optional<std::string>(doc2));
  auto all = s.all_alert_rules().value();
  std::sort(all.begin(), all.end());
  EXPECT_EQ(all, (std::vector<std::pair<std::string, std::string>>{{"m1", doc2}, {"m2", doc2}}));
  EXPECT_FALSE(s.set_alert_rules("ghost", doc1, kT0).value());
  EXPECT_FALSE(s.alert_rules("ghost").value());
  EXPECT_FALSE(s.find_meter("ghost").value()) << "rules do not create a meter";
}

TEST_P(StoreContract, AlertsListNewestFirstWithCursorAndFilters) {
  Store& s = store();
  ASSERT_TRUE(s.create_meter({"m1", "", "", std::nullopt}, std::nullopt, kT0).value());
  ASSERT_TRUE(s.create_meter({"m2", "", "", std::nullopt}, std::nullopt, kT0).value());
  for (int i = 0; i < 5; ++i) {
    AlertRecord a;
    a.meter_id = i % 2 ? "m2" : "m1";
    a.kind = "offline";
    a.raised_at = kT0 + i;
    a.raised_value = 0.5 + i;
    a.message = "x" + std::to_string(i);
    ASSERT_GT(s.raise_alert(a).value(), 0);
  }
  AlertRecord ghost;
  ghost.meter_id = "ghost";
  EXPECT_EQ(s.raise_alert(ghost).value(), 0) << "unknown meter: nothing stored";
  AlertQuery q;
  q.limit = 2;
  auto page = s.list_alerts(q).value();
  ASSERT_EQ(page.size(), 2u);
  EXPECT_GT(page[0].id, page[1].id);
  EXPECT_EQ(page[0].meter_id, "m1");
  EXPECT_EQ(page[0].kind, "offline");
  EXPECT_EQ(page[0].raised_at, kT0 + 4);
  EXPECT_EQ(page[0].raised_value, 4.5);
  EXPECT_EQ(page[0].message, "x4");
  EXPECT_FALSE(page[0].cleared_at);
  q.before = page[1].id;
  auto next = s.list_alerts(q).value();
  ASSERT_EQ(next.size(), 2u);
  EXPECT_LT(next[0].id, page[1].id);
  q = {};
  q.meter_id = "m2";
  EXPECT_EQ(s.list_alerts(q).value().size(), 2u);
  ASSERT_TRUE(s.clear_alert(page[0].id, kT0 + 10, 1, "ok"));
  q = {};
  q.active = true;
  EXPECT_EQ(s.list_alerts(q).value().size(), 4u);
  q.active = false;
  const auto cleared = s.list_alerts(q).value();
  ASSERT_EQ(cleared.size(), 1u);
  EXPECT_EQ(cleared[0].id, page[0].id);
  EXPECT_EQ(cleared[0].cleared_at, kT0 + 10);
  EXPECT_EQ(cleared[0].cleared_value, 1.0);
  EXPECT_EQ(cleared[0].clear_message, "ok");
  EXPECT_EQ(cleared[0].message, "x4");
  // Deleting a meter deletes its alerts.
  ASSERT_TRUE(s.delete_meter("m2").value());
  EXPECT_EQ(s.list_alerts({}).value().size(), 3u);
}

#ifdef METERHUB_STORE_CONTRACT_PG
INSTANTIATE_TEST_SUITE_P(Postgres, StoreContract, ::testing::Values(Backend::postgres),
                         meterhub::testing::backend_name);
#else
INSTANTIATE_TEST_SUITE_P(Sqlite, StoreContract, ::testing::Values(Backend::sqlite),
                         meterhub::testing::backend_name);
#endif

}  // namespace
}  // namespace meterhub::store
