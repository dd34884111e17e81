#include "core/energy.hpp"

#include <gtest/gtest.h>

#include <numeric>

namespace meterhub::core {
namespace {

constexpr TimeMs kMin = 60'000;

std::vector<CounterPoint> series(std::initializer_list<double> kwh, TimeMs every = kMin) {
  std::vector<CounterPoint> s;
  TimeMs t = 1'767'225'600'000;
  for (double k : kwh) {
    s.push_back({t, k});
    t += every;
  }
  return s;
}

double total(std::span<const CounterPoint> s, CounterRules r = {}) {
  auto c = attribute_consumption({}, s, std::nullopt, r);
  return std::accumulate(c.begin(), c.end(), 0.0);
}

TEST(CounterRules, SteadyCounterSumsItsIncrements) {
  auto s = series({100.0, 100.5, 101.0, 101.25});
  auto c = attribute_consumption({}, s, std::nullopt, {});
  EXPECT_EQ(c, (std::vector<double>{0.0, 0.5, 0.5, 0.25}));
}

TEST(CounterRules, ResetContinuesFromTheNewValue) {
  // reboot mid-series: 100.8 -> 0.1 is a reset; 0.1 kWh since the restart counts
  EXPECT_NEAR(total(series({100.0, 100.8, 0.1, 0.4, 0.6})), 0.8 + 0.1 + 0.3 + 0.2, 1e-9);
}

TEST(CounterRules, ZeroSpikeFromARebootingSensorCountsNothing) {
  EXPECT_NEAR(total(series({100.0, 100.1, 0.0, 100.2, 100.3})), 0.3, 1e-9);
}

TEST(CounterRules, GarbageSpikeUpCountsNothing) {
  EXPECT_NEAR(total(series({100.0, 100.1, 99999.0, 100.2, 100.3})), 0.3, 1e-9);
}

TEST(CounterRules, SixteenBitWrapIsAReset) {
  // a counter in Wh wrapping at 65.535 kWh
  EXPECT_NEAR(total(series({65.4, 65.5, 0.02, 0.1})), 0.1 + 0.02 + 0.08, 1e-12);
}

TEST(CounterRules, ImplausibleJumpThatStaysIsNotConsumption) {
  // counter replaced by one showing 5000 kWh: the jump is not consumption
  EXPECT_NEAR(total(series({100.0, 100.1, 5000.0, 5000.2})), 0.1 + 0.2, 1e-9);
}

TEST(CounterRules, LargeButPlausibleIncreaseAfterAGapCounts) {
  // 6 hours offline at ~2 kW: 12 kWh is plausible and belongs to the reading after the gap
  std::vector<CounterPoint> s = {{0, 10.0}, {6 * 3'600'000, 22.0}, {6 * 3'600'000 + kMin, 22.03}};
  auto c = attribute_consumption({}, s, std::nullopt, {});
  EXPECT_DOUBLE_EQ(c[1], 12.0);
  EXPECT_NEAR(c[2], 0.03, 1e-12);
}

TEST(CounterRules, ThresholdIsConfigurable) {
  CounterRules tight;
  tight.max_power_w = 3000;  // a 3 kW household connection: 0.05 kWh per minute at most
  EXPECT_NEAR(total(series({1.0, 1.04, 1.2, 1.21}), tight), 0.04 + 0.01, 1e-12);
}

TEST(CounterRules, NewestReadingIsJudgedOnceItsSuccessorArrives) {
  auto s = series({100.0, 100.1, 0.0});
  // without a successor the drop looks like a reset
  auto now = attribute_consumption({}, s, std::nullopt, {});
  EXPECT_DOUBLE_EQ(now[2], 0.0);  // a reset to 0 consumes 0
  // with the successor back at 100.2 it is an outlier and 100.1 -> 100.2 counts
  auto next = CounterPoint{s[2].ts + kMin, 100.2};
  auto later = attribute_consumption(std::span(s).first(2), std::span(s).subspan(2), next, {});
  EXPECT_DOUBLE_EQ(later[0], 0.0);
}

TEST(CounterRules, ContextPointsGiveTheSameAnswerAsTheWholeSeries) {
  auto s = series({100.0, 100.2, 0.0, 100.3, 100.9, 0.2, 0.5, 99999.0, 0.7, 1.0});
  auto whole = attribute_consumption({}, s, std::nullopt, {});
  for (std::size_t cut = 0; cut + 1 < s.size(); ++cut) {
    for (std::size_t len = 1; cut + len < s.size(); ++len) {
      const std::size_t ctx = std::min(cut, kContextBefore);
      auto before = std::span(s).subspan(cut - ctx, ctx);
      auto mid = std::span(s).subspan(cut, len);
      auto c = attribute_consumption(before, mid, s[cut + len], {});
      for (std::size_t k = 0; k < len; ++k)
        EXPECT_DOUBLE_EQ(c[k], whole[cut + k]) << "cut " << cut << " len " << len << " k " << k;
    }
  }
}

TEST(CounterRules, TwoOutliersInARowCountNothingForTheNextReading) {
  // a reboot 0 followed by a garbage value: both outliers; the reading after
  // them has no trustworthy predecessor within reach, so it counts nothing
  // (never more than was consumed) and the one after it counts again.
  auto s = series({10.0, 10.1, 0.0, 99999.0, 10.3, 10.4});
  auto c = attribute_consumption({}, s, std::nullopt, {});
  EXPECT_NEAR(c[1], 0.1, 1e-12);
  EXPECT_DOUBLE_EQ(c[2], 0.0);
  EXPECT_DOUBLE_EQ(c[3], 0.0);
  EXPECT_DOUBLE_EQ(c[4], 0.0);
  EXPECT_NEAR(c[5], 0.1, 1e-12);
}

TEST(CounterRules, MoreContextThanNeededChangesNothing) {
  auto s = series({100.0, 100.2, 0.0, 100.3, 100.9, 0.2, 0.5, 99999.0, 0.7, 1.0});
  auto whole = attribute_consumption({}, s, std::nullopt, {});
  auto tail = attribute_consumption(std::span(s).first(7), std::span(s).subspan(7), std::nullopt, {});
  for (std::size_t k = 0; k < tail.size(); ++k) EXPECT_DOUBLE_EQ(tail[k], whole[7 + k]);
}

}  // namespace
}  // namespace meterhub::core
