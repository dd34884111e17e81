#include "auth/authenticator.hpp"

#include <spdlog/spdlog.h>

#include "auth/keys.hpp"

namespace meterhub::auth {

Authenticator::Authenticator(store::Store& store, AuthOptions opts)
    : store_(store), opts_(opts), table_(std::make_shared<Table>()) {}

core::Result<void> Authenticator::load() {
  auto t = reload();
  if (!t) return std::unexpected(t.error());
  return {};
}

core::Result<std::shared_ptr<const Authenticator::Table>> Authenticator::reload() {
  std::lock_guard rl(reload_mu_);
  std::uint64_t seen = 0;
  {
    std::lock_guard lk(mu_);
    seen = invalidations_;
  }
  auto gen = store_.registry_generation();
  if (!gen) return std::unexpected(gen.error());
  {
    std::lock_guard lk(mu_);
    if (!stale_ && table_->generation == *gen) {
      checked_ = std::chrono::steady_clock::now();
      return table_;
    }
  }
  auto creds = store_.list_credentials();
  if (!creds) return std::unexpected(creds.error());
  auto t = std::make_shared<Table>();
  t->generation = *gen;
  for (auto& c : *creds) {
    if (c.kind == store::CredentialKind::device && !c.revoked_at) t->keyed_meters.insert(c.meter_id);
    std::string id = c.id;
    t->by_id.emplace(std::move(id), std::move(c));
  }
  std::lock_guard lk(mu_);
  table_ = t;
  // What was read may predate an invalidate() that came meanwhile: then the
  // next use reloads again.
  stale_ = invalidations_ != seen;
  checked_ = std::chrono::steady_clock::now();
  revision_.fetch_add(1, std::memory_order_acq_rel);
  return std::shared_ptr<const Table>(t);
}

std::shared_ptr<const Authenticator::Table> Authenticator::table() {
  const auto now = std::chrono::steady_clock::now();
  {
    std::lock_guard lk(mu_);
    if (!stale_ && now - checked_ < opts_.refresh) return table_;
    // Others keep using the current copy while one thread checks.
    if (!stale_) checked_ = now;
  }
  auto t = reload();
  if (t) {
    if (reload_failing_.exchange(false)) spdlog::info("credentials reloaded again");
    return *t;
  }
  // The store is unreachable: keep answering from the last copy (a revoked
  // key stays revoked, nothing new is learnt) and retry at the next refresh.
  // Said once, not at every retry (poll() retries every second).
  if (!reload_failing_.exchange(true))
    spdlog::warn("credentials could not be reloaded, the last copy stays in use: {}",
                 t.error().message);
  std::lock_guard lk(mu_);
  return table_;
}

core::Result<Principal> Authenticator::authenticate(std::string_view key) {
  Principal p;
  if (key.empty()) return p;
  auto parsed = parse_key(key);
  if (!parsed)
    return core::fail("unauthorized",
                      "malformed key: expected a meterhub device key (mhd_…) or API token (mht_…)");
  auto t = table();
  const std::string id(parsed->id);
  auto it = t->by_id.find(id);
  if (it == t->by_id.end()) {
    // A key this copy has never seen may have just been made by the CLI or
    // another node: look at the store now rather than at the next refresh.
    // At most every kUnknownRecheck, so a flood of made-up keys costs at
    // most ten registry reads a second.
    if (auto fresh = recheck_for_unknown(); fresh) {
      t = std::move(fresh);
      it = t->by_id.find(id);
    }
  }
  if (it == t->by_id.end() || it->second.kind != parsed->kind || !verify(it->second, parsed->secret))
    return core::fail("unauthorized", "unknown key");
  const store::Credential& c = it->second;
  if (c.revoked_at) return core::fail("unauthorized", "this key was revoked");
  p.id = c.id;
  if (c.kind == store::CredentialKind::device) {
    p.kind = Principal::Kind::device;
    p.meter_id = c.meter_id;
  } else {
    p.kind = Principal::Kind::token;
    p.name = c.name;
    p.scope = c.scope;
  }
  return p;
}

bool Authenticator::meter_has_key(std::string_view meter_id) {
  auto t = table();
  return t->keyed_meters.contains(std::string(meter_id));
}

void Authenticator::invalidate() {
  std::lock_guard lk(mu_);
  stale_ = true;
  ++invalidations_;
  revision_.fetch_add(1, std::memory_order_acq_rel);
}

void Authenticator::poll() { (void)table(); }

std::shared_ptr<const Authenticator::Table> Authenticator::recheck_for_unknown() {
  const auto now = std::chrono::steady_clock::now();
  {
    std::lock_guard lk(mu_);
    if (now - unknown_checked_ < kUnknownRecheck) return nullptr;
    unknown_checked_ = now;
  }
  auto t = reload();  // reads only the generation when nothing changed
  return t ? *t : nullptr;
}

bool Authenticator::active(std::string_view credential_id) {
  auto t = table();
  auto it = t->by_id.find(std::string(credential_id));
  return it != t->by_id.end() && !it->second.revoked_at;
}

core::Result<std::optional<std::string>> Authenticator::ensure_admin_token(core::TimeMs now) {
  auto creds = store_.list_credentials();
  if (!creds) return std::unexpected(creds.error());
  for (const auto& c : *creds)
    if (c.kind == store::CredentialKind::token && c.scope == store::Scope::admin && !c.revoked_at)
      return std::optional<std::string>();
  NewKey k = make_token("initial admin", store::Scope::admin, now);
  auto added = store_.add_credential(k.credential, now);
  if (!added) return std::unexpected(added.error());
  invalidate();
  return std::optional<std::string>(std::move(k.text));
}

}  // namespace meterhub::auth
