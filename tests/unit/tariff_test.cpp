// Tariffs: prices by local time of day, validation, and the JSON document.
#include "core/tariff.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>

#include "codec/tariff_codec.hpp"

namespace meterhub {
namespace {

using core::Tariff;
using core::TariffWindow;

constexpr int hm(int h, int m) { return h * 60 + m; }

Tariff flat(double price) { return Tariff{"EUR", price, {}}; }

// 07:00-23:00 at 0.30, else 0.18: a common two-rate (day/night) tariff.
Tariff day_night() { return Tariff{"EUR", 0.18, {{hm(7, 0), hm(23, 0), 0.30}}}; }

core::Error invalid(const Tariff& t) {
  auto r = core::validate_tariff(t);
  EXPECT_FALSE(r);
  return r ? core::Error{} : r.error();
}

// --- Prices ------------------------------------------------------------------

TEST(Tariff, FlatPriceEverywhere) {
  const Tariff t = flat(0.30);
  for (int m : {0, 1, 419, 420, 720, 1439}) EXPECT_EQ(t.price_at(m), 0.30) << m;
  EXPECT_TRUE(t.whole_hours());
  EXPECT_TRUE(core::validate_tariff(t));
}

TEST(Tariff, WindowIsHalfOpen) {
  const Tariff t = day_night();
  EXPECT_EQ(t.price_at(hm(0, 0)), 0.18);
  EXPECT_EQ(t.price_at(hm(6, 59)), 0.18);
  EXPECT_EQ(t.price_at(hm(7, 0)), 0.30);  // from is inside
  EXPECT_EQ(t.price_at(hm(22, 59)), 0.30);
  EXPECT_EQ(t.price_at(hm(23, 0)), 0.18);  // to is outside
  EXPECT_EQ(t.price_at(hm(23, 59)), 0.18);
  // Minutes are taken modulo a day.
  EXPECT_EQ(t.price_at(hm(7, 0) + 1440), 0.30);
  EXPECT_EQ(t.price_at(-1), 0.18);  // 23:59
  EXPECT_TRUE(t.whole_hours());
  EXPECT_TRUE(core::validate_tariff(t));
}

TEST(Tariff, WindowWrappingMidnight) {
  const Tariff t{"EUR", 0.25, {{hm(22, 0), hm(6, 0), 0.10}}};
  EXPECT_EQ(t.price_at(hm(21, 59)), 0.25);
  EXPECT_EQ(t.price_at(hm(22, 0)), 0.10);
  EXPECT_EQ(t.price_at(hm(23, 59)), 0.10);
  EXPECT_EQ(t.price_at(hm(0, 0)), 0.10);
  EXPECT_EQ(t.price_at(hm(5, 59)), 0.10);
  EXPECT_EQ(t.price_at(hm(6, 0)), 0.25);
  EXPECT_TRUE(core::validate_tariff(t));
}

TEST(Tariff, WindowsUpToMidnightAndBackToBack) {
  // 18:00-24:00 and 00:00-06:00 touch at midnight without overlapping;
  // 07:00-23:00 and 23:00-07:00 cover the whole day between them.
  const Tariff evening{"EUR", 0.2, {{hm(18, 0), 1440, 0.4}, {0, hm(6, 0), 0.1}}};
  EXPECT_TRUE(core::validate_tariff(evening));
  EXPECT_EQ(evening.price_at(hm(23, 59)), 0.4);
  EXPECT_EQ(evening.price_at(0), 0.1);
  EXPECT_EQ(evening.price_at(hm(6, 0)), 0.2);
  const Tariff both{"EUR", 9.9, {{hm(7, 0), hm(23, 0), 0.3}, {hm(23, 0), hm(7, 0), 0.18}}};
  EXPECT_TRUE(core::validate_tariff(both));
  for (int m = 0; m < 1440; ++m) EXPECT_NE(both.price_at(m), 9.9) << m;
}

TEST(Tariff, WholeHours) {
  EXPECT_FALSE((Tariff{"EUR", 0.2, {{hm(7, 30), hm(23, 0), 0.3}}}.whole_hours()));
  EXPECT_FALSE((Tariff{"EUR", 0.2, {{hm(7, 0), hm(22, 45), 0.3}}}.whole_hours()));
  EXPECT_TRUE((Tariff{"EUR", 0.2, {{hm(22, 0), 1440, 0.3}}}.whole_hours()));
}

// --- Validation --------------------------------------------------------------

TEST(Tariff, RejectsOverlappingWindows) {
  // 22:00-06:00 wraps into 07:00-23:00's 22:00-23:00.
  auto e = invalid(Tariff{"EUR", 0.2, {{hm(7, 0), hm(23, 0), 0.3}, {hm(22, 0), hm(6, 0), 0.1}}});
  EXPECT_EQ(e.code, "invalid_tariff");
  EXPECT_EQ(e.field, "windows[1]");
  EXPECT_NE(e.message.find("overlaps windows[0] (07:00-23:00)"), std::string::npos) << e.message;
  // Overlap after midnight only: 22:00-06:00 and 05:00-07:00.
  EXPECT_EQ(
      invalid(Tariff{"EUR", 0.2, {{hm(22, 0), hm(6, 0), 0.1}, {hm(5, 0), hm(7, 0), 0.1}}}).field,
      "windows[1]");
  // The same window twice; and one inside another.
  EXPECT_FALSE(core::validate_tariff(Tariff{"EUR", 0.2, {{60, 120, 0.1}, {60, 120, 0.1}}}));
  EXPECT_FALSE(core::validate_tariff(Tariff{"EUR", 0.2, {{60, 600, 0.1}, {120, 180, 0.1}}}));
}

TEST(Tariff, RejectsBadCurrency) {
  for (const char* c : {"", "eur", "EURO", "EU", "E1R", "€"}) {
    Tariff t = flat(0.3);
    t.currency = c;
    auto e = invalid(t);
    EXPECT_EQ(e.code, "invalid_tariff") << c;
    EXPECT_EQ(e.field, "currency") << c;
  }
}

TEST(Tariff, RejectsNonFiniteAndHugePrices) {
  const double inf = std::numeric_limits<double>::infinity();
  for (double p : {std::nan(""), inf, -inf, 1e6 + 1, -1e7, 1e300}) {
    EXPECT_EQ(invalid(flat(p)).field, "price_per_kwh") << p;
    Tariff t = day_night();
    t.windows[0].price_per_kwh = p;
    EXPECT_EQ(invalid(t).field, "windows[0].price_per_kwh") << p;
  }
  // Negative prices exist (spot markets); the limits are inclusive.
  EXPECT_TRUE(core::validate_tariff(flat(-0.05)));
  EXPECT_TRUE(core::validate_tariff(flat(1e6)));
  EXPECT_TRUE(core::validate_tariff(flat(-1e6)));
}

TEST(Tariff, RejectsBadWindows) {
  EXPECT_EQ(invalid(Tariff{"EUR", 0.2, {{hm(7, 0), hm(7, 0), 0.3}}}).field, "windows[0]");
  EXPECT_EQ(invalid(Tariff{"EUR", 0.2, {{1440, 60, 0.3}}}).field, "windows[0].from");
  EXPECT_EQ(invalid(Tariff{"EUR", 0.2, {{-1, 60, 0.3}}}).field, "windows[0].from");
  EXPECT_EQ(invalid(Tariff{"EUR", 0.2, {{0, 1441, 0.3}}}).field, "windows[0].to");
  EXPECT_EQ(invalid(Tariff{"EUR", 0.2, {{0, 60, 0.3}, {60, -5, 0.3}}}).field, "windows[1].to");
  // 48 windows of half an hour fit; a 49th does not.
  Tariff many{"EUR", 0.2, {}};
  for (int i = 0; i < 48; ++i) many.windows.push_back({i * 30, i * 30 + 30, 0.1});
  EXPECT_TRUE(core::validate_tariff(many));
  many.windows.back().to_minute = 1430;
  many.windows.push_back({1430, 1440, 0.1});
  EXPECT_EQ(invalid(many).field, "windows");
}

// --- JSON --------------------------------------------------------------------

core::Error decode_error(std::string_view body) {
  auto r = codec::decode_tariff(body);
  EXPECT_FALSE(r) << body;
  return r ? core::Error{} : r.error();
}

TEST(TariffCodec, DecodesFlatAndWindowed) {
  auto f = codec::decode_tariff(R"({"currency":"EUR","price_per_kwh":0.30})");
  ASSERT_TRUE(f) << f.error().message;
  EXPECT_EQ(*f, flat(0.30));
  auto w = codec::decode_tariff(
      R"({"currency":"EUR","price_per_kwh":0.18,
          "windows":[{"from":"07:00","to":"23:00","price_per_kwh":0.30}]})");
  ASSERT_TRUE(w) << w.error().message;
  EXPECT_EQ(*w, day_night());
  // Integers are numbers; "windows" may be null or empty; 24:00 ends a day.
  auto i = codec::decode_tariff(
      R"({"currency":"SEK","price_per_kwh":2,"windows":[{"from":"18:00","to":"24:00","price_per_kwh":3}]})");
  ASSERT_TRUE(i) << i.error().message;
  EXPECT_EQ(*i, (Tariff{"SEK", 2.0, {{hm(18, 0), 1440, 3.0}}}));
  EXPECT_TRUE(codec::decode_tariff(R"({"currency":"EUR","price_per_kwh":1,"windows":null})"));
  EXPECT_TRUE(codec::decode_tariff(R"({"currency":"EUR","price_per_kwh":1,"windows":[]})"));
}

TEST(TariffCodec, EncodesTheSameDocument) {
  EXPECT_EQ(
      codec::encode_tariff(day_night()),
      R"({"currency":"EUR","price_per_kwh":0.18,"windows":[{"from":"07:00","to":"23:00","price_per_kwh":0.3}]})");
  EXPECT_EQ(codec::encode_tariff(flat(0.3)),
            R"({"currency":"EUR","price_per_kwh":0.3,"windows":[]})");
}

TEST(TariffCodec, RoundTrips) {
  const Tariff tariffs[] = {
      flat(0.3),
      day_night(),
      Tariff{"GBP", -0.0123456789, {{hm(22, 0), hm(6, 30), 0.1}, {hm(6, 30), hm(6, 45), 1e6}}},
      Tariff{"USD", 0.1, {{hm(0, 1), 1440, 0.2}}},
  };
  for (const Tariff& t : tariffs) {
    const std::string json = codec::encode_tariff(t);
    auto back = codec::decode_tariff(json);
    ASSERT_TRUE(back) << json << ": " << back.error().message;
    EXPECT_EQ(*back, t) << json;
  }
}

TEST(TariffCodec, ErrorsNameTheField) {
  EXPECT_EQ(decode_error("").code, "empty_body");
  EXPECT_EQ(decode_error("{").code, "malformed_json");
  EXPECT_EQ(decode_error(R"({"currency":"EUR",})").code, "malformed_json");

  struct Case {
    const char* body;
    const char* field;
  };
  const Case cases[] = {
      {R"([])", ""},
      {R"("EUR")", ""},
      {R"({"price_per_kwh":0.3})", "currency"},
      {R"({"currency":null,"price_per_kwh":0.3})", "currency"},
      {R"({"currency":978,"price_per_kwh":0.3})", "currency"},
      {R"({"currency":"eur","price_per_kwh":0.3})", "currency"},
      {R"({"currency":"EUR"})", "price_per_kwh"},
      {R"({"currency":"EUR","price_per_kwh":"0.3"})", "price_per_kwh"},
      {R"({"currency":"EUR","price_per_kwh":1e300})", "price_per_kwh"},
      {R"({"currency":"EUR","price_per_kwh":-2000000})", "price_per_kwh"},
      {R"({"currency":"EUR","price_per_kwh":0.3,"price":0.3})", "price"},
      {R"({"currency":"EUR","price_per_kwh":0.3,"windows":{}})", "windows"},
      {R"({"currency":"EUR","price_per_kwh":0.3,"windows":[1]})", "windows[0]"},
      {R"({"currency":"EUR","price_per_kwh":0.3,"windows":[{"from":"07:00","to":"23:00"}]})",
       "windows[0].price_per_kwh"},
      {R"({"currency":"EUR","price_per_kwh":0.3,"windows":[{"to":"23:00","price_per_kwh":1}]})",
       "windows[0].from"},
      {R"({"currency":"EUR","price_per_kwh":0.3,"windows":[{"from":"07:00","to":"23:00","price_per_kwh":1,"tier":2}]})",
       "windows[0].tier"},
      {R"({"currency":"EUR","price_per_kwh":0.3,"windows":[{"from":"00:00","to":"01:00","price_per_kwh":1},
                                                            {"from":"7:00","to":"23:00","price_per_kwh":1}]})",
       "windows[1].from"},
      {R"({"currency":"EUR","price_per_kwh":0.3,"windows":[{"from":"24:00","to":"01:00","price_per_kwh":1}]})",
       "windows[0].from"},
      {R"({"currency":"EUR","price_per_kwh":0.3,"windows":[{"from":"07:00","to":"24:01","price_per_kwh":1}]})",
       "windows[0].to"},
      {R"({"currency":"EUR","price_per_kwh":0.3,"windows":[{"from":"07:60","to":"08:00","price_per_kwh":1}]})",
       "windows[0].from"},
      {R"({"currency":"EUR","price_per_kwh":0.3,"windows":[{"from":700,"to":"08:00","price_per_kwh":1}]})",
       "windows[0].from"},
      {R"({"currency":"EUR","price_per_kwh":0.3,"windows":[{"from":"07:00","to":"08:00","price_per_kwh":1},
                                                            {"from":"07:30","to":"09:00","price_per_kwh":1}]})",
       "windows[1]"},
      {R"({"currency":"EUR","price_per_kwh":0.3,"windows":[{"from":"07:00","to":"07:00","price_per_kwh":1}]})",
       "windows[0]"},
  };
  for (const Case& c : cases) {
    auto e = decode_error(c.body);
    EXPECT_EQ(e.code, "invalid_tariff") << c.body << ": " << e.message;
    EXPECT_EQ(e.field, c.field) << c.body << ": " << e.message;
  }
  EXPECT_EQ(
      decode_error(R"({"currency":"EUR","price_per_kwh":0.3,"windows":[{"from":"7:00"}]})").message,
      "windows[0].from must be a time \"HH:MM\" (00:00 to 23:59), got \"7:00\"");
}

TEST(TariffCodec, NumbersBeyondDoubleAreRefused) {
  // Boost.JSON 1.81 reads a literal beyond the double range as +-infinity
  // (not as a parse error), so validation is what refuses it.
  for (const char* n : {"1e400", "-1e400", "1e300", "18446744073709551616"}) {
    auto e = decode_error(std::string(R"({"currency":"EUR","price_per_kwh":)") + n + "}");
    EXPECT_EQ(e.code, "invalid_tariff") << n;
    EXPECT_EQ(e.field, "price_per_kwh") << n;
  }
}

}  // namespace
}  // namespace meterhub
