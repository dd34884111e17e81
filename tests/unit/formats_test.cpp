// codec/formats.hpp: the vendors' documented example payloads decode to the
// readings docs/formats.md promises, and every bad input is a clear error
// (code, field), never a crash.
#include "codec/formats.hpp"

#include <gtest/gtest.h>

#include <boost/json/parse.hpp>

#include "core/time.hpp"
#include "query/calendar.hpp"

namespace meterhub::codec {
namespace {

using core::Reading;

constexpr core::TimeMs kNow = 1764234000000;  // 2025-11-27T09:00:00Z

DecodeOptions opts() {
  DecodeOptions o;
  o.now = kNow;
  o.max_readings = 10;
  return o;
}

core::Error tb_err(std::string_view body) {
  auto r = decode_thingsboard(body, "kitchen", opts());
  EXPECT_FALSE(r) << body;
  return r ? core::Error{} : r.error();
}

// --- ThingsBoard ------------------------------------------------------------

TEST(ThingsBoard, FlatValuesGetServerTime) {
  auto r = decode_thingsboard(
      R"({"voltage":230.1,"current":1.52,"power":349.8,"energy":1234.567,"rssi":-60})",
      "kitchen", opts());
  ASSERT_TRUE(r) << r.error().message;
  ASSERT_EQ(r->size(), 1u);
  const Reading& x = (*r)[0];
  EXPECT_EQ(x.meter_id, "kitchen");
  EXPECT_EQ(x.ts, kNow);
  EXPECT_DOUBLE_EQ(x.voltage, 230.1);
  EXPECT_DOUBLE_EQ(x.current, 1.52);
  EXPECT_DOUBLE_EQ(x.power, 349.8);
  EXPECT_DOUBLE_EQ(x.energy, 1234.567);
  EXPECT_FALSE(x.frequency);
  EXPECT_FALSE(x.power_factor);
}

TEST(ThingsBoard, TsValuesAndArraysAndAliases) {
  // The documented forms: {"ts":..,"values":{..}} and an array of them.
  auto r = decode_thingsboard(
      R"([{"ts":1764233940000,"values":{"Voltage":229,"Current":1,"Power":229,"kwh":10,"freq":50.02,"pf":0.9}},
          {"ts":1764233950000,"values":{"voltage":229,"current":1,"power":229,"energy_wh":10500,"frequency":49.9,"power_factor":0.8}},
          {"voltage":231,"current":2,"power":400,"energy_kwh":11}])",
      "kitchen", opts());
  ASSERT_TRUE(r) << r.error().message;
  ASSERT_EQ(r->size(), 3u);
  EXPECT_EQ((*r)[0].ts, 1764233940000);
  EXPECT_DOUBLE_EQ((*r)[0].energy, 10);
  EXPECT_DOUBLE_EQ(*(*r)[0].frequency, 50.02);
  EXPECT_DOUBLE_EQ(*(*r)[0].power_factor, 0.9);
  EXPECT_DOUBLE_EQ((*r)[1].energy, 10.5);  // Wh -> kWh
  EXPECT_DOUBLE_EQ(*(*r)[1].frequency, 49.9);
  EXPECT_EQ((*r)[2].ts, kNow);
  EXPECT_DOUBLE_EQ((*r)[2].energy, 11);
}

TEST(ThingsBoard, AliasPrecedenceIsFixed) {
  // "energy" is listed before "kwh": it wins whatever the key order.
  auto r = decode_thingsboard(R"({"kwh":2,"voltage":1,"current":1,"power":1,"energy":1})", "m",
                              opts());
  ASSERT_TRUE(r);
  EXPECT_DOUBLE_EQ((*r)[0].energy, 1);
}

