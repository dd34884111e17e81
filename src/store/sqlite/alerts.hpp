// The SQL of per-meter alerts (rules and raised/cleared events), as functions
// over a connection. Internal to src/store/sqlite: SqliteStore runs them on its
// admin connection (rare writes, any thread). Schema: migration 4.
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/error.hpp"
#include "store/store.hpp"

namespace meterhub::store::sqlite {

// Migration 4: alert_rule (one JSON document per meter) and alert_event.
extern const char* const kAlertSchema;

core::Result<bool> set_alert_rules(sqlite3* db, std::string_view meter_id, const std::string& doc,
                                   core::TimeMs now);
core::Result<std::optional<std::string>> alert_rules(sqlite3* db, std::string_view meter_id);
core::Result<std::vector<std::pair<std::string, std::string>>> all_alert_rules(sqlite3* db);
core::Result<std::int64_t> raise_alert(sqlite3* db, const AlertRecord& a);
core::Result<void> clear_alert(sqlite3* db, std::int64_t id, core::TimeMs at, double value,
                               const std::string& message);
core::Result<std::vector<AlertRecord>> list_alerts(sqlite3* db, const AlertQuery& q);

}  // namespace meterhub::store::sqlite
