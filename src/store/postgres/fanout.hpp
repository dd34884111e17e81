// The live stream between meterhub nodes that share one PostgreSQL database
// (docs/scale-out.md). The transaction that stores readings also sends one
// NOTIFY on kReadingsChannel; PostgreSQL delivers it to every listening node
// when, and only when, that transaction commits, in commit order. Its payload
// is one batch of the readings the transaction inserted (new ones only), or,
// when they do not fit in kMaxPayload bytes, a pointer: the batch id, under
// which the readings are stored (meter_readings.batch), to be read back.
//
// Wire format (text; meter ids never contain tabs or newlines):
//   "mh1\t<node>\t<batch>\n" then per reading
//   "<meter_id>\t<ts>\t<voltage>\t<current>\t<power>\t<energy>\t<frequency>\t<power_factor>\n"
// with the optional fields empty when absent, numbers in shortest round-trip
// form. A pointer is the header line alone followed by "*\n".
#pragma once

#include <cstdint>
#include <mutex>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.hpp"
#include "core/reading.hpp"

namespace meterhub::store::pg {

inline constexpr const char* kReadingsChannel = "meterhub_readings";
// NOTIFY payloads must be shorter than 8000 bytes (PostgreSQL's default).
inline constexpr std::size_t kMaxPayload = 7900;

struct FanoutBatch {
  std::string node;      // the node that wrote it
  std::int64_t id = 0;   // meter_readings.batch of its readings
  bool pointer = false;  // readings not included: read them by batch id
  std::vector<core::Reading> readings;  // in the order they were written
};

// The payload for these readings, or the pointer form when it would exceed
// kMaxPayload.
std::string encode_batch(std::string_view node, std::int64_t id,
                         std::span<const core::Reading* const> readings);
core::Result<FanoutBatch> decode_batch(std::string_view payload);

// Batch ids a node has already published to its own Hub (its own writes,
// and other nodes' batches it received), so a batch that arrives twice (a
// notification and a resync after a reconnect) is published once.
// Thread-safe. Remembers the newest `window` ids.
class SeenBatches {
 public:
  explicit SeenBatches(std::size_t window = 200'000) : window_(window) {}
  // true when `id` was not seen before (and is now).
  bool insert(std::int64_t id);
  bool contains(std::int64_t id) const;
  // Forgets `id`: a write whose COMMIT failed (perhaps committed after all,
  // when the connection broke during it) must not keep a resync from
  // publishing that batch.
  void erase(std::int64_t id);
  // The greatest id seen, nullopt if none yet.
  std::optional<std::int64_t> max() const;

 private:
  mutable std::mutex mu_;
  std::set<std::int64_t> ids_;
  std::size_t window_;
};

}  // namespace meterhub::store::pg
