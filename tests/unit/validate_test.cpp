#include "core/validate.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "test_util.hpp"

namespace meterhub::core {
namespace {

using meterhub::testing::kT0;
using meterhub::testing::reading;

TEST(MeterId, AcceptsTheDocumentedAlphabet) {
  EXPECT_FALSE(check_meter_id("m1"));
  EXPECT_FALSE(check_meter_id("ABC_def.ghi:jkl-0123456789"));
  EXPECT_FALSE(check_meter_id(std::string(64, 'a')));
  EXPECT_FALSE(check_meter_id("..."));
  EXPECT_FALSE(check_meter_id(".hidden"));
}

TEST(MeterId, RejectsEverythingElse) {
  for (std::string bad :
       {std::string(""), std::string(65, 'a'), std::string("a b"), std::string("a/b"),
        std::string("."), std::string(".."), std::string("m\xc3\xa9"), std::string("m\xff"),
        std::string("a\0b", 3), std::string("a%2e"), std::string("a'b"), std::string("a;b")}) {
    auto e = check_meter_id(bad);
    ASSERT_TRUE(e) << bad;
    EXPECT_EQ(e->field, "meter_id");
    EXPECT_EQ(e->code, "invalid_reading");
  }
}

TEST(Field, RangesAreInclusiveAndFiniteOnly) {
  EXPECT_FALSE(check_field(kVoltage, 0));
  EXPECT_FALSE(check_field(kVoltage, 1000));
  EXPECT_TRUE(check_field(kVoltage, -0.1));
  EXPECT_TRUE(check_field(kVoltage, 1000.01));
  EXPECT_FALSE(check_field(kPower, -5000));  // export is negative power
  EXPECT_FALSE(check_field(kPowerFactor, 1));
  EXPECT_TRUE(check_field(kPowerFactor, 1.01));
  EXPECT_TRUE(check_field(kEnergy, -1));
  EXPECT_TRUE(check_field(kVoltage, std::numeric_limits<double>::quiet_NaN()));
  EXPECT_TRUE(check_field(kVoltage, std::numeric_limits<double>::infinity()));
  auto e = check_field(kCurrent, 20000);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->field, "current");
  EXPECT_NE(e->message.find("[-10000, 10000]"), std::string::npos) << e->message;
}

TEST(Reading, ChecksEveryFieldAndTime) {
  Reading r = reading("m1", kT0);
  EXPECT_FALSE(check_reading(r, kT0, 300000));
  Reading r2 = r;
  r2.frequency = 5000;
  EXPECT_EQ(check_reading(r2, kT0, 300000)->field, "frequency");
  r2 = r;
  r2.power_factor = -0.5;
  EXPECT_EQ(check_reading(r2, kT0, 300000)->field, "power_factor");
  r2 = r;
  r2.ts = 0;  // device clock never set
  auto e = check_reading(r2, kT0, 300000);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->field, "ts");
  EXPECT_NE(e->message.find("clock"), std::string::npos);
  r2.ts = kT0 + 300000;  // exactly at the tolerance: fine
  EXPECT_FALSE(check_reading(r2, kT0, 300000));
  r2.ts = kT0 + 300001;
  EXPECT_EQ(check_reading(r2, kT0, 300000)->field, "ts");
}

}  // namespace
}  // namespace meterhub::core
