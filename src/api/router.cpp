#include "api/router.hpp"

#include <charconv>
#include <limits>

#include "api/responses.hpp"
#include "api/static_files.hpp"
#include "api/target.hpp"
#include "codec/json_writer.hpp"
#include "codec/reading_codec.hpp"
#include "codec/series_codec.hpp"
#include "core/time.hpp"
#include "core/validate.hpp"
#include "metrics/log_fields.hpp"

namespace meterhub::api {
namespace {

using codec::JsonWriter;

}  // namespace

void write_meter_json(JsonWriter& w, const store::MeterInfo& m) {
  w.begin_object();
  w.key("meter_id").string(m.meter_id);
  w.key("name").string(m.name);
  w.key("location").string(m.location);
  w.key("interval_s");
  if (m.interval_s)
    w.integer(*m.interval_s);
  else
    w.null();
  w.key("created_at").string(core::format_iso8601(m.created_at));
  w.key("last_seen");
  if (m.last_seen)
    w.string(core::format_iso8601(*m.last_seen));
  else
    w.null();
  w.key("latest");
  if (m.latest)
    w.raw(codec::encode_reading(*m.latest));
  else
    w.null();
  w.end_object();
}

namespace {

// A time bound from a query parameter: RFC 3339 text, or epoch s/ms digits.
std::string readings_link(const std::string& meter_id, core::TimeMs from, core::TimeMs to,
                          std::size_t limit, bool desc) {
  // meter ids are restricted to URL-safe characters, so no escaping is needed;
  // unbounded ends of the range are left out.
  std::string s = "/api/v1/meters/" + meter_id + "/readings?limit=" + std::to_string(limit) +
                  "&order=" + (desc ? "desc" : "asc");
  if (from != std::numeric_limits<core::TimeMs>::min()) s += "&from=" + std::to_string(from);
  if (to != std::numeric_limits<core::TimeMs>::max()) s += "&to=" + std::to_string(to);
  return s;
}

Response static_response(const StaticFiles::File& f, std::string_view if_none_match) {
  Response r;
  r.headers.emplace_back("ETag", f.etag);
  // Always revalidate: a new build changes the files without changing names.
  r.headers.emplace_back("Cache-Control", "no-cache");
  r.headers.emplace_back("X-Content-Type-Options", "nosniff");
  if (f.content_type.starts_with("text/html")) {
    // No inline scripts anywhere; styles may be set by the chart libraries.
    r.headers.emplace_back("Content-Security-Policy",
                           "default-src 'self'; script-src 'self'; style-src 'self' "
                           "'unsafe-inline'; img-src 'self' data:; connect-src 'self'; "
                           "frame-ancestors 'none'; base-uri 'none'; form-action 'self'");
    r.headers.emplace_back("Referrer-Policy", "no-referrer");
  }
  // If-None-Match: a list of validators or "*".
  if (!if_none_match.empty() &&
      (if_none_match.find(f.etag) != std::string_view::npos || if_none_match == "*")) {
    r.status = 304;
    r.content_type.clear();
    return r;
  }
  r.status = 200;
  r.content_type = f.content_type;
  r.body = f.body;
  return r;
}

}  // namespace

bool is_json_content_type(std::string_view ct) {
  auto semi = ct.find(';');
  std::string_view media = ct.substr(0, semi);
  while (!media.empty() && (media.back() == ' ' || media.back() == '\t')) media.remove_suffix(1);
  while (!media.empty() && (media.front() == ' ' || media.front() == '\t')) media.remove_prefix(1);
  if (media.empty()) return true;
  constexpr std::string_view want = "application/json";
  if (media.size() != want.size()) return false;
  for (std::size_t i = 0; i < want.size(); ++i) {
    char c = media[i];
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    if (c != want[i]) return false;
  }
  return true;
}

std::optional<Response> require_json(const Request& req) {
  if (is_json_content_type(req.content_type)) return std::nullopt;
  return error_response(
      415, "unsupported_media_type",
      "Content-Type must be application/json, got \"" + req.content_type.substr(0, 100) + "\"");
}

Response json_response(unsigned status, std::string body) {
  Response r;
  r.status = status;
  r.body = std::move(body);
  return r;
}

Response unavailable(const core::Error& e, const char* retry_after) {
  Response r = json_response(503, codec::encode_error(e));
  r.headers.emplace_back("Retry-After", retry_after);
  return r;
}

Response method_not_allowed(const char* allow) {
  Response r =
      error_response(405, "method_not_allowed", std::string("method not allowed; use ") + allow);
  r.headers.emplace_back("Allow", allow);
  return r;
}

Response from_store_error(const core::Error& e) { return unavailable(e, "2"); }

Response bad_parameter(const core::Error& e) { return json_response(400, codec::encode_error(e)); }

core::Result<core::TimeMs> parse_time_param(std::string_view name, std::string_view v) {
  if (!v.empty() && (v[0] == '-' || (v[0] >= '0' && v[0] <= '9')) &&
      v.find_first_of("T t") == std::string_view::npos) {
    double d = 0;
    auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), d);
    if (ec != std::errc() || p != v.data() + v.size())
      return core::fail("invalid_parameter", std::string(name) + " is not a number or timestamp");
    auto t = core::from_epoch_number(d);
    if (!t) return core::fail("invalid_parameter", std::string(name) + ": " + t.error().message);
    return t;
  }
  auto t = core::parse_iso8601(v);
  if (!t) return core::fail("invalid_parameter", std::string(name) + ": " + t.error().message);
  return t;
}

