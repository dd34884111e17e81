#include "codec/reading_codec.hpp"

#include <gtest/gtest.h>

#include "test_util.hpp"

namespace meterhub::codec {
namespace {

using meterhub::testing::kT0;

DecodeOptions opts(std::size_t max = 5000) {
  DecodeOptions o;
  o.max_readings = max;
  o.now = kT0;
  o.future_tolerance_ms = 300000;
  return o;
}

constexpr const char* kOne =
    R"({"meter_id":"m1","voltage":230.1,"current":1.5,"power":345.2,"energy":12.5})";

core::Error err(std::string_view body, std::size_t max = 5000) {
  auto r = decode_readings(body, opts(max));
  EXPECT_FALSE(r) << body;
  return r ? core::Error{} : r.error();
}

TEST(Decode, SingleObjectUsesServerTimeWithoutTs) {
  auto r = decode_readings(kOne, opts());
  ASSERT_TRUE(r) << r.error().message;
  ASSERT_EQ(r->size(), 1u);
  const auto& x = (*r)[0];
  EXPECT_EQ(x.meter_id, "m1");
  EXPECT_EQ(x.ts, kT0);
  EXPECT_EQ(x.voltage, 230.1);
  EXPECT_EQ(x.current, 1.5);
  EXPECT_EQ(x.power, 345.2);
  EXPECT_EQ(x.energy, 12.5);
  EXPECT_FALSE(x.frequency);
  EXPECT_FALSE(x.power_factor);
}

TEST(Decode, ArrayAndWrappedBatch) {
  std::string arr = std::string("[") + kOne + "," + kOne + "]";
  auto a = decode_readings(arr, opts());
  ASSERT_TRUE(a);
  EXPECT_EQ(a->size(), 2u);
  auto w = decode_readings(std::string(R"({"readings":)") + arr + "}", opts());
  ASSERT_TRUE(w);
  EXPECT_EQ(w->size(), 2u);
}

TEST(Decode, TimestampForms) {
  auto ts_of = [](std::string ts) {
    std::string body =
        R"({"meter_id":"m","voltage":1,"current":1,"power":1,"energy":1,"ts":)" + ts + "}";
    auto r = decode_readings(body, opts());
    EXPECT_TRUE(r) << body << (r ? "" : r.error().message);
    return r ? (*r)[0].ts : -1;
  };
  EXPECT_EQ(ts_of("\"2026-01-01T00:00:00Z\""), kT0);
  EXPECT_EQ(ts_of("\"2026-01-01T01:00:00.250+01:00\""), kT0 + 250);
  EXPECT_EQ(ts_of("1767225600"), kT0);
  EXPECT_EQ(ts_of("1767225600.5"), kT0 + 500);
  EXPECT_EQ(ts_of("1767225600000"), kT0);
  EXPECT_EQ(ts_of("null"), kT0);
}

TEST(Decode, OptionalFieldsAndUnknownKeys) {
  auto r = decode_readings(
      R"({"meter_id":"m","voltage":1,"current":1,"power":-1,"energy":1,"frequency":50.02,)"
      R"("power_factor":0.93,"rssi":-70,"power_factor_typo":1})",
      opts());
  ASSERT_TRUE(r);
  EXPECT_EQ(*(*r)[0].frequency, 50.02);
  EXPECT_EQ(*(*r)[0].power_factor, 0.93);
  auto n = decode_readings(
      R"({"meter_id":"m","voltage":1,"current":1,"power":1,"energy":1,"frequency":null})", opts());
  ASSERT_TRUE(n);
  EXPECT_FALSE((*n)[0].frequency);
}

TEST(Decode, MalformedAndEmptyBodies) {
  EXPECT_EQ(err("").code, "empty_body");
  EXPECT_EQ(err("  \r\n").code, "empty_body");
  EXPECT_EQ(err("{").code, "malformed_json");
  EXPECT_EQ(err("{\"meter_id\":\"m\",}").code, "malformed_json");
  EXPECT_EQ(err(R"({"meter_id":"m","voltage":NaN,"current":1,"power":1,"energy":1})").code,
            "malformed_json");
  EXPECT_EQ(err(R"({"meter_id":"m","voltage":Infinity,"current":1,"power":1,"energy":1})").code,
            "malformed_json");
  EXPECT_EQ(err(std::string(kOne) + " trailing").code, "malformed_json");
  EXPECT_EQ(err("[]").code, "empty_batch");
  EXPECT_EQ(err("\"text\"").code, "invalid_reading");
  EXPECT_EQ(err("42").code, "invalid_reading");
  EXPECT_EQ(err(R"({"readings":{}})").code, "invalid_reading");
  EXPECT_EQ(err("[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]"
                "]]]]]]]]]]]]]]]]]]]]]]]]]")
                .code,
            "malformed_json");
  // invalid UTF-8 inside a JSON string is not JSON
  EXPECT_EQ(
      err("{\"meter_id\":\"m\xff\",\"voltage\":1,\"current\":1,\"power\":1,\"energy\":1}").code,
      "malformed_json");
}

TEST(Decode, HugeExponentIsRejectedNotStoredAsInfinity) {
  auto e = err(R"({"meter_id":"m","voltage":1e999,"current":1,"power":1,"energy":1})");
  EXPECT_TRUE(e.code == "malformed_json" || e.code == "invalid_reading") << e.code;
}

TEST(Decode, ErrorsNameIndexAndField) {
  std::string body = std::string("[") + kOne + "," +
                     R"({"meter_id":"m1","voltage":"230","current":1,"power":1,"energy":1})" + "]";
  auto e = err(body);
  EXPECT_EQ(e.code, "invalid_reading");
  EXPECT_EQ(e.index, 1u);
  EXPECT_EQ(e.field, "voltage");
  EXPECT_NE(e.message.find("readings[1].voltage"), std::string::npos) << e.message;

  auto missing = err(R"({"meter_id":"m1","voltage":1,"current":1,"power":1})");
  EXPECT_EQ(missing.field, "energy");
  EXPECT_FALSE(missing.index);
  EXPECT_EQ(err(R"({"voltage":1,"current":1,"power":1,"energy":1})").field, "meter_id");
  EXPECT_EQ(err(R"({"meter_id":7,"voltage":1,"current":1,"power":1,"energy":1})").field,
            "meter_id");
  EXPECT_EQ(err(R"({"meter_id":"m","voltage":true,"current":1,"power":1,"energy":1})").field,
            "voltage");
  EXPECT_EQ(err(R"({"meter_id":"m","voltage":1,"current":1,"power":1,"energy":1,"ts":[1]})").field,
            "ts");
  EXPECT_EQ(err(R"({"meter_id":"m","voltage":1,"current":1,"power":1,"energy":1,"ts":"yesterday"})")
                .field,
            "ts");
  EXPECT_EQ(err(R"({"meter_id":"m","voltage":1,"current":1,"power":1,"energy":1,"ts":0})").field,
            "ts");
  EXPECT_EQ(err(R"({"meter_id":"m","voltage":-1,"current":1,"power":1,"energy":1})").field,
            "voltage");
  EXPECT_EQ(err(R"({"meter_id":"a b","voltage":1,"current":1,"power":1,"energy":1})").field,
            "meter_id");
}

TEST(Decode, BatchLimit) {
  std::string body = "[";
  for (int i = 0; i < 4; ++i) body += std::string(i ? "," : "") + kOne;
  body += "]";
  EXPECT_TRUE(decode_readings(body, opts(4)));
  EXPECT_EQ(err(body, 3).code, "batch_too_large");
}

TEST(Encode, ReadingAndError) {
  core::Reading r = meterhub::testing::reading("m1", kT0 + 5, 345.2);
  r.current = 1.5;
  r.frequency = 50;
  EXPECT_EQ(encode_reading(r),
            R"({"meter_id":"m1","ts":"2026-01-01T00:00:00.005Z","voltage":230.1,"current":1.5,)"
            R"("power":345.2,"energy":12.5,"frequency":50})");
  core::Error e{"invalid_reading", "readings[2].voltage: bad \"x\"", 2, "voltage"};
  EXPECT_EQ(encode_error(e),
            R"({"error":{"code":"invalid_reading","message":"readings[2].voltage: bad \"x\"",)"
            R"("index":2,"field":"voltage"}})");
}

TEST(Encode, DecodeOfEncodedIsIdentity) {
  core::Reading r = meterhub::testing::reading("meter:1-a.b_c", kT0 - 1234, -1234.5678);
  r.power_factor = 0.87;
  auto back = decode_readings(encode_reading(r), opts());
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_EQ((*back)[0], r);
}

}  // namespace
}  // namespace meterhub::codec
