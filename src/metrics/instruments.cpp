#include "metrics/instruments.hpp"

namespace meterhub::metrics {
namespace {
constexpr double kBatchBounds[] = {1,   2,    5,    10,   20,    50,    100,  200,
                                   500, 1000, 2000, 5000, 10000, 20000, 50000};
}  // namespace

Instruments::Instruments()
    : http_requests(
          registry.counter_family("meterhub_http_requests_total",
                                  "HTTP requests answered, by route template, method and status",
                                  {"route", "method", "status"})),
      http_duration(registry.histogram_family(
          "meterhub_http_request_duration_seconds",
          "Time from a request's arrival at the router to its answer (includes the commit "
          "wait of writes)",
          {"route"}, latency_buckets(), 64)),
      ingest_rejected(registry.counter_family(
          "meterhub_ingest_rejected_total",
          "Requests to the readings endpoints refused, by the error code answered; nothing "
          "of them was stored",
          {"reason"}, 128)),
      readings_ingested(registry.counter_family(
          "meterhub_readings_ingested_total",
          "Readings committed by the ingest writer: new ones, and duplicates of readings "
          "already stored",
          {"result"}, 4)),
      commit_batch(registry.histogram("meterhub_ingest_commit_batch_readings",
                                      "Readings per committed transaction (group commit)",
                                      kBatchBounds)),
      commit_seconds(registry.histogram("meterhub_ingest_commit_duration_seconds",
                                        "Duration of each committed write transaction",
                                        latency_buckets())),
      ws_connections(
          registry.gauge("meterhub_websocket_connections", "WebSocket connections open now")),
      ws_connections_total(registry.counter("meterhub_websocket_connections_total",
                                            "WebSocket connections accepted since start")),
      ws_coalesced(registry.counter(
          "meterhub_websocket_messages_coalesced_total",
          "Queued WebSocket messages replaced by a newer one because a client read slowly")),
      ws_dropped(registry.counter(
          "meterhub_websocket_dropped_total",
          "WebSocket connections dropped because a send stayed stuck past --ws-stall-timeout")) {
  // Both results from the first scrape on, so rate() works from the start.
  readings_ingested.with({"new"});
  readings_ingested.with({"duplicate"});
}

void Instruments::committed(std::size_t batch, std::size_t fresh, double seconds) {
  readings_ingested.with({"new"}).inc(fresh);
  readings_ingested.with({"duplicate"}).inc(batch - fresh);
  commit_batch.observe(static_cast<double>(batch));
  commit_seconds.observe(seconds);
}

Instruments& instruments() {
  // Leaked on purpose: threads still running at exit may increment.
  static Instruments* const kInstance = new Instruments();
  return *kInstance;
}

}  // namespace meterhub::metrics