TEST(ThingsBoard, BadInputIsAClearError) {
  EXPECT_EQ(tb_err("").code, "empty_body");
  EXPECT_EQ(tb_err("{").code, "malformed_json");
  EXPECT_EQ(tb_err(R"({"voltage":NaN,"current":1,"power":1,"energy":1})").code, "malformed_json");
  EXPECT_EQ(tb_err(R"({"voltage":1e999,"current":1,"power":1,"energy":1})").field, "voltage");
  EXPECT_EQ(tb_err(R"({"voltage":1,"current":1,"power":1,"energy_wh":-1e999})").field, "energy");
  EXPECT_EQ(tb_err("[]").code, "empty_batch");
  EXPECT_EQ(tb_err("[" + std::string(R"({"voltage":1,"current":1,"power":1,"energy":1},)") + "1]")
                .index,
            std::optional<std::size_t>(1));
  EXPECT_EQ(tb_err("42").code, "invalid_reading");
  auto missing = tb_err(R"({"voltage":230,"current":1,"power":1})");
  EXPECT_EQ(missing.code, "invalid_reading");
  EXPECT_EQ(missing.field, "energy");
  EXPECT_NE(missing.message.find("kwh"), std::string::npos) << missing.message;
  auto wrong = tb_err(R"({"voltage":"230","current":1,"power":1,"energy":1})");
  EXPECT_EQ(wrong.field, "voltage");
  EXPECT_NE(wrong.message.find("got a string"), std::string::npos);
  auto range = tb_err(R"({"voltage":1200,"current":1,"power":1,"energy":1})");
  EXPECT_EQ(range.field, "voltage");
  EXPECT_EQ(tb_err(R"({"ts":"x","values":{"voltage":1,"current":1,"power":1,"energy":1}})").field,
            "ts");
  EXPECT_EQ(tb_err(R"({"ts":1e300,"values":{"voltage":1,"current":1,"power":1,"energy":1}})").field,
            "ts");
  EXPECT_EQ(tb_err(R"({"ts":1000,"values":{"voltage":1,"current":1,"power":1,"energy":1}})").field,
            "ts");  // 1970: device clock not set
  EXPECT_EQ(tb_err(R"({"ts":1764234000000,"values":[1]})").field, "values");
  EXPECT_EQ(tb_err(R"({"pf":1.5,"voltage":1,"current":1,"power":1,"energy":1})").field,
            "power_factor");
  std::string big = "[";
  for (int i = 0; i < 11; ++i) big += std::string(i ? "," : "") + "{}";
  EXPECT_EQ(tb_err(big + "]").code, "batch_too_large");
  EXPECT_EQ(decode_thingsboard(R"({"voltage":1,"current":1,"power":1,"energy":1})", "a/b", opts())
                .error()
                .field,
            "meter_id");
}

// --- Emoncms ------------------------------------------------------------------

TEST(Emoncms, FulljsonAndTime) {
  EmoncmsPost in;
  in.node = "emontx";
  in.fulljson = R"({"power":100,"vrms":240.5,"irms":0.42,"kwh":12.5,"temp1":21.3})";
  in.time = "1764233000";
  auto r = decode_emoncms_post(in, opts());
  ASSERT_TRUE(r) << r.error().message;
  ASSERT_EQ(r->size(), 1u);
  EXPECT_EQ((*r)[0].meter_id, "emontx");
  EXPECT_EQ((*r)[0].ts, 1764233000000);
  EXPECT_DOUBLE_EQ((*r)[0].voltage, 240.5);
  EXPECT_DOUBLE_EQ((*r)[0].current, 0.42);
  EXPECT_DOUBLE_EQ((*r)[0].power, 100);
  EXPECT_DOUBLE_EQ((*r)[0].energy, 12.5);

  in.time.reset();
  in.fulljson = R"({"power":100,"voltage":240,"current":0.4,"energy":12.5,"time":1764233100})";
  r = decode_emoncms_post(in, opts());
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ((*r)[0].ts, 1764233100000);
}

TEST(Emoncms, RelaxedJsonAndData) {
  EmoncmsPost in;
  in.node = "10";
  in.json = "{power:200.5,voltage:239,current:0.9,energy:3}";
  auto r = decode_emoncms_post(in, opts());
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ((*r)[0].ts, kNow);
  EXPECT_DOUBLE_EQ((*r)[0].power, 200.5);
  in.json.reset();
  in.data = "power:1,voltage:2,current:3,\"energy\":4";
  r = decode_emoncms_post(in, opts());
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_DOUBLE_EQ((*r)[0].energy, 4);
}

