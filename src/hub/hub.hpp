// The Hub: who watches which meter, the latest reading and online state of
// every meter, and fan-out of newly committed readings and meter events.
//
// Contract:
//  - stage()/publish() are called only with committed readings (the ingest
//    writer calls them after COMMIT), so a subscriber never sees data a crash
//    could take back.
//  - subscribe() (single meter, /ws/{meter_id}) first hands the subscriber the
//    meter's latest reading (by ts) if there is one, then every later reading
//    of that meter. watch()/watch_all() (multiplexed /ws) register and return
//    the meters' current state instead, for the caller to send as a snapshot
//    before anything delivered later. Both are atomic with respect to stage(),
//    per shard, so nothing is missed or doubled.
//  - A reading is encoded once, however many subscribers get it.
//  - Subscriber::deliver() may run under a Hub lock: it must only enqueue (e.g.
//    post to the session's strand) and must never call back into the Hub.
//  - Events ("meter created", online/offline) go to every subscriber of the
//    meter and to watch_all() subscribers; single-meter sockets ignore them.
// The Hub keeps weak references: a subscriber that is destroyed without
// unsubscribing is dropped at the next fan-out that reaches it.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "codec/ws_protocol.hpp"
#include "core/reading.hpp"

namespace meterhub::hub {

enum class MessageKind : std::uint8_t { reading, created, deleted, status, snapshot, error, alert };

struct Message {
  std::string meter_id;
  core::TimeMs ts = 0;
  MessageKind kind = MessageKind::reading;
  std::string json;    // /ws/{meter_id}: the plain reading
  std::string tagged;  // /ws: {"type":...} (for events the only form)
};
using MessagePtr = std::shared_ptr<const Message>;

MessagePtr make_message(const core::Reading& r);
MessagePtr make_event(MessageKind kind, std::string meter_id, std::string json);

class Subscriber {
 public:
  virtual ~Subscriber() = default;
  virtual void deliver(MessagePtr msg) = 0;
};

// Messages on their way out, in order, and who gets them.
struct Fanout {
  std::vector<MessagePtr> msgs;
  std::vector<std::shared_ptr<Subscriber>> to;
};

struct HubOptions {
  // A meter is offline when no reading arrived for this long. 0: three times
  // its usual interval (an average of the gaps between its arrivals), or 60 s
  // until two gaps have been seen.
  std::chrono::milliseconds offline_after{0};
};

class Hub {
 public:
  explicit Hub(HubOptions opts = {}) : opts_(opts) {}

  void subscribe(const std::string& meter_id, const std::shared_ptr<Subscriber>& sub);
  void unsubscribe(const std::string& meter_id, const Subscriber* sub);

  // Multiplexed subscriptions; see the contract above.
  std::vector<codec::MeterState> watch(std::span<const std::string> meter_ids,
                                       const std::shared_ptr<Subscriber>& sub);
  std::vector<codec::MeterState> watch_all(const std::shared_ptr<Subscriber>& sub);
  void unwatch_all(const Subscriber* sub);
  // The same states without registering (for a subscriber that already
  // receives these meters and asks again).
  std::vector<codec::MeterState> states(std::span<const std::string> meter_ids) const;
  std::vector<codec::MeterState> states_all() const;

  // A newly committed reading: updates the latest cache if its ts is the
  // newest, marks the meter online (and known), and delivers the reading and
  // any events to the subscribers (late readings too). = deliver(stage(r)).
  void publish(const core::Reading& r);

  // publish() in two steps, so the caller can do other work in between (the
  // ingest writer answers the senders between them, so a large fan-out does
  // not delay the answers). stage() updates the state and captures the
  // current subscribers; whoever subscribes after stage() finds this reading
  // in its snapshot instead, so nobody gets it twice. deliver() hands it to
  // the captured subscribers. Call deliver() in stage() order, from one thread.
  Fanout stage(const core::Reading& r);
  static void deliver(Fanout&& f);

  // Marks meters offline whose readings stopped (see HubOptions); returns the
  // status events to deliver. Call periodically (the server does, every second).
  std::vector<Fanout> sweep(core::TimeMs now);

  // Presence from outside (Tasmota LWT): sets the online state of `meter_id`
  // and of every "<meter_id>:<suffix>" (multi-channel devices) the Hub
  // already has an entry for; unknown meters are ignored (no entry is
  // created). Offline: offline now. Online: online, and not swept offline
  // again before offline_after() has passed since `now`. A status event goes
  // to the watchers of each meter whose state changed; deliver each Fanout
  // (one per meter, like sweep()).
  std::vector<Fanout> set_online(const std::string& meter_id, bool online, core::TimeMs now);

  // Registry changes. announce(): a meter was registered (a "created" event
  // now, none again at its first reading). remove(): a meter was deleted —
  // its latest reading and online state are forgotten and watchers get a
  // "deleted" event; subscriptions stay (a meter of that id may come back).
  Fanout announce(const std::string& meter_id);
  Fanout remove(const std::string& meter_id);
  // The interval the meter is expected to report at (registry): offline
  // after three of them. nullopt: learnt from arrivals (HubOptions).
  void set_interval(const std::string& meter_id, std::optional<std::int64_t> interval_s);

  // An event about a meter from outside the reading path (src/alerts: an
  // alert raised or cleared): goes to the meter's watchers and to watch_all()
  // subscribers, like the other events. Creates no entry; deliver the Fanout.
  Fanout notify(const std::string& meter_id, MessagePtr msg);

  // Fills the latest cache at start-up; delivers nothing. A meter counts as
  // online if its latest reading is younger than 60 s.
  void prime(const core::Reading& r);

  std::optional<core::Reading> latest(const std::string& meter_id) const;
  bool online(const std::string& meter_id) const;
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
    // Online state, by server arrival time.
    bool online = false;
    core::TimeMs last_arrival = 0;
    core::TimeMs online_since = 0;  // set_online(true): sweep counts from here too
    double interval_ms = 0;         // moving average of the gaps between arrivals
    unsigned gaps = 0;
    core::TimeMs expected_interval_ms = 0;  // from the registry; 0 = learn it
    bool announced = false;                 // "created" already sent (registration)
  };
  struct Shard {
    mutable std::mutex mu;
    std::unordered_map<std::string, Entry> meters;
    std::vector<Sub> all;  // watch_all() subscribers
  };
  static constexpr std::size_t kShards = 32;

  Shard& shard_for(const std::string& meter_id);
  const Shard& shard_for(const std::string& meter_id) const;
  // Updates entry.latest when r is at least as new; true if it did.
  static bool update_latest(Entry& e, const core::Reading& r);
  // Live subscribers of e plus the shard's watch_all() ones; prunes dead ones.
  static std::vector<std::shared_ptr<Subscriber>> audience(Shard& sh, Entry& e);
  core::TimeMs offline_after(const Entry& e) const;
  // Sets e's online state and queues the status event for its watchers.
  static void change_online(Shard& sh, const std::string& id, Entry& e, bool online,
                            std::vector<Fanout>& out);

  HubOptions opts_;
  std::array<Shard, kShards> shards_;
};

}  // namespace meterhub::hub
