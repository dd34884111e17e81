// Ingest: the single writer. Requests queue here; one thread takes everything
// that queued while the previous commit was running and writes it in ONE
// transaction (group commit), so a single fsync acknowledges many requests.
//
// Contract:
//  - A submission's `done` runs exactly once, on the writer thread, after its
//    transaction committed (Ok: counts) or failed (Error: nothing of it was
//    stored). Never before the commit returned.
//  - A submission is never split across transactions: all-or-nothing.
//  - Newly inserted readings are published to the Hub after the commit, in
//    commit order; duplicates are not published again. The Hub's latest
//    cache is updated before any `done` of that commit runs (a sender that
//    got its answer finds its reading as "latest"); the fan-out to
//    subscribers runs after the `done`s, so it never delays the answers.
//  - submit() refuses (returns false, never calls `done`) when the backlog
//    exceeds max_queue_readings or the writer is stopping: callers answer 503.
//  - Tasks (run_task) run alone, in queue order with the submissions.
//  - stop() commits everything already accepted, then joins the thread.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "core/error.hpp"
#include "core/reading.hpp"
#include "hub/hub.hpp"
#include "store/store.hpp"

namespace meterhub::ingest {

struct IngestOptions {
  std::size_t max_queue_readings = 200'000;  // backlog before submit() refuses
  std::size_t max_txn_readings = 50'000;     // soft cap on one transaction
  // Optional extra wait before a commit to gather more requests. 0 = natural
  // batching only: whatever arrived during the previous commit goes together.
  std::chrono::microseconds commit_delay{0};
  // Retention runs on the writer thread between commits (SQLite has one
  // writer): one batch every `retention_interval`, and the next batch soon
  // after (`retention_pause`) while there is more to delete. 0 = never (the
  // default here; the server turns it on).
  store::RetentionPolicy retention;
  std::chrono::milliseconds retention_interval{0};
  std::chrono::milliseconds retention_pause{50};
};

struct IngestCounts {
  std::size_t accepted = 0;
  std::size_t duplicates = 0;
};

struct IngestStats {
  std::uint64_t commits = 0;
  std::uint64_t readings = 0;  // readings offered to the store (new + duplicate)
  std::uint64_t failed_commits = 0;
  std::uint64_t retention_runs = 0;
  std::uint64_t retention_deleted = 0;  // raw readings and minute rollups
};

class Ingest {
 public:
  using Done = std::function<void(core::Result<IngestCounts>)>;
  using ProbeDone = std::function<void(core::Result<void>)>;

  Ingest(store::Store& store, hub::Hub& hub, IngestOptions opts);
  ~Ingest();
  Ingest(const Ingest&) = delete;
  Ingest& operator=(const Ingest&) = delete;

  void start();
  // create_meters=false: a reading for a meter that does not exist fails the
  // whole submission with "unknown_meter" (checked on the writer thread,
  // so a meter deleted meanwhile is not created again).
  bool submit(std::vector<core::Reading> readings, Done done, bool create_meters = true);
  // Runs `task` on the writer thread between two commits (registry changes
  // that must not interleave with writes, e.g. deleting a meter).
  bool run_task(std::function<void()> task);
  // Runs a real durable write through the writer (for /readyz).
  bool probe(ProbeDone done);
  // Readings another node committed (PostgreSQL fan-out, store/postgres/
  // pg_listener.hpp), in commit order: published to the Hub as this node's
  // own commits are, never between a commit's write and its last deliver,
  // and only if `claim` (called under that same lock) returns true — so
  // per meter subscribers see commit order although two threads publish.
  // Returns whether it published. Any thread; readings must be committed.
  bool publish_remote(std::span<const core::Reading> readings,
                      const std::function<bool()>& claim = {});
  void stop();

  IngestStats stats() const;

 private:
  struct Job {
    std::vector<core::Reading> readings;
    Done done;
    ProbeDone probe;
    bool create_meters = true;
    std::function<void()> task;
  };

  void run();
  void commit(std::vector<Job>& jobs);
  // Stages and delivers readings of other processes; publish_mu_ held.
  void publish_locked(std::span<const core::Reading> readings);
  // Hub::stage(r), keeping the fan-out if anyone watches (deliver it later).
  void stage_into(const core::Reading& r, std::vector<hub::Fanout>& fanouts);
  // Runs one retention batch when due; returns when the next one is due.
  std::chrono::steady_clock::time_point maintain(std::chrono::steady_clock::time_point due);

  store::Store& store_;
  hub::Hub& hub_;
  IngestOptions opts_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  // Held by the writer from before Store::write to the last Hub::deliver of
  // a commit, and by publish_remote(): uncontended with SQLite.
  std::mutex publish_mu_;
  std::deque<Job> queue_;
  std::size_t queued_readings_ = 0;
  bool stopping_ = false;
  std::thread thread_;

  std::atomic<std::uint64_t> commits_{0}, readings_{0}, failed_commits_{0};
  std::atomic<std::uint64_t> retention_runs_{0}, retention_deleted_{0};
};

}  // namespace meterhub::ingest
