// The metrics meterhub itself keeps, in one Registry for the process.
//
// Why one process-wide instance (the only one in the code base): the
// instrumented places are spread over ingest, hub, http and api, and each
// must stay a one-line increment that needs no new constructor argument in
// four modules. Everything else (values other modules already count: ingest
// and MQTT stats, store size, process) is read at scrape time by collectors
// that app/ wires up, so it costs nothing between scrapes.
//
// Names and meanings: docs/operations.md, "Metrics".
#pragma once

#include <cstddef>
#include <string_view>

#include "metrics/registry.hpp"

namespace meterhub::metrics {

struct Instruments {
  Registry registry;

  // HTTP (api::Router::handle): route = the route's template, never the raw path.
  Family<Counter>& http_requests;    // route, method, status
  Family<Histogram>& http_duration;  // route: seconds until the answer was ready
  // Readings endpoints (POST /api/v1/readings and the device formats):
  Family<Counter>& ingest_rejected;  // reason = the error code answered (requests)
  // The ingest writer (ingest::Ingest::commit):
  Family<Counter>& readings_ingested;  // result: new | duplicate
  Histogram& commit_batch;             // readings per committed transaction
  Histogram& commit_seconds;           // Store::write duration (one fsync or more)
  // WebSockets (http::WsSession, hub::SendQueue):
  Gauge& ws_connections;          // open now
  Counter& ws_connections_total;  // accepted since start
  Counter& ws_coalesced;          // messages skipped because a client was slow
  Counter& ws_dropped;            // connections dropped for a stalled client

  Instruments();
  // A commit of `batch` readings, `fresh` of them new, that took `seconds`.
  void committed(std::size_t batch, std::size_t fresh, double seconds);
};

// The process's instruments (created on first use, never destroyed).
Instruments& instruments();

}  // namespace meterhub::metrics
