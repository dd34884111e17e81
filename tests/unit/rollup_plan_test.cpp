// The backend-neutral rollup planner (store/rollup_plan.hpp): when it asks
// for a window, what its tail cache saves, and that forgetting one meter
// makes it ask again. The rollup values themselves are checked through both
// stores (rollup_test.cpp, pg_store_test.cpp).
#include <gtest/gtest.h>

#include <algorithm>
#include <vector>

#include "store/rollup_plan.hpp"
#include "test_util.hpp"

namespace meterhub::store {
namespace {

using meterhub::testing::kT0;

// A fake meter table: the stored readings of meter 1, and how often the
// planner fetched a window.
struct FakeSeries {
  std::vector<core::Reading> stored;  // sorted by ts
  int fetches = 0;

  // Stores `rs` (sorted, new) and returns pointers for plan().
  std::vector<const core::Reading*> add(std::vector<core::Reading>& rs) {
    stored.insert(stored.end(), rs.begin(), rs.end());
    std::sort(stored.begin(), stored.end(),
              [](const auto& a, const auto& b) { return a.ts < b.ts; });
    std::vector<const core::Reading*> out;
    for (const auto& r : rs) out.push_back(&r);
    return out;
  }
  RollupPlanner::FetchWindow fetch() {
    return [this](std::int64_t, core::TimeMs lo, core::TimeMs hi) -> core::Result<RollupWindow> {
      ++fetches;
      RollupWindow w;
      for (const auto& r : stored) {
        if (r.ts < lo) w.before.push_back({r.ts, r.energy});
        if (r.ts >= lo && r.ts <= hi) w.between.push_back({r.ts, r.energy});
        if (r.ts > hi && w.after.size() < 4) w.after.push_back({r.ts, r.energy});
      }
      if (w.before.size() > 4) w.before.erase(w.before.begin(), w.before.end() - 4);
      return w;
    };
  }
};

core::Reading r(core::TimeMs ts, double kwh) {
  core::Reading x = testing::reading("m", ts);
  x.energy = kwh;
  return x;
}

TEST(RollupPlanner, AppendsUseTheTailCacheUntilTheMeterIsForgotten) {
  RollupPlanner p;
  FakeSeries s;
  std::vector<core::Reading> a = {r(kT0, 1.0), r(kT0 + 10'000, 1.1)};
  auto plan = p.plan(1, s.add(a), false, s.fetch());
  ASSERT_TRUE(plan);
  EXPECT_EQ(s.fetches, 1);
  EXPECT_TRUE(p.covers(1, kT0 + 20'000));
  EXPECT_FALSE(p.covers(1, kT0 + 5'000));  // late: needs its neighbours
  EXPECT_FALSE(p.covers(2, kT0 + 20'000));

  std::vector<core::Reading> b = {r(kT0 + 20'000, 1.2)};
  ASSERT_TRUE(p.plan(1, s.add(b), false, s.fetch()));
  EXPECT_EQ(s.fetches, 1);  // an append: the cached tail was the window

  p.forget(1);
  EXPECT_FALSE(p.covers(1, kT0 + 30'000));
  std::vector<core::Reading> c = {r(kT0 + 30'000, 1.3)};
  ASSERT_TRUE(p.plan(1, s.add(c), false, s.fetch()));
  EXPECT_EQ(s.fetches, 2);
}

TEST(RollupPlanner, LateReadingGivesStatsToItsBucketAndKwhCorrectionsToNeighbours) {
  RollupPlanner p;
  FakeSeries s;
  // One reading per minute; then one arrives late in between.
  std::vector<core::Reading> a;
  for (int i = 0; i < 6; ++i) a.push_back(r(kT0 + i * 60'000, 1.0 + i * 0.1));
  auto first = p.plan(1, s.add(a), false, s.fetch());
  ASSERT_TRUE(first);
  EXPECT_EQ(first->minute.size(), 6u);
  std::vector<core::Reading> late = {r(kT0 + 3 * 60'000 - 30'000, 1.25)};
  auto plan = p.plan(1, s.add(late), false, s.fetch());
  ASSERT_TRUE(plan);
  EXPECT_EQ(s.fetches, 2);
  // The late reading's minute gets its statistics; the next one (whose
  // consumption it takes half of) only a kWh correction.
  double total = 0;
  bool stats = false, correction = false;
  for (const core::Aggregate& m : plan->minute) {
    total += m.kwh;
    if (m.count == 1 && m.start == kT0 + 2 * 60'000) stats = true;
    if (m.count == 0 && m.start == kT0 + 3 * 60'000) correction = m.kwh < 0;
  }
  EXPECT_TRUE(stats);
  EXPECT_TRUE(correction);
  EXPECT_NEAR(total, 0.0, 1e-12);  // consumption moved, none created
  ASSERT_EQ(plan->hour.size(), 1u);
  EXPECT_EQ(plan->hour[0].count, 1u);
  EXPECT_NEAR(plan->hour[0].kwh, 0.0, 1e-12);
}

TEST(RollupPlanner, AFailedFetchFailsThePlan) {
  RollupPlanner p;
  std::vector<core::Reading> a = {r(kT0, 1.0)};
  std::vector<const core::Reading*> ptrs = {&a[0]};
  auto plan = p.plan(1, ptrs, false, [](std::int64_t, core::TimeMs, core::TimeMs) {
    return core::Result<RollupWindow>(core::fail("store_unavailable", "gone"));
  });
  ASSERT_FALSE(plan);
  EXPECT_EQ(plan.error().message, "gone");
  EXPECT_FALSE(p.covers(1, kT0 + 1));
}

}  // namespace
}  // namespace meterhub::store
