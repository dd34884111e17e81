// Link shim for pg_unit_tests on a branch without store/postgres/
// pg_registry.cpp (another branch implements PgStore's registry, tariffs,
// credentials and alerts). tests/CMakeLists.txt compiles this file only
// while pg_registry.cpp does not exist, so it disappears by itself once that
// file is merged. Every member fails: the tests of pg_store_test.cpp do not
// use them.
#include "store/postgres/pg_store_impl.hpp"

namespace meterhub::store {

namespace {
std::unexpected<core::Error> missing() {
  return core::fail("store_unavailable", "pg_registry.cpp is not on this branch");
}
}  // namespace

core::Result<std::optional<std::string>> PgStore::tariff(std::string_view) { return missing(); }
core::Result<bool> PgStore::set_tariff(std::string_view, std::optional<std::string>, core::TimeMs) {
  return missing();
}
core::Result<bool> PgStore::create_meter(const NewMeter&, const std::optional<Credential>&,
                                         core::TimeMs) {
  return missing();
}
core::Result<bool> PgStore::update_meter(std::string_view, const MeterPatch&) { return missing(); }
core::Result<std::optional<std::size_t>> PgStore::delete_meter(std::string_view) {
  return missing();
}
core::Result<std::vector<std::string>> PgStore::writer_missing_meters(
    std::span<const std::string>) {
  return missing();
}
core::Result<bool> PgStore::add_credential(const Credential&, core::TimeMs) { return missing(); }
core::Result<Store::Revoke> PgStore::revoke_credential(std::string_view, core::TimeMs) {
  return missing();
}
core::Result<std::vector<Credential>> PgStore::list_credentials() { return missing(); }
core::Result<std::int64_t> PgStore::registry_generation() { return missing(); }
core::Result<bool> PgStore::set_alert_rules(std::string_view, const std::string&, core::TimeMs) {
  return missing();
}
core::Result<std::optional<std::string>> PgStore::alert_rules(std::string_view) {
  return missing();
}
core::Result<std::vector<std::pair<std::string, std::string>>> PgStore::all_alert_rules() {
  return missing();
}
core::Result<std::int64_t> PgStore::raise_alert(const AlertRecord&) { return missing(); }
core::Result<void> PgStore::clear_alert(std::int64_t, core::TimeMs, double, const std::string&) {
  return missing();
}
core::Result<std::vector<AlertRecord>> PgStore::list_alerts(const AlertQuery&) { return missing(); }

}  // namespace meterhub::store
