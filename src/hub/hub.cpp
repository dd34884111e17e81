#include "hub/hub.hpp"

#include <algorithm>
#include <functional>

#include "codec/reading_codec.hpp"
#include "core/time.hpp"

namespace meterhub::hub {

namespace {
// Gaps shorter than this are readings of one batch or one commit, not the
// device's interval.
constexpr core::TimeMs kMinGapMs = 500;
constexpr core::TimeMs kUnknownIntervalOffline = 60'000;
}  // namespace

MessagePtr make_message(const core::Reading& r) {
  auto m = std::make_shared<Message>();
  m->meter_id = r.meter_id;
  m->ts = r.ts;
  m->json = codec::encode_reading(r);
  m->tagged = codec::encode_ws_reading(m->json);
  return m;
}

MessagePtr make_event(MessageKind kind, std::string meter_id, std::string json) {
  auto m = std::make_shared<Message>();
  m->meter_id = std::move(meter_id);
  m->kind = kind;
  m->tagged = std::move(json);
  return m;
}

Hub::Shard& Hub::shard_for(const std::string& meter_id) {
  return shards_[std::hash<std::string>{}(meter_id) % kShards];
}

const Hub::Shard& Hub::shard_for(const std::string& meter_id) const {
  return shards_[std::hash<std::string>{}(meter_id) % kShards];
}

bool Hub::update_latest(Entry& e, const core::Reading& r) {
  if (e.latest && e.latest->ts > r.ts) return false;
  e.latest = r;
  e.latest_msg.reset();
  return true;
}

std::vector<std::shared_ptr<Subscriber>> Hub::audience(Shard& sh, Entry& e) {
  std::vector<std::shared_ptr<Subscriber>> to;
  to.reserve(e.subs.size() + sh.all.size());
  auto take = [&](std::vector<Sub>& subs) {
    std::erase_if(subs, [&](const Sub& s) {
      auto p = s.ref.lock();
      if (!p) return true;
      to.push_back(std::move(p));
      return false;
    });
  };
  take(e.subs);
  take(sh.all);
  return to;
}

core::TimeMs Hub::offline_after(const Entry& e) const {
  if (opts_.offline_after.count() > 0) return opts_.offline_after.count();
  if (e.expected_interval_ms > 0) return 3 * e.expected_interval_ms;
  if (e.gaps < 2) return kUnknownIntervalOffline;
  return static_cast<core::TimeMs>(3 * e.interval_ms);
}

void Hub::subscribe(const std::string& meter_id, const std::shared_ptr<Subscriber>& sub) {
  Shard& sh = shard_for(meter_id);
  std::lock_guard lk(sh.mu);
  Entry& e = sh.meters[meter_id];
  e.subs.push_back(Sub{sub.get(), sub});
  if (e.latest) {
    if (!e.latest_msg) e.latest_msg = make_message(*e.latest);
    sub->deliver(e.latest_msg);
  }
}

void Hub::unsubscribe(const std::string& meter_id, const Subscriber* sub) {
  Shard& sh = shard_for(meter_id);
  std::lock_guard lk(sh.mu);
  auto it = sh.meters.find(meter_id);
  if (it == sh.meters.end()) return;
  auto& subs = it->second.subs;
  std::erase_if(subs, [&](const Sub& s) { return s.key == sub; });
  if (subs.empty() && !it->second.latest) sh.meters.erase(it);
}

std::vector<codec::MeterState> Hub::watch(std::span<const std::string> meter_ids,
                                          const std::shared_ptr<Subscriber>& sub) {
  std::vector<codec::MeterState> out;
  out.reserve(meter_ids.size());
  for (const std::string& id : meter_ids) {
    Shard& sh = shard_for(id);
    std::lock_guard lk(sh.mu);
    Entry& e = sh.meters[id];
    e.subs.push_back(Sub{sub.get(), sub});
    out.push_back(codec::MeterState{id, e.online, e.latest});
  }
  return out;
}

std::vector<codec::MeterState> Hub::watch_all(const std::shared_ptr<Subscriber>& sub) {
  std::vector<codec::MeterState> out;
  for (Shard& sh : shards_) {
    std::lock_guard lk(sh.mu);
    sh.all.push_back(Sub{sub.get(), sub});
    for (const auto& [id, e] : sh.meters)
      if (e.latest) out.push_back(codec::MeterState{id, e.online, e.latest});
  }
  std::sort(out.begin(), out.end(),
            [](const auto& a, const auto& b) { return a.meter_id < b.meter_id; });
  return out;
}

std::vector<codec::MeterState> Hub::states(std::span<const std::string> meter_ids) const {
  std::vector<codec::MeterState> out;
  out.reserve(meter_ids.size());
  for (const std::string& id : meter_ids) {
    const Shard& sh = shard_for(id);
    std::lock_guard lk(sh.mu);
    auto it = sh.meters.find(id);
    if (it == sh.meters.end())
      out.push_back(codec::MeterState{id, false, std::nullopt});
    else
      out.push_back(codec::MeterState{id, it->second.online, it->second.latest});
  }
  return out;
}

std::vector<codec::MeterState> Hub::states_all() const {
  std::vector<codec::MeterState> out;
  for (const Shard& sh : shards_) {
    std::lock_guard lk(sh.mu);
    for (const auto& [id, e] : sh.meters)
      if (e.latest) out.push_back(codec::MeterState{id, e.online, e.latest});
  }
  std::sort(out.begin(), out.end(),
            [](const auto& a, const auto& b) { return a.meter_id < b.meter_id; });
  return out;
}

void Hub::unwatch_all(const Subscriber* sub) {
  for (Shard& sh : shards_) {
    std::lock_guard lk(sh.mu);
    std::erase_if(sh.all, [&](const Sub& s) { return s.key == sub; });
  }
}

void Hub::publish(const core::Reading& r) { deliver(stage(r)); }

Fanout Hub::stage(const core::Reading& r) {
  const core::TimeMs now = core::now_ms();
  Fanout f;
  Shard& sh = shard_for(r.meter_id);
  std::lock_guard lk(sh.mu);
  Entry& e = sh.meters[r.meter_id];
  const bool created = !e.latest && !e.announced;
  e.announced = true;
  const bool newest = update_latest(e, r);
  if (e.last_arrival != 0 && now - e.last_arrival >= kMinGapMs) {
    const double gap = static_cast<double>(now - e.last_arrival);
    e.interval_ms = e.gaps == 0 ? gap : 0.75 * e.interval_ms + 0.25 * gap;
    ++e.gaps;
  }
  e.last_arrival = std::max(e.last_arrival, now);
  const bool came_online = !e.online;
  e.online = true;
  if (e.subs.empty() && sh.all.empty()) return f;
  f.to = audience(sh, e);
  if (f.to.empty()) return f;
  if (created)
    f.msgs.push_back(
        make_event(MessageKind::created, r.meter_id, codec::encode_ws_created(r.meter_id)));
  if (came_online)
    f.msgs.push_back(
        make_event(MessageKind::status, r.meter_id, codec::encode_ws_status(r.meter_id, true)));
  MessagePtr msg = make_message(r);
  if (newest) e.latest_msg = msg;
  f.msgs.push_back(std::move(msg));
  return f;
}

void Hub::deliver(Fanout&& f) {
  for (auto& s : f.to)
    for (const auto& m : f.msgs) s->deliver(m);
  // The strong references die here, outside any Hub lock: if one was the
  // last, the subscriber's destructor may unsubscribe without deadlock.
  f.to.clear();
}

void Hub::change_online(Shard& sh, const std::string& id, Entry& e, bool online,
                        std::vector<Fanout>& out) {
  e.online = online;
  Fanout f;
  f.to = audience(sh, e);
  if (f.to.empty()) return;
  f.msgs.push_back(make_event(MessageKind::status, id, codec::encode_ws_status(id, online)));
  out.push_back(std::move(f));
}

std::vector<Fanout> Hub::sweep(core::TimeMs now) {
  std::vector<Fanout> out;
  for (Shard& sh : shards_) {
    std::lock_guard lk(sh.mu);
    for (auto& [id, e] : sh.meters) {
      if (!e.online || now - std::max(e.last_arrival, e.online_since) <= offline_after(e)) continue;
      change_online(sh, id, e, false, out);
    }
  }
  return out;
}

std::vector<Fanout> Hub::set_online(const std::string& meter_id, bool online, core::TimeMs now) {
  std::vector<Fanout> out;
  const std::string prefix = meter_id + ":";
  // The channels "<id>:N" hash to other shards: an LWT is rare, scan them all.
  for (Shard& sh : shards_) {
    std::lock_guard lk(sh.mu);
    for (auto& [id, e] : sh.meters) {
      if (id != meter_id && !id.starts_with(prefix)) continue;
      if (online) e.online_since = std::max(e.online_since, now);
      if (e.online != online) change_online(sh, id, e, online, out);
    }
  }
  return out;
}

Fanout Hub::announce(const std::string& meter_id) {
  Fanout f;
  Shard& sh = shard_for(meter_id);
  std::lock_guard lk(sh.mu);
  Entry& e = sh.meters[meter_id];
  if (e.announced || e.latest) return f;
  e.announced = true;
  f.to = audience(sh, e);
  if (!f.to.empty())
    f.msgs.push_back(
        make_event(MessageKind::created, meter_id, codec::encode_ws_created(meter_id)));
  return f;
}

Fanout Hub::remove(const std::string& meter_id) {
  Fanout f;
  Shard& sh = shard_for(meter_id);
  std::lock_guard lk(sh.mu);
  auto it = sh.meters.find(meter_id);
  if (it == sh.meters.end()) return f;
  Entry& e = it->second;
  f.to = audience(sh, e);
  if (!f.to.empty())
    f.msgs.push_back(
        make_event(MessageKind::deleted, meter_id, codec::encode_ws_deleted(meter_id)));
  if (e.subs.empty()) {
    sh.meters.erase(it);
  } else {
    std::vector<Sub> subs = std::move(e.subs);
    e = Entry{};
    e.subs = std::move(subs);
  }
  return f;
}

Fanout Hub::notify(const std::string& meter_id, MessagePtr msg) {
  Fanout f;
  Shard& sh = shard_for(meter_id);
  std::lock_guard lk(sh.mu);
  auto it = sh.meters.find(meter_id);
  if (it != sh.meters.end()) {
    f.to = audience(sh, it->second);
  } else {
    Entry none;
    f.to = audience(sh, none);
  }
  if (!f.to.empty()) f.msgs.push_back(std::move(msg));
  return f;
}

void Hub::set_interval(const std::string& meter_id, std::optional<std::int64_t> interval_s) {
  Shard& sh = shard_for(meter_id);
  std::lock_guard lk(sh.mu);
  sh.meters[meter_id].expected_interval_ms = interval_s ? *interval_s * 1000 : 0;
}

void Hub::prime(const core::Reading& r) {
  Shard& sh = shard_for(r.meter_id);
  std::lock_guard lk(sh.mu);
  Entry& e = sh.meters[r.meter_id];
  update_latest(e, r);
  e.last_arrival = std::max(e.last_arrival, r.ts);
  e.online = core::now_ms() - e.last_arrival < kUnknownIntervalOffline;
}

std::optional<core::Reading> Hub::latest(const std::string& meter_id) const {
  const Shard& sh = shard_for(meter_id);
  std::lock_guard lk(sh.mu);
  auto it = sh.meters.find(meter_id);
  if (it == sh.meters.end()) return std::nullopt;
  return it->second.latest;
}

bool Hub::online(const std::string& meter_id) const {
  const Shard& sh = shard_for(meter_id);
  std::lock_guard lk(sh.mu);
  auto it = sh.meters.find(meter_id);
  return it != sh.meters.end() && it->second.online;
}

std::size_t Hub::subscriber_count() const {
  std::size_t n = 0;
  for (const Shard& sh : shards_) {
    std::lock_guard lk(sh.mu);
    n += sh.all.size();
    for (const auto& [id, e] : sh.meters) n += e.subs.size();
  }
  return n;
}

}  // namespace meterhub::hub
