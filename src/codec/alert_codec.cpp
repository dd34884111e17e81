#include "codec/alert_codec.hpp"

#include <boost/json/monotonic_resource.hpp>
#include <boost/json/value.hpp>

#include <algorithm>
#include <cmath>
#include <initializer_list>

#include "codec/json_input.hpp"
#include "codec/json_kind.hpp"
#include "codec/json_writer.hpp"
#include "core/time.hpp"
#include "core/validate.hpp"

namespace meterhub::codec {
namespace json = boost::json;
using alerts::Rule;
using alerts::RuleKind;
using core::Error;

namespace {

constexpr std::size_t kMaxBody = 16 * 1024;
constexpr double kMaxHoldS = 86'400;          // a day
constexpr double kMaxAfterS = 30 * 86'400.0;  // a month

std::unexpected<Error> invalid(std::string field, std::string message) {
  return std::unexpected(
      Error{"invalid_alert_rules", std::move(message), std::nullopt, std::move(field)});
}

std::string num(double v) {
  std::string s;
  append_json_number(s, v);
  return s;
}

const core::FieldRange& range_of(RuleKind k) {
  switch (k) {
    case RuleKind::over_voltage:
    case RuleKind::under_voltage:
      return core::kVoltage;
    case RuleKind::over_current:
      return core::kCurrent;
    case RuleKind::over_power:
      return core::kPower;
    case RuleKind::power_factor_below:
      return core::kPowerFactor;
    case RuleKind::frequency_out_of_band:
    case RuleKind::offline:
      break;
  }
  return core::kFrequency;
}

bool is_over(RuleKind k) {
  return k == RuleKind::over_voltage || k == RuleKind::over_current || k == RuleKind::over_power;
}

class RuleReader {
 public:
  RuleReader(const json::object& o, std::string prefix) : o_(o), prefix_(std::move(prefix)) {}

  core::Result<void> only(std::initializer_list<std::string_view> allowed) const {
    for (const auto& kv : o_) {
      const std::string_view k(kv.key().data(), kv.key().size());
      if (std::find(allowed.begin(), allowed.end(), k) != allowed.end()) continue;
      std::string list;
      for (std::string_view a : allowed) list += (list.empty() ? "" : ", ") + std::string(a);
      const std::string f = field(k.substr(0, 32));
      return invalid(f, "unknown field \"" + f + "\" for this kind (allowed: " + list + ")");
    }
    return {};
  }

  // A finite number; `fallback` when absent (nullopt: required).
  core::Result<double> number(std::string_view key,
                              std::optional<double> fallback = std::nullopt) const {
    const json::value* v = o_.if_contains(json::string_view(key.data(), key.size()));
    const std::string f = field(key);
    if (!v) {
      if (fallback) return *fallback;
      return invalid(f, f + " is required");
    }
    double d = 0;
    if (!as_number(*v, d)) return invalid(f, f + " must be a number, got " + kind_name(*v));
    if (!std::isfinite(d)) return invalid(f, f + " must be a finite number");
    return d;
  }

  std::string field(std::string_view key) const { return prefix_ + "." + std::string(key); }

