// Device formats -> core::Reading. docs/formats.md is the contract for every
// key read here; the helpers at the top keep the four decoders' error
// messages and number rules identical to POST /api/v1/readings
// (codec/json_input.hpp).
#include "codec/formats.hpp"

#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>
#include <charconv>
#include <cmath>

#include "codec/json_input.hpp"
#include "codec/json_kind.hpp"
#include "core/time.hpp"
#include "core/validate.hpp"
#include "query/calendar.hpp"

namespace meterhub::codec {
namespace json = boost::json;
using core::Error;
using core::Reading;
using core::TimeMs;

namespace {

constexpr unsigned kMaxDepth = 8;
constexpr TimeMs kDayMs = 86'400'000;

std::unexpected<Error> reading_error(std::string message, std::string field = {},
                                     std::optional<std::size_t> index = std::nullopt) {
  return std::unexpected(Error{"invalid_reading", std::move(message), index, std::move(field)});
}

std::unexpected<Error> param_error(std::string field, std::string message) {
  return std::unexpected(Error{"invalid_parameter", std::move(message), std::nullopt,
                               std::move(field)});
}

// "telemetry[2]: " in front of an error of the third element of a batch.
Error at(Error e, std::string_view what, std::optional<std::size_t> index) {
  if (!index) return e;
  e.index = index;
  e.message = std::string(what) + "[" + std::to_string(*index) + "]: " + e.message;
  return e;
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return out;
}

// A whole-string decimal number ("230.1", "-5", "1e3"); nullopt otherwise.
std::optional<double> parse_number(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  if (!s.empty() && s.front() == '+') s.remove_prefix(1);
  double d = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), d);
  if (s.empty() || ec != std::errc() || p != s.data() + s.size() || !std::isfinite(d))
    return std::nullopt;
  return d;
}

core::Result<double> number_param(std::string_view name, std::string_view text) {
  auto d = parse_number(text);
  if (!d) return param_error(std::string(name), std::string(name) + " must be a number");
  return *d;
}

// Seconds (relative) to milliseconds, refusing what no clock can mean.
core::Result<TimeMs> seconds_to_ms(double s, std::string_view field) {
  if (!std::isfinite(s) || std::fabs(s) > 1e11)
    return param_error(std::string(field), std::string(field) + " is out of range");
  return static_cast<TimeMs>(std::floor(s * 1000.0));
}

// --- The key map of ThingsBoard telemetry and Emoncms inputs ---------------

enum Slot { kV, kI, kP, kE, kF, kPf, kSlots };
constexpr std::string_view kSlotName[kSlots] = {"voltage", "current",   "power",
                                                "energy",  "frequency", "power_factor"};

struct Alias {
  std::string_view key;  // lowercase; source keys are matched case-insensitively
  Slot slot;
  double scale;  // to meterhub units
};
// Earlier entries win when a message holds two names of the same value.
constexpr Alias kAliases[] = {
    {"voltage", kV, 1},       {"vrms", kV, 1},           {"current", kI, 1},
    {"irms", kI, 1},          {"power", kP, 1},          {"active_power", kP, 1},
    {"energy", kE, 1},        {"kwh", kE, 1},            {"energy_kwh", kE, 1},
    {"total_kwh", kE, 1},     {"energy_wh", kE, 0.001},  {"wh", kE, 0.001},
    {"frequency", kF, 1},     {"freq", kF, 1},           {"power_factor", kPf, 1},
    {"pf", kPf, 1},           {"powerfactor", kPf, 1},
};

std::string accepted_keys(Slot s) {
  std::string out;
  for (const Alias& a : kAliases) {
    if (a.slot != s) continue;
    if (!out.empty()) out += ", ";
    out += a.key;
  }
  return out;
}

// A reading from values in Slot order; the optional ones where present.
Reading assemble(std::string meter_id, TimeMs ts, const double (&value)[kSlots],
                 const bool (&present)[kSlots]) {
  Reading r;
  r.meter_id = std::move(meter_id);
  r.ts = ts;
  r.voltage = value[kV];
  r.current = value[kI];
  r.power = value[kP];
  r.energy = value[kE];
  if (present[kF]) r.frequency = value[kF];
  if (present[kPf]) r.power_factor = value[kPf];
  return r;
}

