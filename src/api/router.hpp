// The HTTP API: routes a Request to its handler and answers through a
// Responder. Writes go to Ingest (answered after commit); reads run on the
// QueryPool against the Store. The full contract is docs/api.md.
//
// Access: handle() checks the per-IP rate limit and CORS, then each route
// states what it needs (Need) and authorize() decides, in access.cpp.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "api/http_types.hpp"
#include "api/query_pool.hpp"
#include "auth/authenticator.hpp"
#include "auth/rate_limiter.hpp"
#include "codec/reading_codec.hpp"
#include "core/energy.hpp"
#include "core/reading.hpp"
#include "hub/hub.hpp"
#include "ingest/ingest.hpp"
#include "store/store.hpp"

namespace meterhub::alerts {
class Engine;  // alerts/engine.hpp
}  // namespace meterhub::alerts

namespace meterhub::api {

class LogLimit;  // api/log_limit.hpp

struct Target;      // api/target.hpp
class StaticFiles;  // api/static_files.hpp

struct ApiOptions {
  std::size_t max_batch = 5000;                // readings per POST
  core::TimeMs future_tolerance_ms = 300'000;  // how far ahead of server time a ts may be
  std::size_t page_default = 1000;             // raw readings per page
  std::size_t page_max = 10000;
  // History (series, energy):
  std::size_t max_buckets = 10000;       // per series answer; also the max of points=
  std::size_t max_raw_rows = 1'000'000;  // readings a raw-data series may scan
  std::size_t max_periods = 10000;       // per energy answer
  core::TimeMs minute_rollup_ms =
      365LL * 86'400'000;            // how long rollup_1m rows are kept (0 = forever)
  std::string default_tz = "UTC";    // energy periods when the request names none
  core::CounterRules counter_rules;  // as the store's rollups
  // Rate limits (token buckets; rate 0 = off) and CORS (docs/api.md).
  double ip_rate = 200, ip_burst = 400;        // every request, per client IP
  double device_rate = 10, device_burst = 100;  // POST /readings, per meter
  std::vector<std::string> cors_origins;        // allowed Origins; "*" = any
};

// Every route the Router serves (method, path template). Kept next to
// Router::handle and checked by tests/unit/openapi_test.cpp against
// docs/openapi.json in both directions and against handle() itself.
struct RouteInfo {
  const char* method;
  const char* path;  // "{meter_id}" / "{token_id}" mark the path parameter
};
std::span<const RouteInfo> routes();

// What a request needs to be allowed (docs/api.md, "Authentication").
enum class Need : std::uint8_t {
  any,    // any valid key, or none
  read,   // a read or admin token (or none with --public-read)
  admin,  // an admin token
};

class Router {
 public:
  Router(ingest::Ingest& ingest, store::Store& store, QueryPool& queries, hub::Hub& hub,
         auth::Authenticator& auth, ApiOptions opts);
  ~Router();

  void handle(Request req, Responder respond);

  // The dashboard's files (may be empty); must outlive the Router.
  void set_static_files(const StaticFiles* files) { web_ = files; }
  // The alert engine (may be unset: PUT of alert rules then answers 503);
  // must outlive the Router.
  void set_alerts(alerts::Engine* engine) { alerts_ = engine; }

  // A WebSocket upgrade request, authorised (rate limit, key from
  // ?token=, the "bearer.<key>" subprotocol or the headers): what to serve,
  // or the error Response to send instead of upgrading.
  struct WsGrant {
    std::optional<std::string> meter;  // "/ws/{meter_id}"; nullopt: multiplexed "/ws"
    std::string subprotocol;           // to answer with ("meterhub"), empty for none
    // False once the key the socket was opened with is revoked (empty: no
    // key). Cheap when nothing changed; call on one thread at a time.
    std::function<bool()> still_allowed;
  };
  std::expected<WsGrant, Response> websocket(const Request& req);