bool wants_csv(const Request& req, const Target& t, std::string& error) {
  if (auto f = t.param("format")) {
    if (*f == "csv") return true;
    if (*f != "json") error = "format must be json or csv";
    return false;
  }
  // Accept: text/csv (with or without parameters) anywhere in the list, and
  // no explicit preference for JSON before it.
  const std::string_view a = req.accept;
  const auto csv = a.find("text/csv");
  const auto json = a.find("application/json");
  return csv != std::string_view::npos && (json == std::string_view::npos || csv < json);
}

Response error_response(unsigned status, std::string code, std::string message) {
  return json_response(status, codec::encode_error(core::Error{
                                   std::move(code), std::move(message), std::nullopt, {}}));
}

std::span<const RouteInfo> routes() {
  static constexpr RouteInfo kRoutes[] = {
      {"GET", "/"},
      {"GET", "/docs"},
      {"GET", "/openapi.json"},
      {"GET", "/healthz"},
      {"GET", "/readyz"},
      {"GET", "/metrics"},
      {"GET", "/ws"},
      {"GET", "/ws/{meter_id}"},
      {"POST", "/api/v1/readings"},
      {"GET", "/api/v1/whoami"},
      {"GET", "/api/v1/meters"},
      {"POST", "/api/v1/meters"},
      {"GET", "/api/v1/meters/{meter_id}"},
      {"PATCH", "/api/v1/meters/{meter_id}"},
      {"DELETE", "/api/v1/meters/{meter_id}"},
      {"POST", "/api/v1/meters/{meter_id}/rotate-key"},
      {"GET", "/api/v1/meters/{meter_id}/latest"},
      {"GET", "/api/v1/meters/{meter_id}/readings"},
      {"GET", "/api/v1/meters/{meter_id}/series"},
      {"GET", "/api/v1/meters/{meter_id}/energy"},
      {"GET", "/api/v1/meters/{meter_id}/tariff"},
      {"PUT", "/api/v1/meters/{meter_id}/tariff"},
      {"DELETE", "/api/v1/meters/{meter_id}/tariff"},
      {"GET", "/api/v1/tariff"},
      {"PUT", "/api/v1/tariff"},
      {"DELETE", "/api/v1/tariff"},
      {"GET", "/api/v1/energy/summary"},
      {"GET", "/api/v1/tokens"},
      {"POST", "/api/v1/tokens"},
      {"DELETE", "/api/v1/tokens/{token_id}"},
      {"GET", "/api/v1/meters/{meter_id}/alerts"},
      {"PUT", "/api/v1/meters/{meter_id}/alerts"},
      {"GET", "/api/v1/alerts"},
      // Device formats (compat.cpp, docs/formats.md).
      {"POST", "/api/v1/{access_token}/telemetry"},
      {"GET", "/input/post"},
      {"POST", "/input/post"},
      {"GET", "/input/bulk"},
      {"POST", "/input/bulk"},
  };
  return kRoutes;
}

