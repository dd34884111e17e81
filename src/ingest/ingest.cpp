#include "ingest/ingest.hpp"

#include <pthread.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <optional>

#include "core/time.hpp"
#include "metrics/instruments.hpp"

namespace meterhub::ingest {

Ingest::Ingest(store::Store& store, hub::Hub& hub, IngestOptions opts)
    : store_(store), hub_(hub), opts_(opts) {}

Ingest::~Ingest() { stop(); }

void Ingest::start() {
  thread_ = std::thread([this] { run(); });
  pthread_setname_np(thread_.native_handle(), "mh-ingest");  // visible in top -H and perf
}

bool Ingest::submit(std::vector<core::Reading> readings, Done done, bool create_meters) {
  {
    std::lock_guard lk(mu_);
    if (stopping_) return false;
    // A single request larger than the whole backlog limit is still let in
    // when the queue is empty, so the limit never rejects a valid batch forever.
    if (queued_readings_ > 0 && queued_readings_ + readings.size() > opts_.max_queue_readings)
      return false;
    queued_readings_ += readings.size();
    queue_.push_back(Job{std::move(readings), std::move(done), nullptr, create_meters, nullptr});
  }
  cv_.notify_one();
  return true;
}

bool Ingest::run_task(std::function<void()> task) {
  {
    std::lock_guard lk(mu_);
    if (stopping_) return false;
    queue_.push_back(Job{{}, nullptr, nullptr, true, std::move(task)});
  }
  cv_.notify_one();
  return true;
}

bool Ingest::probe(ProbeDone done) {
  {
    std::lock_guard lk(mu_);
    if (stopping_) return false;
    queue_.push_back(Job{{}, nullptr, std::move(done), true, nullptr});
  }
  cv_.notify_one();
  return true;
}

void Ingest::stop() {
  {
    std::lock_guard lk(mu_);
    stopping_ = true;
  }
  cv_.notify_one();
  if (thread_.joinable()) thread_.join();
}

IngestStats Ingest::stats() const {
  return IngestStats{commits_.load(), readings_.load(), failed_commits_.load(),
                     retention_runs_.load(), retention_deleted_.load()};
}

std::chrono::steady_clock::time_point Ingest::maintain(std::chrono::steady_clock::time_point due) {
  using clock = std::chrono::steady_clock;
  if (opts_.retention_interval.count() <= 0) return clock::time_point::max();
  if (clock::now() < due) return due;
  auto res = store_.apply_retention(opts_.retention, core::now_ms());
  retention_runs_.fetch_add(1, std::memory_order_relaxed);
  if (!res) {
    spdlog::warn("retention failed (will retry): {}", res.error().message);
    return clock::now() + opts_.retention_interval;
  }
  const std::size_t n = res->raw_deleted + res->minute_deleted;
  retention_deleted_.fetch_add(n, std::memory_order_relaxed);
  if (n)
    spdlog::debug("retention: {} raw readings, {} minute rollups deleted", res->raw_deleted,
                  res->minute_deleted);
  return clock::now() + (res->more ? opts_.retention_pause : opts_.retention_interval);
}

void Ingest::run() {
  std::vector<Job> jobs;
  // The first retention batch runs shortly after start, not a full interval later.
  auto retention_due = std::chrono::steady_clock::now() + opts_.retention_pause;
  // Several nodes on one database: while idle, hand over what other nodes
  // committed every kRemotePoll (Store::take_remote_commits), so the
  // writer's connection never holds a backlog of their notifications.
  constexpr auto kRemotePoll = std::chrono::milliseconds(200);
  const bool remote = store_.receives_remote_commits();
  for (;;) {
    retention_due = maintain(retention_due);
    {
      std::unique_lock lk(mu_);
      const auto wake =
          remote ? std::min(retention_due, std::chrono::steady_clock::now() + kRemotePoll)
                 : retention_due;
      if (wake == std::chrono::steady_clock::time_point::max()) {
        cv_.wait(lk, [&] { return !queue_.empty() || stopping_; });
      } else if (!cv_.wait_until(lk, wake, [&] { return !queue_.empty() || stopping_; })) {
        lk.unlock();
        if (remote) {
          std::lock_guard publishing(publish_mu_);
          if (auto rs = store_.take_remote_commits(); rs && !rs->empty()) publish_locked(*rs);
        }
        continue;  // idle until retention was due
      }
      if (queue_.empty()) return;  // stopping, and everything accepted is committed
      if (opts_.commit_delay.count() > 0 && !stopping_ &&
          queued_readings_ < opts_.max_txn_readings) {
        cv_.wait_for(lk, opts_.commit_delay,
                     [&] { return stopping_ || queued_readings_ >= opts_.max_txn_readings; });
      }
      std::size_t taken = 0;
      // A task goes alone: everything queued before it commits first.
      while (!queue_.empty() &&
             (jobs.empty() || (!queue_.front().task &&
                               taken + queue_.front().readings.size() <= opts_.max_txn_readings))) {
        taken += queue_.front().readings.size();
        const bool task = static_cast<bool>(queue_.front().task);
        jobs.push_back(std::move(queue_.front()));
        queue_.pop_front();
        if (task) break;
      }
      queued_readings_ -= taken;
    }
    commit(jobs);
    jobs.clear();
  }
}

void Ingest::commit(std::vector<Job>& jobs) {
  if (jobs.size() == 1 && jobs[0].task) return jobs[0].task();
  const core::TimeMs now = core::now_ms();

  // Submissions that may not create meters: all their meters must exist,
  // checked for the whole group at once.
  std::vector<unsigned char> skip(jobs.size(), 0);
  std::vector<std::string> keyed;  // the distinct meters of those submissions
  for (const Job& j : jobs) {
    if (j.create_meters) continue;
    for (const core::Reading& r : j.readings)
      if (keyed.empty() || keyed.back() != r.meter_id) keyed.push_back(r.meter_id);
  }
  if (!keyed.empty()) {
    std::sort(keyed.begin(), keyed.end());
    keyed.erase(std::unique(keyed.begin(), keyed.end()), keyed.end());
    auto missing = store_.writer_missing_meters(keyed);
    for (std::size_t k = 0; k < jobs.size(); ++k) {
      Job& j = jobs[k];
      if (j.create_meters || j.readings.empty()) continue;
      if (!missing) {
        skip[k] = 1;
        j.done(std::unexpected(missing.error()));
        continue;
      }
      for (const core::Reading& r : j.readings) {
        if (!std::binary_search(missing->begin(), missing->end(), r.meter_id)) continue;
        skip[k] = 1;
        j.done(std::unexpected(core::Error{"unknown_meter",
                                           "no meter \"" + r.meter_id + "\"; register it first",
                                           std::nullopt, "meter_id"}));
        break;
      }
    }
  }

  std::vector<core::Reading> batch;
  std::size_t total = 0;
  for (std::size_t k = 0; k < jobs.size(); ++k)
    if (!skip[k]) total += jobs[k].readings.size();
  batch.reserve(total);
  for (std::size_t k = 0; k < jobs.size(); ++k)
    if (!skip[k])
      for (core::Reading& r : jobs[k].readings) batch.push_back(std::move(r));

  // Every /readyz waiting in this group shares one durable probe write.
  std::optional<core::Result<void>> probed;
  for (Job& j : jobs) {
    if (!j.probe) continue;
    if (!probed) probed = store_.probe_write(now);
    j.probe(*probed);
  }

  if (batch.empty()) return;
  // Held from before the write to the last deliver: readings another node
  // committed (publish_remote, and committed_before below) and this
  // commit's reach the Hub in commit order. Uncontended with SQLite.
  std::unique_lock publishing(publish_mu_);
  const auto write_started = std::chrono::steady_clock::now();
  auto res = store_.write(batch, now);
  if (!res) {
    failed_commits_.fetch_add(1, std::memory_order_relaxed);
    spdlog::error("commit of {} readings failed: {}", batch.size(), res.error().message);
    for (std::size_t k = 0; k < jobs.size(); ++k)
      if (jobs[k].done && !skip[k]) jobs[k].done(std::unexpected(res.error()));
    return;
  }
  commits_.fetch_add(1, std::memory_order_relaxed);
  readings_.fetch_add(batch.size(), std::memory_order_relaxed);
  const double write_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - write_started).count();

