// Alert rule bodies (codec/alert_codec): every mistake is a 400-worthy
// error naming the field; a valid body round-trips through the canonical form.
#include <gtest/gtest.h>

#include <string>

#include "codec/alert_codec.hpp"

namespace meterhub::codec {
namespace {

using alerts::RuleKind;

core::Error fails(const std::string& body) {
  auto r = decode_alert_rules(body);
  EXPECT_FALSE(r) << body;
  return r ? core::Error{} : r.error();
}

TEST(AlertCodec, DecodesEveryKind) {
  auto r = decode_alert_rules(R"({"rules":[
    {"kind":"over_voltage","threshold":253,"hysteresis":3,"hold_s":5},
    {"kind":"under_voltage","threshold":207},
    {"kind":"over_current","threshold":16,"hold_s":0.5},
    {"kind":"over_power","threshold":3680,"hysteresis":100},
    {"kind":"power_factor_below","threshold":0.85,"hysteresis":0.05},
    {"kind":"frequency_out_of_band","min":49.8,"max":50.2,"hysteresis":0.05,"hold_s":2},
    {"kind":"offline","after_s":300}]})");
  ASSERT_TRUE(r) << r.error().message;
  ASSERT_EQ(r->size(), 7u);
  EXPECT_EQ((*r)[0].kind, RuleKind::over_voltage);
  EXPECT_EQ((*r)[0].threshold, 253);
  EXPECT_EQ((*r)[0].hysteresis, 3);
  EXPECT_EQ((*r)[0].hold_ms, 5000);
  EXPECT_EQ((*r)[1].hysteresis, 0);
  EXPECT_EQ((*r)[2].hold_ms, 500);
  EXPECT_EQ((*r)[5].min, 49.8);
  EXPECT_EQ((*r)[5].max, 50.2);
  EXPECT_EQ((*r)[6].after_ms, 300'000);
  // Canonical form decodes to the same rules.
  auto again = decode_alert_rules(encode_alert_rules(*r));
  ASSERT_TRUE(again) << again.error().message;
  EXPECT_EQ(*again, *r);
}

TEST(AlertCodec, EmptyListIsValid) {
  auto r = decode_alert_rules(R"({"rules":[]})");
  ASSERT_TRUE(r);
  EXPECT_TRUE(r->empty());
  EXPECT_EQ(encode_alert_rules(*r), R"({"rules":[]})");
}

TEST(AlertCodec, RejectsBadBodies) {
  EXPECT_EQ(fails("").code, "empty_body");
  EXPECT_EQ(fails("{").code, "malformed_json");
  EXPECT_EQ(fails(R"({"rules":[{"kind":"over_voltage","threshold":NaN}]})").code, "malformed_json");
  EXPECT_EQ(fails("[]").code, "invalid_alert_rules");
  EXPECT_EQ(fails("{}").field, "rules");
  EXPECT_EQ(fails(R"({"rules":{}})").field, "rules");
  EXPECT_EQ(fails(R"({"rules":[],"x":1})").field, "x");
  EXPECT_EQ(fails(R"({"rules":[1]})").field, "rules[0]");
  // At most 16 KiB of rules (seven rules fit in well under 1 KiB).
  const auto big = fails(R"({"rules":[)" + std::string(17 * 1024, ' ') + "]}");
  EXPECT_EQ(big.code, "invalid_alert_rules");
  EXPECT_NE(big.message.find("too large"), std::string::npos) << big.message;
}

TEST(AlertCodec, RejectsBadRules) {
  auto e = fails(R"({"rules":[{"kind":"over_temperature","threshold":1}]})");
  EXPECT_EQ(e.code, "invalid_alert_rules");
  EXPECT_EQ(e.field, "rules[0].kind");
  EXPECT_EQ(e.index, 0u);
  EXPECT_NE(e.message.find("over_voltage"), std::string::npos) << "lists the kinds";
  EXPECT_EQ(fails(R"({"rules":[{"threshold":1}]})").field, "rules[0].kind");
  EXPECT_EQ(fails(R"({"rules":[{"kind":"over_voltage"}]})").field, "rules[0].threshold");
  EXPECT_EQ(fails(R"({"rules":[{"kind":"over_voltage","threshold":"253"}]})").field,
            "rules[0].threshold");
  EXPECT_EQ(fails(R"({"rules":[{"kind":"over_voltage","threshold":1e999}]})").field,
            "rules[0].threshold");
  EXPECT_EQ(fails(R"({"rules":[{"kind":"over_voltage","threshold":2000}]})").field,
            "rules[0].threshold");
  EXPECT_EQ(fails(R"({"rules":[{"kind":"over_voltage","threshold":253,"hold_s":-1}]})").field,
            "rules[0].hold_s");
  EXPECT_EQ(fails(R"({"rules":[{"kind":"over_voltage","threshold":253,"hysteresis":-1}]})").field,
            "rules[0].hysteresis");
  EXPECT_EQ(fails(R"({"rules":[{"kind":"over_voltage","threshold":253,"min":1}]})").field,
            "rules[0].min");
  EXPECT_EQ(fails(R"({"rules":[{"kind":"offline","after_s":0}]})").field, "rules[0].after_s");
  EXPECT_EQ(fails(R"({"rules":[{"kind":"offline","after_s":60,"hold_s":1}]})").field,
            "rules[0].hold_s");
  // A second rule of a kind.
  e = fails(R"({"rules":[{"kind":"offline","after_s":60},{"kind":"offline","after_s":90}]})");
  EXPECT_EQ(e.field, "rules[1].kind");
  EXPECT_EQ(e.index, 1u);
}

TEST(AlertCodec, HysteresisMustLeaveRoomToClear) {
  // Band: two hystereses must fit inside it.
  EXPECT_EQ(fails(R"({"rules":[{"kind":"frequency_out_of_band","min":49.8,"max":50.2,)"
                  R"("hysteresis":0.25}]})")
                .field,
            "rules[0].hysteresis");
  EXPECT_TRUE(decode_alert_rules(R"({"rules":[{"kind":"frequency_out_of_band","min":49.8,)"
                                 R"("max":50.2,"hysteresis":0.19}]})"));
  EXPECT_EQ(fails(R"({"rules":[{"kind":"frequency_out_of_band","min":50.2,"max":49.8}]})").field,
            "rules[0].max");
  // Over: the clear level threshold - hysteresis must stay in the field's range.
  EXPECT_EQ(fails(R"({"rules":[{"kind":"over_voltage","threshold":10,"hysteresis":10}]})").field,
            "rules[0].hysteresis");
  // Below: threshold + hysteresis must be a reachable power factor.
  EXPECT_EQ(
      fails(R"({"rules":[{"kind":"power_factor_below","threshold":0.9,"hysteresis":0.1}]})").field,
      "rules[0].hysteresis");
}

TEST(AlertCodec, AlertJson) {
  store::AlertRecord a;
  a.id = 7;
  a.meter_id = "m1";
  a.kind = "over_voltage";
  a.raised_at = 1'700'000'000'000;
  a.raised_value = 260.5;
  a.message = "voltage 260.5 V above 253 V";
  EXPECT_EQ(encode_ws_alert(a),
            R"({"type":"alert","event":"raised","alert":{"id":7,"meter_id":"m1",)"
            R"("kind":"over_voltage","active":true,"raised_at":"2023-11-14T22:13:20.000Z",)"
            R"("raised_value":260.5,"message":"voltage 260.5 V above 253 V","cleared_at":null,)"
            R"("cleared_value":null,"clear_message":""}})");
  a.cleared_at = a.raised_at + 1000;
  a.cleared_value = 249;
  const std::string cleared = encode_ws_alert(a);
  EXPECT_NE(cleared.find(R"("event":"cleared")"), std::string::npos);
  EXPECT_NE(cleared.find(R"("active":false)"), std::string::npos);
  EXPECT_NE(cleared.find(R"("cleared_value":249)"), std::string::npos);
}

}  // namespace
}  // namespace meterhub::codec
