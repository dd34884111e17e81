#include "hub/hub.hpp"

#include <algorithm>
#include <functional>

#include "codec/reading_codec.hpp"

namespace meterhub::hub {

MessagePtr make_message(const core::Reading& r) {
  auto m = std::make_shared<Message>();
  m->meter_id = r.meter_id;
  m->ts = r.ts;
  m->json = codec::encode_reading(r);
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

void Hub::publish(const core::Reading& r) { deliver(stage(r)); }

Fanout Hub::stage(const core::Reading& r) {
  Fanout f;
  Shard& sh = shard_for(r.meter_id);
  std::lock_guard lk(sh.mu);
  Entry& e = sh.meters[r.meter_id];
  bool newest = update_latest(e, r);
  if (e.subs.empty()) return f;
  f.msg = make_message(r);
  if (newest) e.latest_msg = f.msg;
  f.to.reserve(e.subs.size());
  std::erase_if(e.subs, [&](const Sub& s) {
    auto p = s.ref.lock();
    if (!p) return true;
    f.to.push_back(std::move(p));
    return false;
  });
  return f;
}

void Hub::deliver(Fanout&& f) {
  for (auto& s : f.to) s->deliver(f.msg);
  // The strong references die here, outside any Hub lock: if one was the
  // last, the subscriber's destructor may unsubscribe without deadlock.
  f.to.clear();
}

void Hub::prime(const core::Reading& r) {
  Shard& sh = shard_for(r.meter_id);
  std::lock_guard lk(sh.mu);
  update_latest(sh.meters[r.meter_id], r);
}

std::optional<core::Reading> Hub::latest(const std::string& meter_id) const {
  const Shard& sh = shard_for(meter_id);
  std::lock_guard lk(sh.mu);
  auto it = sh.meters.find(meter_id);
  if (it == sh.meters.end()) return std::nullopt;
  return it->second.latest;
}

std::size_t Hub::subscriber_count() const {
  std::size_t n = 0;
  for (const Shard& sh : shards_) {
    std::lock_guard lk(sh.mu);
    for (const auto& [id, e] : sh.meters) n += e.subs.size();
  }
  return n;
}

}  // namespace meterhub::hub
