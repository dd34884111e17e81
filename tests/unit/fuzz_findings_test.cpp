// One test per bug the fuzz targets (fuzz/, docs/testing.md) found: the input
// that failed, reduced, and what must happen instead. The same inputs are in
// the seed corpus, so `make fuzz` re-checks them too.
#include <gtest/gtest.h>

#include <string>

#include "codec/formats.hpp"
#include "codec/registry_codec.hpp"
#include "core/time.hpp"

namespace meterhub {
namespace {

// fuzz_time: parse_iso8601 accepted an instant before year 0000 in UTC,
// which format_iso8601 then wrote as "-001-12-31T10:00:00.000Z".
TEST(FuzzFindings, Iso8601BeforeYearZeroInUtcIsRefused) {
  auto t = core::parse_iso8601("0000-01-01T00:00:00+14:00");
  ASSERT_FALSE(t);
  EXPECT_EQ(t.error().code, "invalid_timestamp");
  EXPECT_FALSE(core::parse_iso8601("9999-12-31T23:59:59.999-00:01"));
  // The edges themselves are fine and round-trip.
  auto lo = core::parse_iso8601("0000-01-01T00:00:00Z");
  ASSERT_TRUE(lo);
  EXPECT_EQ(*lo, core::kMinTime);
  EXPECT_EQ(core::format_iso8601(*lo), "0000-01-01T00:00:00.000Z");
  auto hi = core::parse_iso8601("9999-12-31T23:59:59.999Z");
  ASSERT_TRUE(hi);
  EXPECT_EQ(*hi, core::kMaxTime);
  EXPECT_EQ(core::format_iso8601(*hi), "9999-12-31T23:59:59.999Z");
  EXPECT_TRUE(core::parse_iso8601("0000-01-01T00:00:00-14:00"));
}

// fuzz_time: from_epoch_number accepted up to 9e15 ms (year 287396), which
// format_iso8601 wrote with a five- or six-digit year no parser reads back.
TEST(FuzzFindings, EpochNumberBeyondYear9999IsRefused) {
  EXPECT_FALSE(core::from_epoch_number(253402300800000.0));  // 10000-01-01
  EXPECT_FALSE(core::from_epoch_number(9e15));
  EXPECT_FALSE(core::from_epoch_number(-62167219200001.0));
  EXPECT_EQ(core::from_epoch_number(-62167219200000.0).value(), core::kMinTime);
  EXPECT_EQ(core::from_epoch_number(253402300799999.0).value(), core::kMaxTime);
}

// fuzz_registry: interval_s = 5.5e55 cast a double beyond int64 range to
// int64 before checking the range: undefined behaviour (UBSan aborted).
TEST(FuzzFindings, HugeIntervalIsAnErrorNotUndefinedBehaviour) {
  for (std::string v : {"55555555555555555555555555555555555555555555555555555510", "-1e300",
                        "9.3e18", "1e308"}) {
    auto m = codec::decode_new_meter(R"({"meter_id":"a","interval_s":)" + v + "}");
    ASSERT_FALSE(m) << v;
    EXPECT_EQ(m.error().code, "invalid_parameter") << v;
    EXPECT_EQ(m.error().field, "interval_s") << v;
    auto p = codec::decode_meter_patch(R"({"interval_s":)" + v + "}");
    ASSERT_FALSE(p) << v;
    EXPECT_EQ(p.error().field, "interval_s") << v;
  }
  auto ok = codec::decode_new_meter(R"({"meter_id":"a","interval_s":86400})");
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->interval_s, 86400);
}

// fuzz_shelly: Boost.JSON reads 1e8230 as infinity and writes it back as
// "Infinity": merge_shelly_status returned text that is not JSON, and the
// MQTT router keeps the merged text as the next base, so one bad number
// broke every later NotifyStatus delta of that component.
TEST(FuzzFindings, ShellyMergeNeverReturnsNonJson) {
  auto m = codec::merge_shelly_status(R"({"id":0,"a_voltage":1e8230})", R"({"i":30})");
  ASSERT_FALSE(m);
  EXPECT_EQ(m.error().code, "malformed_json");
  EXPECT_FALSE(codec::merge_shelly_status(R"({"id":0})", R"({"x":[-1e999]})"));
  auto ok = codec::merge_shelly_status(R"({"id":0,"apower":1})", R"({"apower":1e308})");
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->find("Infinity"), std::string::npos) << *ok;
}

// The same for the tariff a PATCH carries: it was kept as serialized text
// with "Infinity" in it.
TEST(FuzzFindings, PatchTariffWithAnInfiniteNumberIsRefused) {
  auto p = codec::decode_meter_patch(R"({"tariff":{"currency":"EUR","price_per_kwh":1e999}})");
  ASSERT_FALSE(p);
  EXPECT_EQ(p.error().field, "tariff");
}

// fuzz_thingsboard: Boost.JSON 1.81 reads "0e3080000" (zero) as NaN, and the
// ThingsBoard decoder cast that "ts" to an integer (UBSan: -nan is outside the
// range of long). Now refused like any time outside years 0000..9999.
TEST(FuzzFindings, ThingsBoardTsThatParsesAsNanIsRefused) {
  codec::DecodeOptions opts;
  opts.now = 1'800'000'000'000;  // 2027: the accepted reading below is in the past
  for (const char* body : {R"({"ts": 0e3080000, "values": {"voltage": 230}})",
                           R"({"ts": 1e400, "values": {"voltage": 230}})",
                           R"({"ts": 253402300800000, "values": {"voltage": 230}})"}) {
    auto r = codec::decode_thingsboard(body, "tb", opts);
    ASSERT_FALSE(r) << body;
    EXPECT_EQ(r.error().field, "ts") << body;
  }
  auto ok = codec::decode_thingsboard(
      R"({"ts": 1700000000000, "values": {"voltage": 230, "current": 1, "power": 230, "energy": 1}})",
      "tb", opts);
  ASSERT_TRUE(ok) << ok.error().message;
  EXPECT_EQ(ok->at(0).ts, 1700000000000);
}

}  // namespace
}  // namespace meterhub