void Router::handle(Request req, Responder respond) {
  respond = observe(req, std::move(respond));  // metrics.cpp: request id, metrics, access log
  // Lines logged while handling it on this thread carry the id (a copy: a
  // handler may move the request away).
  const std::string request_id = req.request_id;
  metrics::LogFields log_fields{{"request_id", request_id}};
  // Emoncms firmware sends raw JSON in the query (see parse_target_lenient).
  auto t = req.target.starts_with("/input/") ? parse_target_lenient(req.target)
                                              : parse_target(req.target);
  if (!t) return respond(error_response(400, t.error().code, t.error().message));
  // Cross-origin callers get the CORS headers on every answer (errors too,
  // so that a browser script can read them).
  std::string allow_origin = cors_origin(req);
  if (!allow_origin.empty()) {
    respond = [respond = std::move(respond), allow_origin](Response r) {
      r.headers.emplace_back("Access-Control-Allow-Origin", allow_origin);
      if (allow_origin != "*") r.headers.emplace_back("Vary", "Origin");
      r.headers.emplace_back("Access-Control-Expose-Headers", "Retry-After, Link, Location, X-Request-Id");
      respond(std::move(r));
    };
  }
  if (req.method == "OPTIONS" && !req.origin.empty() && !req.cors_method.empty())
    return respond(preflight(req, allow_origin));
  if (auto r = limited(ip_limiter_, req.remote, req.remote)) return respond(std::move(*r));
  route(req, *t, respond);
}

