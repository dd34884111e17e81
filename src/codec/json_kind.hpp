// Internal to src/codec: how a JSON value's type is named in error messages
// ("voltage must be a number, got a string").
#pragma once

#include <boost/json/value.hpp>

namespace meterhub::codec {

inline const char* kind_name(const boost::json::value& v) {
  namespace json = boost::json;
  switch (v.kind()) {
    case json::kind::null:
      return "null";
    case json::kind::bool_:
      return "a boolean";
    case json::kind::int64:
    case json::kind::uint64:
    case json::kind::double_:
      return "a number";
    case json::kind::string:
      return "a string";
    case json::kind::array:
      return "an array";
    case json::kind::object:
      return "an object";
  }
  return "?";
}

}  // namespace meterhub::codec
