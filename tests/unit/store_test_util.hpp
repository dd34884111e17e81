// Helpers for unit tests of the stores: opening a SQLite file, all raw
// readings of a meter, comparing rollup rows with an oracle computed from
// the raw readings, and a realistically messy meter series.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "core/aggregate.hpp"
#include "query/series.hpp"
#include "store/sqlite/sqlite_store.hpp"
#include "test_util.hpp"

namespace meterhub::testing {

// The store at `path` (created and migrated), or nullptr after a test failure.
inline std::unique_ptr<store::SqliteStore> open_store(const std::string& path) {
  auto s = store::SqliteStore::open({path});
  EXPECT_TRUE(s) << (s ? "" : s.error().message);
  return s ? std::move(*s) : nullptr;
}

// Every raw reading of `meter`, oldest first.
inline std::vector<core::Reading> all_raw(store::Store& s, const std::string& meter) {
  store::RangeQuery q;
  q.meter_id = meter;
  q.from = std::numeric_limits<core::TimeMs>::min();
  q.to = std::numeric_limits<core::TimeMs>::max();
  q.limit = 10'000'000;
  return s.read_range(q).value();
}

// Rollup rows equal, field by field (sums and kWh to 1e-9 relative).
inline void expect_same(const std::vector<core::Aggregate>& got,
                        const std::vector<core::Aggregate>& want, const char* what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  auto near = [](double a, double b) {
    return std::abs(a - b) <= 1e-9 * std::max(1.0, std::abs(b));
  };
  for (std::size_t k = 0; k < want.size(); ++k) {
    const auto& g = got[k];
    const auto& w = want[k];
    SCOPED_TRACE(std::string(what) + " bucket " + std::to_string(k));
    EXPECT_EQ(g.start, w.start);
    EXPECT_EQ(g.count, w.count);
    for (auto f : {&core::Aggregate::voltage, &core::Aggregate::current, &core::Aggregate::power,
                   &core::Aggregate::frequency, &core::Aggregate::power_factor}) {
      EXPECT_EQ((g.*f).count, (w.*f).count);
      EXPECT_TRUE(near((g.*f).sum, (w.*f).sum)) << (g.*f).sum << " vs " << (w.*f).sum;
      EXPECT_EQ((g.*f).min, (w.*f).min);
      EXPECT_EQ((g.*f).max, (w.*f).max);
    }
    EXPECT_EQ(g.first_ts, w.first_ts);
    EXPECT_EQ(g.last_ts, w.last_ts);
    EXPECT_EQ(g.energy_first, w.energy_first);
    EXPECT_EQ(g.energy_last, w.energy_last);
    EXPECT_TRUE(near(g.kwh, w.kwh)) << g.kwh << " vs " << w.kwh;
  }
}

// The oracle: every bucket of `step` ms computed from all raw readings at once.
inline std::vector<core::Aggregate> from_raw(store::Store& s, const std::string& meter,
                                             core::TimeMs step) {
  auto rs = all_raw(s, meter);
  return query::bucketize(rs, {}, std::nullopt, step, {});
}

// Both rollup tables of `meter` equal the oracle, and read_kwh gives the
// same rows as read_rollup.
inline void expect_rollups_match_raw(store::Store& s, const std::string& meter) {
  const auto lo = std::numeric_limits<core::TimeMs>::min();
  const auto hi = std::numeric_limits<core::TimeMs>::max();
  const auto minutes = s.read_rollup(meter, store::Rollup::minute, lo, hi).value();
  expect_same(minutes, from_raw(s, meter, 60'000), "1m");
  expect_same(s.read_rollup(meter, store::Rollup::hour, lo, hi).value(),
              from_raw(s, meter, 3'600'000), "1h");
  const auto kwh = s.read_kwh(meter, store::Rollup::minute, lo, hi).value();
  ASSERT_EQ(kwh.size(), minutes.size());
  for (std::size_t i = 0; i < kwh.size(); ++i) {
    EXPECT_EQ(kwh[i].first, minutes[i].start);
    EXPECT_EQ(kwh[i].second, minutes[i].kwh);
  }
}

// A household meter over ~5 hours at irregular 5-40 s intervals, with the
// troubles real meters have: reboot zeros, garbage spikes, resets, a 16-bit
// wrap, a gap of two hours, optional frequency/power factor.
inline std::vector<core::Reading> messy_series(std::mt19937& rng, const std::string& meter) {
  constexpr core::TimeMs kHour = 3'600'000;
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

// A credential with the given id (the store does not care how it was made).
inline store::Credential device_key(std::string id, std::string meter, core::TimeMs at) {
  store::Credential c;
  c.id = std::move(id);
  c.kind = store::CredentialKind::device;
  c.meter_id = std::move(meter);
  c.salt = std::string(16, 's');
  c.hash = std::string(32, 'h');
  c.created_at = at;
  return c;
}

inline store::Credential token(std::string id, std::string name, store::Scope scope,
                               core::TimeMs at) {
  store::Credential c;
  c.id = std::move(id);
  c.kind = store::CredentialKind::token;
  c.name = std::move(name);
  c.scope = scope;
  c.salt = std::string(16, 't');
  c.hash = std::string(32, 'u');
  c.created_at = at;
  return c;
}

}  // namespace meterhub::testing