void Router::route(Request& req, const Target& target, Responder& respond) {
  const auto& seg = target.segments;
  const bool get = req.method == "GET";
  const auto n = seg.size();

  if (n == 1 && seg[0] == "healthz") {
    if (!get) return respond(method_not_allowed("GET"));
    return respond(json_response(200, R"({"status":"ok"})"));
  }
  if (n == 1 && seg[0] == "readyz") {
    if (!get) return respond(method_not_allowed("GET"));
    return readyz(respond);
  }
  if (n == 1 && seg[0] == "metrics") {
    if (!get) return respond(method_not_allowed("GET"));
    auto p = authorize(req, {}, Need::read);
    if (!p) return respond(std::move(p.error()));
    return metrics(respond);
  }
  if (n >= 1 && seg[0] == "ws") {
    Response r = error_response(426, "upgrade_required",
                                "/ws and /ws/{meter_id} are WebSocket endpoints; connect with a "
                                "WebSocket client");
    r.headers.emplace_back("Upgrade", "websocket");
    return respond(std::move(r));
  }
  if (n == 2 && seg[0] == "input" && (seg[1] == "post" || seg[1] == "bulk")) {
    if (!get && req.method != "POST") return respond(method_not_allowed("GET, POST"));
    return emoncms_input(seg[1] == "bulk", req, target, respond);
  }
  if (n == 0 || seg[0] != "api") {
    // The dashboard, the API reference and their assets: open to all (the
    // data they show comes from the API, which checks keys).
    std::string path;
    for (const auto& s : seg) path += "/" + s;
    if (path.empty()) path = "/";
    if (const StaticFiles::File* f = web_ ? web_->find(path) : nullptr) {
      if (!get) return respond(method_not_allowed("GET"));
      return respond(static_response(*f, req.if_none_match));
    }
    return respond(error_response(404, "not_found", "no such endpoint"));
  }
  if (n < 3 || seg[1] != "v1") return respond(error_response(404, "not_found", "no such endpoint"));

  // Authorises for `need`; answers and returns false when refused.
  auto allowed = [&](Need need) {
    auto p = authorize(req, {}, need);
    if (!p) respond(std::move(p.error()));
    return p.has_value();
  };
  const bool admin_method = req.method == "PUT" || req.method == "DELETE" ||
                            req.method == "POST" || req.method == "PATCH";

  // ThingsBoard's device API: /api/v1/{access token}/telemetry. No route of
  // ours has a second segment other than these three under it.
  if (n == 4 && seg[3] == "telemetry" && seg[2] != "meters" && seg[2] != "tokens" &&
      seg[2] != "energy") {
    if (req.method != "POST") return respond(method_not_allowed("POST"));
    return thingsboard_telemetry(seg[2], req, respond);
  }
  if (n == 3 && seg[2] == "readings") {
    if (req.method != "POST") return respond(method_not_allowed("POST"));
    return post_readings(req, respond);
  }
  if (n == 3 && seg[2] == "whoami") {
    if (!get) return respond(method_not_allowed("GET"));
    auto p = authorize(req, {}, Need::any);
    if (!p) return respond(std::move(p.error()));
    return whoami(*p, respond);
  }
  if (seg[2] == "tokens" && n <= 4) {
    if (n == 3 && !get && req.method != "POST") return respond(method_not_allowed("GET, POST"));
    if (n == 4 && req.method != "DELETE") return respond(method_not_allowed("DELETE"));
    if (!allowed(Need::admin)) return;
    if (n == 4) return revoke_token(seg[3], respond);
    return get ? list_tokens(respond) : create_token(req, respond);
  }
  const bool tariff_method = get || req.method == "PUT" || req.method == "DELETE";
  if (n == 3 && seg[2] == "tariff") {
    if (!tariff_method) return respond(method_not_allowed("GET, PUT, DELETE"));
    if (!allowed(admin_method ? Need::admin : Need::read)) return;
    return tariff(std::string(), req, respond);
  }
  if (n == 4 && seg[2] == "energy" && seg[3] == "summary") {
    if (!get) return respond(method_not_allowed("GET"));
    if (!allowed(Need::read)) return;
    return get_energy_summary(target, respond);
  }
  if (n == 3 && seg[2] == "alerts") {
    if (!get) return respond(method_not_allowed("GET"));
    if (!allowed(Need::read)) return;
    return list_alerts(target, respond);
  }
  if (seg[2] != "meters" || n > 5)
    return respond(error_response(404, "not_found", "no such endpoint"));
  if (n == 3) {
    if (!get && req.method != "POST") return respond(method_not_allowed("GET, POST"));
    if (!allowed(get ? Need::read : Need::admin)) return;
    return get ? list_meters(respond) : create_meter(req, respond);
  }
  if (auto e = core::check_meter_id(seg[3]))
    return respond(error_response(400, "invalid_meter_id", e->message));
  if (n == 4) {
    if (!get && req.method != "PATCH" && req.method != "DELETE")
      return respond(method_not_allowed("GET, PATCH, DELETE"));
    if (!allowed(get ? Need::read : Need::admin)) return;
    if (req.method == "PATCH") return patch_meter(seg[3], req, respond);
    if (req.method == "DELETE") return delete_meter(seg[3], target, respond);
    return get_meter(seg[3], false, respond);
  }
  if (seg[4] == "rotate-key") {
    if (req.method != "POST") return respond(method_not_allowed("POST"));
    if (!allowed(Need::admin)) return;
    return rotate_key(seg[3], respond);
  }
  if (seg[4] == "tariff") {
    if (!tariff_method) return respond(method_not_allowed("GET, PUT, DELETE"));
    if (!allowed(admin_method ? Need::admin : Need::read)) return;
    return tariff(seg[3], req, respond);
  }
  if (seg[4] == "alerts") {
    if (!get && req.method != "PUT") return respond(method_not_allowed("GET, PUT"));
    if (!allowed(get ? Need::read : Need::admin)) return;
    return alert_rules(seg[3], req, respond);
  }
  const bool known = seg[4] == "latest" || seg[4] == "readings" || seg[4] == "series" ||
                     seg[4] == "energy";
  if (!known) return respond(error_response(404, "not_found", "no such endpoint"));
  if (!get) return respond(method_not_allowed("GET"));
  if (!allowed(Need::read)) return;
  if (seg[4] == "latest") return get_meter(seg[3], true, respond);
  if (seg[4] == "readings") return get_readings(seg[3], req, target, respond);
  if (seg[4] == "series") return get_series(seg[3], req, target, respond);
  return get_energy(seg[3], req, target, respond);
}

void Router::post_readings(Request& req, Responder& respond) {
  auto who = writer(req, {});
  if (!who) return respond(std::move(who.error()));
  if (auto refused = require_json(req)) return respond(std::move(*refused));
  auto readings = codec::decode_readings(req.body, decode_options());
  if (!readings) return respond(json_response(400, codec::encode_error(readings.error())));
  ingest_as(req, *who, std::move(*readings), respond, [](const ingest::IngestCounts& c) {
    std::string body;
    JsonWriter w(body);
    w.begin_object()
        .key("accepted")
        .integer(static_cast<std::int64_t>(c.accepted))
        .key("duplicates")
        .integer(static_cast<std::int64_t>(c.duplicates))
        .end_object();
    return json_response(201, std::move(body));
  });
}

