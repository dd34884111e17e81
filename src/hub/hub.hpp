// The Hub: who watches which meter, the latest reading of every meter, and
// fan-out of newly committed readings to their watchers.
//
// Contract:
//  - publish() is called only with committed readings (the ingest writer calls
//    it after COMMIT), so a subscriber never sees data a crash could take back.
//  - subscribe() first hands the subscriber the meter's latest reading (by ts)
//    if there is one, then every later publish() of that meter; the two steps
//    are atomic with respect to publish(), so nothing is missed or doubled.
//  - A reading is encoded to JSON once, however many subscribers get it.
//  - Subscriber::deliver() may run under a Hub lock: it must only enqueue (e.g.
//    post to the session's strand) and must never call back into the Hub.
// The Hub keeps weak references: a subscriber that is destroyed without
// unsubscribing is dropped at the next publish of its meter.
#pragma once

#include <array>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/reading.hpp"

namespace meterhub::hub {

struct Message {
  std::string meter_id;
  core::TimeMs ts = 0;
  std::string json;  // the WebSocket text frame, encoded once
};
using MessagePtr = std::shared_ptr<const Message>;

MessagePtr make_message(const core::Reading& r);

class Subscriber {
 public:
  virtual ~Subscriber() = default;
  virtual void deliver(MessagePtr msg) = 0;
};

// A committed reading on its way out: the latest cache already reflects it
// and `to` holds the subscribers of its meter at that moment.
struct Fanout {
  MessagePtr msg;
  std::vector<std::shared_ptr<Subscriber>> to;
};

class Hub {
 public:
  void subscribe(const std::string& meter_id, const std::shared_ptr<Subscriber>& sub);
  void unsubscribe(const std::string& meter_id, const Subscriber* sub);

  // A newly committed reading: updates the latest cache if its ts is the
  // newest, and delivers it to the meter's subscribers (late readings too).
  // Equivalent to deliver(stage(r)).
  void publish(const core::Reading& r);

  // publish() in two steps, so the caller can do other work in between (the
  // ingest writer answers the senders between them, so a large fan-out does
  // not delay the answers). stage() updates the latest cache and captures the
  // current subscribers; whoever subscribes after stage() gets this reading
  // as its latest instead, so nobody gets it twice. deliver() hands it to the
  // captured subscribers. Call deliver() in stage() order, from one thread.
  Fanout stage(const core::Reading& r);
  static void deliver(Fanout&& f);

  // Fills the latest cache at start-up; delivers nothing.
  void prime(const core::Reading& r);

  std::optional<core::Reading> latest(const std::string& meter_id) const;
  std::size_t subscriber_count() const;

 private:
  struct Sub {
    const Subscriber* key;
    std::weak_ptr<Subscriber> ref;
  };
  struct Entry {
    std::optional<core::Reading> latest;
    MessagePtr latest_msg;  // encoded lazily: only once somebody watches
    std::vector<Sub> subs;
  };
  struct Shard {
    mutable std::mutex mu;
    std::unordered_map<std::string, Entry> meters;
  };
  static constexpr std::size_t kShards = 32;

  Shard& shard_for(const std::string& meter_id);
  const Shard& shard_for(const std::string& meter_id) const;
  // Updates entry.latest when r is at least as new; true if it did.
  static bool update_latest(Entry& e, const core::Reading& r);

  std::array<Shard, kShards> shards_;
};

}  // namespace meterhub::hub