TEST(Emoncms, BadInputIsAClearError) {
  auto err = [](EmoncmsPost in) {
    auto r = decode_emoncms_post(in, opts());
    EXPECT_FALSE(r);
    return r ? core::Error{} : r.error();
  };
  EmoncmsPost ok;
  ok.node = "n";
  ok.json = "power:1,voltage:2,current:3,energy:4";
  EmoncmsPost e = ok;
  e.node.reset();
  EXPECT_EQ(err(e).field, "node");
  EXPECT_EQ(err(e).code, "invalid_parameter");
  e = ok;
  e.json.reset();
  EXPECT_EQ(err(e).code, "invalid_parameter");
  e.csv = "1,2,3,4";
  EXPECT_EQ(err(e).field, "csv");
  e = ok;
  e.fulljson = "{}";
  EXPECT_EQ(err(e).code, "invalid_parameter");  // two value parameters
  e = ok;
  e.json = "power:abc,voltage:2,current:3,energy:4";
  EXPECT_EQ(err(e).field, "power");
  e.json = "1,2,3";
  EXPECT_EQ(err(e).code, "invalid_parameter");
  e.json = "power:nan,voltage:2,current:3,energy:4";
  EXPECT_EQ(err(e).field, "power");
  e.json = "";
  EXPECT_EQ(err(e).code, "invalid_parameter");
  e = ok;
  e.time = "yesterday";
  EXPECT_EQ(err(e).field, "time");
  e.time = "1e300";
  EXPECT_EQ(err(e).field, "time");
  e = ok;
  e.json.reset();
  e.fulljson = R"({"power":1,"voltage":2,"current":3})";
  EXPECT_EQ(err(e).field, "energy");
  e.fulljson = "[1]";
  EXPECT_EQ(err(e).code, "invalid_reading");
  e.fulljson = "{bad";
  EXPECT_EQ(err(e).code, "malformed_json");
  e.fulljson = R"({"power":true,"voltage":2,"current":3,"energy":4})";
  EXPECT_EQ(err(e).field, "power");
  e = ok;
  e.node = "a b";
  EXPECT_EQ(err(e).field, "meter_id");
}

TEST(Emoncms, BulkTimeForms) {
  const std::string data =
      R"([[1764233000,"house",{"power":100,"voltage":230,"current":0.5,"energy":1}],
          [1764233010,"house",{"power":110},{"voltage":231,"current":0.5,"energy":1.1}],
          [1764233020,16,{"power":120,"voltage":232,"current":0.5,"energy":1.2}]])";
  auto r = decode_emoncms_bulk({data, {}, {}, {}}, opts());
  ASSERT_TRUE(r) << r.error().message;
  ASSERT_EQ(r->size(), 3u);
  EXPECT_EQ((*r)[0].ts, 1764233000000);
  EXPECT_DOUBLE_EQ((*r)[1].power, 110);
  EXPECT_DOUBLE_EQ((*r)[1].voltage, 231);
  EXPECT_EQ((*r)[2].meter_id, "16");

  const std::string rel = R"([[0,"a",{"power":1,"voltage":2,"current":3,"energy":4}],
                              [4,"a",{"power":1,"voltage":2,"current":3,"energy":4}]])";
  r = decode_emoncms_bulk({rel, {}, {}, {}}, opts());  // legacy: the last is now
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ((*r)[0].ts, kNow - 4000);
  EXPECT_EQ((*r)[1].ts, kNow);
  r = decode_emoncms_bulk({rel, "1764233000", {}, {}}, opts());
  ASSERT_TRUE(r);
  EXPECT_EQ((*r)[1].ts, 1764233004000);
  r = decode_emoncms_bulk({rel, {}, "10", {}}, opts());
  ASSERT_TRUE(r);
  EXPECT_EQ((*r)[0].ts, kNow - 10000);
  r = decode_emoncms_bulk({rel, {}, {}, "-10"}, opts());
  ASSERT_TRUE(r);
  EXPECT_EQ((*r)[1].ts, kNow - 6000);
}

TEST(Emoncms, BulkBadInputIsAClearError) {
  auto err = [](std::string data, std::optional<std::string_view> time = {}) {
    auto r = decode_emoncms_bulk({data, time, {}, {}}, opts());
    EXPECT_FALSE(r) << data;
    return r ? core::Error{} : r.error();
  };
  EXPECT_EQ(err("").code, "empty_body");
  EXPECT_EQ(err("[[").code, "malformed_json");
  EXPECT_EQ(err("{}").code, "invalid_reading");
  EXPECT_EQ(err("[]").code, "empty_batch");
  auto positional = err("[[0,16,1137,1437]]");
  EXPECT_NE(positional.message.find("unnamed"), std::string::npos) << positional.message;
  EXPECT_EQ(positional.index, std::optional<std::size_t>(0));
  EXPECT_EQ(err("[[0,16]]").code, "invalid_reading");
  EXPECT_EQ(err(R"([["x",16,{}]])").field, "time");
  EXPECT_EQ(err(R"([[0,true,{"power":1,"voltage":2,"current":3,"energy":4}]])").field, "node");
  EXPECT_EQ(err(R"([[0,1.5,{"power":1,"voltage":2,"current":3,"energy":4}]])").field, "node");
  EXPECT_EQ(err(R"([[0,"a",{"power":1,"voltage":2,"current":3,"energy":4}]])", "soon").field,
            "time");
  EXPECT_EQ(err(R"([[1e300,"a",{"power":1,"voltage":2,"current":3,"energy":4}]])").code,
            "invalid_reading");
  auto second = err(R"([[0,"a",{"power":1,"voltage":2,"current":3,"energy":4}],
                        [1,"a",{"power":1,"voltage":2000,"current":3,"energy":4}]])");
  EXPECT_EQ(second.index, std::optional<std::size_t>(1));
  EXPECT_EQ(second.field, "voltage");
}

