// The outgoing queue policy of one subscriber (one WebSocket): what happens
// when a client reads more slowly than readings arrive.
//
// Contract:
//  - At most one message is "in flight" (being written); at most `capacity`
//    more wait behind it. Memory per subscriber is therefore bounded.
//  - When a message arrives and `capacity` are already waiting, the waiting
//    ones and the new one collapse to the newest message (greatest ts) of
//    each meter and kind (reading, status, ...; snapshots and alerts are all kept), in
//    the order they last appeared. A slow reader so skips intermediate
//    values but always ends up with the latest state.
//  - Not thread-safe: the owner serialises calls (the session's strand).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "hub/hub.hpp"

namespace meterhub::hub {

class SendQueue {
 public:
  explicit SendQueue(std::size_t capacity) : capacity_(capacity ? capacity : 1) {}

  // Queues m. Returns true when nothing is in flight, i.e. the caller should
  // start sending front() now (and it is then in flight).
  bool push(MessagePtr m);
  // The message in flight (or to send next). Precondition: !empty().
  const MessagePtr& front() const { return q_[head_]; }
  // The in-flight message was sent. Returns true if another one should be
  // sent now (front() is then in flight).
  bool pop();
  // Drops everything that waits (the in-flight message stays).
  void clear_waiting();

  bool empty() const { return head_ == q_.size(); }
  bool in_flight() const { return in_flight_; }
  std::size_t waiting() const { return q_.size() - head_ - (in_flight_ ? 1 : 0); }
  std::uint64_t coalesced() const { return coalesced_; }  // messages skipped so far

 private:
  void coalesce();

  std::size_t capacity_;
  // q_[head_] is in flight while in_flight_. A vector rather than a deque:
  // an idle subscriber's empty queue then allocates nothing (a libstdc++
  // deque allocates ~600 bytes up front, ~8% of an idle WebSocket).
  std::vector<MessagePtr> q_;
  std::size_t head_ = 0;
  bool in_flight_ = false;
  std::uint64_t coalesced_ = 0;
};

}  // namespace meterhub::hub
