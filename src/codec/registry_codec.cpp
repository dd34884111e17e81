#include "codec/registry_codec.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

#include <algorithm>
#include <initializer_list>

#include "codec/json_input.hpp"
#include "codec/json_kind.hpp"
#include "core/validate.hpp"

namespace meterhub::codec {
namespace json = boost::json;
using core::Error;

namespace {

std::unexpected<Error> invalid(std::string_view field, std::string message) {
  return std::unexpected(
      Error{"invalid_parameter", std::move(message), std::nullopt, std::string(field)});
}

core::Result<json::object> parse_object(std::string_view body) {
  if (body.empty()) return core::fail("empty_body", "the request body is empty");
  json::parse_options po;
  po.max_depth = 8;
  std::error_code ec;
  json::value v = json::parse(json::string_view(body.data(), body.size()), ec, {}, po);
  if (ec) return core::fail("malformed_json", "body is not valid JSON: " + ec.message());
  if (!v.is_object())
    return core::fail("malformed_json", std::string("body must be a JSON object, got ") +
                                            kind_name(v));
  return std::move(v.get_object());
}

core::Result<void> only_keys(const json::object& o, std::initializer_list<std::string_view> allowed) {
  for (const auto& kv : o) {
    const std::string_view k(kv.key().data(), kv.key().size());
    if (std::find(allowed.begin(), allowed.end(), k) != allowed.end()) continue;
    std::string list;
    for (std::string_view a : allowed) list += (list.empty() ? "" : ", ") + std::string(a);
    const std::string field(k.substr(0, 32));
    return invalid(field, "unknown field \"" + field + "\" (allowed: " + list + ")");
  }
  return {};
}

// A string member of at most `max` characters (bytes of UTF-8; Boost.JSON
// has validated the encoding), without control characters.
core::Result<std::string> text_field(const json::value& v, std::string_view field, std::size_t max) {
  if (!v.is_string())
    return invalid(field, std::string(field) + " must be a string, got " + kind_name(v));
  const json::string& s = v.get_string();
  if (s.size() > max)
    return invalid(field, std::string(field) + " is longer than " + std::to_string(max) +
                              " characters");
  for (unsigned char c : s)
    if (c < 0x20 || c == 0x7f)
      return invalid(field, std::string(field) + " must not contain control characters");
  return std::string(s.data(), s.size());
}

core::Result<std::int64_t> interval_field(const json::value& v) {
  constexpr std::string_view f = "interval_s";
  double d = 0;
  if (!as_number(v, d))
    return invalid(f, "interval_s must be a whole number of seconds, got " +
                          std::string(kind_name(v)));
  // The range first: casting a double beyond int64 is undefined behaviour
  // (UBSan, found by fuzz/registry_fuzz.cpp with 5.5e55).
  if (d < 1 || d > static_cast<double>(kMeterIntervalMax) ||
      d != static_cast<double>(static_cast<std::int64_t>(d)))
    return invalid(f, "interval_s must be a whole number from 1 to " +
                          std::to_string(kMeterIntervalMax));
  return static_cast<std::int64_t>(d);
}

}  // namespace

core::Result<store::NewMeter> decode_new_meter(std::string_view body) {
  auto o = parse_object(body);
  if (!o) return std::unexpected(o.error());
  if (auto r = only_keys(*o, {"meter_id", "name", "location", "interval_s"}); !r)
    return std::unexpected(r.error());
  store::NewMeter m;
  const json::value* id = o->if_contains("meter_id");
  if (!id || id->is_null()) return invalid("meter_id", "meter_id is required");
  if (!id->is_string())
    return invalid("meter_id", std::string("meter_id must be a string, got ") + kind_name(*id));
  m.meter_id = std::string(id->get_string().data(), id->get_string().size());
  if (auto e = core::check_meter_id(m.meter_id))
    return std::unexpected(Error{"invalid_meter_id", e->message, std::nullopt, "meter_id"});
  if (const json::value* v = o->if_contains("name"); v && !v->is_null()) {
    auto t = text_field(*v, "name", kMeterNameMax);
    if (!t) return std::unexpected(t.error());
    m.name = std::move(*t);
  }
  if (const json::value* v = o->if_contains("location"); v && !v->is_null()) {
    auto t = text_field(*v, "location", kMeterLocationMax);
    if (!t) return std::unexpected(t.error());
    m.location = std::move(*t);
  }
  if (const json::value* v = o->if_contains("interval_s"); v && !v->is_null()) {
    auto i = interval_field(*v);
    if (!i) return std::unexpected(i.error());
    m.interval_s = *i;
  }
  return m;
}

core::Result<MeterPatchDoc> decode_meter_patch(std::string_view body) {
  auto o = parse_object(body);
  if (!o) return std::unexpected(o.error());
  if (auto r = only_keys(*o, {"name", "location", "interval_s", "tariff"}); !r)
    return std::unexpected(r.error());
  if (o->empty())
    return invalid("", "nothing to change: send name, location, interval_s or tariff");
  MeterPatchDoc d;
  for (auto [key, max] : {std::pair{"name", kMeterNameMax}, std::pair{"location", kMeterLocationMax}}) {
    const json::value* v = o->if_contains(key);
    if (!v) continue;
    if (v->is_null()) return invalid(key, std::string(key) + " cannot be null; use \"\" to clear it");
    auto t = text_field(*v, key, max);
    if (!t) return std::unexpected(t.error());
    (std::string_view(key) == "name" ? d.patch.name : d.patch.location) = std::move(*t);
  }
  if (const json::value* v = o->if_contains("interval_s")) {
    if (v->is_null()) {
      d.patch.interval_s = std::optional<std::int64_t>();
    } else {
      auto i = interval_field(*v);
      if (!i) return std::unexpected(i.error());
      d.patch.interval_s = std::optional<std::int64_t>(*i);
    }
  }
  if (const json::value* v = o->if_contains("tariff")) {
    if (v->is_null())
      d.tariff = std::optional<std::string>();
    else if (!v->is_object())
      return invalid("tariff", std::string("tariff must be an object or null, got ") + kind_name(*v));
    else if (!all_finite(*v))  // serialize() would write "Infinity", not JSON
      return invalid("tariff", "tariff holds a number out of range");
    else
      d.tariff = std::optional<std::string>(json::serialize(*v));
  }
  return d;
}

core::Result<NewTokenDoc> decode_new_token(std::string_view body) {
  auto o = parse_object(body);
  if (!o) return std::unexpected(o.error());
  if (auto r = only_keys(*o, {"name", "scope"}); !r) return std::unexpected(r.error());
  NewTokenDoc d;
  const json::value* name = o->if_contains("name");
  if (!name || name->is_null()) return invalid("name", "name is required (what the token is for)");
  auto t = text_field(*name, "name", kMeterNameMax);
  if (!t) return std::unexpected(t.error());
  if (t->empty()) return invalid("name", "name must not be empty");
  d.name = std::move(*t);
  if (const json::value* s = o->if_contains("scope"); s && !s->is_null()) {
    const std::string_view v = s->is_string()
                                   ? std::string_view(s->get_string().data(), s->get_string().size())
                                   : std::string_view();
    if (v == "read")
      d.scope = store::Scope::read;
    else if (v == "admin")
      d.scope = store::Scope::admin;
    else
      return invalid("scope", "scope must be \"read\" or \"admin\"");
  }
  return d;
}

}  // namespace meterhub::codec