// --- Tasmota ----------------------------------------------------------------

class Tasmota : public ::testing::Test {
 protected:
  void SetUp() override {
    auto z = query::TimeZone::locate("Europe/Berlin");
    if (!z) GTEST_SKIP() << "no tz database: " << z.error().message;
    zone_.emplace(*z);
  }
  std::optional<query::TimeZone> zone_;
};

TEST_F(Tasmota, SingleChannelLocalTime) {
  // tele/sonoff-pow/SENSOR of a Sonoff POW R2 (Tasmota docs).
  const char* msg =
      R"({"Time":"2025-11-27T09:59:30","ENERGY":{"TotalStartTime":"2026-01-12T10:34:58",
          "Total":12.116,"Yesterday":0.5,"Today":0.116,"Period":0,"Power":25,
          "ApparentPower":27,"ReactivePower":10,"Factor":0.93,"Voltage":231,"Current":0.117}})";
  auto r = decode_tasmota_sensor("sonoff-pow", msg, *zone_, opts());
  ASSERT_TRUE(r) << r.error().message;
  ASSERT_EQ(r->size(), 1u);
  EXPECT_EQ((*r)[0].meter_id, "sonoff-pow");
  EXPECT_EQ((*r)[0].ts, kNow - 30000);  // CET = UTC+1
  EXPECT_DOUBLE_EQ((*r)[0].energy, 12.116);
  EXPECT_DOUBLE_EQ((*r)[0].power, 25);
  EXPECT_DOUBLE_EQ(*(*r)[0].power_factor, 0.93);
  EXPECT_FALSE((*r)[0].frequency);
}

TEST_F(Tasmota, DstAndOffsets) {
  auto at = [&](std::string time) {
    auto r = decode_tasmota_sensor(
        "t", R"({"Time":")" + time + R"(","ENERGY":{"Total":1,"Power":1,"Voltage":1,"Current":1}})",
        *zone_, opts());
    EXPECT_TRUE(r) << time << ": " << r.error().message;
    return r ? (*r)[0].ts : 0;
  };
  EXPECT_EQ(at("2025-07-01T12:00:00"), core::parse_iso8601("2025-07-01T10:00:00Z").value());
  // 02:30 happens twice on 2025-10-26: the first (CEST).
  EXPECT_EQ(at("2025-10-26T02:30:00"), core::parse_iso8601("2025-10-26T00:30:00Z").value());
  // 02:30 does not exist on 2025-03-30: moved forward by the gap (03:30 CEST).
  EXPECT_EQ(at("2025-03-30T02:30:00"), core::parse_iso8601("2025-03-30T01:30:00Z").value());
  EXPECT_EQ(at("2025-11-27T09:00:00+00:00"), kNow);
}

TEST_F(Tasmota, MultiChannel) {
  // A Shelly 2.5 / Sonoff Dual R3 on Tasmota with SetOption129 1.
  const char* msg =
      R"({"Time":"2025-11-27T10:00:00","ENERGY":{"Total":[1.5,2.5],"Power":[10,20],
          "Voltage":230,"Current":[0.1,0.2],"Factor":[0.5,0.6],"Frequency":50}})";
  auto r = decode_tasmota_sensor("dual", msg, *zone_, opts());
  ASSERT_TRUE(r) << r.error().message;
  ASSERT_EQ(r->size(), 2u);
  EXPECT_EQ((*r)[0].meter_id, "dual:1");
  EXPECT_EQ((*r)[1].meter_id, "dual:2");
  EXPECT_EQ((*r)[1].ts, kNow);
  EXPECT_DOUBLE_EQ((*r)[1].voltage, 230);
  EXPECT_DOUBLE_EQ((*r)[1].energy, 2.5);
  EXPECT_DOUBLE_EQ((*r)[1].power, 20);
  EXPECT_DOUBLE_EQ(*(*r)[1].frequency, 50);
}