// The values of `o` under the names above; other keys are ignored.
core::Result<Reading> map_values(const json::object& o, std::string meter_id, TimeMs ts) {
  const json::value* found[kSlots] = {};
  std::size_t rank[kSlots] = {};
  std::string key_of[kSlots];
  double scale[kSlots] = {1, 1, 1, 1, 1, 1};
  for (const auto& [k, v] : o) {
    const std::string name = lower(std::string_view(k.data(), k.size()));
    for (std::size_t i = 0; i < std::size(kAliases); ++i) {
      const Alias& a = kAliases[i];
      if (a.key != name) continue;
      if (found[a.slot] && rank[a.slot] <= i) break;
      found[a.slot] = &v;
      rank[a.slot] = i;
      key_of[a.slot] = std::string(k.data(), k.size());
      scale[a.slot] = a.scale;
      break;
    }
  }
  double value[kSlots] = {};
  bool present[kSlots] = {};
  for (int s = 0; s < kSlots; ++s) {
    const json::value* v = found[s];
    if (!v || v->is_null()) {
      if (s <= kE)
        return reading_error(std::string(kSlotName[s]) + " is required (send one of: " +
                                 accepted_keys(static_cast<Slot>(s)) + ")",
                             std::string(kSlotName[s]));
      continue;
    }
    if (!as_number(*v, value[s]))
      return reading_error("\"" + key_of[s] + "\" must be a number, got " + kind_name(*v),
                           key_of[s]);
    value[s] *= scale[s];
    present[s] = true;
  }
  return assemble(std::move(meter_id), ts, value, present);
}

core::Result<Reading> checked(Reading r, const DecodeOptions& opts) {
  if (auto e = core::check_reading(r, opts.now, opts.future_tolerance_ms))
    return std::unexpected(std::move(*e));
  return r;
}

core::Result<std::vector<Reading>> check_batch_size(std::size_t n, const DecodeOptions& opts) {
  if (n == 0) return core::fail("empty_batch", "the batch holds no readings");
  if (n > opts.max_readings)
    return core::fail("batch_too_large", "the batch holds " + std::to_string(n) +
                                             " readings; at most " +
                                             std::to_string(opts.max_readings) + " are allowed");
  return std::vector<Reading>{};
}

// --- ThingsBoard ------------------------------------------------------------

core::Result<Reading> thingsboard_one(const json::value& v, std::string_view meter_id,
                                      const DecodeOptions& opts) {
  if (!v.is_object())
    return reading_error(std::string("telemetry must be an object, got ") + kind_name(v));
  const json::object& o = v.get_object();
  const json::value* values = o.if_contains("values");
  if (!values) {
    auto r = map_values(o, std::string(meter_id), opts.now);
    if (!r) return r;
    return checked(std::move(*r), opts);
  }
  if (!values->is_object())
    return reading_error(std::string("\"values\" must be an object, got ") + kind_name(*values),
                         "values");
  TimeMs ts = opts.now;
  if (const json::value* t = o.if_contains("ts"); t && !t->is_null()) {
    double d = 0;
    if (!as_number(*t, d))
      return reading_error(std::string("\"ts\" must be a number (epoch ms), got ") + kind_name(*t),
                           "ts");
    // Always milliseconds (as in ThingsBoard). Not finite: "0e3080000" reads
    // as NaN in Boost.JSON 1.81 (found by fuzz/thingsboard_fuzz.cpp).
    const double ms = std::floor(d);
    if (!std::isfinite(ms) || ms < static_cast<double>(core::kMinTime) ||
        ms > static_cast<double>(core::kMaxTime))
      return reading_error("\"ts\" is out of range (epoch ms, years 0000 to 9999)", "ts");
    ts = static_cast<TimeMs>(ms);
  }
  auto r = map_values(values->get_object(), std::string(meter_id), ts);
  if (!r) return r;
  return checked(std::move(*r), opts);
}

