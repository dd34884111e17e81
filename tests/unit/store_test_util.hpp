// Helpers for unit tests of the SQLite store: opening a database file, all
// raw readings of a meter, and comparing rollup rows with an oracle.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "core/aggregate.hpp"
#include "store/sqlite/sqlite_store.hpp"

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

}  // namespace meterhub::testing