 private:
  const json::object& o_;
  std::string prefix_;
};

core::Result<Rule> decode_rule(const json::value& v, const std::string& prefix) {
  const json::object* o = v.if_object();
  if (!o) return invalid(prefix, prefix + " must be an object, got " + kind_name(v));
  const json::value* kv = o->if_contains("kind");
  if (!kv) return invalid(prefix + ".kind", prefix + ".kind is required");
  const json::string* ks = kv->if_string();
  const auto kind = ks ? alerts::rule_kind_from(std::string_view(ks->data(), ks->size()))
                       : std::optional<RuleKind>();
  if (!kind)
    return invalid(prefix + ".kind",
                   prefix +
                       ".kind must be one of over_voltage, under_voltage, over_current, "
                       "over_power, power_factor_below, frequency_out_of_band, offline");
  RuleReader in(*o, prefix);
  Rule r;
  r.kind = *kind;
  if (r.kind == RuleKind::offline) {
    if (auto ok = in.only({"kind", "after_s"}); !ok) return std::unexpected(ok.error());
    auto after = in.number("after_s");
    if (!after) return std::unexpected(after.error());
    if (*after < 1 || *after > kMaxAfterS)
      return invalid(in.field("after_s"), in.field("after_s") + " must be from 1 to " +
                                              num(kMaxAfterS) + " seconds, got " + num(*after));
    r.after_ms = std::llround(*after * 1000);
    return r;
  }
  const bool band = r.kind == RuleKind::frequency_out_of_band;
  auto ok = band ? in.only({"kind", "min", "max", "hysteresis", "hold_s"})
                 : in.only({"kind", "threshold", "hysteresis", "hold_s"});
  if (!ok) return std::unexpected(ok.error());
  auto hyst = in.number("hysteresis", 0.0);
  if (!hyst) return std::unexpected(hyst.error());
  if (*hyst < 0)
    return invalid(in.field("hysteresis"), in.field("hysteresis") + " must not be negative");
  auto hold = in.number("hold_s", 0.0);
  if (!hold) return std::unexpected(hold.error());
  if (*hold < 0 || *hold > kMaxHoldS)
    return invalid(in.field("hold_s"), in.field("hold_s") + " must be from 0 to " + num(kMaxHoldS) +
                                           " seconds, got " + num(*hold));
  r.hysteresis = *hyst;
  r.hold_ms = std::llround(*hold * 1000);
  const core::FieldRange& fr = range_of(r.kind);
  auto in_range = [&](std::string_view key, double x) -> core::Result<void> {
    if (x < fr.min || x > fr.max)
      return invalid(in.field(key), in.field(key) + " must be within " + std::string(fr.name) +
                                        "'s range " + num(fr.min) + ".." + num(fr.max) + ", got " +
                                        num(x));
    return {};
  };
  if (band) {
    auto mn = in.number("min");
    if (!mn) return std::unexpected(mn.error());
    auto mx = in.number("max");
    if (!mx) return std::unexpected(mx.error());
    if (auto e = in_range("min", *mn); !e) return std::unexpected(e.error());
    if (auto e = in_range("max", *mx); !e) return std::unexpected(e.error());
    if (*mn >= *mx) return invalid(in.field("max"), in.field("max") + " must be greater than min");
    if (2 * r.hysteresis >= *mx - *mn)
      return invalid(in.field("hysteresis"),
                     in.field("hysteresis") + " must be less than half the band (" +
                         num((*mx - *mn) / 2) + "), or the alert could never clear");
    r.min = *mn;
    r.max = *mx;
    return r;
  }
  auto th = in.number("threshold");
  if (!th) return std::unexpected(th.error());
  if (auto e = in_range("threshold", *th); !e) return std::unexpected(e.error());
  r.threshold = *th;
  // The clear level must lie within the field's range, or it could never clear.
  const double room = is_over(r.kind) ? *th - fr.min : fr.max - *th;
  if (r.hysteresis >= room && r.hysteresis > 0)
    return invalid(in.field("hysteresis"),
                   in.field("hysteresis") + " must be less than " + num(room) +
                       " (the room between threshold and the end of " + std::string(fr.name) +
                       "'s range), or the alert could never clear");
  return r;
}

void write_seconds(JsonWriter& w, std::string_view key, core::TimeMs ms) {
  w.key(key).number(static_cast<double>(ms) / 1000);
}

}  // namespace

core::Result<std::vector<Rule>> decode_alert_rules(std::string_view body) {
  if (body.size() > kMaxBody)
    return invalid("", "body too large: at most " + std::to_string(kMaxBody) + " bytes of rules");
  json::monotonic_resource mr;
  auto v = parse_json(body, &mr, 8, "body");
  if (!v) return std::unexpected(v.error());
  const json::object* o = v->if_object();
  if (!o)
    return invalid("",
                   std::string("body must be an object {\"rules\": [...]}, got ") + kind_name(*v));
  for (const auto& kv : *o)
    if (kv.key() != "rules")
      return invalid(std::string(kv.key().substr(0, 32)),
                     "unknown field \"" + std::string(kv.key().substr(0, 32)) +
                         "\" (the body is {\"rules\": [...]})");
  const json::value* rv = o->if_contains("rules");
  if (!rv) return invalid("rules", "rules is required (an array; [] removes every rule)");
  const json::array* a = rv->if_array();
  if (!a) return invalid("rules", std::string("rules must be an array, got ") + kind_name(*rv));
  std::vector<Rule> out;
  for (std::size_t i = 0; i < a->size(); ++i) {
    const std::string prefix = "rules[" + std::to_string(i) + "]";
    auto r = decode_rule((*a)[i], prefix);
    if (!r) {
      r.error().index = i;
      return std::unexpected(r.error());
    }
    for (const Rule& seen : out)
      if (seen.kind == r->kind) {
        auto dup = invalid(prefix + ".kind", prefix + ".kind: a second " +
                                                 std::string(alerts::to_string(r->kind)) +
                                                 " rule; a meter has at most one rule per kind");
        dup.error().index = i;
        return dup;
      }
    out.push_back(*r);
  }
  return out;
}

std::string encode_alert_rules(const std::vector<Rule>& rules) {
  std::string out;
  JsonWriter w(out);
  w.begin_object().key("rules").begin_array();
  for (const Rule& r : rules) {
    w.begin_object().key("kind").string(alerts::to_string(r.kind));
    if (r.kind == RuleKind::offline) {
      write_seconds(w, "after_s", r.after_ms);
    } else {
      if (r.kind == RuleKind::frequency_out_of_band)
        w.key("min").number(r.min).key("max").number(r.max);
      else
        w.key("threshold").number(r.threshold);
      w.key("hysteresis").number(r.hysteresis);
      write_seconds(w, "hold_s", r.hold_ms);
    }
    w.end_object();
  }
  w.end_array().end_object();
  return out;
}

void append_alert_json(std::string& out, const store::AlertRecord& a) {
  JsonWriter w(out);
  w.begin_object();
  w.key("id").integer(a.id);
  w.key("meter_id").string(a.meter_id);
  w.key("kind").string(a.kind);
  w.key("active").boolean(!a.cleared_at);
  w.key("raised_at").string(core::format_iso8601(a.raised_at));
  w.key("raised_value").number(a.raised_value);
  w.key("message").string(a.message);
  w.key("cleared_at");
  if (a.cleared_at)
    w.string(core::format_iso8601(*a.cleared_at));
  else
    w.null();
  w.key("cleared_value");
  if (a.cleared_value)
    w.number(*a.cleared_value);
  else
    w.null();
  w.key("clear_message").string(a.clear_message);
  w.end_object();
}

std::string encode_alert(const store::AlertRecord& a) {
  std::string out;
  append_alert_json(out, a);
  return out;
}

std::string encode_ws_alert(const store::AlertRecord& a) {
  std::string out = R"({"type":"alert","event":")";
  out += a.cleared_at ? "cleared" : "raised";
  out += R"(","alert":)";
  append_alert_json(out, a);
  out += '}';
  return out;
}

}  // namespace meterhub::codec
