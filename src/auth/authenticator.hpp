// Who is asking: turns the key a request presents into a Principal, from an
// in-memory copy of the stored credentials (no database read per request).
//
// Coherence: every registry change bumps the store's registry_generation().
// The copy is compared with it at most once per `refresh` (1 s) and reloaded
// when it moved, so a key revoked by the CLI, or by another node sharing the
// database, is refused within a second (poll() makes that true without
// requests too). A key the copy does not know makes it look again at once
// (at most every kUnknownRecheck), so a key just created elsewhere works
// right away. Changes made through this process call invalidate() and apply
// to the very next request.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>

#include "core/error.hpp"
#include "store/store.hpp"

namespace meterhub::auth {

struct AuthOptions {
  bool public_read = false;    // reading and watching need no token
  bool auto_register = false;  // a reading for a meter without a key needs none (creates it)
  std::chrono::milliseconds refresh{1000};
};

struct Principal {
  enum class Kind : std::uint8_t { anonymous, device, token };
  Kind kind = Kind::anonymous;
  std::string id;        // credential id (not secret)
  std::string name;      // token name
  std::string meter_id;  // device keys
  store::Scope scope = store::Scope::none;

  bool can_read() const { return kind == Kind::token; }  // read and admin scopes
  bool is_admin() const { return kind == Kind::token && scope == store::Scope::admin; }
};

class Authenticator {
 public:
  Authenticator(store::Store& store, AuthOptions opts);

  // Loads the credentials; fails when the store cannot be read.
  core::Result<void> load();

  // The principal for a presented key; an empty `key` is anonymous. Error
  // code "unauthorized" for a malformed, unknown or revoked key (the message
  // says which, never echoing the key).
  core::Result<Principal> authenticate(std::string_view key);

  // Whether the meter has an active device key (auto-register lets keyless
  // meters write without one).
  bool meter_has_key(std::string_view meter_id);

  // The next authenticate() reloads first (after this process changed the registry).
  void invalidate();

  // Compares the copy with the store now (if `refresh` has passed since the
  // last look) and reloads it when it moved, as a request would. Called once
  // a second by the server, so a key revoked by the CLI reaches open
  // WebSockets even when no request comes in (readings over MQTT).
  void poll();

  // Moves whenever the credentials may have changed (a reload or an
  // invalidate()): long-lived holders of a key (WebSockets) re-check with
  // active() only then.
  std::uint64_t revision() const { return revision_.load(std::memory_order_acquire); }
  // Whether the credential with this id exists and is not revoked.
  bool active(std::string_view credential_id);

  // Makes sure an active admin token exists; creates one named "initial
  // admin" when none does and returns its text (to show once).
  core::Result<std::optional<std::string>> ensure_admin_token(core::TimeMs now);

  const AuthOptions& options() const { return opts_; }

  // Unknown key ids make the copy look at the store at most this often.
  static constexpr std::chrono::milliseconds kUnknownRecheck{100};

 private:
  struct Table {
    std::int64_t generation = -1;
    std::unordered_map<std::string, store::Credential> by_id;  // active and revoked
    std::unordered_set<std::string> keyed_meters;              // meters with an active device key
  };
  std::shared_ptr<const Table> table();
  core::Result<std::shared_ptr<const Table>> reload();
  // A fresh copy for a key id the current one lacks, or nullptr (checked
  // too recently, or the store cannot be read).
  std::shared_ptr<const Table> recheck_for_unknown();

  store::Store& store_;
  AuthOptions opts_;
  std::mutex mu_;  // guards table_, checked_
  std::shared_ptr<const Table> table_;
  std::chrono::steady_clock::time_point checked_{};
  std::chrono::steady_clock::time_point unknown_checked_{};  // recheck_for_unknown()
  bool stale_ = true;
  std::uint64_t invalidations_ = 0;  // an invalidate() during a reload keeps it stale
  std::mutex reload_mu_;  // one reload at a time
  std::atomic<std::uint64_t> revision_{0};
  std::atomic<bool> reload_failing_{false};  // warned once until a reload works again
};

}  // namespace meterhub::auth
