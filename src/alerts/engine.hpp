// The alert engine: evaluates every meter's rules (alerts/rules.hpp) on
// committed readings and on the passing of time, stores each raised and
// cleared alert, pushes it on /ws (Hub::notify, message kind "alert") and
// hands it to the webhook.
//
// How it is fed: the engine is a Hub subscriber of exactly the meters that
// have rules (Hub::watch), so it sees only committed readings, in commit
// order, and the ingest writer pays nothing but one enqueue per reading of
// those meters. Everything else runs on the engine's own thread: decoding,
// the state machines, the store writes (small transactions on the store's
// admin connection), the fan-out and the webhook queue.
//
// Contract:
//  - Readings are evaluated in ts order per meter; a reading older than the
//    newest evaluated one (a late upload) only counts as a sign of life.
//  - Offline rules are evaluated once per `tick` by the engine's clock,
//    counting from the last reading seen (or from start-up / from when the
//    rule was set, whichever is later), and cleared by the next reading.
//  - Active alerts survive a restart: load() takes them from the store.
//  - put_rules() stores the rule set, then applies it on the engine thread
//    before any reading committed after put_rules() returned. An active
//    alert whose rule is removed is cleared ("rule removed"); one whose rule
//    kind stays keeps its state under the new parameters.
//  - The queue is bounded (`max_queue` items): beyond it readings are
//    dropped (counted and logged), never the ingest writer blocked.
//  - Several nodes on one database (PostgreSQL): only one may evaluate, or
//    every alert would be raised once per node. set_cluster() makes the
//    engine passive until set_active(true) (the node won the leader lock,
//    store/postgres/pg_admin.hpp): it then reloads rules and active alerts
//    from the store and evaluates; set_active(false) stops it. A passive
//    engine still stores rules (put_rules); the active one reads every
//    rule set from the store every `rules_poll`, so rules put through any
//    node apply within that time.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "alerts/rules.hpp"
#include "alerts/webhook.hpp"
#include "core/error.hpp"
#include "hub/hub.hpp"
#include "store/store.hpp"

namespace meterhub::alerts {

struct EngineOptions {
  std::chrono::milliseconds tick{1000};
  std::chrono::milliseconds rules_poll{5000};  // cluster mode: re-read rules this often
  std::size_t max_queue = 100'000;
};

struct EngineStats {
  std::uint64_t readings = 0;  // evaluated
  std::uint64_t late = 0;      // older than the newest evaluated: skipped
  std::uint64_t dropped = 0;   // queue full
  std::uint64_t raised = 0;
  std::uint64_t cleared = 0;
  std::uint64_t store_errors = 0;
};

class Engine {
 public:
  // `webhook` may be null (no --alert-webhook); it must outlive the engine.
  Engine(store::Store& store, hub::Hub& hub, Webhook* webhook, EngineOptions opts = {});
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Reads the rules and active alerts from the store and starts watching
  // those meters. Call once, before start() and before ingest starts.
  core::Result<void> load();
  void start();
  // Evaluates what is queued, then joins the thread. Call after ingest stopped.
  void stop();

  // Stores `rules` (replacing the meter's set; empty removes every rule) and
  // applies them. false: the meter does not exist. Any thread.
  core::Result<bool> put_rules(const std::string& meter_id, const std::vector<Rule>& rules);

  EngineStats stats() const;

  // Cluster mode (see the contract): call before start(); the engine stays
  // passive until set_active(true). Any thread.
  void set_cluster();
  void set_active(bool active);
  bool active() const { return active_; }

 private:
  class Tap;  // the Hub subscriber
  struct Item {
    hub::MessagePtr msg;                     // from the Hub
    std::optional<std::vector<Rule>> rules;  // or: a new rule set for `meter`
    std::string meter;
    std::string doc;  // rules: their stored form
    enum class Control { none, activate, deactivate } control = Control::none;
  };
  struct Slot {
    Rule rule;
    RuleState state;
    std::optional<store::AlertRecord> alert;  // while active
  };
  struct MeterAlerts {
    std::vector<Slot> slots;
    core::TimeMs last_ts = 0;  // newest evaluated reading
    bool any_ts = false;
    core::TimeMs last_arrival = 0;  // engine clock
  };

  void enqueue(Item item);
  void run();
  void process(Item& item);
  void on_reading(const std::string& meter, const core::Reading& r);
  void apply_rules(const std::string& meter, std::vector<Rule> rules);
  void tick_all(core::TimeMs now);
  void raise(const std::string& meter, Slot& s, const Transition& t);
  void clear(const std::string& meter, Slot& s, const Transition& t);
  void announce(const store::AlertRecord& a);
  // Cluster mode, engine thread: apply rule sets changed in the store.
  void sync_rules();

  store::Store& store_;
  hub::Hub& hub_;
  Webhook* webhook_;
  EngineOptions opts_;
  std::shared_ptr<Tap> tap_;

  // put_rules: store write + watch + enqueue in one order per meter.
  std::mutex put_mu_;
  std::set<std::string> watched_;

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Item> queue_;
  bool stopping_ = false;
  std::thread thread_;
  std::chrono::steady_clock::time_point last_drop_log_{};

  // Engine thread only (and load(), before start()).
  std::unordered_map<std::string, MeterAlerts> meters_;
  core::TimeMs started_at_ = 0;
  std::unordered_map<std::string, std::string> rule_docs_;  // cluster mode: as last applied
  bool cluster_ = false;
  std::atomic<bool> active_{true};

  std::atomic<std::uint64_t> readings_{0}, late_{0}, dropped_{0}, raised_{0}, cleared_{0},
      store_errors_{0};
};

}  // namespace meterhub::alerts
