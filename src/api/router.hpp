// The HTTP API: routes a Request to its handler and answers through a
// Responder. Writes go to Ingest (answered after commit); reads run on the
// QueryPool against the Store. The full contract is docs/api.md.
//
// Auth seam: every handler receives the parsed request; the device registry
// (issue 5) plugs an authoriser in before ingest here, in one place.
#pragma once

#include <cstddef>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "api/http_types.hpp"
#include "api/query_pool.hpp"
#include "core/energy.hpp"
#include "core/reading.hpp"
#include "ingest/ingest.hpp"
#include "store/store.hpp"

namespace meterhub::api {

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
};

// Every route the Router serves (method, path template). Kept next to
// Router::handle and checked by tests/unit/openapi_test.cpp against
// docs/openapi.json in both directions and against handle() itself.
struct RouteInfo {
  const char* method;
  const char* path;  // "{meter_id}" marks the path parameter
};
std::span<const RouteInfo> routes();

class Router {
 public:
  Router(ingest::Ingest& ingest, store::Store& store, QueryPool& queries, ApiOptions opts);

  void handle(Request req, Responder respond);

  // The dashboard's files (may be empty); must outlive the Router.
  void set_static_files(const StaticFiles* files) { web_ = files; }

  // For a WebSocket upgrade on `target`: the meter id of "/ws/{meter_id}",
  // nullopt for the multiplexed "/ws", or the error Response to send instead.
  static std::expected<std::optional<std::string>, Response> websocket_meter(
      std::string_view target);

 private:
  void post_readings(Request& req, Responder& respond);
  void readyz(Responder& respond);
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
  ApiOptions opts_;
  const StaticFiles* web_ = nullptr;
};

}  // namespace meterhub::api