 private:
  // access.cpp: who may, how often, from where.
  // The principal of a request, or the 401/403 to answer instead.
  std::expected<auth::Principal, Response> authorize(const Request& req, std::string_view key,
                                                     Need need);
  // A 401 for a failed authentication, logged (rate-limited) with the peer.
  Response unauthorized(const Request& req, const core::Error& e);
  // The Access-Control-Allow-Origin value for this request's Origin ("" = none).
  std::string cors_origin(const Request& req) const;
  Response preflight(const Request& req, const std::string& allow_origin) const;
  // 429 with Retry-After when `limiter` has no token for `key`.
  static std::optional<Response> limited(auth::RateLimiter& limiter, std::string_view key,
                                         std::string_view who);

  void route(Request& req, const Target& t, Responder& respond);
  void post_readings(Request& req, Responder& respond);
  // The one write path of every readings endpoint (ours and compat.cpp's).
  // writer(): who writes, presenting `key` (empty: the request's headers) —
  // a device key, an admin token, or nobody where --auto-register allows —
  // or the 401/403/429 to answer instead; checked before any body is decoded.
  std::expected<auth::Principal, Response> writer(const Request& req, std::string_view key);
  // Submits `readings` if `p` may write every one of them (else 401/403/429
  // and nothing stored) and answers ok(counts) after COMMIT, or 404/503.
  using Ack = std::function<Response(const ingest::IngestCounts&)>;
  void ingest_as(const Request& req, const auth::Principal& p, std::vector<core::Reading> readings,
                 Responder& respond, Ack ok);
  codec::DecodeOptions decode_options() const;
  // compat.cpp: device formats (docs/formats.md) through the same path.
  void thingsboard_telemetry(const std::string& token, Request& req, Responder& respond);
  void emoncms_input(bool bulk, Request& req, const Target& t, Responder& respond);
  // registry.cpp: meters, keys, tokens.
  void whoami(const auth::Principal& p, Responder& respond);
  void create_meter(Request& req, Responder& respond);
  void patch_meter(std::string meter_id, Request& req, Responder& respond);
  void delete_meter(std::string meter_id, const Target& t, Responder& respond);
  void rotate_key(std::string meter_id, Responder& respond);
  void list_tokens(Responder& respond);
  void create_token(Request& req, Responder& respond);
  void revoke_token(std::string token_id, Responder& respond);
  void readyz(Responder& respond);
  // metrics.cpp: GET /metrics, and the wrapper of every request's Responder
  // (request id, HTTP metrics, access log); sets req.request_id.
  void metrics(Responder& respond);
  Responder observe(Request& req, Responder respond);
  void list_meters(Responder& respond);
  void get_meter(std::string meter_id, bool latest_only, Responder& respond);
  void get_readings(std::string meter_id, const Request& req, const Target& t, Responder& respond);
  // history.cpp: bucketed series, energy per calendar period, tariffs.
  void get_series(std::string meter_id, const Request& req, const Target& t, Responder& respond);
  void get_energy(std::string meter_id, const Request& req, const Target& t, Responder& respond);
  // kWh per meter over a range (the dashboard's "today" on every tile).
  void get_energy_summary(const Target& t, Responder& respond);
  // GET/PUT/DELETE of a meter's tariff, or of the server default (meter_id "").
  void tariff(std::string meter_id, Request& req, Responder& respond);
  // On a query thread: the answer when meter_id does not exist (404
  // unknown_meter) or the store fails (503); nullopt when it exists.
  std::optional<Response> require_meter(const std::string& meter_id);
  // Runs fn on the query pool, or answers 503 if it is saturated.
  void query(Responder& respond, std::function<Response()> fn);

  ingest::Ingest& ingest_;
  store::Store& store_;
  QueryPool& queries_;
  hub::Hub& hub_;
  auth::Authenticator& auth_;
  ApiOptions opts_;
  auth::RateLimiter ip_limiter_, device_limiter_;
  std::unique_ptr<LogLimit> auth_log_;  // failed-auth log lines per second
  const StaticFiles* web_ = nullptr;
  // alerts.cpp: a meter's alert rules (GET/PUT) and the stored alerts.
  void alert_rules(std::string meter_id, Request& req, Responder& respond);
  void list_alerts(const Target& t, Responder& respond);
  alerts::Engine* alerts_ = nullptr;
};

}  // namespace meterhub::api
