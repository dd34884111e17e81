// Opens the store that --db names: a postgresql:// URL selects PostgreSQL
// (store/postgres), anything else is a SQLite file path (the default).
#pragma once

#include <memory>
#include <string>

#include "core/energy.hpp"
#include "store/store.hpp"

namespace meterhub::store {

class PgStore;
class SqliteStore;

struct StoreConfig {
  std::string db;  // file path or postgresql://…
  core::CounterRules counter_rules;
  std::size_t pg_connections = 4;  // PostgreSQL: pooled connections besides the writer's
  std::string node_id;             // PostgreSQL: this node's name in fan-out (random if empty)
};

struct OpenedStore {
  std::unique_ptr<Store> store;
  PgStore* pg = nullptr;          // the same object, when it is PostgreSQL
  SqliteStore* sqlite = nullptr;  // or SQLite
};

core::Result<OpenedStore> open_store(const StoreConfig& cfg);

// The --db value fit for logs: a URL without its password.
std::string describe_db(const std::string& db);

}  // namespace meterhub::store