// --- Emoncms ------------------------------------------------------------------

// "power:100,voltage:230" or "{power:100,voltage:230}" (keys may be quoted).
core::Result<json::object> relaxed_json(std::string_view text, std::string_view name) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t')) text.remove_suffix(1);
  if (text.size() >= 2 && text.front() == '{' && text.back() == '}')
    text = text.substr(1, text.size() - 2);
  json::object o;
  while (!text.empty()) {
    const auto comma = text.find(',');
    std::string_view item = text.substr(0, comma);
    text = comma == std::string_view::npos ? std::string_view() : text.substr(comma + 1);
    const auto colon = item.find(':');
    if (colon == std::string_view::npos)
      return param_error(std::string(name), std::string(name) + ": \"" +
                                                std::string(item.substr(0, 40)) +
                                                "\" is not key:value (unnamed values cannot be "
                                                "mapped; name each one)");
    std::string_view key = item.substr(0, colon);
    while (!key.empty() && (key.front() == ' ' || key.front() == '"')) key.remove_prefix(1);
    while (!key.empty() && (key.back() == ' ' || key.back() == '"')) key.remove_suffix(1);
    if (key.empty())
      return param_error(std::string(name), std::string(name) + ": an item has an empty name");
    auto d = parse_number(item.substr(colon + 1));
    if (!d)
      return reading_error(std::string(name) + ": the value of \"" + std::string(key) +
                               "\" is not a number",
                           std::string(key));
    o[json::string_view(key.data(), key.size())] = *d;
  }
  if (o.empty()) return param_error(std::string(name), std::string(name) + " holds no values");
  return o;
}

// An Emoncms node: a string, or a whole number (emonTx nodes are 5..30).
core::Result<std::string> node_id(const json::value& v) {
  if (v.is_string()) return std::string(v.get_string().data(), v.get_string().size());
  if (v.is_int64()) return std::to_string(v.get_int64());
  if (v.is_uint64()) return std::to_string(v.get_uint64());
  return reading_error(std::string("node must be a string or a whole number, got ") +
                           kind_name(v),
                       "node");
}

// --- Tasmota ----------------------------------------------------------------

// The UTC instant of a local wall time `local` (ms, as if UTC) in `zone`.
TimeMs from_local(TimeMs local, const query::TimeZone& zone) {
  const TimeMs before = zone.offset_seconds(local - kDayMs) * 1000LL;
  const TimeMs after = zone.offset_seconds(local + kDayMs) * 1000LL;
  const TimeMs a = local - before, b = local - after;
  const bool a_ok = zone.offset_seconds(a) * 1000LL == before;
  const bool b_ok = zone.offset_seconds(b) * 1000LL == after;
  if (a_ok && b_ok) return std::min(a, b);  // occurs twice: the first
  if (b_ok) return b;
  return a;  // a or, in a gap, the wall time moved forward by the gap
}

core::Result<TimeMs> tasmota_time(const json::object& o, const query::TimeZone& zone,
                                  const DecodeOptions& opts) {
  const json::value* t = o.if_contains("Time");
  if (!t || t->is_null()) return opts.now;
  if (!t->is_string())
    return reading_error(std::string("\"Time\" must be a string, got ") + kind_name(*t), "Time");
  std::string text(t->get_string().data(), t->get_string().size());
  const bool has_offset =
      text.size() > 11 && text.find_first_of("Zz+-", 11) != std::string::npos;
  auto parsed = core::parse_iso8601(has_offset ? text : text + "Z");
  if (!parsed) return reading_error("\"Time\": " + parsed.error().message, "Time");
  if (has_offset) return *parsed;
  if (*parsed < query::kCalendarMin + kDayMs || *parsed > query::kCalendarMax - kDayMs)
    return reading_error("\"Time\" is out of range", "Time");
  return from_local(*parsed, zone);
}

// One ENERGY value: a number, or an array of one per channel.
struct Channels {
  const json::value* v = nullptr;
  std::string name;
};