TEST_F(Tasmota, BadInputIsAClearError) {
  auto err = [&](std::string msg) {
    auto r = decode_tasmota_sensor("t", msg, *zone_, opts());
    EXPECT_FALSE(r) << msg;
    return r ? core::Error{} : r.error();
  };
  EXPECT_EQ(err("").code, "empty_body");
  EXPECT_EQ(err("{").code, "malformed_json");
  EXPECT_EQ(err("[]").code, "invalid_reading");
  EXPECT_EQ(err(R"({"AM2301":{"Temperature":20}})").field, "ENERGY");
  EXPECT_EQ(err(R"({"ENERGY":5})").field, "ENERGY");
  EXPECT_EQ(err(R"({"ENERGY":{"Power":1,"Voltage":1,"Current":1}})").field, "Total");
  EXPECT_EQ(err(R"({"ENERGY":{"Total":"1","Power":1,"Voltage":1,"Current":1}})").field, "Total");
  EXPECT_EQ(err(R"({"ENERGY":{"Total":1,"Power":[1,2],"Voltage":1,"Current":[1,1]}})").field,
            "Total");
  EXPECT_EQ(
      err(R"({"ENERGY":{"Total":[1,2],"Power":[1,2,3],"Voltage":1,"Current":[1,1]}})").field,
      "Power");
  EXPECT_EQ(err(R"({"ENERGY":{"Total":[],"Power":1,"Voltage":1,"Current":1}})").field, "Total");
  EXPECT_EQ(
      err(R"({"ENERGY":{"Total":[1,2],"Power":[1,"x"],"Voltage":1,"Current":[1,1]}})").field,
      "Power");
  EXPECT_EQ(err(R"({"Time":5,"ENERGY":{"Total":1,"Power":1,"Voltage":1,"Current":1}})").field,
            "Time");
  EXPECT_EQ(
      err(R"({"Time":"garbage","ENERGY":{"Total":1,"Power":1,"Voltage":1,"Current":1}})").field,
      "Time");
  EXPECT_EQ(err(R"({"ENERGY":{"Total":1,"Power":1,"Voltage":-1,"Current":1}})").field, "voltage");
  auto bad_topic = decode_tasmota_sensor(
      "a/b", R"({"ENERGY":{"Total":1,"Power":1,"Voltage":1,"Current":1}})", *zone_, opts());
  ASSERT_FALSE(bad_topic);
  EXPECT_EQ(bad_topic.error().field, "meter_id");
}

// --- Shelly -----------------------------------------------------------------

TEST(Shelly, SwitchStatus) {
  // shellyplus1pm-…/status/switch:0 (Shelly Gen2 API docs, Switch.GetStatus).
  const char* msg =
      R"({"id":0,"source":"init","output":true,"apower":8.9,"voltage":237.5,"current":0.068,
          "pf":-0.72,"freq":50.0,"aenergy":{"total":6.532,"by_minute":[45.199,47.141,88.397],
          "minute_ts":1654511572},"temperature":{"tC":23.5,"tF":74.4}})";
  auto r = decode_shelly_status("plug", "switch:0", msg, std::nullopt, opts());
  ASSERT_TRUE(r) << r.error().message;
  ASSERT_EQ(r->size(), 1u);
  EXPECT_EQ((*r)[0].ts, kNow);
  EXPECT_DOUBLE_EQ((*r)[0].power, 8.9);
  EXPECT_DOUBLE_EQ((*r)[0].energy, 0.006532);  // Wh -> kWh
  EXPECT_DOUBLE_EQ(*(*r)[0].power_factor, 0.72);
  EXPECT_DOUBLE_EQ(*(*r)[0].frequency, 50.0);
}

