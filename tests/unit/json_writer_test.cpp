#include "codec/json_writer.hpp"

#include <gtest/gtest.h>

#include <boost/json/parse.hpp>
#include <limits>

namespace meterhub::codec {
namespace {

std::string num(double v) {
  std::string s;
  append_json_number(s, v);
  return s;
}

TEST(JsonWriter, NumbersAreShortestRoundTrip) {
  EXPECT_EQ(num(230.1), "230.1");
  EXPECT_EQ(num(230), "230");
  EXPECT_EQ(num(0.1 + 0.2), "0.30000000000000004");
  EXPECT_EQ(num(-5000.25), "-5000.25");
  EXPECT_EQ(num(1e-7), "1e-07");
  // plain notation between 1e-6 and 1e21, as JavaScript prints numbers
  EXPECT_EQ(num(1000000), "1000000");
  EXPECT_EQ(num(1e12), "1000000000000");
  EXPECT_EQ(num(-1e7), "-10000000");
  EXPECT_EQ(num(0.0001), "0.0001");
  EXPECT_EQ(num(0.000001), "0.000001");
  EXPECT_EQ(num(123456789.125), "123456789.125");
  EXPECT_EQ(num(1e21), "1e+21");
  EXPECT_EQ(num(0.0), "0");
  EXPECT_EQ(num(-0.0), "-0");
  EXPECT_EQ(num(std::numeric_limits<double>::quiet_NaN()), "null");
  for (double v : {230.1, 1.0 / 3.0, 12345.678901234, 1e300, 5e-324}) {
    EXPECT_EQ(std::strtod(num(v).c_str(), nullptr), v);
  }
}

TEST(JsonWriter, EscapesStringsAndKeepsOutputValidJson) {
  std::string s;
  append_json_string(s, "a\"b\\c\n\x01\x7f");
  EXPECT_EQ(s, R"("a\"b\\c\n\u0001\u007f")");
  s.clear();
  append_json_string(s, "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");  // valid UTF-8 kept
  EXPECT_EQ(s, "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"");
  for (std::string bad : {std::string("\xff"), std::string("\xc3"), std::string("\xed\xa0\x80"),
                          std::string("\xc0\xaf"), std::string("\xf4\x90\x80\x80")}) {
    s.clear();
    append_json_string(s, bad);
    // each invalid byte becomes U+FFFD (EF BF BD), so the output stays valid UTF-8
    EXPECT_EQ(s.substr(0, 4), "\"\xef\xbf\xbd")
        << "input byte " << int(static_cast<unsigned char>(bad[0]));
    boost::json::error_code ec;
    boost::json::parse(s, ec);
    EXPECT_FALSE(ec);
  }
}

TEST(JsonWriter, NestedContainersGetCommasRight) {
  std::string s;
  JsonWriter w(s);
  w.begin_object().key("a").integer(1).key("b").begin_array();
  w.number(1.5).null().boolean(true).begin_object().end_object().raw("{\"x\":1}");
  w.end_array().key("c").string("d").end_object();
  EXPECT_EQ(s, R"({"a":1,"b":[1.5,null,true,{},{"x":1}],"c":"d"})");
}

}  // namespace
}  // namespace meterhub::codec