core::Result<std::optional<double>> channel_value(const Channels& c, std::size_t ch) {
  if (!c.v || c.v->is_null()) return std::optional<double>();
  const json::value* v = c.v;
  std::string where = "ENERGY." + c.name;
  if (v->is_array()) {
    v = &v->get_array()[ch];
    where += "[" + std::to_string(ch) + "]";
  }
  double d = 0;
  if (!as_number(*v, d))
    return reading_error(where + " must be a number, got " + kind_name(*v), c.name);
  return std::optional<double>(d);
}

// --- Shelly -----------------------------------------------------------------

// o[key] (or o[key][sub]) as a number; nullopt when absent or null.
core::Result<std::optional<double>> shelly_number(const json::object& o, std::string_view key,
                                                  std::string_view sub = {}) {
  const json::value* v = o.if_contains(json::string_view(key.data(), key.size()));
  std::string name(key);
  if (v && !sub.empty()) {
    if (!v->is_object())
      return reading_error(name + " must be an object, got " + kind_name(*v), name);
    name += "." + std::string(sub);
    v = v->get_object().if_contains(json::string_view(sub.data(), sub.size()));
  }
  if (!v || v->is_null()) return std::optional<double>();
  double d = 0;
  if (!as_number(*v, d)) return reading_error(name + " must be a number, got " + kind_name(*v), name);
  return std::optional<double>(d);
}

core::Result<double> shelly_required(const json::object& o, std::string_view key,
                                     std::string_view sub = {}) {
  auto v = shelly_number(o, key, sub);
  if (!v) return std::unexpected(std::move(v.error()));
  if (!*v) {
    std::string name = std::string(key) + (sub.empty() ? "" : "." + std::string(sub));
    return reading_error(name + " is required", name);
  }
  return **v;
}

core::Result<json::object> object_of(std::string_view text, std::string_view what,
                                     unsigned depth = 16) {
  auto v = parse_json(text, {}, depth, what);
  if (!v) return std::unexpected(std::move(v.error()));
  if (!v->is_object())
    return reading_error(std::string(what) + " must be a JSON object, got " + kind_name(*v));
  return std::move(v->get_object());
}

// One Shelly reading from prefixed keys: "" (switch, em1) or "a_" (em phases).
struct ShellyKeys {
  std::string power, voltage, current, pf, freq;
};

core::Result<Reading> shelly_reading(const json::object& o, const ShellyKeys& k,
                                     std::string meter_id, double energy_wh,
                                     const DecodeOptions& opts) {
  Reading r;
  r.meter_id = std::move(meter_id);
  r.ts = opts.now;
  auto p = shelly_required(o, k.power);
  if (!p) return std::unexpected(std::move(p.error()));
  auto v = shelly_required(o, k.voltage);
  if (!v) return std::unexpected(std::move(v.error()));
  auto i = shelly_required(o, k.current);
  if (!i) return std::unexpected(std::move(i.error()));
  auto pf = shelly_number(o, k.pf);
  if (!pf) return std::unexpected(std::move(pf.error()));
  auto f = shelly_number(o, k.freq);
  if (!f) return std::unexpected(std::move(f.error()));
  r.power = *p;
  r.voltage = *v;
  r.current = *i;
  r.energy = energy_wh / 1000.0;
  // meterhub's power_factor is 0..1; the sign of power already says the direction.
  if (*pf) r.power_factor = std::fabs(**pf);
  r.frequency = *f;
  return checked(std::move(r), opts);
}

void merge_into(json::object& base, const json::object& delta) {
  for (const auto& [k, v] : delta) {
    json::value* b = base.if_contains(k);
    if (b && b->is_object() && v.is_object())
      merge_into(b->get_object(), v.get_object());
    else
      base[k] = v;
  }
}

}  // namespace