TEST(Shelly, Em1AndEm) {
  auto r = decode_shelly_status(
      "pro-em", "em1:0",
      R"({"id":0,"current":2.5,"voltage":230.2,"act_power":540.3,"aprt_power":575.4,"pf":0.94,"freq":50.0,"calibration":"factory"})",
      R"({"id":0,"total_act_energy":123456.7,"total_act_ret_energy":0})", opts());
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_DOUBLE_EQ((*r)[0].energy, 123.4567);
  EXPECT_DOUBLE_EQ((*r)[0].power, 540.3);

  std::string em = R"({"id":0,"a_current":4.029,"a_voltage":236.1,"a_act_power":951.2,
      "a_aprt_power":951.9,"a_pf":1,"a_freq":50,"b_current":4.027,"b_voltage":236.201,
      "b_act_power":-951.1,"b_aprt_power":951.8,"b_pf":1,"b_freq":50,"c_current":3.03,
      "c_voltage":236.3,"c_act_power":715.4,"c_aprt_power":715.9,"c_pf":1,"c_freq":50,
      "n_current":null,"total_current":11.086,"total_act_power":2715.5,"total_aprt_power":2619.6})";
  std::string data = R"({"id":0,"a_total_act_energy":1000,"a_total_act_ret_energy":0,
      "b_total_act_energy":2000,"b_total_act_ret_energy":0,"c_total_act_energy":3000,
      "c_total_act_ret_energy":0,"total_act":6000,"total_act_ret":0})";
  r = decode_shelly_status("pro3em", "em:0", em, data, opts());
  ASSERT_TRUE(r) << r.error().message;
  ASSERT_EQ(r->size(), 3u);
  EXPECT_EQ((*r)[1].meter_id, "pro3em:b");
  EXPECT_DOUBLE_EQ((*r)[1].power, -951.1);
  EXPECT_DOUBLE_EQ((*r)[1].energy, 2);
  EXPECT_DOUBLE_EQ((*r)[2].voltage, 236.3);
}

TEST(Shelly, BadInputIsAClearError) {
  auto err = [](std::string_view component, std::string_view msg,
                std::optional<std::string_view> data = std::nullopt) {
    auto r = decode_shelly_status("s", component, msg, data, opts());
    EXPECT_FALSE(r) << msg;
    return r ? core::Error{} : r.error();
  };
  EXPECT_EQ(err("light:0", "{}").field, "component");
  EXPECT_EQ(err("switch", "{}").field, "component");
  EXPECT_EQ(err("switch:0", "{").code, "malformed_json");
  EXPECT_EQ(err("switch:0", "[]").code, "invalid_reading");
  EXPECT_EQ(err("switch:0", R"({"apower":1,"voltage":1,"current":1})").field, "aenergy.total");
  EXPECT_EQ(err("switch:0", R"({"apower":1,"voltage":1,"current":1,"aenergy":5})").field,
            "aenergy");
  EXPECT_EQ(
      err("switch:0", R"({"apower":"1","voltage":1,"current":1,"aenergy":{"total":1}})").field,
      "apower");
  EXPECT_EQ(err("switch:0", R"({"voltage":1,"current":1,"aenergy":{"total":1}})").field, "apower");
  EXPECT_EQ(err("em1:0", R"({"act_power":1,"voltage":1,"current":1})").field, "energy_status");
  EXPECT_EQ(err("em1:0", R"({"act_power":1,"voltage":1,"current":1})", "{}").field,
            "total_act_energy");
  EXPECT_EQ(err("em:0", R"({"a_act_power":1})", R"({"a_total_act_energy":1})").field, "a_voltage");
}

TEST(Shelly, NotifyStatusMerge) {
  auto m = merge_shelly_status(
      R"({"switch:0":{"id":0,"apower":5,"aenergy":{"total":10,"minute_ts":1}},"sys":{"uptime":1}})",
      R"({"switch:0":{"apower":7,"aenergy":{"total":11}},"ts":1764234000.5})");
  ASSERT_TRUE(m) << m.error().message;
  auto v = boost::json::parse(*m);
  EXPECT_EQ(v.at("switch:0").at("apower").to_number<double>(), 7);
  EXPECT_EQ(v.at("switch:0").at("id").to_number<double>(), 0);
  EXPECT_EQ(v.at("switch:0").at("aenergy").at("total").to_number<double>(), 11);
  EXPECT_EQ(v.at("switch:0").at("aenergy").at("minute_ts").to_number<double>(), 1);
  EXPECT_EQ(v.at("sys").at("uptime").to_number<double>(), 1);
  EXPECT_FALSE(merge_shelly_status("{}", "[1]"));
  EXPECT_FALSE(merge_shelly_status("{", "{}"));
}

}  // namespace
}  // namespace meterhub::codec
