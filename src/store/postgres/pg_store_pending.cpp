// TEMPORARY (branch pg-registry only): PgStore's members that the pg-store
// branch implements in pg_store.cpp, so that PgStore links and the registry
// can be tested before that branch lands. Every body fails; this file is
// deleted again before pg-registry is merged.
#include "store/postgres/pg_store_impl.hpp"

namespace meterhub::store {

namespace {
std::unexpected<core::Error> pending() {
  return core::fail("store_unavailable", "not implemented on this branch");
}
}  // namespace

core::Result<std::vector<core::Reading>> PgStore::read_batch(std::int64_t) { return pending(); }
core::Result<std::vector<std::pair<std::int64_t, core::Reading>>> PgStore::read_batches_after(
    std::int64_t, std::size_t) {
  return pending();
}
core::Result<WriteOutcome> PgStore::write(std::span<const core::Reading>, core::TimeMs) {
  return pending();
}
core::Result<void> PgStore::probe_write(core::TimeMs) { return pending(); }
core::Result<std::vector<MeterInfo>> PgStore::list_meters() { return pending(); }
core::Result<std::optional<MeterInfo>> PgStore::find_meter(std::string_view) { return pending(); }
core::Result<std::vector<core::Reading>> PgStore::read_range(const RangeQuery&) {
  return pending();
}
core::Result<std::vector<core::Reading>> PgStore::latest_per_meter() { return pending(); }
core::Result<std::vector<core::Aggregate>> PgStore::read_rollup(std::string_view, Rollup,
                                                                core::TimeMs, core::TimeMs) {
  return pending();
}
core::Result<std::vector<std::pair<core::TimeMs, double>>> PgStore::read_kwh(std::string_view,
                                                                             Rollup, core::TimeMs,
                                                                             core::TimeMs) {
  return pending();
}
core::Result<std::vector<std::pair<std::string, double>>> PgStore::kwh_totals(Rollup, core::TimeMs,
                                                                              core::TimeMs) {
  return pending();
}
core::Result<RetentionOutcome> PgStore::apply_retention(const RetentionPolicy&, core::TimeMs) {
  return pending();
}

}  // namespace meterhub::store
