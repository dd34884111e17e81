// Alert routes (docs/api.md "Alerts", docs/alerts.md): a meter's rules
// (GET/PUT /api/v1/meters/{id}/alerts) and the stored alerts
// (GET /api/v1/alerts). Rules are validated in codec/alert_codec before any
// store work; the engine (src/alerts) stores and applies them.
#include <charconv>

#include "alerts/engine.hpp"
#include "api/responses.hpp"
#include "api/router.hpp"
#include "codec/alert_codec.hpp"
#include "codec/json_writer.hpp"
#include "core/validate.hpp"

namespace meterhub::api {
namespace {

constexpr std::size_t kAlertsDefault = 100;
constexpr std::size_t kAlertsMax = 1000;

std::string rules_body(const std::string& meter_id, std::string_view rules_doc) {
  // rules_doc is {"rules":[...]}; answer {"meter_id":..,"rules":[...]}.
  std::string out;
  codec::JsonWriter w(out);
  w.begin_object().key("meter_id").string(meter_id).end_object();
  out.pop_back();
  out += ',';
  out.append(rules_doc.substr(1));
  return out;
}

std::string alerts_link(const store::AlertQuery& q, std::int64_t before) {
  std::string s = "/api/v1/alerts?limit=" + std::to_string(q.limit);
  if (q.active) s += *q.active ? "&active=true" : "&active=false";
  if (!q.meter_id.empty()) s += "&meter=" + q.meter_id;  // ids are URL-safe
  return s + "&before=" + std::to_string(before);
}

}  // namespace

void Router::alert_rules(std::string meter_id, Request& req, Responder& respond) {
  const bool get = req.method == "GET";
  std::vector<alerts::Rule> rules;
  if (!get) {
    if (auto refused = require_json(req)) return respond(std::move(*refused));
    auto parsed = codec::decode_alert_rules(req.body);
    if (!parsed) return respond(bad_parameter(parsed.error()));
    rules = std::move(*parsed);
  }
  query(respond, [this, meter_id = std::move(meter_id), rules = std::move(rules), get]() {
    if (get) {
      if (auto missing = require_meter(meter_id)) return std::move(*missing);
      auto doc = store_.alert_rules(meter_id);
      if (!doc) return from_store_error(doc.error());
      return json_response(200, rules_body(meter_id, *doc ? **doc : R"({"rules":[]})"));
    }
    if (!alerts_)
      return unavailable(
          core::Error{"alerts_unavailable", "the alert engine is not running", std::nullopt, {}},
          "5");
    auto ok = alerts_->put_rules(meter_id, rules);
    if (!ok) return from_store_error(ok.error());
    if (!*ok) return error_response(404, "unknown_meter", "no meter \"" + meter_id + "\"");
    return json_response(200, rules_body(meter_id, codec::encode_alert_rules(rules)));
  });
}

void Router::list_alerts(const Target& t, Responder& respond) {
  store::AlertQuery q;
  q.limit = kAlertsDefault;
  for (const auto& [k, v] : t.params)
    if (k != "active" && k != "meter" && k != "limit" && k != "before")
      return respond(error_response(
          400, "invalid_parameter",
          "unknown parameter \"" + k.substr(0, 32) + "\" (allowed: active, meter, limit, before)"));
  if (auto v = t.param("active")) {
    if (*v == "true")
      q.active = true;
    else if (*v == "false")
      q.active = false;
    else
      return respond(error_response(400, "invalid_parameter", "active must be true or false"));
  }
  if (auto v = t.param("meter")) {
    if (auto e = core::check_meter_id(*v))
      return respond(error_response(400, "invalid_parameter", "meter: " + e->message));
    q.meter_id = *v;
  }
  if (auto v = t.param("limit")) {
    std::size_t lim = 0;
    auto [p, ec] = std::from_chars(v->data(), v->data() + v->size(), lim);
    if (ec != std::errc() || p != v->data() + v->size() || lim < 1 || lim > kAlertsMax)
      return respond(
          error_response(400, "invalid_parameter",
                         "limit must be a whole number from 1 to " + std::to_string(kAlertsMax)));
    q.limit = lim;
  }
  if (auto v = t.param("before")) {
    std::int64_t id = 0;
    auto [p, ec] = std::from_chars(v->data(), v->data() + v->size(), id);
    if (ec != std::errc() || p != v->data() + v->size() || id < 1)
      return respond(error_response(400, "invalid_parameter",
                                    "before must be an alert id (a positive whole number)"));
    q.before = id;
  }
  query(respond, [this, q = std::move(q)] {
    if (!q.meter_id.empty())
      if (auto missing = require_meter(q.meter_id)) return std::move(*missing);
    auto rows = store_.list_alerts(q);
    if (!rows) return from_store_error(rows.error());
    std::string body;
    codec::JsonWriter w(body);
    w.begin_object().key("alerts").begin_array();
    for (const auto& a : *rows) {
      std::string one;
      codec::append_alert_json(one, a);
      w.raw(one);
    }
    w.end_array().key("count").integer(static_cast<std::int64_t>(rows->size()));
    w.key("next");
    if (rows->size() == q.limit)
      w.string(alerts_link(q, rows->back().id));
    else
      w.null();
    w.end_object();
    return json_response(200, std::move(body));
  });
}

}  // namespace meterhub::api
