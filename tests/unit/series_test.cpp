#include "query/series.hpp"

#include <gtest/gtest.h>

#include <random>

#include "test_util.hpp"

namespace meterhub::query {
namespace {

using meterhub::testing::kT0;  // 2026-01-01T00:00:00Z, a multiple of every ladder step

core::Reading at(core::TimeMs ts, double power, double energy) {
  core::Reading r = meterhub::testing::reading("m", ts, power);
  r.voltage = 230;
  r.current = power / 230;
  r.energy = energy;
  return r;
}

TEST(Series, ParseStep) {
  EXPECT_EQ(*parse_step("1s"), 1000);
  EXPECT_EQ(*parse_step("10s"), 10000);
  EXPECT_EQ(*parse_step("15m"), 900000);
  EXPECT_EQ(*parse_step("6h"), 21600000);
  EXPECT_EQ(*parse_step("1d"), 86400000);
  EXPECT_EQ(*parse_step("86400s"), 86400000);
  for (const char* bad :
       {"", "s", "0s", "-1m", "2d", "1w", "1.5h", "10", "h1", "25h", "99999999999999999999s"})
    EXPECT_FALSE(parse_step(bad)) << bad;
}

TEST(Series, AutoStepKeepsPointsUnderTheLimit) {
  EXPECT_EQ(auto_step(kT0, kT0 + 3'600'000, 1000), 10'000);    // 1 h  -> 10 s (360 buckets)
  EXPECT_EQ(auto_step(kT0, kT0 + 3'600'000, 360), 10'000);     // an exact fit is a fit
  EXPECT_EQ(auto_step(kT0 + 1, kT0 + 3'600'000 + 1, 360), 60'000);  // off the grid: 361 at 10 s
  EXPECT_EQ(auto_step(kT0, kT0 + 86'400'000, 288), 300'000);   // a UTC day in 5 m buckets
  EXPECT_EQ(auto_step(kT0, kT0 + 86'400'000, 1000), 300'000);  // 1 d  -> 5 m (289)
  EXPECT_EQ(auto_step(kT0, kT0 + 30 * 86'400'000LL, 1000), 3'600'000);    // 30 d -> 1 h (721)
  EXPECT_EQ(auto_step(kT0, kT0 + 365 * 86'400'000LL, 1000), 86'400'000);  // 1 y -> 1 d (366)
  EXPECT_EQ(auto_step(kT0, kT0 + 60'000, 1000), 1'000);
  EXPECT_EQ(auto_step(kT0, kT0 + 3650 * 86'400'000LL, 10), 86'400'000);  // nothing fits: largest
}

TEST(Series, BucketsHandComputed) {
  // Three readings in minute 0, one in minute 2 (minute 1 empty: omitted).
  std::vector<core::Reading> rs = {at(kT0 + 0, 100, 10.00), at(kT0 + 20'000, 200, 10.01),
                                   at(kT0 + 40'000, 300, 10.02), at(kT0 + 130'000, 600, 10.05)};
  rs[1].frequency = 50.0;
  rs[2].frequency = 49.9;
  auto b = bucketize(rs, {}, std::nullopt, 60'000, {});
  ASSERT_EQ(b.size(), 2u);
  EXPECT_EQ(b[0].start, kT0);
  EXPECT_EQ(b[0].count, 3u);
  EXPECT_DOUBLE_EQ(b[0].power.avg(), 200);
  EXPECT_EQ(b[0].power.min, 100);
  EXPECT_EQ(b[0].power.max, 300);
  EXPECT_EQ(b[0].frequency.count, 2u);
  EXPECT_DOUBLE_EQ(b[0].frequency.avg(), 49.95);
  EXPECT_EQ(b[0].power_factor.count, 0u);
  EXPECT_EQ(b[0].energy_first, 10.00);
  EXPECT_EQ(b[0].energy_last, 10.02);
  EXPECT_NEAR(b[0].kwh, 0.02, 1e-12);  // no reading before: the first counts nothing
  EXPECT_EQ(b[1].start, kT0 + 120'000);
  EXPECT_NEAR(b[1].kwh, 0.03, 1e-12);  // 10.02 -> 10.05 across the gap: where it ends
}

TEST(Series, ContextGivesTheFirstReadingItsConsumption) {
  std::vector<core::Reading> before = {at(kT0 - 20'000, 0, 9.98), at(kT0 - 10'000, 0, 9.99)};
  std::vector<core::Reading> rs = {at(kT0, 0, 10.0), at(kT0 + 10'000, 0, 0.0)};  // 0 = reboot?
  auto unsure = bucketize(rs, before, std::nullopt, 60'000, {});
  EXPECT_NEAR(unsure[0].kwh, 0.01, 1e-12);  // last reading has no successor: a reset to 0
  auto glitch = bucketize(rs, before, at(kT0 + 20'000, 0, 10.01), 60'000, {});
  EXPECT_NEAR(glitch[0].kwh, 0.01 + 0.0, 1e-12);  // the 0 was an outlier: nothing for it
}

// Splitting a range into pieces with their context gives the same buckets as
// the whole range: what rollups maintained piece by piece rely on.
TEST(Series, PiecewiseEqualsWhole) {
  std::mt19937 rng(7);
  std::vector<core::Reading> rs;
  double e = 100;
  for (int i = 0; i < 2000; ++i) {
    e += std::uniform_real_distribution<double>(0, 0.002)(rng);
    double shown = e;
    if (i % 397 == 0) shown = 0;      // reboot zero
    if (i % 613 == 0) shown = 99999;  // garbage spike
    rs.push_back(at(kT0 + i * 7'000, std::uniform_real_distribution<double>(0, 3000)(rng), shown));
  }
  const core::TimeMs step = 60'000;
  auto whole = bucketize(rs, {}, std::nullopt, step, {});
  std::vector<SeriesBucket> pieces;
  std::size_t i = 0;
  while (i < rs.size()) {
    // one piece = all readings of one hour
    core::TimeMs hour = (rs[i].ts / 3'600'000) * 3'600'000;
    std::size_t j = i;
    while (j < rs.size() && rs[j].ts < hour + 3'600'000) ++j;
    std::span<const core::Reading> all(rs);
    const std::size_t ctx = std::min<std::size_t>(i, core::kContextBefore);
    auto before = all.subspan(i - ctx, ctx);
    std::optional<core::Reading> after;
    if (j < rs.size()) after = rs[j];
    auto part = bucketize(all.subspan(i, j - i), before, after, step, {});
    pieces.insert(pieces.end(), part.begin(), part.end());
    i = j;
  }
  ASSERT_EQ(pieces.size(), whole.size());
  for (std::size_t k = 0; k < whole.size(); ++k) {
    EXPECT_EQ(pieces[k].start, whole[k].start);
    EXPECT_EQ(pieces[k].count, whole[k].count);
    EXPECT_DOUBLE_EQ(pieces[k].power.sum, whole[k].power.sum);
    EXPECT_DOUBLE_EQ(pieces[k].kwh, whole[k].kwh) << "bucket " << k;
  }
}

}  // namespace
}  // namespace meterhub::query
