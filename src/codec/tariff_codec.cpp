#include "codec/tariff_codec.hpp"

#include <boost/json/monotonic_resource.hpp>
#include <boost/json/parser.hpp>
#include <boost/json/value.hpp>

#include <algorithm>
#include <initializer_list>

#include "codec/json_kind.hpp"
#include "codec/json_writer.hpp"

namespace meterhub::codec {
namespace json = boost::json;
using core::Error;

namespace {

std::unexpected<Error> invalid(std::string field, std::string message) {
  return std::unexpected(
      Error{"invalid_tariff", std::move(message), std::nullopt, std::move(field)});
}

std::unexpected<Error> wrong_type(const std::string& field, std::string_view want,
                                  const json::value& got) {
  return invalid(field, field + " must be " + std::string(want) + ", got " + kind_name(got));
}

std::string_view view(const json::string& s) { return std::string_view(s.data(), s.size()); }

// "a.b" or "b" for a key of an object located at `prefix`.
std::string join(const std::string& prefix, std::string_view key) {
  return prefix.empty() ? std::string(key) : prefix + "." + std::string(key);
}

core::Result<void> only_keys(const json::object& o, const std::string& prefix,
                             std::initializer_list<std::string_view> allowed) {
  for (const auto& kv : o) {
    const std::string_view k(kv.key().data(), kv.key().size());
    if (std::find(allowed.begin(), allowed.end(), k) != allowed.end()) continue;
    std::string list;
    for (std::string_view a : allowed) list += (list.empty() ? "" : ", ") + std::string(a);
    const std::string field = join(prefix, std::string(k.substr(0, 32)));
    return invalid(field, "unknown field \"" + field + "\" (allowed: " + list + ")");
  }
  return {};
}

// The member `key` of `o`; an error naming it when it is missing or null.
core::Result<const json::value*> required(const json::object& o, const std::string& prefix,
                                          std::string_view key) {
  const json::value* v = o.if_contains(json::string_view(key.data(), key.size()));
  if (!v || v->is_null()) return invalid(join(prefix, key), join(prefix, key) + " is required");
  return v;
}

core::Result<double> number_field(const json::object& o, const std::string& prefix,
                                  std::string_view key) {
  auto v = required(o, prefix, key);
  if (!v) return std::unexpected(v.error());
  switch ((*v)->kind()) {
    case json::kind::double_:
      return (*v)->get_double();
    case json::kind::int64:
      return static_cast<double>((*v)->get_int64());
    case json::kind::uint64:
      return static_cast<double>((*v)->get_uint64());
    default:
      return wrong_type(join(prefix, key), "a number", **v);
  }
}

// "HH:MM" to minutes since midnight; 24:00 (1440) only when `end` is true.
core::Result<int> time_field(const json::object& o, const std::string& prefix, std::string_view key,
                             bool end) {
  auto v = required(o, prefix, key);
  if (!v) return std::unexpected(v.error());
  const std::string field = join(prefix, key);
  const std::string range = end ? "00:00 to 24:00" : "00:00 to 23:59";
  if (!(*v)->is_string()) return wrong_type(field, "a time \"HH:MM\" (" + range + ")", **v);
  const std::string_view s = view((*v)->get_string());
  auto digit = [&](std::size_t i) { return s[i] >= '0' && s[i] <= '9'; };
  const bool shape = s.size() == 5 && digit(0) && digit(1) && s[2] == ':' && digit(3) && digit(4);
  const int hh = shape ? (s[0] - '0') * 10 + (s[1] - '0') : -1;
  const int mm = shape ? (s[3] - '0') * 10 + (s[4] - '0') : -1;
  const bool ok = shape && mm <= 59 && (hh <= 23 || (end && hh == 24 && mm == 0));
  if (!ok) {
    return invalid(field, field + " must be a time \"HH:MM\" (" + range + "), got \"" +
                              std::string(s.substr(0, 16)) + "\"");
  }
  return hh * 60 + mm;
}

void write_hh_mm(JsonWriter& w, int minute) {
  const char s[5] = {
      static_cast<char>('0' + minute / 600), static_cast<char>('0' + minute / 60 % 10), ':',
      static_cast<char>('0' + minute % 60 / 10), static_cast<char>('0' + minute % 10)};
  w.string(std::string_view(s, sizeof s));
}

core::Result<core::TariffWindow> decode_window(const json::value& v, std::size_t i) {
  const std::string prefix = "windows[" + std::to_string(i) + "]";
  if (!v.is_object()) return wrong_type(prefix, "an object", v);
  const json::object& o = v.get_object();
  if (auto r = only_keys(o, prefix, {"from", "to", "price_per_kwh"}); !r)
    return std::unexpected(r.error());
  core::TariffWindow w;
  auto from = time_field(o, prefix, "from", false);
  if (!from) return std::unexpected(from.error());
  auto to = time_field(o, prefix, "to", true);
  if (!to) return std::unexpected(to.error());
  auto price = number_field(o, prefix, "price_per_kwh");
  if (!price) return std::unexpected(price.error());
  w.from_minute = *from;
  w.to_minute = *to;
  w.price_per_kwh = *price;
  return w;
}

}  // namespace

core::Result<core::Tariff> decode_tariff(std::string_view body) {
  if (body.find_first_not_of(" \t\r\n") == std::string_view::npos)
    return core::fail("empty_body", "request body is empty; expected a JSON tariff");

  unsigned char buf[4096];
  json::monotonic_resource mr(buf, sizeof buf);
  json::parse_options po;
  po.max_depth = 4;  // {"windows":[{...}]} needs 3
  json::parser p(json::storage_ptr(), po);
  p.reset(&mr);
  json::error_code ec;
  const std::size_t used = p.write(body.data(), body.size(), ec);
  if (ec) {
    return core::fail("malformed_json", "body is not valid JSON near byte " + std::to_string(used) +
                                            ": " + ec.message());
  }
  const json::value root = p.release();
  if (!root.is_object()) {
    return invalid("", std::string("a tariff must be a JSON object, got ") + kind_name(root));
  }
  const json::object& o = root.get_object();
  if (auto r = only_keys(o, "", {"currency", "price_per_kwh", "windows"}); !r)
    return std::unexpected(r.error());

  core::Tariff t;
  auto currency = required(o, "", "currency");
  if (!currency) return std::unexpected(currency.error());
  if (!(*currency)->is_string()) return wrong_type("currency", "a string", **currency);
  t.currency = std::string(view((*currency)->get_string()));
  auto price = number_field(o, "", "price_per_kwh");
  if (!price) return std::unexpected(price.error());
  t.price_per_kwh = *price;

  if (const json::value* ws = o.if_contains("windows"); ws && !ws->is_null()) {
    if (!ws->is_array()) return wrong_type("windows", "an array", *ws);
    const json::array& a = ws->get_array();
    if (a.size() > core::kMaxTariffWindows) {
      return invalid("windows", "at most " + std::to_string(core::kMaxTariffWindows) +
                                    " windows are allowed, got " + std::to_string(a.size()));
    }
    for (std::size_t i = 0; i < a.size(); ++i) {
      auto w = decode_window(a[i], i);
      if (!w) return std::unexpected(w.error());
      t.windows.push_back(*w);
    }
  }
  if (auto v = core::validate_tariff(t); !v) return std::unexpected(v.error());
  return t;
}

std::string encode_tariff(const core::Tariff& t) {
  std::string s;
  JsonWriter w(s);
  w.begin_object();
  w.key("currency").string(t.currency);
  w.key("price_per_kwh").number(t.price_per_kwh);
  w.key("windows").begin_array();
  for (const core::TariffWindow& win : t.windows) {
    w.begin_object();
    w.key("from");
    write_hh_mm(w, win.from_minute);
    w.key("to");
    write_hh_mm(w, win.to_minute);
    w.key("price_per_kwh").number(win.price_per_kwh);
    w.end_object();
  }
  w.end_array();
  w.end_object();
  return s;
}

}  // namespace meterhub::codec
