// The receiving half of the fan-out between meterhub nodes that share one
// PostgreSQL database (fanout.hpp has the sending half and the wire format).
//
// A PgListener owns one libpq connection of its own and one thread. It
// LISTENs on the readings channel (pg::kReadingsChannel) and on the registry
// channel ("<created|updated|deleted> <meter_id> <node>") and
// hands what other nodes committed to two callbacks, on its thread only:
//  - on_readings: the new readings of one committed batch, in the order they
//    were written, and `claim`: the callback publishes them only if claim()
//    returns true, and calls it under the same lock that the ingest writer
//    holds across its commit (Ingest::publish_remote does both). claim()
//    marks the batch seen (SeenBatches): false for the node's own batches
//    and for batches already published — also by the writer, which
//    publishes other nodes' batches that committed before its own first
//    (WriteOutcome::committed_before). Returns whether it published.
//    Pointer notifications are read back with PgStore::read_batch.
//  - on_registry: a meter was created, updated or deleted by another node.
//
// Nothing is missed across a lost connection: the listener reconnects with
// backoff (100 ms doubling to 5 s), LISTENs again first, and only then reads
// the batches committed meanwhile (PgStore::read_batches_after, from
// kResyncMargin below the newest batch seen) and hands over the ones not seen.
// At most PgListenerOptions::resync_limit readings are read back per resync;
// beyond that the rest is skipped with a warning (subscribers then miss those
// live readings; the store has them all).
//
// Start-up: prepare() connects, LISTENs and marks every batch already
// committed as seen (the caller primes its caches from the store after
// that); start() then resyncs once and follows the notifications. So a
// batch committed between the priming and the LISTEN is neither lost nor
// handed over twice.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/error.hpp"
#include "core/reading.hpp"
#include "store/postgres/pg_store.hpp"

struct pg_conn;  // libpq's PGconn

namespace meterhub::store {

namespace pg {
inline constexpr const char* kRegistryChannel = "meterhub_registry";
}  // namespace pg

struct PgListenerOptions {
  std::string conninfo;  // the same database as the store's
  // Batch ids come from a sequence when a write transaction begins, so they
  // are not in commit order: a transaction that took id 100 may commit after
  // one that took 105. A resync therefore starts this many ids below the
  // newest batch seen, and SeenBatches drops what was already handed over.
  // 10 000 covers 10 000 writes (from all nodes) that began before a slow
  // one committed — far more than the writers and pools of a few nodes can
  // have in flight — while the BRIN index keeps reading that range cheap.
  std::int64_t resync_margin = 10'000;
  std::size_t resync_limit = 100'000;  // readings read back per resync
  std::chrono::milliseconds backoff_min{100}, backoff_max{5'000};
  // Upper bound on how long stop() waits for the thread (poll timeout).
  std::chrono::milliseconds poll_timeout{200};
};

enum class RegistryChange { created, updated, deleted };

struct PgListenerStats {
  std::uint64_t notifications = 0;    // received on either channel
  std::uint64_t batches = 0;          // handed to on_readings
  std::uint64_t readings = 0;         // in those batches
  std::uint64_t skipped = 0;          // batches already seen (own writes, repeats)
  std::uint64_t pointer_fetches = 0;  // pointer notifications read back
  std::uint64_t resyncs = 0;
  std::uint64_t resync_truncated = 0;  // resyncs that hit resync_limit
  std::uint64_t reconnects = 0;
  std::uint64_t errors = 0;  // undecodable notifications, failed read-backs
  bool connected = false;
};

class PgListener {
 public:
  using Claim = std::function<bool()>;
  using OnReadings = std::function<bool(std::vector<core::Reading>&&, const Claim& claim)>;
  using OnRegistry = std::function<void(RegistryChange, const std::string& meter_id)>;

  // `store` must outlive the listener; its seen() set is shared.
  PgListener(PgStore& store, PgListenerOptions opts, OnReadings on_readings,
             OnRegistry on_registry);
  ~PgListener();
  PgListener(const PgListener&) = delete;
  PgListener& operator=(const PgListener&) = delete;

  // Connects, LISTENs and marks the batches committed so far as seen. Call
  // before priming caches from the store, then start(). Fails when the
  // database cannot be reached.
  core::Result<void> prepare();
  // Starts the thread: one resync, then notifications until stop().
  void start();
  // Prompt (within poll_timeout, or a callback's duration). Idempotent.
  void stop();

  PgListenerStats stats() const;

 private:
  void run();
  core::Result<void> connect_and_listen();
  // Reads what committed after the newest seen batch (less the margin).
  void resync();
  // Drains the connection's pending notifications; false: connection lost.
  bool drain();
  void on_readings_payload(std::string_view payload);
  void on_registry_payload(std::string_view payload);
  // Hands one batch to on_readings; whether it was published (not claimed before).
  bool publish(std::int64_t batch, std::vector<core::Reading>&& readings);
  void sleep_for(std::chrono::milliseconds d);
  void close();

  PgStore& store_;
  PgListenerOptions opts_;
  OnReadings on_readings_;
  OnRegistry on_registry_;
  pg_conn* conn_ = nullptr;      // the listener's own connection (PQfinish on close)
  std::int64_t start_mark_ = 0;  // batch sequence at prepare()

  std::thread thread_;
  std::atomic<bool> stopping_{false};
  std::mutex sleep_mu_;
  std::condition_variable sleep_cv_;

  std::atomic<std::uint64_t> notifications_{0}, batches_{0}, readings_{0}, skipped_{0},
      pointer_fetches_{0}, resyncs_{0}, truncated_{0}, reconnects_{0}, errors_{0};
  std::atomic<bool> connected_{false};
};

}  // namespace meterhub::store
