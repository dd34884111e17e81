#include "codec/json_input.hpp"

#include <boost/json/parser.hpp>
#include <cmath>

namespace meterhub::codec {
namespace json = boost::json;

bool as_number(const json::value& v, double& out) {
  switch (v.kind()) {
    case json::kind::double_:
      out = v.get_double();
      return true;
    case json::kind::int64:
      out = static_cast<double>(v.get_int64());
      return true;
    case json::kind::uint64:
      out = static_cast<double>(v.get_uint64());
      return true;
    default:
      return false;
  }
}

bool all_finite(const json::value& v) {
  switch (v.kind()) {
    case json::kind::double_:
      return std::isfinite(v.get_double());
    case json::kind::array:
      for (const auto& x : v.get_array())
        if (!all_finite(x)) return false;
      return true;
    case json::kind::object:
      for (const auto& kv : v.get_object())
        if (!all_finite(kv.value())) return false;
      return true;
    default:
      return true;
  }
}

core::Result<json::value> parse_json(std::string_view text, json::storage_ptr sp,
                                     unsigned max_depth, std::string_view what) {
  if (text.find_first_not_of(" \t\r\n") == std::string_view::npos)
    return core::fail("empty_body", std::string(what) + " is empty; expected JSON");
  json::parse_options po;
  po.max_depth = max_depth;
  json::parser p(json::storage_ptr(), po);
  p.reset(std::move(sp));
  json::error_code ec;
  std::size_t used = p.write(text.data(), text.size(), ec);
  if (ec)
    return core::fail("malformed_json", std::string(what) + " is not valid JSON near byte " +
                                            std::to_string(used) + ": " + ec.message());
  return p.release();
}

}  // namespace meterhub::codec
