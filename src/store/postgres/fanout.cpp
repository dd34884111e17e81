#include "store/postgres/fanout.hpp"

#include <charconv>

namespace meterhub::store::pg {

namespace {

void put(std::string& out, double v) {
  char buf[32];
  auto [p, _] = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, p);
}

void put(std::string& out, std::int64_t v) {
  char buf[24];
  auto [p, _] = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, p);
}

std::string header(std::string_view node, std::int64_t id) {
  std::string s = "mh1\t";
  s.append(node);
  s.push_back('\t');
  put(s, id);
  s.push_back('\n');
  return s;
}

// Splits at `sep`, advancing `rest`.
std::string_view take(std::string_view& rest, char sep) {
  const auto k = rest.find(sep);
  std::string_view field = rest.substr(0, k);
  rest = k == std::string_view::npos ? std::string_view() : rest.substr(k + 1);
  return field;
}

template <class T>
bool parse(std::string_view s, T& v) {
  if (s.empty()) return false;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  return ec == std::errc() && p == s.data() + s.size();
}

bool parse_opt(std::string_view s, std::optional<double>& v) {
  if (s.empty()) {
    v.reset();
    return true;
  }
  double d = 0;
  if (!parse(s, d)) return false;
  v = d;
  return true;
}

core::Result<FanoutBatch> bad(std::string what) {
  return core::fail("bad_notification", "malformed fan-out notification: " + what);
}

}  // namespace

std::string encode_batch(std::string_view node, std::int64_t id,
                         std::span<const core::Reading* const> readings) {
  std::string s = header(node, id);
  for (const core::Reading* r : readings) {
    s.append(r->meter_id);
    s.push_back('\t');
    put(s, r->ts);
    for (double v : {r->voltage, r->current, r->power, r->energy}) {
      s.push_back('\t');
      put(s, v);
    }
    for (const auto& o : {r->frequency, r->power_factor}) {
      s.push_back('\t');
      if (o) put(s, *o);
    }
    s.push_back('\n');
    if (s.size() > kMaxPayload) return header(node, id) + "*\n";
  }
  return s;
}

core::Result<FanoutBatch> decode_batch(std::string_view payload) {
  FanoutBatch b;
  std::string_view line = take(payload, '\n');
  if (take(line, '\t') != "mh1") return bad("unknown version");
  b.node = std::string(take(line, '\t'));
  if (b.node.empty() || !parse(line, b.id)) return bad("bad header");
  if (payload == "*\n") {
    b.pointer = true;
    return b;
  }
  while (!payload.empty()) {
    std::string_view l = take(payload, '\n');
    core::Reading r;
    r.meter_id = std::string(take(l, '\t'));
    if (r.meter_id.empty() || !parse(take(l, '\t'), r.ts) || !parse(take(l, '\t'), r.voltage) ||
        !parse(take(l, '\t'), r.current) || !parse(take(l, '\t'), r.power) ||
        !parse(take(l, '\t'), r.energy) || !parse_opt(take(l, '\t'), r.frequency) ||
        !parse_opt(l, r.power_factor))
      return bad("bad reading line");
    b.readings.push_back(std::move(r));
  }
  return b;
}

bool SeenBatches::insert(std::int64_t id) {
  std::lock_guard lk(mu_);
  if (!ids_.insert(id).second) return false;
  while (ids_.size() > window_) ids_.erase(ids_.begin());
  return true;
}

bool SeenBatches::contains(std::int64_t id) const {
  std::lock_guard lk(mu_);
  return ids_.contains(id);
}

void SeenBatches::erase(std::int64_t id) {
  std::lock_guard lk(mu_);
  ids_.erase(id);
}

std::optional<std::int64_t> SeenBatches::max() const {
  std::lock_guard lk(mu_);
  if (ids_.empty()) return std::nullopt;
  return *ids_.rbegin();
}

}  // namespace meterhub::store::pg
