#include "hub/send_queue.hpp"

#include <algorithm>
#include <vector>

#include "metrics/instruments.hpp"

namespace meterhub::hub {

bool SendQueue::push(MessagePtr m) {
  q_.push_back(std::move(m));
  if (waiting() > capacity_) coalesce();
  if (in_flight_) return false;
  in_flight_ = true;
  return true;
}

bool SendQueue::pop() {
  if (!empty()) q_[head_++].reset();
  if (empty()) {
    // Drained: give the memory of a burst back instead of keeping it forever.
    head_ = 0;
    q_.clear();
    if (q_.capacity() > 16) q_.shrink_to_fit();
  } else if (head_ >= 64 && head_ * 2 >= q_.size()) {
    q_.erase(q_.begin(), q_.begin() + static_cast<std::ptrdiff_t>(head_));
    head_ = 0;
  }
  in_flight_ = !empty();
  return in_flight_;
}

void SendQueue::clear_waiting() {
  q_.erase(q_.begin() + static_cast<std::ptrdiff_t>(head_ + (in_flight_ ? 1 : 0)), q_.end());
}

void SendQueue::coalesce() {
  auto first = q_.begin() + static_cast<std::ptrdiff_t>(head_ + (in_flight_ ? 1 : 0));
  // Newest message per meter and kind among the waiting ones (the newest
  // reading, the newest online status, the newest error); snapshots and
  // alerts are never dropped. Order = last appearance.
  std::vector<MessagePtr> kept;
  for (auto it = first; it != q_.end(); ++it) {
    // Alerts are events a client must not miss either: never merged.
    const bool keep_all = (*it)->kind == MessageKind::snapshot || (*it)->kind == MessageKind::alert;
    auto same =
        keep_all ? kept.end() : std::find_if(kept.begin(), kept.end(), [&](const MessagePtr& k) {
          return k->kind == (*it)->kind && k->meter_id == (*it)->meter_id;
        });
    if (same == kept.end()) {
      kept.push_back(*it);
      continue;
    }
    MessagePtr newest = (*it)->ts >= (*same)->ts ? *it : *same;
    kept.erase(same);
    kept.push_back(std::move(newest));
  }
  const auto merged = static_cast<std::uint64_t>(std::distance(first, q_.end())) - kept.size();
  coalesced_ += merged;
  metrics::instruments().ws_coalesced.inc(merged);
  q_.erase(first, q_.end());
  for (auto& k : kept) q_.push_back(std::move(k));
}

}  // namespace meterhub::hub
