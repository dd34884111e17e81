// A small streaming JSON writer for responses and WebSocket messages.
//
// Why not boost::json::serialize: Boost.JSON 1.81 prints doubles in
// scientific notation ("2.301E2"), and our clients (dashboards, scripts,
// spreadsheets) expect numbers written the way people read them. Here doubles
// go through std::to_chars, which gives the shortest text that round-trips
// exactly ("230.1"). Strings are escaped per RFC 8259; the caller guarantees
// they are valid UTF-8 (every string we emit was validated on input).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace meterhub::codec {

class JsonWriter {
 public:
  explicit JsonWriter(std::string& out) : out_(out) {}

  JsonWriter& begin_object();
  JsonWriter& end_object();
  JsonWriter& begin_array();
  JsonWriter& end_array();
  JsonWriter& key(std::string_view k);
  JsonWriter& string(std::string_view v);
  JsonWriter& number(double v);  // non-finite values are written as null
  JsonWriter& integer(std::int64_t v);
  JsonWriter& boolean(bool v);
  JsonWriter& null();
  JsonWriter& raw(std::string_view json);  // an already-encoded JSON value

 private:
  void before_value();

  std::string& out_;
  std::vector<bool> first_{true};  // per open container: no comma needed yet
  bool after_key_ = false;
};

void append_json_string(std::string& out, std::string_view v);
void append_json_number(std::string& out, double v);

}  // namespace meterhub::codec