codec::DecodeOptions Router::decode_options() const {
  codec::DecodeOptions d;
  d.max_readings = opts_.max_batch;
  d.now = core::now_ms();
  d.future_tolerance_ms = opts_.future_tolerance_ms;
  return d;
}

std::expected<auth::Principal, Response> Router::writer(const Request& req, std::string_view key) {
  // Who: a device key (its own meter), an admin token (any registered
  // meter), or nobody where --auto-register allows. Checked before the body
  // is even decoded, so an anonymous client learns nothing about it.
  using Kind = auth::Principal::Kind;
  auto who = authorize(req, key, Need::any);
  if (!who && who.error().status == 401 && auth_.options().auto_register && key.empty() &&
      req.authorization.empty() && req.api_key.empty())
    who = auth::Principal{};  // anonymous lab write; checked per meter in ingest_as
  if (!who) return who;
  const auth::Principal& p = *who;
  if (p.kind == Kind::token && !p.is_admin())
    return std::unexpected(error_response(
        403, "forbidden", "a read token cannot write readings; use the meter's device key"));
  if (p.kind == Kind::anonymous && !auth_.options().auto_register)
    return std::unexpected(unauthorized(
        req, core::Error{"unauthorized",
                         "missing device key: send Authorization: Bearer <device key>",
                         std::nullopt, {}}));
  if (p.kind == Kind::device)
    if (auto r = limited(device_limiter_, p.meter_id, "meter \"" + p.meter_id + "\""))
      return std::unexpected(std::move(*r));
  return who;
}

void Router::ingest_as(const Request& req, const auth::Principal& p,
                       std::vector<core::Reading> readings, Responder& respond, Ack ok) {
  // Every reading must be one this principal may write: all or nothing.
  using Kind = auth::Principal::Kind;
  bool create_meters = auth_.options().auto_register;
  if (p.kind == Kind::device) {
    create_meters = false;
    for (std::size_t i = 0; i < readings.size(); ++i)
      if (readings[i].meter_id != p.meter_id)
        return respond(json_response(
            403, codec::encode_error(core::Error{
                     "forbidden",
                     "readings[" + std::to_string(i) + "] is for meter \"" +
                         readings[i].meter_id + "\" but this device key belongs to \"" +
                         p.meter_id + "\"; nothing was stored",
                     i, "meter_id"})));
  } else if (p.kind == Kind::anonymous) {
    const std::string* last = nullptr;
    for (const auto& r : readings) {
      if (last && *last == r.meter_id) continue;
      last = &r.meter_id;
      if (auth_.meter_has_key(r.meter_id))
        return respond(unauthorized(
            req, core::Error{"unauthorized",
                             "meter \"" + r.meter_id + "\" has a device key: send it", std::nullopt,
                             {}}));
      if (auto lim = limited(device_limiter_, r.meter_id, "meter \"" + r.meter_id + "\""))
        return respond(std::move(*lim));
    }
  }

  // The readings are acknowledged only from inside `done`, i.e. after COMMIT.
  auto done = [respond, ok = std::move(ok)](core::Result<ingest::IngestCounts> res) {
    if (!res && res.error().code == "unknown_meter")
      return respond(json_response(404, codec::encode_error(res.error())));
    if (!res) return respond(unavailable(res.error(), "2"));
    respond(ok(*res));
  };
  if (!ingest_.submit(std::move(readings), std::move(done), create_meters))
    respond(unavailable(
        core::Error{"overloaded", "ingest queue is full or shutting down; retry", std::nullopt, {}},
        "1"));
}

void Router::readyz(Responder& respond) {
  bool queued = ingest_.probe([respond](core::Result<void> r) {
    if (!r) return respond(from_store_error(r.error()));
    respond(json_response(200, R"({"status":"ready"})"));
  });
  if (!queued)
    respond(unavailable(core::Error{"shutting_down", "server is shutting down", std::nullopt, {}},
                        "1"));
}

std::optional<Response> Router::require_meter(const std::string& meter_id) {
  auto m = store_.find_meter(meter_id);
  if (!m) return from_store_error(m.error());
  if (!*m) return error_response(404, "unknown_meter", "no meter \"" + meter_id + "\"");
  return std::nullopt;
}

void Router::query(Responder& respond, std::function<Response()> fn) {
  bool ok = queries_.submit([respond, fn = std::move(fn)] { respond(fn()); });
  if (!ok)
    respond(unavailable(
        core::Error{"overloaded", "too many queries in progress; retry", std::nullopt, {}}, "1"));
}