  // Stage first: once a sender holds its 201, a new subscriber must already
  // find that reading as the latest. Deliver after answering the senders, so
  // a meter with thousands of watchers does not hold the answers back.
  // Other nodes' readings that committed before this write go first.
  std::vector<hub::Fanout> fanouts;
  for (const core::Reading& r : res->committed_before) stage_into(r, fanouts);
  std::size_t fresh = 0;
  for (std::size_t i = 0; i < batch.size(); ++i) {
    if (!res->inserted[i]) continue;
    ++fresh;
    stage_into(batch[i], fanouts);
  }
  metrics::instruments().committed(batch.size(), fresh, write_seconds);

  std::size_t pos = 0;
  for (std::size_t k = 0; k < jobs.size(); ++k) {
    Job& j = jobs[k];
    if (!j.done || skip[k]) continue;
    IngestCounts c;
    for (std::size_t i = 0; i < j.readings.size(); ++i, ++pos) {
      if (res->inserted[pos])
        ++c.accepted;
      else
        ++c.duplicates;
    }
    j.done(c);
  }
  for (hub::Fanout& f : fanouts) hub::Hub::deliver(std::move(f));
}

bool Ingest::publish_remote(std::span<const core::Reading> readings,
                            const std::function<bool()>& claim) {
  std::lock_guard publishing(publish_mu_);
  if (claim && !claim()) return false;
  publish_locked(readings);
  return true;
}

void Ingest::publish_locked(std::span<const core::Reading> readings) {
  std::vector<hub::Fanout> fanouts;
  for (const core::Reading& r : readings) stage_into(r, fanouts);
  for (hub::Fanout& f : fanouts) hub::Hub::deliver(std::move(f));
}

void Ingest::stage_into(const core::Reading& r, std::vector<hub::Fanout>& fanouts) {
  hub::Fanout f = hub_.stage(r);
  if (!f.to.empty()) fanouts.push_back(std::move(f));
}

}  // namespace meterhub::ingest