core::Result<std::vector<Reading>> decode_thingsboard(std::string_view body,
                                                      std::string_view meter_id,
                                                      const DecodeOptions& opts) {
  auto root = parse_json(body, {}, kMaxDepth, "body");
  if (!root) return std::unexpected(std::move(root.error()));
  std::vector<Reading> out;
  if (!root->is_array()) {
    auto r = thingsboard_one(*root, meter_id, opts);
    if (!r) return std::unexpected(std::move(r.error()));
    out.push_back(std::move(*r));
    return out;
  }
  const json::array& a = root->get_array();
  auto size_ok = check_batch_size(a.size(), opts);
  if (!size_ok) return size_ok;
  out.reserve(a.size());
  for (std::size_t i = 0; i < a.size(); ++i) {
    auto r = thingsboard_one(a[i], meter_id, opts);
    if (!r) return std::unexpected(at(std::move(r.error()), "telemetry", i));
    out.push_back(std::move(*r));
  }
  return out;
}

core::Result<std::vector<Reading>> decode_emoncms_post(const EmoncmsPost& in,
                                                       const DecodeOptions& opts) {
  if (!in.node || in.node->empty())
    return param_error("node", "node is required: it names the meter (node=<meter_id>)");
  const int given = !!in.fulljson + !!in.json + !!in.data + !!in.csv;
  if (given == 0)
    return param_error("fulljson", "send the values as fulljson={...} or json=key:value,...");
  if (given > 1)
    return param_error("fulljson", "send only one of fulljson, json, data and csv");
  if (in.csv)
    return param_error("csv",
                       "csv= values are unnamed (inputs 1, 2, 3, ...) and cannot be mapped to "
                       "voltage, current, power and energy; send fulljson= or json= with names");
  json::object values;
  if (in.fulljson) {
    auto o = object_of(*in.fulljson, "fulljson", kMaxDepth);
    if (!o) return std::unexpected(std::move(o.error()));
    values = std::move(*o);
  } else {
    auto o = relaxed_json(in.json ? *in.json : *in.data, in.json ? "json" : "data");
    if (!o) return std::unexpected(std::move(o.error()));
    values = std::move(*o);
  }
  TimeMs ts = opts.now;
  if (in.time) {
    auto d = number_param("time", *in.time);
    if (!d) return std::unexpected(std::move(d.error()));
    auto t = core::from_epoch_number(*d);
    if (!t) return param_error("time", "time: " + t.error().message);
    ts = *t;
  } else if (const json::value* t = values.if_contains("time"); t && !t->is_null()) {
    double d = 0;
    if (!as_number(*t, d))
      return reading_error(std::string("\"time\" must be a number (unix seconds), got ") +
                               kind_name(*t),
                           "time");
    auto tm = core::from_epoch_number(d);
    if (!tm) return reading_error("time: " + tm.error().message, "time");
    ts = *tm;
  }
  auto r = map_values(values, std::string(*in.node), ts);
  if (!r) return std::unexpected(std::move(r.error()));
  auto c = checked(std::move(*r), opts);
  if (!c) return std::unexpected(std::move(c.error()));
  return std::vector<Reading>{std::move(*c)};
}

