#include "store/open.hpp"

#include "store/postgres/pg_store.hpp"
#include "store/sqlite/sqlite_store.hpp"

namespace meterhub::store {

core::Result<OpenedStore> open_store(const StoreConfig& cfg) {
  OpenedStore out;
  if (is_postgres_url(cfg.db)) {
    PgOptions po;
    po.conninfo = cfg.db;
    po.readers = cfg.pg_connections;
    po.counter_rules = cfg.counter_rules;
    po.node_id = cfg.node_id;
    auto s = PgStore::open(std::move(po));
    if (!s) return std::unexpected(s.error());
    out.pg = s->get();
    out.store = std::move(*s);
    return out;
  }
  SqliteOptions so;
  so.path = cfg.db;
  so.counter_rules = cfg.counter_rules;
  auto s = SqliteStore::open(so);
  if (!s) return std::unexpected(s.error());
  out.sqlite = s->get();
  out.store = std::move(*s);
  return out;
}

std::string describe_db(const std::string& db) {
  if (!is_postgres_url(db)) return db;
  // postgresql://user:secret@host/db → postgresql://user:***@host/db
  const auto scheme = db.find("://") + 3;
  const auto at = db.find('@', scheme);
  if (at == std::string::npos) return db;
  const auto colon = db.find(':', scheme);
  if (colon == std::string::npos || colon > at) return db;
  return db.substr(0, colon + 1) + "***" + db.substr(at);
}

}  // namespace meterhub::store
