#include "app/admin_cli.hpp"

#include <cstdio>

#include "auth/keys.hpp"
#include "core/time.hpp"
#include "core/validate.hpp"
#include "store/open.hpp"
#include "store/postgres/pg_store.hpp"
#include "store/sqlite/backup.hpp"
#include "store/sqlite/sqlite_store.hpp"

namespace meterhub::app {
namespace {

int fail(const std::string& msg) {
  std::fprintf(stderr, "meterhub: %s\n", msg.c_str());
  return 1;
}

int meter_add(store::Store& s, const Config::Command& c) {
  if (auto e = core::check_meter_id(c.target)) return fail(e->message);
  store::NewMeter m{c.target, c.name, c.location, c.interval_s};
  const core::TimeMs now = core::now_ms();
  auth::NewKey key = auth::make_device_key(m.meter_id, now);
  auto ok = s.create_meter(m, key.credential, now);
  if (!ok) return fail(ok.error().message);
  if (!*ok)
    return fail("meter \"" + m.meter_id + "\" already exists; `meterhub meter rotate-key " +
                m.meter_id + "` gives it a new key");
  std::fprintf(stderr, "meter \"%s\" registered; its device key (shown once):\n",
               m.meter_id.c_str());
  std::printf("%s\n", key.text.c_str());
  return 0;
}

int meter_rotate(store::Store& s, const Config::Command& c) {
  auth::NewKey key = auth::make_device_key(c.target, core::now_ms());
  auto ok = s.add_credential(key.credential, core::now_ms());
  if (!ok) return fail(ok.error().message);
  if (!*ok) return fail("no meter \"" + c.target + "\"");
  std::fprintf(stderr, "meter \"%s\" has a new device key (the old one no longer works):\n",
               c.target.c_str());
  std::printf("%s\n", key.text.c_str());
  return 0;
}

int meter_list(store::Store& s) {
  auto meters = s.list_meters();
  auto creds = s.list_credentials();
  if (!meters) return fail(meters.error().message);
  if (!creds) return fail(creds.error().message);
  std::printf("%-32s %-6s %-24s %s\n", "METER", "KEY", "LAST SEEN", "NAME");
  for (const auto& m : *meters) {
    bool keyed = false;
    for (const auto& c : *creds)
      keyed |= c.kind == store::CredentialKind::device && c.meter_id == m.meter_id && !c.revoked_at;
    std::printf("%-32s %-6s %-24s %s\n", m.meter_id.c_str(), keyed ? "yes" : "NONE",
                m.last_seen ? core::format_iso8601(*m.last_seen).c_str() : "never", m.name.c_str());
  }
  return 0;
}

int token_create(store::Store& s, const Config::Command& c) {
  auto scope = auth::parse_scope(c.scope);
  if (!scope) return fail("--scope must be read or admin");
  auth::NewKey key = auth::make_token(c.name, *scope, core::now_ms());
  auto ok = s.add_credential(key.credential, core::now_ms());
  if (!ok) return fail(ok.error().message);
  std::fprintf(stderr, "API token %s \"%s\" (%s) created; shown once:\n", key.credential.id.c_str(),
               c.name.c_str(), c.scope.c_str());
  std::printf("%s\n", key.text.c_str());
  return 0;
}

int token_list(store::Store& s) {
  auto creds = s.list_credentials();
  if (!creds) return fail(creds.error().message);
  std::printf("%-12s %-6s %-24s %-24s %s\n", "ID", "SCOPE", "CREATED", "REVOKED", "NAME");
  for (const auto& c : *creds) {
    if (c.kind != store::CredentialKind::token) continue;
    std::printf("%-12s %-6s %-24s %-24s %s\n", c.id.c_str(),
                std::string(auth::scope_name(c.scope)).c_str(),
                core::format_iso8601(c.created_at).c_str(),
                c.revoked_at ? core::format_iso8601(*c.revoked_at).c_str() : "-", c.name.c_str());
  }
  return 0;
}

int token_revoke(store::Store& s, const Config::Command& c) {
  auto creds = s.list_credentials();
  if (!creds) return fail(creds.error().message);
  bool is_token = false;
  for (const auto& k : *creds)
    is_token |= k.id == c.target && k.kind == store::CredentialKind::token;
  if (!is_token) return fail("no active token \"" + c.target + "\"");
  auto ok = s.revoke_credential(c.target, core::now_ms());
  if (!ok) return fail(ok.error().message);
  if (*ok == store::Store::Revoke::unknown) return fail("no active token \"" + c.target + "\"");
  if (*ok == store::Store::Revoke::last_admin)
    return fail("this is the last active admin token; create another admin token first");
  std::fprintf(stderr, "API token %s revoked\n", c.target.c_str());
  return 0;
}

int backup(const Config& cfg) {
  const Config::Command& c = *cfg.command;
  if (store::is_postgres_url(cfg.db_path))
    return fail(
        "meterhub backup copies a SQLite database file; for PostgreSQL use its own tools "
        "(pg_dump, or continuous archiving) on " +
        store::describe_db(cfg.db_path));
  store::BackupOptions bo;
  bo.force = c.force;
  bo.pages_per_step = c.step_pages;
  auto r = store::backup_database(cfg.db_path, c.out, bo);
  if (!r) return fail(r.error().message);
  std::fprintf(stderr,
               "backup of %s written to %s: %lld bytes (schema version %d), %lld pages copied in "
               "%lld ms, integrity_check ok in %lld ms\n",
               cfg.db_path.c_str(), c.out.c_str(), static_cast<long long>(r->bytes),
               r->schema_version, static_cast<long long>(r->pages),
               static_cast<long long>(r->copy_time.count()),
               static_cast<long long>(r->check_time.count()));
  return 0;
}

}  // namespace

int run_admin_command(const Config& cfg) {
  const Config::Command& c = *cfg.command;
  // Before opening a store: a backup must not create or migrate anything.
  if (c.group == "backup") return backup(cfg);
  store::StoreConfig sc;
  sc.db = cfg.db_path;
  sc.counter_rules = cfg.counter_rules;
  sc.pg_connections = 1;  // one command, one connection besides the writer's
  sc.node_id = cfg.node_id;
  auto opened = store::open_store(sc);
  if (!opened) return fail(opened.error().message);
  store::Store& s = *opened->store;
  if (c.group == "meter") {
    if (c.verb == "add") return meter_add(s, c);
    if (c.verb == "rotate-key") return meter_rotate(s, c);
    if (c.verb == "list") return meter_list(s);
  } else if (c.group == "token") {
    if (c.verb == "create") return token_create(s, c);
    if (c.verb == "list") return token_list(s);
    if (c.verb == "revoke") return token_revoke(s, c);
  }
  return fail("unknown command " + c.group + " " + c.verb);
}

}  // namespace meterhub::app