void Router::list_meters(Responder& respond) {
  query(respond, [this] {
    auto meters = store_.list_meters();
    if (!meters) return from_store_error(meters.error());
    std::string body;
    JsonWriter w(body);
    w.begin_object().key("meters").begin_array();
    for (const auto& m : *meters) write_meter_json(w, m);
    w.end_array().key("count").integer(static_cast<std::int64_t>(meters->size())).end_object();
    return json_response(200, std::move(body));
  });
}

void Router::get_meter(std::string meter_id, bool latest_only, Responder& respond) {
  query(respond, [this, meter_id = std::move(meter_id), latest_only] {
    auto m = store_.find_meter(meter_id);
    if (!m) return from_store_error(m.error());
    if (!*m) return error_response(404, "unknown_meter", "no meter \"" + meter_id + "\"");
    if (!latest_only) {
      std::string body;
      JsonWriter w(body);
      write_meter_json(w, **m);
      return json_response(200, std::move(body));
    }
    if (!(*m)->latest)
      return error_response(404, "no_readings", "meter \"" + meter_id + "\" has no readings");
    return json_response(200, codec::encode_reading(*(*m)->latest));
  });
}

void Router::get_readings(std::string meter_id, const Request& req, const Target& t,
                          Responder& respond) {
  std::string format_error;
  const bool csv = wants_csv(req, t, format_error);
  if (!format_error.empty()) return respond(error_response(400, "invalid_parameter", format_error));
  store::RangeQuery q;
  q.meter_id = std::move(meter_id);
  q.from = std::numeric_limits<core::TimeMs>::min();
  q.to = std::numeric_limits<core::TimeMs>::max();
  q.limit = opts_.page_default;
  if (auto v = t.param("from")) {
    auto r = parse_time_param("from", *v);
    if (!r) return respond(bad_parameter(r.error()));
    q.from = *r;
  }
  if (auto v = t.param("to")) {
    auto r = parse_time_param("to", *v);
    if (!r) return respond(bad_parameter(r.error()));
    q.to = *r;
  }
  if (q.from > q.to)
    return respond(error_response(400, "invalid_parameter", "from must not be after to"));
  if (auto v = t.param("limit")) {
    std::size_t lim = 0;
    auto [p, ec] = std::from_chars(v->data(), v->data() + v->size(), lim);
    if (ec != std::errc() || p != v->data() + v->size() || lim < 1 || lim > opts_.page_max)
      return respond(error_response(
          400, "invalid_parameter",
          "limit must be a whole number from 1 to " + std::to_string(opts_.page_max)));
    q.limit = lim;
  }
  if (auto v = t.param("order")) {
    if (*v == "desc")
      q.descending = true;
    else if (*v != "asc")
      return respond(error_response(400, "invalid_parameter", "order must be asc or desc"));
  }
  query(respond, [this, q = std::move(q), csv] {
    if (auto missing = require_meter(q.meter_id)) return std::move(*missing);
    auto rows = store_.read_range(q);
    if (!rows) return from_store_error(rows.error());
    std::string next;
    if (rows->size() == q.limit) {
      const core::TimeMs last = rows->back().ts;
      next = q.descending ? readings_link(q.meter_id, q.from, last, q.limit, true)
                          : readings_link(q.meter_id, last + 1, q.to, q.limit, false);
    }
    if (csv) {
      Response r = json_response(200, codec::encode_readings_csv(*rows));
      r.content_type = "text/csv; charset=utf-8";
      // The next page, as in the JSON "next" (RFC 8288).
      if (!next.empty()) r.headers.emplace_back("Link", "<" + next + "&format=csv>; rel=\"next\"");
      return r;
    }
    std::string body;
    body.reserve(64 + rows->size() * 170);
    JsonWriter w(body);
    w.begin_object().key("meter_id").string(q.meter_id);
    w.key("count").integer(static_cast<std::int64_t>(rows->size()));
    w.key("readings").begin_array();
    for (const auto& r : *rows) {
      std::string one;
      codec::append_reading_json(one, r);
      w.raw(one);
    }
    w.end_array().key("next");
    if (!next.empty())
      w.string(next);
    else
      w.null();
    w.end_object();
    return json_response(200, std::move(body));
  });
}

}  // namespace meterhub::api
