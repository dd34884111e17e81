#include "core/time.hpp"

#include <gtest/gtest.h>

namespace meterhub::core {
namespace {

TEST(Time, ParsesUtcWithAndWithoutFraction) {
  EXPECT_EQ(*parse_iso8601("1970-01-01T00:00:00Z"), 0);
  EXPECT_EQ(*parse_iso8601("2026-01-01T00:00:00Z"), 1767225600000);
  EXPECT_EQ(*parse_iso8601("2026-01-01T00:00:00.5Z"), 1767225600500);
  EXPECT_EQ(*parse_iso8601("2026-01-01T00:00:00.123456789Z"), 1767225600123);
  EXPECT_EQ(*parse_iso8601("2026-01-01t00:00:00z"), 1767225600000);
  EXPECT_EQ(*parse_iso8601("2026-01-01 00:00:00Z"), 1767225600000);
  EXPECT_EQ(*parse_iso8601("2026-01-01T00:00Z"), 1767225600000);
}

TEST(Time, AppliesOffsets) {
  EXPECT_EQ(*parse_iso8601("2026-01-01T01:00:00+01:00"), 1767225600000);
  EXPECT_EQ(*parse_iso8601("2025-12-31T19:00:00-05:00"), 1767225600000);
  EXPECT_EQ(*parse_iso8601("2026-01-01T05:30:00+0530"), 1767225600000);
}

TEST(Time, LeapDayAndYearBoundaries) {
  EXPECT_EQ(*parse_iso8601("2024-02-29T00:00:00Z"), 1709164800000);
  EXPECT_FALSE(parse_iso8601("2025-02-29T00:00:00Z"));
  EXPECT_FALSE(parse_iso8601("2026-13-01T00:00:00Z"));
  EXPECT_FALSE(parse_iso8601("2026-04-31T00:00:00Z"));
}

TEST(Time, RejectsMalformed) {
  for (const char* bad :
       {"", "2026", "2026-01-01", "2026-01-01T00:00:00", "2026-01-01T24:00:00Z",
        "2026-01-01T00:60:00Z", "2026-01-01T00:00:60Z", "2026-01-01T00:00:00.Z",
        "2026-01-01T00:00:00Zjunk", "2026-01-01T00:00:00+25:00", "26-01-01T00:00:00Z",
        "2026-1-01T00:00:00Z", "２０２６-01-01T00:00:00Z", "2026-01-01T00:00:00+1"}) {
    auto r = parse_iso8601(bad);
    EXPECT_FALSE(r) << bad;
    if (!r) {
      EXPECT_EQ(r.error().code, "invalid_timestamp");
    }
  }
}

TEST(Time, EpochSecondsAndMillisecondsByMagnitude) {
  EXPECT_EQ(*from_epoch_number(1767225600), 1767225600000);
  EXPECT_EQ(*from_epoch_number(1767225600.25), 1767225600250);
  EXPECT_EQ(*from_epoch_number(1767225600000), 1767225600000);
  EXPECT_EQ(*from_epoch_number(99999999999.0), 99999999999000);  // just below threshold: s
  EXPECT_EQ(*from_epoch_number(1e11), 100000000000);             // at threshold: ms
  EXPECT_FALSE(from_epoch_number(std::numeric_limits<double>::infinity()));
  EXPECT_FALSE(from_epoch_number(std::numeric_limits<double>::quiet_NaN()));
  EXPECT_FALSE(from_epoch_number(1e300));
}

TEST(Time, FormatsUtcWithMilliseconds) {
  EXPECT_EQ(format_iso8601(0), "1970-01-01T00:00:00.000Z");
  EXPECT_EQ(format_iso8601(1767225600123), "2026-01-01T00:00:00.123Z");
  EXPECT_EQ(format_iso8601(1709164799999), "2024-02-28T23:59:59.999Z");
  EXPECT_EQ(format_iso8601(-1), "1969-12-31T23:59:59.999Z");
}

TEST(Time, FormatParseRoundTrip) {
  for (TimeMs t : {TimeMs{946684800000}, TimeMs{1767225600123}, TimeMs{4102444799999}}) {
    EXPECT_EQ(*parse_iso8601(format_iso8601(t)), t);
  }
}

}  // namespace
}  // namespace meterhub::core