core::Result<std::vector<Reading>> decode_emoncms_bulk(const EmoncmsBulk& in,
                                                       const DecodeOptions& opts) {
  auto root = parse_json(in.data, {}, kMaxDepth, "data");
  if (!root) return std::unexpected(std::move(root.error()));
  if (!root->is_array())
    return reading_error(std::string("data must be an array of [time, node, {...}], got ") +
                         kind_name(*root));
  const json::array& a = root->get_array();
  auto size_ok = check_batch_size(a.size(), opts);
  if (!size_ok) return size_ok;

  std::optional<double> time_ref, sentat, offset;
  for (auto [name, text, out] : {std::tuple{"time", in.time, &time_ref},
                                 std::tuple{"sentat", in.sentat, &sentat},
                                 std::tuple{"offset", in.offset, &offset}}) {
    if (!text) continue;
    auto d = number_param(name, *text);
    if (!d) return std::unexpected(std::move(d.error()));
    *out = *d;
  }
  // Every entry's time first: the legacy form is relative to the last one.
  std::vector<double> t(a.size());
  for (std::size_t i = 0; i < a.size(); ++i) {
    const json::value& e = a[i];
    if (!e.is_array() || e.get_array().size() < 3)
      return std::unexpected(at(Error{"invalid_reading",
                                      "an entry must be [time, node, {\"name\": value, ...}]",
                                      std::nullopt, "data"},
                                "data", i));
    if (!as_number(e.get_array()[0], t[i]))
      return std::unexpected(at(Error{"invalid_reading",
                                      std::string("time must be a number, got ") +
                                          kind_name(e.get_array()[0]),
                                      std::nullopt, "time"},
                                "data", i));
  }
  std::vector<Reading> out;
  out.reserve(a.size());
  for (std::size_t i = 0; i < a.size(); ++i) {
    const json::array& e = a[i].get_array();
    core::Result<TimeMs> ts;
    bool from_now = true;  // ts is an offset from now
    if (time_ref) {
      ts = seconds_to_ms(*time_ref + t[i], "time");
      from_now = false;
    } else if (sentat) {
      ts = seconds_to_ms(t[i] - *sentat, "sentat");
    } else if (offset) {
      ts = seconds_to_ms(*offset + t[i], "offset");
    } else if (t[i] >= 946684800) {
      ts = core::from_epoch_number(t[i]);
      from_now = false;
    } else {
      ts = seconds_to_ms(t[i] - t.back(), "time");
    }
    if (ts && from_now) *ts += opts.now;
    if (!ts) {
      Error err = ts.error();
      err.code = "invalid_reading";
      return std::unexpected(at(std::move(err), "data", i));
    }
    auto node = node_id(e[1]);
    if (!node) return std::unexpected(at(std::move(node.error()), "data", i));
    json::object values;
    for (std::size_t k = 2; k < e.size(); ++k) {
      if (!e[k].is_object())
        return std::unexpected(at(
            Error{"invalid_reading",
                  "positional values ([time, node, 100, 200]) are unnamed and cannot be mapped; "
                  "send [time, node, {\"power\": 100, ...}]",
                  std::nullopt, "data"},
            "data", i));
      for (const auto& [k2, v] : e[k].get_object()) values[k2] = v;
    }
    auto r = map_values(values, std::move(*node), *ts);
    if (r) r = checked(std::move(*r), opts);
    if (!r) return std::unexpected(at(std::move(r.error()), "data", i));
    out.push_back(std::move(*r));
  }
  return out;
}

core::Result<std::vector<Reading>> decode_tasmota_sensor(std::string_view topic,
                                                         std::string_view payload,
                                                         const query::TimeZone& zone,
                                                         const DecodeOptions& opts) {
  auto o = object_of(payload, "payload", kMaxDepth);
  if (!o) return std::unexpected(std::move(o.error()));
  const json::value* energy = o->if_contains("ENERGY");
  if (!energy)
    return reading_error("no ENERGY object: not a Tasmota energy monitor's SENSOR message",
                         "ENERGY");
  if (!energy->is_object())
    return reading_error(std::string("ENERGY must be an object, got ") + kind_name(*energy),
                         "ENERGY");
  auto ts = tasmota_time(*o, zone, opts);
  if (!ts) return std::unexpected(std::move(ts.error()));

  const json::object& en = energy->get_object();
  // In Slot order, so that a channel's values assemble like the key map's.
  Channels c[kSlots] = {{nullptr, "Voltage"}, {nullptr, "Current"}, {nullptr, "Power"},
                        {nullptr, "Total"},   {nullptr, "Frequency"}, {nullptr, "Factor"}};
  std::size_t channels = 1;
  bool multi = false;
  for (Channels& x : c) {
    x.v = en.if_contains(x.name);
    if (x.v && x.v->is_array()) {
      const std::size_t n = x.v->get_array().size();
      if (n == 0) return reading_error("ENERGY." + x.name + " is an empty array", x.name);
      if (multi && n != channels)
        return reading_error("ENERGY." + x.name + " has " + std::to_string(n) +
                                 " channels, other values " + std::to_string(channels),
                             x.name);
      channels = n;
      multi = true;
    }
  }
  for (int k = kV; k <= kE; ++k)
    if (!c[k].v || c[k].v->is_null())
      return reading_error("ENERGY." + c[k].name + " is required", c[k].name);
  if (multi && channels > 1 && !c[kE].v->is_array())
    return reading_error(
        "ENERGY.Total is one value for " + std::to_string(channels) +
            " channels; per-channel counters need SetOption129 1 on the device",
        "Total");
  std::vector<Reading> out;
  for (std::size_t ch = 0; ch < channels; ++ch) {
    double v[kSlots] = {};
    bool present[kSlots] = {};
    for (int k = 0; k < kSlots; ++k) {
      auto x = channel_value(c[k], ch);
      if (!x) return std::unexpected(std::move(x.error()));
      present[k] = x->has_value();
      if (*x) v[k] = **x;
    }
    std::string id(topic);
    if (multi) id += ":" + std::to_string(ch + 1);
    Reading r = assemble(std::move(id), *ts, v, present);
    auto ok = checked(std::move(r), opts);
    if (!ok) return std::unexpected(std::move(ok.error()));
    out.push_back(std::move(*ok));
  }
  return out;
}

