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

namespace meterhub::api {
namespace {

using codec::JsonWriter;

void write_meter(JsonWriter& w, const store::MeterInfo& m) {
  w.begin_object();
  w.key("meter_id").string(m.meter_id);
  w.key("name").string(m.name);
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
      {"GET", "/ws"},
      {"GET", "/ws/{meter_id}"},
      {"POST", "/api/v1/readings"},
      {"GET", "/api/v1/meters"},
      {"GET", "/api/v1/meters/{meter_id}"},
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
  };
  return kRoutes;
}

Router::Router(ingest::Ingest& ingest, store::Store& store, QueryPool& queries, ApiOptions opts)
    : ingest_(ingest), store_(store), queries_(queries), opts_(opts) {}

std::expected<std::optional<std::string>, Response> Router::websocket_meter(
    std::string_view target) {
  auto t = parse_target(target);
  if (!t) return std::unexpected(error_response(400, t.error().code, t.error().message));
  if (t->segments.size() == 1 && t->segments[0] == "ws") return std::nullopt;  // multiplexed
  if (t->segments.size() != 2 || t->segments[0] != "ws")
    return std::unexpected(
        error_response(404, "not_found", "no WebSocket endpoint here; use /ws or /ws/{meter_id}"));
  if (auto e = core::check_meter_id(t->segments[1]))
    return std::unexpected(error_response(400, "invalid_meter_id", e->message));
  return std::optional<std::string>(std::move(t->segments[1]));
}

void Router::handle(Request req, Responder respond) {
  auto t = parse_target(req.target);
  if (!t) return respond(error_response(400, t.error().code, t.error().message));
  const auto& seg = t->segments;
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
  if (n >= 1 && seg[0] == "ws") {
    Response r = error_response(426, "upgrade_required",
                                "/ws and /ws/{meter_id} are WebSocket endpoints; connect with a "
                                "WebSocket client");
    r.headers.emplace_back("Upgrade", "websocket");
    return respond(std::move(r));
  }
  if (n == 0 || seg[0] != "api") {
    // The dashboard, the API reference and their assets.
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

  if (n == 3 && seg[2] == "readings") {
    if (req.method != "POST") return respond(method_not_allowed("POST"));
    return post_readings(req, respond);
  }
  if (n == 3 && seg[2] == "tariff") return tariff(std::string(), req, respond);
  if (n == 4 && seg[2] == "energy" && seg[3] == "summary") {
    if (!get) return respond(method_not_allowed("GET"));
    return get_energy_summary(*t, respond);
  }
  if (seg[2] != "meters" || n > 5)
    return respond(error_response(404, "not_found", "no such endpoint"));
  if (n == 3) {
    if (!get) return respond(method_not_allowed("GET"));
    return list_meters(respond);
  }
  if (auto e = core::check_meter_id(seg[3]))
    return respond(error_response(400, "invalid_meter_id", e->message));
  if (n == 4) {
    if (!get) return respond(method_not_allowed("GET"));
    return get_meter(seg[3], false, respond);
  }
  if (seg[4] == "latest") {
    if (!get) return respond(method_not_allowed("GET"));
    return get_meter(seg[3], true, respond);
  }
  if (seg[4] == "readings") {
    if (!get) return respond(method_not_allowed("GET"));
    return get_readings(seg[3], req, *t, respond);
  }
  if (seg[4] == "series") {
    if (!get) return respond(method_not_allowed("GET"));
    return get_series(seg[3], req, *t, respond);
  }
  if (seg[4] == "energy") {
    if (!get) return respond(method_not_allowed("GET"));
    return get_energy(seg[3], req, *t, respond);
  }
  if (seg[4] == "tariff") return tariff(seg[3], req, respond);
  return respond(error_response(404, "not_found", "no such endpoint"));
}

void Router::post_readings(Request& req, Responder& respond) {
  if (auto refused = require_json(req)) return respond(std::move(*refused));
  codec::DecodeOptions d;
  d.max_readings = opts_.max_batch;
  d.now = core::now_ms();
  d.future_tolerance_ms = opts_.future_tolerance_ms;
  auto readings = codec::decode_readings(req.body, d);
  if (!readings) return respond(json_response(400, codec::encode_error(readings.error())));

  // The readings are acknowledged only from inside `done`, i.e. after COMMIT.
  auto done = [respond](core::Result<ingest::IngestCounts> res) {
    if (!res) return respond(unavailable(res.error(), "2"));
    std::string body;
    JsonWriter w(body);
    w.begin_object()
        .key("accepted")
        .integer(static_cast<std::int64_t>(res->accepted))
        .key("duplicates")
        .integer(static_cast<std::int64_t>(res->duplicates))
        .end_object();
    respond(json_response(201, std::move(body)));
  };
  if (!ingest_.submit(std::move(*readings), std::move(done)))
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
    for (const auto& m : *meters) write_meter(w, m);
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
      write_meter(w, **m);
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
