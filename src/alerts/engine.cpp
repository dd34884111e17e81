#include "alerts/engine.hpp"

#include <spdlog/spdlog.h>

#include <limits>

#include "codec/alert_codec.hpp"
#include "codec/reading_codec.hpp"
#include "core/time.hpp"

namespace meterhub::alerts {

// Receives the Hub's messages for the watched meters. deliver() may run under
// a Hub lock: it only enqueues.
class Engine::Tap final : public hub::Subscriber {
 public:
  explicit Tap(Engine& e) : engine_(e) {}
  void deliver(hub::MessagePtr msg) override {
    if (msg->kind != hub::MessageKind::reading && msg->kind != hub::MessageKind::deleted) return;
    if (!engine_.active_) return;  // another node evaluates
    engine_.enqueue(Item{std::move(msg), std::nullopt, {}, {}, Item::Control::none});
  }

 private:
  Engine& engine_;
};

Engine::Engine(store::Store& store, hub::Hub& hub, Webhook* webhook, EngineOptions opts)
    : store_(store),
      hub_(hub),
      webhook_(webhook),
      opts_(opts),
      tap_(std::make_shared<Tap>(*this)) {}

Engine::~Engine() {
  stop();
  hub_.unwatch_all(tap_.get());
  std::lock_guard lk(put_mu_);
  for (const std::string& m : watched_) hub_.unsubscribe(m, tap_.get());
}

core::Result<void> Engine::load() {
  started_at_ = core::now_ms();
  meters_.clear();
  rule_docs_.clear();
  auto docs = store_.all_alert_rules();
  if (!docs) return std::unexpected(docs.error());
  for (const auto& [meter, doc] : *docs) {
    rule_docs_[meter] = doc;
    auto rules = codec::decode_alert_rules(doc);
    if (!rules) {
      spdlog::error("alert rules of meter \"{}\" unreadable, ignored: {}", meter,
                    rules.error().message);
      continue;
    }
    MeterAlerts& m = meters_[meter];
    m.last_arrival = started_at_;
    for (const Rule& r : *rules) m.slots.push_back(Slot{r, {}, std::nullopt});
  }
  // Active alerts: newest first, pages of 1000.
  store::AlertQuery q;
  q.active = true;
  q.limit = 1000;
  std::vector<store::AlertRecord> orphans;
  while (true) {
    auto page = store_.list_alerts(q);
    if (!page) return std::unexpected(page.error());
    for (auto& a : *page) {
      Slot* slot = nullptr;
      if (auto it = meters_.find(a.meter_id); it != meters_.end())
        for (Slot& s : it->second.slots)
          if (to_string(s.rule.kind) == a.kind && !s.alert) slot = &s;
      if (!slot) {
        orphans.push_back(std::move(a));
        continue;
      }
      slot->state.active = true;
      slot->alert = std::move(a);
    }
    if (page->size() < q.limit) break;
    q.before = page->back().id;
  }
  for (const auto& a : orphans) {  // rule gone (or a second one of a kind): close it
    if (auto r = store_.clear_alert(a.id, started_at_, 0, "rule removed"); !r)
      spdlog::error("closing alert {}: {}", a.id, r.error().message);
  }
  std::lock_guard lk(put_mu_);
  std::vector<std::string> ids;  // not watched yet (load() runs again on becoming leader)
  for (const auto& [meter, m] : meters_)
    if (watched_.insert(meter).second) ids.push_back(meter);
  hub_.watch(ids, tap_);
  std::size_t active = 0;
  for (const auto& [meter, m] : meters_)
    for (const Slot& s : m.slots) active += s.alert ? 1 : 0;
  if (!meters_.empty())
    spdlog::info("alerts: rules for {} meters, {} alerts active", meters_.size(), active);
  return {};
}

void Engine::set_cluster() {
  cluster_ = true;
  active_ = false;
}

void Engine::set_active(bool active) {
  Item it{nullptr, std::nullopt, {}, {}, Item::Control::none};
  it.control = active ? Item::Control::activate : Item::Control::deactivate;
  enqueue(std::move(it));
}

void Engine::sync_rules() {
  auto docs = store_.all_alert_rules();
  if (!docs) {
    spdlog::warn("alerts: cannot re-read the rules: {}", docs.error().message);
    return;
  }
  std::unordered_map<std::string, std::string> now(docs->begin(), docs->end());
  std::vector<std::string> removed;
  for (const auto& [meter, doc] : rule_docs_)
    if (!now.contains(meter)) removed.push_back(meter);
  for (const std::string& meter : removed) {
    rule_docs_.erase(meter);
    apply_rules(meter, {});
  }
  for (auto& [meter, doc] : now) {
    auto it = rule_docs_.find(meter);
    if (it != rule_docs_.end() && it->second == doc) continue;
    auto rules = codec::decode_alert_rules(doc);
    if (!rules) {
      spdlog::error("alert rules of meter \"{}\" unreadable, ignored: {}", meter,
                    rules.error().message);
      continue;
    }
    rule_docs_[meter] = doc;
    apply_rules(meter, std::move(*rules));
    std::lock_guard lk(put_mu_);
    if (watched_.insert(meter).second) {
      const std::string ids[] = {meter};
      hub_.watch(ids, tap_);
    }
  }
}

void Engine::start() {
  std::lock_guard lk(mu_);
  if (thread_.joinable() || stopping_) return;
  thread_ = std::thread([this] { run(); });
}

void Engine::stop() {
  {
    std::lock_guard lk(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (!thread_.joinable()) return;
  thread_.join();
  // What this run did: the counters the issue asks to be visible.
  const EngineStats s = stats();
  if (s.raised + s.cleared + s.dropped + s.store_errors == 0 && !webhook_) return;
  spdlog::info(
      "alerts: {} raised, {} cleared, {} readings evaluated, {} late, {} skipped (queue "
      "full), {} store errors",
      s.raised, s.cleared, s.readings, s.late, s.dropped, s.store_errors);
  if (webhook_) {
    const WebhookStats w = webhook_->stats();
    spdlog::info("alert webhook: {} delivered, {} retries, {} given up, {} dropped (queue full)",
                 w.delivered, w.retries, w.failed, w.dropped);
  }
}

EngineStats Engine::stats() const {
  return EngineStats{readings_.load(), late_.load(),    dropped_.load(),
                     raised_.load(),   cleared_.load(), store_errors_.load()};
}

core::Result<bool> Engine::put_rules(const std::string& meter_id, const std::vector<Rule>& rules) {
  std::lock_guard lk(put_mu_);
  auto ok = store_.set_alert_rules(meter_id, codec::encode_alert_rules(rules), core::now_ms());
  if (!ok || !*ok) return ok;
  // The rule set is queued before the watch starts, so every reading the
  // engine gets from now on is evaluated under it.
  Item it{nullptr, rules, meter_id, {}, Item::Control::none};
  it.doc = codec::encode_alert_rules(rules);
  enqueue(std::move(it));
  if (watched_.insert(meter_id).second) {
    const std::string ids[] = {meter_id};
    hub_.watch(ids, tap_);
  }
  return true;
}

void Engine::enqueue(Item item) {
  {
    std::lock_guard lk(mu_);
    // A rule set is never dropped (an admin is waiting for it); readings are.
    if (queue_.size() < opts_.max_queue || item.rules || item.control != Item::Control::none) {
      queue_.push_back(std::move(item));
      cv_.notify_one();
      return;
    }
    ++dropped_;
    const auto now = std::chrono::steady_clock::now();
    if (now - last_drop_log_ < std::chrono::seconds(10)) return;
    last_drop_log_ = now;
  }
  spdlog::warn("alerts: evaluation queue full ({} items); readings skipped ({} so far)",
               opts_.max_queue, dropped_.load());
}

void Engine::run() {
  auto next_tick = std::chrono::steady_clock::now() + opts_.tick;
  auto next_rules = std::chrono::steady_clock::now() + opts_.rules_poll;
  std::unique_lock lk(mu_);
  while (true) {
    cv_.wait_until(lk, next_tick, [&] { return stopping_ || !queue_.empty(); });
    std::deque<Item> batch;
    batch.swap(queue_);
    const bool stop = stopping_;
    lk.unlock();
    for (Item& it : batch) process(it);
    if (std::chrono::steady_clock::now() >= next_tick) {
      if (active_) tick_all(core::now_ms());
      next_tick = std::chrono::steady_clock::now() + opts_.tick;
    }
    if (cluster_ && active_ && std::chrono::steady_clock::now() >= next_rules) {
      sync_rules();
      next_rules = std::chrono::steady_clock::now() + opts_.rules_poll;
    }
    lk.lock();
    if (stop && queue_.empty()) return;
  }
}

void Engine::process(Item& item) {
  if (item.control == Item::Control::activate) {
    if (active_) return;
    // Another node may have raised and cleared alerts meanwhile: start from
    // what the store holds now.
    if (auto r = load(); !r)
      spdlog::error("alerts: cannot reload rules and active alerts: {}", r.error().message);
    active_ = true;
    return;
  }
  if (item.control == Item::Control::deactivate) {
    active_ = false;
    meters_.clear();
    return;
  }
  if (item.rules) {
    // Passive: stored already; the active node picks it up from the store.
    if (!active_) return;
    rule_docs_[item.meter] = item.doc;
    return apply_rules(item.meter, std::move(*item.rules));
  }
  if (!active_) return;
  const hub::Message& m = *item.msg;
  if (m.kind == hub::MessageKind::deleted) {
    meters_.erase(m.meter_id);  // its rows went with the meter
    return;
  }
  codec::DecodeOptions o;
  o.max_readings = 1;
  o.now = m.ts;
  o.future_tolerance_ms = std::numeric_limits<core::TimeMs>::max() / 4;
  auto rs = codec::decode_readings(m.json, o);
  if (!rs || rs->size() != 1) {
    spdlog::error("alerts: cannot read back a reading of \"{}\"", m.meter_id);
    return;
  }
  on_reading(m.meter_id, rs->front());
}

void Engine::on_reading(const std::string& meter, const core::Reading& r) {
  auto it = meters_.find(meter);
  if (it == meters_.end()) return;
  MeterAlerts& m = it->second;
  m.last_arrival = core::now_ms();
  const bool in_order = !m.any_ts || r.ts > m.last_ts;
  if (in_order) {
    m.last_ts = r.ts;
    m.any_ts = true;
    ++readings_;
  } else {
    ++late_;
  }
  for (Slot& s : m.slots) {
    if (!in_order && s.rule.kind != RuleKind::offline) continue;
    const bool was = s.state.active;
    auto t = evaluate(s.rule, s.state, r);
    if (!t) continue;
    if (t->raised && !was)
      raise(meter, s, *t);
    else if (!t->raised && was)
      clear(meter, s, *t);
  }
}

void Engine::apply_rules(const std::string& meter, std::vector<Rule> rules) {
  MeterAlerts& m = meters_[meter];
  if (m.last_arrival == 0) m.last_arrival = core::now_ms();
  std::vector<Slot> next;
  next.reserve(rules.size());
  for (const Rule& r : rules) {
    Slot s{r, {}, std::nullopt};
    for (Slot& old : m.slots)
      if (old.rule.kind == r.kind) {
        s.state.active = old.state.active;  // the hold starts again under the new numbers
        s.alert = std::move(old.alert);
        old.alert.reset();
      }
    next.push_back(std::move(s));
  }
  for (Slot& old : m.slots)
    if (old.alert) clear(meter, old, Transition{false, 0, core::now_ms(), "rule removed"});
  m.slots = std::move(next);
  if (m.slots.empty()) meters_.erase(meter);
}

void Engine::tick_all(core::TimeMs now) {
  for (auto& [meter, m] : meters_)
    for (Slot& s : m.slots)
      if (auto t = tick(s.rule, s.state, std::max(m.last_arrival, started_at_), now))
        raise(meter, s, *t);
}

void Engine::raise(const std::string& meter, Slot& s, const Transition& t) {
  store::AlertRecord a;
  a.meter_id = meter;
  a.kind = std::string(to_string(s.rule.kind));
  a.raised_at = t.at;
  a.raised_value = t.value;
  a.message = t.message;
  auto id = store_.raise_alert(a);
  if (!id) {
    ++store_errors_;
    spdlog::error("alerts: storing {} alert of \"{}\" failed: {}", a.kind, meter,
                  id.error().message);
  } else {
    a.id = *id;
  }
  ++raised_;
  spdlog::info("alert raised: meter \"{}\" {}: {}", meter, a.kind, a.message);
  s.alert = a;
  announce(a);
}

void Engine::clear(const std::string& meter, Slot& s, const Transition& t) {
  store::AlertRecord a = s.alert ? *s.alert : store::AlertRecord{};
  s.alert.reset();
  a.meter_id = meter;
  if (a.kind.empty()) a.kind = std::string(to_string(s.rule.kind));
  a.cleared_at = t.at;
  a.cleared_value = t.value;
  a.clear_message = t.message;
  if (a.id != 0) {
    if (auto r = store_.clear_alert(a.id, t.at, t.value, t.message); !r) {
      ++store_errors_;
      spdlog::error("alerts: clearing alert {} failed: {}", a.id, r.error().message);
    }
  }
  ++cleared_;
  spdlog::info("alert cleared: meter \"{}\" {}: {}", meter, a.kind, a.clear_message);
  announce(a);
}

void Engine::announce(const store::AlertRecord& a) {
  std::string body = codec::encode_ws_alert(a);
  hub::Hub::deliver(
      hub_.notify(a.meter_id, hub::make_event(hub::MessageKind::alert, a.meter_id, body)));
  if (webhook_) webhook_->post(std::move(body));
}

}  // namespace meterhub::alerts