core::Result<std::vector<Reading>> decode_shelly_status(
    std::string_view meter_id, std::string_view component, std::string_view payload,
    std::optional<std::string_view> energy_status, const DecodeOptions& opts) {
  const auto colon = component.find(':');
  const std::string_view type = component.substr(0, colon);
  if (colon == std::string_view::npos || (type != "switch" && type != "em1" && type != "em"))
    return param_error("component", "component must be switch:N, em1:N or em:N, got \"" +
                                        std::string(component.substr(0, 40)) + "\"");
  auto o = object_of(payload, "payload");
  if (!o) return std::unexpected(std::move(o.error()));
  std::vector<Reading> out;
  if (type == "switch") {
    auto wh = shelly_required(*o, "aenergy", "total");
    if (!wh) return std::unexpected(std::move(wh.error()));
    auto r = shelly_reading(*o, {"apower", "voltage", "current", "pf", "freq"},
                            std::string(meter_id), *wh, opts);
    if (!r) return std::unexpected(std::move(r.error()));
    out.push_back(std::move(*r));
    return out;
  }
  const std::string data_name = std::string(type) + "data" + std::string(component.substr(colon));
  if (!energy_status)
    return param_error("energy_status", std::string(component) +
                                            " carries no energy counter; its \"" + data_name +
                                            "\" status is needed too");
  auto data = object_of(*energy_status, data_name);
  if (!data) return std::unexpected(std::move(data.error()));
  if (type == "em1") {
    auto wh = shelly_required(*data, "total_act_energy");
    if (!wh) return std::unexpected(std::move(wh.error()));
    auto r = shelly_reading(*o, {"act_power", "voltage", "current", "pf", "freq"},
                            std::string(meter_id), *wh, opts);
    if (!r) return std::unexpected(std::move(r.error()));
    out.push_back(std::move(*r));
    return out;
  }
  for (std::string phase : {"a", "b", "c"}) {
    auto wh = shelly_required(*data, phase + "_total_act_energy");
    if (!wh) return std::unexpected(std::move(wh.error()));
    const std::string p = phase + "_";
    auto r = shelly_reading(*o, {p + "act_power", p + "voltage", p + "current", p + "pf", p + "freq"},
                            std::string(meter_id) + ":" + phase, *wh, opts);
    if (!r) return std::unexpected(std::move(r.error()));
    out.push_back(std::move(*r));
  }
  return out;
}

core::Result<std::string> merge_shelly_status(std::string_view base, std::string_view delta) {
  auto b = object_of(base, "base");
  if (!b) return std::unexpected(std::move(b.error()));
  auto d = object_of(delta, "delta");
  if (!d) return std::unexpected(std::move(d.error()));
  merge_into(*b, *d);
  // The merged text must be JSON: it becomes the next base (found by
  // fuzz/shelly_fuzz.cpp: 1e8230 came back as "Infinity").
  if (!all_finite(*b))
    return core::fail("malformed_json", "a Shelly status holds a number out of range");
  return json::serialize(*b);
}

}  // namespace meterhub::codec
