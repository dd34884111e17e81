// The alert rule state machine (src/alerts/rules.hpp) driven with explicit
// reading timestamps and an explicit clock: hold, hysteresis, flapping input,
// missing fields, offline and its clearing.
#include <gtest/gtest.h>

#include <optional>
#include <vector>

#include "alerts/rules.hpp"

namespace meterhub::alerts {
namespace {

constexpr core::TimeMs kT0 = 1'700'000'000'000;

core::Reading at(core::TimeMs ts_s, double voltage) {
  core::Reading r;
  r.meter_id = "m1";
  r.ts = kT0 + ts_s * 1000;
  r.voltage = voltage;
  r.current = 1;
  r.power = 230;
  r.energy = 1;
  return r;
}

Rule over_voltage(double threshold, double hysteresis, double hold_s) {
  Rule r;
  r.kind = RuleKind::over_voltage;
  r.threshold = threshold;
  r.hysteresis = hysteresis;
  r.hold_ms = static_cast<core::TimeMs>(hold_s * 1000);
  return r;
}

// Feeds (second, voltage) pairs; returns "R@s" / "C@s" for every transition.
std::vector<std::string> feed(const Rule& rule, RuleState& s,
                              std::initializer_list<std::pair<int, double>> in) {
  std::vector<std::string> out;
  for (auto [sec, v] : in)
    if (auto t = evaluate(rule, s, at(sec, v)))
      out.push_back(std::string(t->raised ? "R@" : "C@") + std::to_string(sec));
  return out;
}

TEST(AlertRules, RaisesAtOnceWithoutHold) {
  RuleState s;
  auto t = evaluate(over_voltage(253, 0, 0), s, at(0, 254));
  ASSERT_TRUE(t);
  EXPECT_TRUE(t->raised);
  EXPECT_DOUBLE_EQ(t->value, 254);
  EXPECT_EQ(t->at, kT0);
  EXPECT_TRUE(s.active);
  EXPECT_NE(t->message.find("above 253 V"), std::string::npos) << t->message;
}

TEST(AlertRules, AtTheThresholdIsNotOver) {
  RuleState s;
  EXPECT_EQ(feed(over_voltage(253, 0, 0), s, {{0, 253}, {1, 253}}), std::vector<std::string>{});
}

TEST(AlertRules, HoldNeedsTheConditionForTheWholeTime) {
  const Rule r = over_voltage(253, 2, 5);
  RuleState s;
  // 0..4 s over: not yet; a dip at 4 restarts the hold; raised 5 s after 6.
  EXPECT_EQ(feed(r, s, {{0, 260}, {3, 260}, {4, 250}, {6, 260}, {10, 260}, {11, 260}}),
            (std::vector<std::string>{"R@11"}));
}

TEST(AlertRules, ClearNeedsHysteresisAndHold) {
  const Rule r = over_voltage(253, 3, 2);
  RuleState s;
  ASSERT_EQ(feed(r, s, {{0, 260}, {2, 260}}), (std::vector<std::string>{"R@2"}));
  // Below the threshold but within the hysteresis band: stays raised.
  EXPECT_EQ(feed(r, s, {{3, 252}, {4, 251}, {6, 250.5}, {9, 252}}), std::vector<std::string>{});
  EXPECT_TRUE(s.active);
  // At or below 250 for 2 s: cleared.
  EXPECT_EQ(feed(r, s, {{10, 250}, {11, 249}, {12, 249}}), (std::vector<std::string>{"C@12"}));
  EXPECT_FALSE(s.active);
}

TEST(AlertRules, FlappingAtTheEdgeRaisesOnceAndNeverClears) {
  const Rule r = over_voltage(253, 2, 0);
  RuleState s;
  std::vector<std::string> all;
  for (int i = 0; i < 100; ++i) {
    auto got = feed(r, s, {{i, i % 2 ? 253.4 : 252.6}});
    all.insert(all.end(), got.begin(), got.end());
  }
  EXPECT_EQ(all, (std::vector<std::string>{"R@1"}));
}

TEST(AlertRules, FlappingAroundTheThresholdWithHoldNeverRaises) {
  const Rule r = over_voltage(253, 2, 3);
  RuleState s;
  std::vector<std::string> all;
  for (int i = 0; i < 100; ++i) {
    auto got = feed(r, s, {{i, i % 3 == 2 ? 252 : 254}});  // over for 2 s, then a dip
    all.insert(all.end(), got.begin(), got.end());
  }
  EXPECT_TRUE(all.empty());
}

TEST(AlertRules, UnderVoltageAndPowerFactor) {
  Rule u;
  u.kind = RuleKind::under_voltage;
  u.threshold = 207;
  u.hysteresis = 3;
  RuleState s;
  EXPECT_EQ(feed(u, s, {{0, 210}, {1, 206}, {2, 209}, {3, 210}}),
            (std::vector<std::string>{"R@1", "C@3"}));

  Rule pf;
  pf.kind = RuleKind::power_factor_below;
  pf.threshold = 0.9;
  pf.hysteresis = 0.05;
  RuleState ps;
  core::Reading r = at(0, 230);
  EXPECT_FALSE(evaluate(pf, ps, r)) << "no power factor in the reading: nothing happens";
  r.power_factor = 0.8;
  ASSERT_TRUE(evaluate(pf, ps, r));
  r.ts += 1000;
  r.power_factor.reset();
  EXPECT_FALSE(evaluate(pf, ps, r));
  EXPECT_TRUE(ps.active) << "a reading without the field leaves the state alone";
  r.power_factor = 0.93;
  EXPECT_FALSE(evaluate(pf, ps, r));
  r.power_factor = 0.96;  // at or above 0.9 + 0.05
  auto t = evaluate(pf, ps, r);
  ASSERT_TRUE(t);
  EXPECT_FALSE(t->raised);
}

TEST(AlertRules, FrequencyBand) {
  Rule f;
  f.kind = RuleKind::frequency_out_of_band;
  f.min = 49.8;
  f.max = 50.2;
  f.hysteresis = 0.05;
  RuleState s;
  auto with_f = [](int sec, double hz) {
    core::Reading r = at(sec, 230);
    r.frequency = hz;
    return r;
  };
  EXPECT_FALSE(evaluate(f, s, with_f(0, 50.0)));
  auto t = evaluate(f, s, with_f(1, 50.25));
  ASSERT_TRUE(t);
  EXPECT_TRUE(t->raised);
  EXPECT_FALSE(evaluate(f, s, with_f(2, 50.18))) << "inside, but within the hysteresis";
  EXPECT_FALSE(evaluate(f, s, with_f(3, 49.78))) << "out on the other side: still the same alert";
  t = evaluate(f, s, with_f(4, 50.0));
  ASSERT_TRUE(t);
  EXPECT_FALSE(t->raised);
}

TEST(AlertRules, OverCurrentAndPowerUseTheirFields) {
  Rule c;
  c.kind = RuleKind::over_current;
  c.threshold = 16;
  Rule p;
  p.kind = RuleKind::over_power;
  p.threshold = 3000;
  core::Reading r = at(0, 230);
  r.current = 17;
  r.power = 2000;
  RuleState cs, ps;
  EXPECT_TRUE(evaluate(c, cs, r));
  EXPECT_FALSE(evaluate(p, ps, r));
  r.ts += 1000;
  r.power = 3500;
  EXPECT_TRUE(evaluate(p, ps, r));
}

TEST(AlertRules, OfflineByClockClearedByTheNextReading) {
  Rule o;
  o.kind = RuleKind::offline;
  o.after_ms = 30'000;
  RuleState s;
  const core::TimeMs last = kT0;
  EXPECT_FALSE(tick(o, s, last, kT0 + 29'999));
  auto t = tick(o, s, last, kT0 + 30'000);
  ASSERT_TRUE(t);
  EXPECT_TRUE(t->raised);
  EXPECT_DOUBLE_EQ(t->value, 30);
  EXPECT_FALSE(tick(o, s, last, kT0 + 60'000)) << "raised once, not every tick";
  auto c = evaluate(o, s, at(61, 230));
  ASSERT_TRUE(c);
  EXPECT_FALSE(c->raised);
  EXPECT_FALSE(s.active);
  EXPECT_FALSE(evaluate(o, s, at(62, 230))) << "readings while online change nothing";
}

TEST(AlertRules, TicksDoNotMoveValueRules) {
  RuleState s;
  const Rule r = over_voltage(253, 0, 5);
  EXPECT_FALSE(evaluate(r, s, at(0, 260)));
  EXPECT_FALSE(tick(r, s, kT0, kT0 + 3'600'000));
  EXPECT_FALSE(s.active);
}

TEST(AlertRules, KindNamesRoundTrip) {
  for (auto k : {RuleKind::over_voltage, RuleKind::under_voltage, RuleKind::over_current,
                 RuleKind::over_power, RuleKind::power_factor_below,
                 RuleKind::frequency_out_of_band, RuleKind::offline})
    EXPECT_EQ(rule_kind_from(to_string(k)), k);
  EXPECT_FALSE(rule_kind_from("over_voltagex"));
  EXPECT_FALSE(rule_kind_from(""));
}

}  // namespace
}  // namespace meterhub::alerts
