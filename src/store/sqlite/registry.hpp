// The device registry's SQL (meters created by an admin, credentials, the
// registry generation), as functions over a connection. Internal to
// src/store/sqlite: SqliteStore decides which connection and lock each uses.
// Every writing function runs its own IMMEDIATE transaction.
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

#include "core/error.hpp"
#include "store/store.hpp"

namespace meterhub::store::sqlite {

// Migration 3: meter details, credentials, the registry generation.
extern const char* const kRegistrySchema;

core::Result<bool> create_meter(sqlite3* db, const NewMeter& m, const std::optional<Credential>& key,
                                core::TimeMs now);
core::Result<bool> update_meter(sqlite3* db, std::string_view meter_id, const MeterPatch& p);

struct Deleted {
  std::int64_t id = 0;       // the meter's row id (for the writer's caches)
  std::size_t readings = 0;  // raw readings deleted
};
core::Result<std::optional<Deleted>> delete_meter(sqlite3* db, std::string_view meter_id);

core::Result<bool> add_credential(sqlite3* db, const Credential& c, core::TimeMs now);
core::Result<Store::Revoke> revoke_credential(sqlite3* db, std::string_view id, core::TimeMs now);
core::Result<std::vector<Credential>> list_credentials(sqlite3* db);
core::Result<std::int64_t> registry_generation(sqlite3* db);

}  // namespace meterhub::store::sqlite
