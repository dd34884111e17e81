#include "codec/reading_codec.hpp"

#include <boost/json/monotonic_resource.hpp>
#include <boost/json/value.hpp>

#include "codec/json_input.hpp"
#include "codec/json_kind.hpp"
#include "codec/json_writer.hpp"
#include "core/time.hpp"
#include "core/validate.hpp"

namespace meterhub::codec {
namespace json = boost::json;
using core::Error;
using core::Reading;

namespace {

// Location prefix for messages: "readings[3].voltage" or "voltage".
std::string where(std::optional<std::size_t> index, std::string_view field) {
  std::string s;
  if (index) s = "readings[" + std::to_string(*index) + "]";
  if (!field.empty()) {
    if (!s.empty()) s += '.';
    s += field;
  }
  return s;
}

Error located(Error e, std::optional<std::size_t> index) {
  e.index = index;
  std::string loc = where(index, "");
  if (!loc.empty()) e.message = loc + ": " + e.message;
  return e;
}

Error type_error(std::optional<std::size_t> index, std::string_view field, std::string_view want,
                 const json::value& got) {
  return Error{"invalid_reading",
               where(index, field) + " must be " + std::string(want) + ", got " + kind_name(got),
               index, std::string(field)};
}

core::Result<Reading> decode_one(const json::value& v, std::optional<std::size_t> index,
                                 const DecodeOptions& opts) {
  if (!v.is_object()) {
    return std::unexpected(Error{"invalid_reading",
                                 (index ? where(index, "") : std::string("body")) +
                                     " must be a reading object, got " + kind_name(v),
                                 index,
                                 {}});
  }
  const json::object& o = v.get_object();
  Reading r;

  const json::value* id = o.if_contains("meter_id");
  if (!id || id->is_null())
    return std::unexpected(
        Error{"invalid_reading", where(index, "meter_id") + " is required", index, "meter_id"});
  if (!id->is_string()) return std::unexpected(type_error(index, "meter_id", "a string", *id));
  r.meter_id.assign(id->get_string().data(), id->get_string().size());

  struct Field {
    std::string_view name;
    double* required;
    std::optional<double>* optional;
  };
  const Field fields[] = {
      {"voltage", &r.voltage, nullptr},     {"current", &r.current, nullptr},
      {"power", &r.power, nullptr},         {"energy", &r.energy, nullptr},
      {"frequency", nullptr, &r.frequency}, {"power_factor", nullptr, &r.power_factor},
  };
  for (const Field& f : fields) {
    const json::value* fv = o.if_contains(json::string_view(f.name.data(), f.name.size()));
    if (!fv || fv->is_null()) {
      if (f.required)
        return std::unexpected(Error{"invalid_reading", where(index, f.name) + " is required",
                                     index, std::string(f.name)});
      continue;
    }
    double d;
    if (!as_number(*fv, d)) return std::unexpected(type_error(index, f.name, "a number", *fv));
    if (f.required)
      *f.required = d;
    else
      *f.optional = d;
  }

  const json::value* ts = o.if_contains("ts");
  if (!ts || ts->is_null()) {
    r.ts = opts.now;
  } else {
    double d;
    core::Result<core::TimeMs> t;
    if (ts->is_string())
      t = core::parse_iso8601(std::string_view(ts->get_string().data(), ts->get_string().size()));
    else if (as_number(*ts, d))
      t = core::from_epoch_number(d);
    else
      return std::unexpected(type_error(index, "ts", "a string or a number", *ts));
    if (!t) {
      Error e = t.error();
      e.code = "invalid_reading";
      e.field = "ts";
      e.message = "ts: " + e.message;
      return std::unexpected(located(std::move(e), index));
    }
    r.ts = *t;
  }

  if (auto e = core::check_reading(r, opts.now, opts.future_tolerance_ms))
    return std::unexpected(located(std::move(*e), index));
  return r;
}

}  // namespace

core::Result<std::vector<Reading>> decode_readings(std::string_view body,
                                                   const DecodeOptions& opts) {
  if (body.find_first_not_of(" \t\r\n") == std::string_view::npos)
    return core::fail("empty_body", "request body is empty; expected a JSON reading");

  unsigned char buf[16384];
  json::monotonic_resource mr(buf, sizeof buf);
  auto parsed = parse_json(body, &mr, 8, "body");  // {"readings":[{...}]} needs 3
  if (!parsed) return std::unexpected(std::move(parsed.error()));
  json::value root = std::move(*parsed);

  const json::array* batch = nullptr;
  if (root.is_array()) {
    batch = &root.get_array();
  } else if (root.is_object()) {
    if (const json::value* list = root.get_object().if_contains("readings")) {
      if (!list->is_array())
        return core::fail("invalid_reading",
                          std::string("\"readings\" must be an array, got ") + kind_name(*list));
      batch = &list->get_array();
    }
  } else {
    return core::fail(
        "invalid_reading",
        std::string("body must be a reading object or an array of them, got ") + kind_name(root));
  }

  std::vector<Reading> out;
  if (!batch) {
    auto r = decode_one(root, std::nullopt, opts);
    if (!r) return std::unexpected(std::move(r.error()));
    out.push_back(std::move(*r));
    return out;
  }
  if (batch->empty()) return core::fail("empty_batch", "the batch holds no readings");
  if (batch->size() > opts.max_readings)
    return core::fail("batch_too_large", "the batch holds " + std::to_string(batch->size()) +
                                             " readings; at most " +
                                             std::to_string(opts.max_readings) + " are allowed");
  out.reserve(batch->size());
  for (std::size_t i = 0; i < batch->size(); ++i) {
    auto r = decode_one((*batch)[i], i, opts);
    if (!r) return std::unexpected(std::move(r.error()));
    out.push_back(std::move(*r));
  }
  return out;
}

void append_reading_json(std::string& out, const Reading& r) {
  out += "{\"meter_id\":";
  append_json_string(out, r.meter_id);
  out += ",\"ts\":\"";
  core::append_iso8601(out, r.ts);
  out += "\",\"voltage\":";
  append_json_number(out, r.voltage);
  out += ",\"current\":";
  append_json_number(out, r.current);
  out += ",\"power\":";
  append_json_number(out, r.power);
  out += ",\"energy\":";
  append_json_number(out, r.energy);
  if (r.frequency) {
    out += ",\"frequency\":";
    append_json_number(out, *r.frequency);
  }
  if (r.power_factor) {
    out += ",\"power_factor\":";
    append_json_number(out, *r.power_factor);
  }
  out += '}';
}

std::string encode_reading(const Reading& r) {
  std::string s;
  s.reserve(192);
  append_reading_json(s, r);
  return s;
}

std::string encode_error(const core::Error& e) {
  std::string s;
  JsonWriter w(s);
  w.begin_object().key("error").begin_object();
  w.key("code").string(e.code).key("message").string(e.message);
  if (e.index) w.key("index").integer(static_cast<std::int64_t>(*e.index));
  if (!e.field.empty()) w.key("field").string(e.field);
  w.end_object().end_object();
  return s;
}

}  // namespace meterhub::codec
