// Access control (docs/api.md, "Authentication"): the key format and its
// salted hash, the token buckets of the rate limits, the credential cache
// over a real SQLite store (including changes made by another process), and
// the Router's decisions for every kind of caller.
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>
#include <chrono>
#include <condition_variable>
#include <future>
#include <limits>
#include <mutex>
#include <regex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "auth/authenticator.hpp"
#include "auth/keys.hpp"
#include "auth/rate_limiter.hpp"
#include "core/time.hpp"
#include "router_harness.hpp"
#include "store/sqlite/sqlite_store.hpp"
#include "store_test_util.hpp"
#include "test_util.hpp"

namespace meterhub {
namespace {

namespace json = boost::json;
using auth::NewKey;
using auth::Principal;
using meterhub::testing::kT0;
using meterhub::testing::open_store;
using meterhub::testing::TempDir;
using store::CredentialKind;
using store::Scope;

constexpr std::string_view kBase64url =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

// ---------------------------------------------------------------------------
// Keys

TEST(Keys, DeviceKeyHasTheDocumentedShape) {
  const NewKey k = auth::make_device_key("kitchen", kT0);
  EXPECT_EQ(k.text.size(), 60u);
  EXPECT_TRUE(std::regex_match(k.text, std::regex("mhd_[0-9a-f]{12}_[A-Za-z0-9_-]{43}"))) << k.text;
  const store::Credential& c = k.credential;
  EXPECT_EQ(c.kind, CredentialKind::device);
  EXPECT_EQ(c.id, k.text.substr(4, 12));
  EXPECT_EQ(c.meter_id, "kitchen");
  EXPECT_EQ(c.scope, Scope::none);
  EXPECT_EQ(c.salt.size(), 16u);
  EXPECT_EQ(c.hash.size(), 32u);  // SHA-256
  EXPECT_EQ(c.created_at, kT0);
  EXPECT_FALSE(c.revoked_at);
  // What is stored never holds the secret.
  const std::string secret = k.text.substr(17);
  EXPECT_EQ(c.salt.find(secret), std::string::npos);
  EXPECT_EQ(c.hash.find(secret), std::string::npos);

  auto p = auth::parse_key(k.text);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->kind, CredentialKind::device);
  EXPECT_EQ(p->id, c.id);
  EXPECT_EQ(p->secret, secret);
  EXPECT_TRUE(auth::verify(c, p->secret));
}

TEST(Keys, TokenHasTheDocumentedShape) {
  for (Scope scope : {Scope::read, Scope::admin}) {
    const NewKey k = auth::make_token("grafana", scope, kT0);
    EXPECT_EQ(k.text.size(), 60u);
    EXPECT_TRUE(std::regex_match(k.text, std::regex("mht_[0-9a-f]{12}_[A-Za-z0-9_-]{43}")))
        << k.text;
    EXPECT_EQ(k.credential.kind, CredentialKind::token);
    EXPECT_EQ(k.credential.id, k.text.substr(4, 12));
    EXPECT_EQ(k.credential.name, "grafana");
    EXPECT_EQ(k.credential.scope, scope);
    EXPECT_TRUE(k.credential.meter_id.empty());
    auto p = auth::parse_key(k.text);
    ASSERT_TRUE(p);
    EXPECT_EQ(p->kind, CredentialKind::token);
    EXPECT_EQ(p->id, k.credential.id);
    EXPECT_TRUE(auth::verify(k.credential, p->secret));
  }
}

TEST(Keys, ParseRejectsEveryMalformedShape) {
  const std::string good = auth::make_token("t", Scope::read, kT0).text;
  ASSERT_TRUE(auth::parse_key(good));
  const std::string id = good.substr(4, 12), secret = good.substr(17);
  auto with = [&](std::size_t pos, char c) {
    std::string s = good;
    s[pos] = c;
    return s;
  };
  std::vector<std::pair<std::string, std::string>> bad = {
      {"empty", ""},
      {"prefix only", "mht_"},
      {"unknown prefix", "mhx_" + id + "_" + secret},
      {"upper-case prefix", "MHT_" + id + "_" + secret},
      {"prefix without underscore", "mht-" + id + "_" + secret},
      {"no prefix", id + "_" + secret},
      {"one character short", good.substr(0, good.size() - 1)},
      {"one character long", good + "A"},
      {"short id, long secret", "mht_" + id.substr(0, 11) + "_" + secret + "A"},
      {"long id, short secret", "mht_" + id + "a_" + secret.substr(1)},
      {"id of 12, secret of 44 without separator", "mht_" + id + "Q" + secret},
      {"separator is a dash", with(16, '-')},
      {"separator is a letter", with(16, 'x')},
      {"id with g", with(4, 'g')},
      {"id with a space", with(9, ' ')},
      {"id with a dash", with(15, '-')},
      {"id with an underscore", with(10, '_')},
      {"secret with +", with(17, '+')},
      {"secret with /", with(30, '/')},
      {"secret with =", with(59, '=')},
      {"secret with a space", with(40, ' ')},
      {"secret with a dot", with(20, '.')},
      {"secret with a NUL", with(25, '\0')},
      {"secret with a non-ASCII byte", with(33, '\xc3')},
      {"leading space", " " + good.substr(1)},
      {"trailing newline", good.substr(0, good.size() - 1) + "\n"},
      {"extra leading space", " " + good},
      {"extra trailing space", good + " "},
      {"with the Bearer scheme", "Bearer " + good},
      {"two keys", good + good},
  };
  for (const auto& [what, text] : bad) EXPECT_FALSE(auth::parse_key(text)) << what << ": " << text;
}

TEST(Keys, VerifyNeedsTheExactSecretAndSalt) {
  const NewKey k = auth::make_device_key("m", kT0);
  const std::string secret = k.text.substr(17);
  ASSERT_TRUE(auth::verify(k.credential, secret));
  // Any one character different, at every position.
  for (std::size_t i = 0; i < secret.size(); ++i) {
    std::string s = secret;
    s[i] = s[i] == 'A' ? 'B' : 'A';
    EXPECT_FALSE(auth::verify(k.credential, s)) << "position " << i;
  }
  EXPECT_FALSE(auth::verify(k.credential, ""));
  EXPECT_FALSE(auth::verify(k.credential, secret.substr(1)));
  EXPECT_FALSE(auth::verify(k.credential, secret + "A"));
  // The same secret with another salt (one bit of one byte) is another hash.
  for (std::size_t i = 0; i < k.credential.salt.size(); ++i) {
    store::Credential c = k.credential;
    c.salt[i] = static_cast<char>(c.salt[i] ^ 1);
    EXPECT_FALSE(auth::verify(c, secret)) << "salt byte " << i;
  }
  store::Credential no_salt = k.credential;
  no_salt.salt.clear();
  EXPECT_FALSE(auth::verify(no_salt, secret));
  // A damaged stored hash never verifies.
  store::Credential short_hash = k.credential;
  short_hash.hash.pop_back();
  EXPECT_FALSE(auth::verify(short_hash, secret));
  store::Credential no_hash = k.credential;
  no_hash.hash.clear();
  EXPECT_FALSE(auth::verify(no_hash, ""));
  // Another key's secret does not verify either.
  const NewKey other = auth::make_device_key("m", kT0);
  EXPECT_FALSE(auth::verify(k.credential, other.text.substr(17)));
}

TEST(Keys, TwoKeysAreNeverEqual) {
  std::set<std::string> texts, ids, secrets, salts, hashes;
  constexpr int kKeys = 2000;
  for (int i = 0; i < kKeys; ++i) {
    const NewKey k =
        i % 2 ? auth::make_device_key("m", kT0) : auth::make_token("t", Scope::read, kT0);
    texts.insert(k.text);
    ids.insert(k.credential.id);
    secrets.insert(k.text.substr(17));
    salts.insert(k.credential.salt);
    hashes.insert(k.credential.hash);
    // Secrets use the base64url alphabet only.
    for (char c : k.text.substr(17)) ASSERT_NE(kBase64url.find(c), std::string_view::npos);
  }
  EXPECT_EQ(texts.size(), std::size_t{kKeys});
  EXPECT_EQ(ids.size(), std::size_t{kKeys});
  EXPECT_EQ(secrets.size(), std::size_t{kKeys});
  EXPECT_EQ(salts.size(), std::size_t{kKeys});
  EXPECT_EQ(hashes.size(), std::size_t{kKeys});
}

TEST(Keys, ScopeNames) {
  EXPECT_EQ(auth::scope_name(Scope::read), "read");
  EXPECT_EQ(auth::scope_name(Scope::admin), "admin");
  EXPECT_EQ(auth::scope_name(Scope::none), "");
  EXPECT_EQ(auth::parse_scope("read"), Scope::read);
  EXPECT_EQ(auth::parse_scope("admin"), Scope::admin);
  for (const char* s : {"", "none", "Read", "ADMIN", "read ", " admin", "device", "write", "all"})
    EXPECT_FALSE(auth::parse_scope(s)) << '"' << s << '"';
  for (Scope s : {Scope::read, Scope::admin}) EXPECT_EQ(auth::parse_scope(auth::scope_name(s)), s);
}

// ---------------------------------------------------------------------------
// RateLimiter, with explicit time points

using Clock = auth::RateLimiter::Clock;
using std::chrono::milliseconds;
using std::chrono::seconds;
const Clock::time_point kStart = Clock::time_point{} + std::chrono::hours(1000);

TEST(RateLimiter, BurstThenDenyWithRetryAfter) {
  auth::RateLimiter l(2, 5);
  EXPECT_TRUE(l.enabled());
  for (int i = 0; i < 5; ++i) EXPECT_FALSE(l.acquire("ip", kStart)) << "request " << i;
  auto wait = l.acquire("ip", kStart);
  ASSERT_TRUE(wait);
  EXPECT_EQ(*wait, 1u);                  // half a second, rounded up to whole seconds
  EXPECT_TRUE(l.acquire("ip", kStart));  // a refusal takes nothing, and gives nothing
}

TEST(RateLimiter, RetryAfterIsTheCeilingOfTheWait) {
  auth::RateLimiter l(0.25, 2);  // one token per 4 s
  EXPECT_FALSE(l.acquire("k", kStart));
  EXPECT_FALSE(l.acquire("k", kStart));
  EXPECT_EQ(l.acquire("k", kStart), 4u);
  EXPECT_EQ(l.acquire("k", kStart + seconds(1)), 3u);          // 0.25 token: 3 s to go
  EXPECT_EQ(l.acquire("k", kStart + milliseconds(2500)), 2u);  // 0.625: 1.5 s -> 2
  EXPECT_EQ(l.acquire("k", kStart + milliseconds(3500)), 1u);  // 0.875: 0.5 s -> 1
  EXPECT_EQ(l.acquire("k", kStart + milliseconds(3750)), 1u);  // 0.9375: 0.25 s -> 1, never 0
  EXPECT_FALSE(l.acquire("k", kStart + seconds(4)));           // exactly one token
  EXPECT_EQ(l.acquire("k", kStart + seconds(4)), 4u);

  auth::RateLimiter third(0.3, 1);  // 3.33 s: rounded up, not to nearest
  EXPECT_FALSE(third.acquire("k", kStart));
  EXPECT_EQ(third.acquire("k", kStart), 4u);
}

TEST(RateLimiter, RefillsExactlyOverTimeUpToTheBurst) {
  auth::RateLimiter l(4, 8);
  for (int i = 0; i < 8; ++i) ASSERT_FALSE(l.acquire("k", kStart));
  ASSERT_TRUE(l.acquire("k", kStart));
  // 250 ms at 4/s is exactly one token.
  EXPECT_FALSE(l.acquire("k", kStart + milliseconds(250)));
  EXPECT_TRUE(l.acquire("k", kStart + milliseconds(250)));
  // 750 ms more: three.
  for (int i = 0; i < 3; ++i) EXPECT_FALSE(l.acquire("k", kStart + seconds(1))) << i;
  EXPECT_TRUE(l.acquire("k", kStart + seconds(1)));
  // A long idle time refills to the burst, not beyond.
  const auto later = kStart + std::chrono::hours(5);
  for (int i = 0; i < 8; ++i) EXPECT_FALSE(l.acquire("k", later)) << i;
  EXPECT_TRUE(l.acquire("k", later));
  // A time point before the last one adds nothing.
  EXPECT_TRUE(l.acquire("k", later - seconds(10)));
}

TEST(RateLimiter, KeysAreIndependent) {
  auth::RateLimiter l(1, 3);
  for (int i = 0; i < 3; ++i) ASSERT_FALSE(l.acquire("10.0.0.1", kStart));
  EXPECT_TRUE(l.acquire("10.0.0.1", kStart));
  for (int i = 0; i < 3; ++i) EXPECT_FALSE(l.acquire("10.0.0.2", kStart)) << i;
  EXPECT_TRUE(l.acquire("10.0.0.2", kStart));
  EXPECT_TRUE(l.acquire("10.0.0.1", kStart));
  EXPECT_FALSE(l.acquire("", kStart));  // the empty key is a key like any other
}

TEST(RateLimiter, RateZeroIsDisabled) {
  for (double rate : {0.0, -1.0}) {
    auth::RateLimiter l(rate, 1);
    EXPECT_FALSE(l.enabled());
    for (int i = 0; i < 10'000; ++i) ASSERT_FALSE(l.acquire("k", kStart)) << i;
  }
}

TEST(RateLimiter, MemoryIsBoundedAndFreshKeysAreNeverDenied) {
  constexpr std::size_t kMaxKeys = 32;
  constexpr int kFlood = 20'000;
  auth::RateLimiter l(0.001, 1, kMaxKeys);  // one request per key, then ~17 min
  // A busy key, then a flood of distinct keys, each busy too.
  ASSERT_FALSE(l.acquire("busy", kStart));
  ASSERT_TRUE(l.acquire("busy", kStart));
  for (int i = 0; i < kFlood; ++i)
    ASSERT_FALSE(l.acquire("k" + std::to_string(i), kStart + milliseconds(i)))
        << "fresh key " << i << " denied";
  // Only remembered keys can be denied: at most max_keys of them are.
  int denied = 0;
  // (Newest first: asking for a forgotten key remembers it again.)
  for (int i = kFlood - 1; i >= 0; --i)
    if (l.acquire("k" + std::to_string(i), kStart + milliseconds(kFlood))) ++denied;
  EXPECT_LE(denied, static_cast<int>(kMaxKeys));
  EXPECT_GT(denied, 0);  // ... and the newest are remembered
}

// ---------------------------------------------------------------------------
// Authenticator over a real store

class AuthenticatorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    store_ = open_store(dir_.file("m.db"));
    ASSERT_TRUE(store_);
  }

  // The database as another process (the CLI, another node) sees it.
  std::unique_ptr<store::SqliteStore> other_process() { return open_store(dir_.file("m.db")); }

  static auth::AuthOptions refresh(std::chrono::milliseconds every) {
    auth::AuthOptions o;
    o.refresh = every;
    return o;
  }

  // Expects an "unauthorized" refusal whose message does not give the key away.
  static void expect_refused(auth::Authenticator& a, const std::string& key,
                             const std::string& what) {
    auto p = a.authenticate(key);
    ASSERT_FALSE(p) << what << ": accepted";
    EXPECT_EQ(p.error().code, "unauthorized") << what;
    EXPECT_FALSE(p.error().message.empty()) << what;
    EXPECT_EQ(p.error().message.find(key), std::string::npos) << what << ": " << p.error().message;
    if (key.size() > 17) {
      EXPECT_EQ(p.error().message.find(key.substr(17)), std::string::npos)
          << what << ": the secret is in the message " << p.error().message;
    }
  }

  TempDir dir_;
  std::unique_ptr<store::SqliteStore> store_;
};

TEST_F(AuthenticatorTest, KnowsTokensDevicesAndAnonymous) {
  const NewKey read = auth::make_token("grafana", Scope::read, kT0);
  const NewKey admin = auth::make_token("ops", Scope::admin, kT0);
  const NewKey dev = auth::make_device_key("kitchen", kT0);
  ASSERT_TRUE(store_->add_credential(read.credential, kT0).value());
  ASSERT_TRUE(store_->add_credential(admin.credential, kT0).value());
  ASSERT_TRUE(store_->create_meter({"kitchen", "", "", std::nullopt}, dev.credential, kT0).value());
  auth::Authenticator a(*store_, {});
  ASSERT_TRUE(a.load());

  auto anon = a.authenticate("");
  ASSERT_TRUE(anon);
  EXPECT_EQ(anon->kind, Principal::Kind::anonymous);
  EXPECT_FALSE(anon->can_read());
  EXPECT_FALSE(anon->is_admin());

  auto r = a.authenticate(read.text);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->kind, Principal::Kind::token);
  EXPECT_EQ(r->id, read.credential.id);
  EXPECT_EQ(r->name, "grafana");
  EXPECT_EQ(r->scope, Scope::read);
  EXPECT_TRUE(r->can_read());
  EXPECT_FALSE(r->is_admin());

  auto ad = a.authenticate(admin.text);
  ASSERT_TRUE(ad);
  EXPECT_EQ(ad->scope, Scope::admin);
  EXPECT_TRUE(ad->can_read());
  EXPECT_TRUE(ad->is_admin());

  auto d = a.authenticate(dev.text);
  ASSERT_TRUE(d);
  EXPECT_EQ(d->kind, Principal::Kind::device);
  EXPECT_EQ(d->id, dev.credential.id);
  EXPECT_EQ(d->meter_id, "kitchen");
  EXPECT_FALSE(d->can_read());
  EXPECT_FALSE(d->is_admin());
}

TEST_F(AuthenticatorTest, RefusesMalformedUnknownAndRevokedKeysWithoutEchoingThem) {
  const NewKey tok = auth::make_token("t", Scope::admin, kT0);
  const NewKey keep = auth::make_token("keep", Scope::admin, kT0);
  ASSERT_TRUE(store_->add_credential(tok.credential, kT0).value());
  ASSERT_TRUE(store_->add_credential(keep.credential, kT0).value());
  auth::Authenticator a(*store_, {});
  ASSERT_TRUE(a.load());
  ASSERT_TRUE(a.authenticate(tok.text));

  // Malformed.
  std::string last_char = tok.text;
  last_char.back() = last_char.back() == 'A' ? 'B' : 'A';
  for (const std::string& k :
       {std::string("not-a-key-at-all"), tok.text + "x", tok.text.substr(0, 59),
        "Bearer " + tok.text, tok.text + "\n", "mht_" + tok.text.substr(4, 12) + "_short"})
    expect_refused(a, k, "malformed " + k);
  // Unknown: well-formed, never stored; the right id with a wrong secret;
  // the right id and secret with the other kind's prefix.
  expect_refused(a, auth::make_token("never stored", Scope::admin, kT0).text, "unknown token");
  expect_refused(a, auth::make_device_key("kitchen", kT0).text, "unknown device key");
  expect_refused(a, last_char, "wrong secret");
  expect_refused(a, "mhd_" + tok.text.substr(4), "token presented as a device key");
  // Revoked (through this process: invalidate).
  ASSERT_EQ(store_->revoke_credential(tok.credential.id, kT0 + 1).value(), store::Store::Revoke::revoked);
  a.invalidate();
  expect_refused(a, tok.text, "revoked token");
  EXPECT_TRUE(a.authenticate(keep.text));

  // The messages say which of the three it was.
  std::set<std::string> messages;
  for (const std::string& k :
       {std::string("not-a-key-at-all"), auth::make_token("x", Scope::read, kT0).text, tok.text})
    messages.insert(a.authenticate(k).error().message);
  EXPECT_EQ(messages.size(), 3u);
}

TEST_F(AuthenticatorTest, SeesAnotherProcessesNewKeyAtOnce) {
  auth::Authenticator fast(*store_, refresh(milliseconds(50)));
  auth::Authenticator slow(*store_, refresh(std::chrono::hours(1)));
  ASSERT_TRUE(fast.load());
  ASSERT_TRUE(slow.load());
  const NewKey tok = auth::make_token("cli", Scope::read, kT0);
  const NewKey dev = auth::make_device_key("garage", kT0);
  {
    auto cli = other_process();
    ASSERT_TRUE(cli);
    ASSERT_TRUE(cli->add_credential(tok.credential, kT0).value());
    ASSERT_TRUE(cli->create_meter({"garage", "", "", std::nullopt}, dev.credential, kT0).value());
  }
  // A key the copy does not know makes it look at the store at once, long
  // before its refresh: a key just made by the CLI works right away, and the
  // look reloads the whole copy.
  EXPECT_TRUE(slow.authenticate(tok.text));
  EXPECT_TRUE(slow.authenticate(dev.text));
  EXPECT_TRUE(slow.meter_has_key("garage"));
  EXPECT_TRUE(fast.authenticate(dev.text));
  // A made-up key is refused (and looks again at most every kUnknownRecheck).
  const NewKey never = auth::make_token("never stored", Scope::read, kT0);
  expect_refused(slow, never.text, "a key that is in no store");
  std::this_thread::sleep_for(auth::Authenticator::kUnknownRecheck + milliseconds(20));
  expect_refused(slow, never.text, "a key that is in no store, looked up again");
}

TEST_F(AuthenticatorTest, SeesAnotherProcessesRevocationAfterRefreshNotBefore) {
  const NewKey tok = auth::make_token("cli", Scope::read, kT0);
  const NewKey dev = auth::make_device_key("garage", kT0);
  ASSERT_TRUE(store_->add_credential(tok.credential, kT0).value());
  ASSERT_TRUE(store_->create_meter({"garage", "", "", std::nullopt}, dev.credential, kT0).value());
  auth::Authenticator fast(*store_, refresh(milliseconds(50)));
  auth::Authenticator slow(*store_, refresh(std::chrono::hours(1)));
  ASSERT_TRUE(fast.load());
  ASSERT_TRUE(slow.load());
  ASSERT_TRUE(fast.authenticate(tok.text));
  ASSERT_TRUE(slow.authenticate(dev.text));
  {
    auto cli = other_process();
    ASSERT_TRUE(cli);
    ASSERT_EQ(cli->revoke_credential(tok.credential.id, kT0 + 1).value(), store::Store::Revoke::revoked);
    ASSERT_EQ(cli->revoke_credential(dev.credential.id, kT0 + 1).value(), store::Store::Revoke::revoked);
  }
  // The cached copy holds until its refresh (at most `refresh` late)...
  EXPECT_TRUE(slow.authenticate(tok.text));
  EXPECT_TRUE(slow.authenticate(dev.text));
  EXPECT_TRUE(slow.meter_has_key("garage"));
  std::this_thread::sleep_for(milliseconds(120));
  expect_refused(fast, tok.text, "revoked token after the refresh");
  expect_refused(fast, dev.text, "revoked device key after the refresh");
  EXPECT_FALSE(fast.meter_has_key("garage"));
  slow.invalidate();
  expect_refused(slow, tok.text, "revoked token after invalidate");
  expect_refused(slow, dev.text, "revoked device key after invalidate");
  EXPECT_FALSE(slow.meter_has_key("garage"));
}

// What the server's once-a-second poll() gives an open WebSocket: the revision
// moves after a revocation elsewhere without any authenticate() call, and not
// when nothing changed (sockets then skip their re-check).
TEST_F(AuthenticatorTest, PollNoticesAnotherProcessesRevocationWithoutRequests) {
  const NewKey tok = auth::make_token("watcher", Scope::read, kT0);
  ASSERT_TRUE(store_->add_credential(tok.credential, kT0).value());
  auth::Authenticator a(*store_, refresh(milliseconds(50)));
  ASSERT_TRUE(a.load());
  ASSERT_TRUE(a.active(tok.credential.id));
  const std::uint64_t before = a.revision();
  std::this_thread::sleep_for(milliseconds(80));
  a.poll();
  EXPECT_EQ(a.revision(), before) << "nothing changed: no reload";
  {
    auto cli = other_process();
    ASSERT_TRUE(cli);
    ASSERT_EQ(cli->revoke_credential(tok.credential.id, kT0 + 1).value(),
              store::Store::Revoke::revoked);
  }
  std::this_thread::sleep_for(milliseconds(80));
  a.poll();
  EXPECT_NE(a.revision(), before);
  EXPECT_FALSE(a.active(tok.credential.id));
}

TEST_F(AuthenticatorTest, MeterHasKeyFollowsRotationRevocationAndDeletion) {
  const NewKey first = auth::make_device_key("a", kT0);
  ASSERT_TRUE(store_->create_meter({"a", "", "", std::nullopt}, first.credential, kT0).value());
  ASSERT_TRUE(store_->create_meter({"b", "", "", std::nullopt}, std::nullopt, kT0).value());
  const core::Reading r = meterhub::testing::reading("c", kT0);
  ASSERT_TRUE(store_->write({&r, 1}, kT0));
  auth::Authenticator a(*store_, {});
  ASSERT_TRUE(a.load());
  EXPECT_TRUE(a.meter_has_key("a"));
  EXPECT_FALSE(a.meter_has_key("b"));  // registered without a key
  EXPECT_FALSE(a.meter_has_key("c"));  // created by its first reading
  EXPECT_FALSE(a.meter_has_key("nope"));

  // Rotation: the new key works, the old one at once does not.
  const NewKey second = auth::make_device_key("a", kT0 + 1);
  ASSERT_TRUE(store_->add_credential(second.credential, kT0 + 1).value());
  a.invalidate();
  EXPECT_TRUE(a.meter_has_key("a"));
  EXPECT_TRUE(a.authenticate(second.text));
  expect_refused(a, first.text, "rotated-out device key");

  // Revoking the active key leaves the meter keyless.
  ASSERT_EQ(store_->revoke_credential(second.credential.id, kT0 + 2).value(), store::Store::Revoke::revoked);
  a.invalidate();
  EXPECT_FALSE(a.meter_has_key("a"));

  // A key for b; then b deleted: its key is gone with it.
  const NewKey bk = auth::make_device_key("b", kT0 + 3);
  ASSERT_TRUE(store_->add_credential(bk.credential, kT0 + 3).value());
  a.invalidate();
  EXPECT_TRUE(a.meter_has_key("b"));
  ASSERT_TRUE(store_->delete_meter("b").value());
  a.invalidate();
  EXPECT_FALSE(a.meter_has_key("b"));
  expect_refused(a, bk.text, "key of a deleted meter");
}

// A store whose list_credentials() can be held after it has read: to put a
// registry change in the middle of an Authenticator's reload.
class GatedStore final : public store::Store {
 public:
  explicit GatedStore(store::Store& s) : s_(s) {}
  void arm() {
    std::lock_guard lk(mu_);
    armed_ = true;
    entered_ = released_ = false;
  }
  void wait_entered() {
    std::unique_lock lk(mu_);
    cv_.wait(lk, [&] { return entered_; });
  }
  void release() {
    std::lock_guard lk(mu_);
    released_ = true;
    cv_.notify_all();
  }

  core::Result<std::vector<store::Credential>> list_credentials() override {
    auto r = s_.list_credentials();
    std::unique_lock lk(mu_);
    if (armed_) {
      armed_ = false;
      entered_ = true;
      cv_.notify_all();
      cv_.wait(lk, [&] { return released_; });
    }
    return r;
  }
  core::Result<std::int64_t> registry_generation() override { return s_.registry_generation(); }

  core::Result<store::WriteOutcome> write(std::span<const core::Reading> r,
                                          core::TimeMs t) override {
    return s_.write(r, t);
  }
  core::Result<void> probe_write(core::TimeMs t) override { return s_.probe_write(t); }
  core::Result<store::RetentionOutcome> apply_retention(const store::RetentionPolicy& p,
                                                        core::TimeMs t) override {
    return s_.apply_retention(p, t);
  }
  core::Result<std::vector<store::MeterInfo>> list_meters() override { return s_.list_meters(); }
  core::Result<std::optional<store::MeterInfo>> find_meter(std::string_view m) override {
    return s_.find_meter(m);
  }
  core::Result<std::vector<core::Reading>> read_range(const store::RangeQuery& q) override {
    return s_.read_range(q);
  }
  core::Result<std::vector<core::Reading>> latest_per_meter() override {
    return s_.latest_per_meter();
  }
  core::Result<std::vector<core::Aggregate>> read_rollup(std::string_view m, store::Rollup t,
                                                         core::TimeMs a, core::TimeMs b) override {
    return s_.read_rollup(m, t, a, b);
  }
  core::Result<std::vector<std::pair<core::TimeMs, double>>> read_kwh(std::string_view m,
                                                                      store::Rollup t,
                                                                      core::TimeMs a,
                                                                      core::TimeMs b) override {
    return s_.read_kwh(m, t, a, b);
  }
  core::Result<std::vector<std::pair<std::string, double>>> kwh_totals(store::Rollup t,
                                                                       core::TimeMs a,
                                                                       core::TimeMs b) override {
    return s_.kwh_totals(t, a, b);
  }
  core::Result<std::optional<std::string>> tariff(std::string_view m) override {
    return s_.tariff(m);
  }
  core::Result<bool> set_tariff(std::string_view m, std::optional<std::string> d,
                                core::TimeMs t) override {
    return s_.set_tariff(m, std::move(d), t);
  }
  core::Result<bool> create_meter(const store::NewMeter& m,
                                  const std::optional<store::Credential>& k,
                                  core::TimeMs t) override {
    return s_.create_meter(m, k, t);
  }
  core::Result<bool> update_meter(std::string_view m, const store::MeterPatch& p) override {
    return s_.update_meter(m, p);
  }
  core::Result<std::optional<std::size_t>> delete_meter(std::string_view m) override {
    return s_.delete_meter(m);
  }
  core::Result<std::vector<std::string>> writer_missing_meters(
      std::span<const std::string> m) override {
    return s_.writer_missing_meters(m);
  }
  core::Result<bool> add_credential(const store::Credential& c, core::TimeMs t) override {
    return s_.add_credential(c, t);
  }
  core::Result<Revoke> revoke_credential(std::string_view id, core::TimeMs t) override {
    return s_.revoke_credential(id, t);
  }

 private:
  store::Store& s_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool armed_ = false, entered_ = false, released_ = false;
};

// invalidate() promises that a change this process made applies to the very
// next request, also when another request is reloading the credentials at
// that moment (with what it read before the change).
TEST_F(AuthenticatorTest, InvalidateDuringAReloadIsNotLost) {
  const NewKey tok = auth::make_token("t", Scope::read, kT0);
  ASSERT_TRUE(store_->add_credential(tok.credential, kT0).value());
  GatedStore gated(*store_);
  auth::Authenticator a(gated, refresh(std::chrono::hours(1)));
  ASSERT_TRUE(a.load());
  ASSERT_TRUE(a.authenticate(tok.text));

  // A request starts a reload and has read the credentials...
  gated.arm();
  a.invalidate();
  std::thread request([&] { EXPECT_TRUE(a.authenticate(tok.text)); });
  gated.wait_entered();
  // ... when this process revokes the token (as DELETE /api/v1/tokens does).
  ASSERT_EQ(store_->revoke_credential(tok.credential.id, kT0 + 1).value(), store::Store::Revoke::revoked);
  a.invalidate();
  gated.release();
  request.join();
  expect_refused(a, tok.text, "a token revoked and invalidated during a reload");
}

TEST_F(AuthenticatorTest, EnsureAdminTokenCreatesExactlyOnce) {
  auth::Authenticator a(*store_, {});
  ASSERT_TRUE(a.load());
  auto first = a.ensure_admin_token(kT0);
  ASSERT_TRUE(first);
  ASSERT_TRUE(*first);
  const std::string text = **first;
  auto p = a.authenticate(text);
  ASSERT_TRUE(p) << p.error().message;
  EXPECT_TRUE(p->is_admin());
  EXPECT_EQ(p->name, "initial admin");

  auto again = a.ensure_admin_token(kT0 + 1);
  ASSERT_TRUE(again);
  EXPECT_FALSE(*again);
  // Nor by another process (the next start).
  {
    auto next = other_process();
    ASSERT_TRUE(next);
    auth::Authenticator b(*next, {});
    ASSERT_TRUE(b.load());
    auto third = b.ensure_admin_token(kT0 + 2);
    ASSERT_TRUE(third);
    EXPECT_FALSE(*third);
    EXPECT_TRUE(b.authenticate(text));
  }
  auto creds = store_->list_credentials();
  ASSERT_TRUE(creds);
  ASSERT_EQ(creds->size(), 1u);
  EXPECT_EQ((*creds)[0].scope, Scope::admin);
  EXPECT_FALSE((*creds)[0].revoked_at);

  // A read token is not an admin token; a revoked admin token is none at all
  // (the store refuses to revoke the last one, so a database from elsewhere
  // is simulated with SQL).
  ASSERT_TRUE(
      store_->add_credential(auth::make_token("r", Scope::read, kT0).credential, kT0).value());
  ASSERT_EQ(store_->revoke_credential(p->id, kT0 + 3).value(), store::Store::Revoke::last_admin);
  {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(dir_.file("m.db").c_str(), &db), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(db,
                           "UPDATE credential SET revoked_at = 1; "
                           "UPDATE registry_state SET generation = generation + 1",
                           nullptr, nullptr, nullptr),
              SQLITE_OK);
    sqlite3_close(db);
  }
  a.invalidate();
  auto replaced = a.ensure_admin_token(kT0 + 4);
  ASSERT_TRUE(replaced);
  ASSERT_TRUE(*replaced);
  EXPECT_NE(**replaced, text);
  EXPECT_TRUE(a.authenticate(**replaced));
  expect_refused(a, text, "the revoked initial admin token");
  EXPECT_FALSE(*a.ensure_admin_token(kT0 + 5));
}

}  // namespace

// ---------------------------------------------------------------------------
// The Router's access decisions (docs/api.md, "Authentication")

namespace api {
namespace {

std::string error_code(const Response& r) {
  json::error_code ec;
  auto v = json::parse(r.body, ec);
  if (ec || !v.is_object()) return {};
  const auto* e = v.as_object().if_contains("error");
  if (!e || !e->is_object()) return {};
  const auto* c = e->as_object().if_contains("code");
  return c && c->is_string() ? std::string(c->get_string()) : std::string();
}

std::optional<std::string> header(const Response& r, std::string_view name) {
  for (const auto& [k, v] : r.headers)
    if (k == name) return v;
  return std::nullopt;
}

std::string json_string(const Response& r, const char* key) {
  json::error_code ec;
  auto v = json::parse(r.body, ec);
  if (ec || !v.is_object()) return {};
  const auto* s = v.as_object().if_contains(key);
  return s && s->is_string() ? std::string(s->get_string()) : std::string();
}

std::string reading_json(const std::string& meter, core::TimeMs ts) {
  return R"({"meter_id":")" + meter +
         R"(","voltage":230,"current":1,"power":230,"energy":1,"ts":)" + std::to_string(ts) + "}";
}

// With the secure defaults: no --public-read, no --auto-register.
class SecureRouterTest : public RouterHarness {
 protected:
  auth::AuthOptions auth_options() const override { return {}; }

  // A call with the given key ("" = none).
  Response as(const std::string& key, std::string method, std::string target,
              std::string body = "") {
    return try_call(std::move(method), std::move(target), std::move(body), "application/json",
                    key.empty() ? std::string() : "Bearer " + key)
        .value();
  }
  // A request built by hand (other headers).
  Response raw(Request r) {
    auto p = std::make_shared<std::promise<Response>>();
    auto f = p->get_future();
    if (r.remote.empty()) r.remote = "test";
    router_->handle(std::move(r), [p](Response res) { p->set_value(std::move(res)); });
    EXPECT_EQ(f.wait_for(std::chrono::seconds(10)), std::future_status::ready);
    return f.get();
  }

  // Registers a meter through the API; its device key.
  std::string register_meter(const std::string& id) {
    Response r = call("POST", "/api/v1/meters", R"({"meter_id":")" + id + R"("})");
    EXPECT_EQ(r.status, 201u) << r.body;
    json::error_code ec;
    auto v = json::parse(r.body, ec);
    if (ec) return {};
    return std::string(v.at("device_key").as_string());
  }
  // Creates an API token through the API; its text (and id).
  std::string make_token(const std::string& name, const std::string& scope,
                         std::string* id = nullptr) {
    Response r =
        call("POST", "/api/v1/tokens", R"({"name":")" + name + R"(","scope":")" + scope + R"("})");
    EXPECT_EQ(r.status, 201u) << r.body;
    if (id) *id = json_string(r, "id");
    return json_string(r, "token");
  }

  std::size_t stored(const std::string& meter) {
    store::RangeQuery q;
    q.meter_id = meter;
    q.from = std::numeric_limits<core::TimeMs>::min();
    q.to = std::numeric_limits<core::TimeMs>::max();
    q.limit = 1'000'000;
    return store_->read_range(q).value().size();
  }

  // Everything a request could change, as text.
  std::string snapshot() {
    std::string s;
    const auto meters = store_->list_meters().value();
    for (const auto& m : meters) {
      s += m.meter_id + "|" + m.name + "|" + m.location + "|" +
           (m.interval_s ? std::to_string(*m.interval_s) : "-") + "|" +
           std::to_string(m.last_seen.value_or(0)) + "|" + std::to_string(stored(m.meter_id)) +
           "|" + store_->tariff(m.meter_id).value().value_or("-") + "\n";
    }
    const auto creds = store_->list_credentials().value();
    for (const auto& c : creds)
      s += c.id + "|" + c.meter_id + "|" + c.name + "|" + std::to_string(c.revoked_at.value_or(0)) +
           "\n";
    s += store_->tariff("").value().value_or("-");
    return s;
  }

  static void expect_401(const Response& r, const std::string& what) {
    EXPECT_EQ(r.status, 401u) << what << ": " << r.body;
    EXPECT_EQ(error_code(r), "unauthorized") << what;
    EXPECT_EQ(header(r, "WWW-Authenticate"), "Bearer realm=\"meterhub\"") << what;
  }
  static void expect_403(const Response& r, const std::string& what) {
    EXPECT_EQ(r.status, 403u) << what << ": " << r.body;
    EXPECT_EQ(error_code(r), "forbidden") << what;
    EXPECT_FALSE(header(r, "WWW-Authenticate")) << what;
  }

  core::TimeMs t0_ = core::now_ms() - 3'600'000;
};

TEST_F(SecureRouterTest, NeedMatrix) {
  const std::string device = register_meter("m1");
  register_meter("m2");
  register_meter("m3");
  std::string spare_id;
  const std::string read = make_token("grafana", "read");
  make_token("spare", "read", &spare_id);
  ASSERT_FALSE(device.empty());
  ASSERT_FALSE(read.empty());
  ASSERT_FALSE(spare_id.empty());
  // State that lets every read succeed.
  ASSERT_EQ(as(device, "POST", "/api/v1/readings", reading_json("m1", t0_)).status, 201u);
  const std::string tariff = R"({"currency":"EUR","price_per_kwh":0.25})";
  ASSERT_EQ(call("PUT", "/api/v1/meters/m1/tariff", tariff).status, 200u);
  ASSERT_EQ(call("PUT", "/api/v1/meters/m2/tariff", tariff).status, 200u);
  ASSERT_EQ(call("PUT", "/api/v1/tariff", tariff).status, 200u);

  enum Who { anonymous, dev, reader, admin };
  const std::string keys[] = {"", device, read, admin_token_};
  const char* names[] = {"anonymous", "device key", "read token", "admin token"};
  struct Case {
    const char* method;
    std::string target;
    std::string body;
    // Expected status per caller.
    unsigned want[4];
  };
  const std::string range =
      "?from=" + std::to_string(t0_ - 3'600'000) + "&to=" + std::to_string(t0_ + 3'600'000);
  std::vector<Case> cases = {
      // Reading: a read or admin token.
      {"GET", "/api/v1/meters", "", {401, 403, 200, 200}},
      {"GET", "/api/v1/meters/m1", "", {401, 403, 200, 200}},
      {"GET", "/api/v1/meters/m1/latest", "", {401, 403, 200, 200}},
      {"GET", "/api/v1/meters/m1/readings", "", {401, 403, 200, 200}},
      {"GET", "/api/v1/meters/m1/series" + range, "", {401, 403, 200, 200}},
      {"GET", "/api/v1/meters/m1/energy" + range, "", {401, 403, 200, 200}},
      {"GET", "/api/v1/meters/m1/tariff", "", {401, 403, 200, 200}},
      {"GET", "/api/v1/tariff", "", {401, 403, 200, 200}},
      {"GET", "/api/v1/energy/summary" + range, "", {401, 403, 200, 200}},
      // Who am I: any valid key.
      {"GET", "/api/v1/whoami", "", {401, 200, 200, 200}},
      // Writing readings: a device key (its meter) or an admin token.
      {"POST", "/api/v1/readings", "", {401, 201, 403, 201}},
      // Administration: an admin token.
      {"POST", "/api/v1/meters", "", {401, 403, 403, 201}},
      {"PATCH", "/api/v1/meters/m1", R"({"name":"Kitchen"})", {401, 403, 403, 200}},
      {"POST", "/api/v1/meters/m2/rotate-key", "", {401, 403, 403, 200}},
      {"PUT", "/api/v1/meters/m1/tariff", tariff, {401, 403, 403, 200}},
      {"DELETE", "/api/v1/meters/m2/tariff", "", {401, 403, 403, 204}},
      {"PUT", "/api/v1/tariff", tariff, {401, 403, 403, 200}},
      {"DELETE", "/api/v1/tariff", "", {401, 403, 403, 204}},
      {"GET", "/api/v1/tokens", "", {401, 403, 403, 200}},
      {"POST", "/api/v1/tokens", R"({"name":"new","scope":"read"})", {401, 403, 403, 201}},
      {"DELETE", "/api/v1/tokens/" + spare_id, "", {401, 403, 403, 200}},
      {"DELETE", "/api/v1/meters/m3?confirm=m3", "", {401, 403, 403, 200}},
      // Alerts: rules and alerts are read with a read token, rules set by an admin.
      {"GET", "/api/v1/meters/m1/alerts", "", {401, 403, 200, 200}},
      {"GET", "/api/v1/alerts", "", {401, 403, 200, 200}},
      {"PUT", "/api/v1/meters/m1/alerts", R"({"rules":[{"kind":"offline","after_s":600}]})",
       {401, 403, 403, 200}},
  };
  core::TimeMs ts = t0_ + 1000;
  for (const Case& c : cases) {
    for (Who who : {anonymous, dev, reader, admin}) {
      const std::string what = std::string(names[who]) + ": " + c.method + " " + c.target;
      std::string body = c.body;
      if (c.target == "/api/v1/readings") body = reading_json("m1", ts += 1000);
      if (c.target == "/api/v1/meters" && std::string(c.method) == "POST")
        body = R"({"meter_id":"new)" + std::to_string(who) + R"("})";
      const std::string before = snapshot();
      const Response r = as(keys[who], c.method, c.target, body);
      const unsigned want = c.want[who];
      if (want == 401) {
        expect_401(r, what);
      } else if (want == 403) {
        expect_403(r, what);
      } else {
        EXPECT_EQ(r.status, want) << what << ": " << r.body;
      }
      // A refused request changes nothing.
      if (want >= 400) {
        EXPECT_EQ(snapshot(), before) << what << " changed something";
      }
    }
  }
  EXPECT_EQ(stored("m1"), 3u);  // the seed, the device's and the admin's
  EXPECT_FALSE(store_->find_meter("m3").value());
  EXPECT_TRUE(store_->find_meter("new3").value());
  for (int who : {0, 1, 2}) EXPECT_FALSE(store_->find_meter("new" + std::to_string(who)).value());
}

TEST_F(SecureRouterTest, WhoamiNamesTheCaller) {
  const std::string device = register_meter("kitchen");
  std::string id;
  const std::string read = make_token("grafana", "read", &id);
  auto body = [&](const std::string& key) {
    Response r = as(key, "GET", "/api/v1/whoami");
    EXPECT_EQ(r.status, 200u) << r.body;
    return json::parse(r.body);
  };
  json::value t = body(read);
  EXPECT_EQ(t.at("kind").as_string(), "token");
  EXPECT_EQ(t.at("id").as_string(), id);
  EXPECT_EQ(t.at("name").as_string(), "grafana");
  EXPECT_EQ(t.at("scope").as_string(), "read");
  json::value d = body(device);
  EXPECT_EQ(d.at("kind").as_string(), "device");
  EXPECT_EQ(d.at("meter_id").as_string(), "kitchen");
  EXPECT_EQ(d.at("id").as_string(), device.substr(4, 12));
  EXPECT_EQ(body(admin_token_).at("scope").as_string(), "admin");
  // The secret is never part of an answer that does not create it.
  for (const std::string& k : {read, device, admin_token_})
    EXPECT_EQ(as(k, "GET", "/api/v1/whoami").body.find(k.substr(17)), std::string::npos);
}

TEST_F(SecureRouterTest, WebSocketUpgradesNeedAReadToken) {
  const std::string device = register_meter("m1");
  const std::string read = make_token("dash", "read");
  auto ws = [&](std::string target, std::string protocols = "", std::string authorization = "") {
    Request r;
    r.method = "GET";
    r.target = std::move(target);
    r.remote = "test";
    r.ws_protocols = std::move(protocols);
    r.authorization = std::move(authorization);
    return router_->websocket(r);
  };
  // Refused before any upgrade.
  auto anon = ws("/ws");
  ASSERT_FALSE(anon);
  expect_401(anon.error(), "anonymous /ws");
  auto anon_meter = ws("/ws/m1", "meterhub");
  ASSERT_FALSE(anon_meter);
  expect_401(anon_meter.error(), "anonymous /ws/m1");
  auto dev = ws("/ws?token=" + device);
  ASSERT_FALSE(dev);
  expect_403(dev.error(), "a device key watching");
  auto bad = ws("/ws", "meterhub, bearer." + read + "x");
  ASSERT_FALSE(bad);
  expect_401(bad.error(), "a damaged key in the subprotocol");
  EXPECT_EQ(bad.error().body.find(read.substr(17)), std::string::npos);
  // Granted: ?token=, the bearer.<key> subprotocol, the Authorization header.
  auto q = ws("/ws/m1?token=" + read);
  ASSERT_TRUE(q) << q.error().body;
  EXPECT_EQ(q->meter, "m1");
  EXPECT_EQ(q->subprotocol, "");
  auto sub = ws("/ws", "meterhub, bearer." + read);
  ASSERT_TRUE(sub) << sub.error().body;
  EXPECT_EQ(sub->meter, std::nullopt);
  EXPECT_EQ(sub->subprotocol, "meterhub");  // never the key
  auto sub_only = ws("/ws", "bearer." + read);
  ASSERT_TRUE(sub_only);
  EXPECT_EQ(sub_only->subprotocol, "");
  auto hdr = ws("/ws", "", "Bearer " + admin_token_);
  ASSERT_TRUE(hdr);
}

TEST_F(SecureRouterTest, KeysMayComeAsBearerOrXApiKey) {
  const std::string read = make_token("grafana", "read");
  auto get = [&](std::string authorization, std::string api_key) {
    Request r;
    r.method = "GET";
    r.target = "/api/v1/meters";
    r.authorization = std::move(authorization);
    r.api_key = std::move(api_key);
    return raw(std::move(r));
  };
  EXPECT_EQ(get("Bearer " + read, "").status, 200u);
  EXPECT_EQ(get("bearer " + read, "").status, 200u);  // the scheme is case-insensitive
  EXPECT_EQ(get("BEARER  " + read + " ", "").status, 200u);
  EXPECT_EQ(get("", read).status, 200u);
  expect_401(get("", ""), "no key");
  expect_401(get("Bearer", ""), "an empty Bearer");
  expect_401(get("Basic dXNlcjpwYXNz", ""), "Basic credentials");
  expect_401(get("Bearer " + read + "x", ""), "a damaged key");
  expect_401(get("", read.substr(0, 59)), "a damaged X-API-Key");
  // Bearer wins over X-API-Key.
  expect_401(get("Bearer mht_000000000000_" + std::string(43, 'A'), read), "Bearer unknown key");
  // The failure never repeats the key.
  Response bad = get("Bearer " + read.substr(0, 59) + "Z", "");
  EXPECT_EQ(bad.body.find(read.substr(17, 40)), std::string::npos) << bad.body;
}

TEST_F(SecureRouterTest, DeviceKeyWritesOnlyItsOwnMeter) {
  const std::string a = register_meter("a");
  register_meter("b");
  // A batch with one reading of another meter: refused whole.
  const std::string batch = "[" + reading_json("a", t0_) + "," + reading_json("b", t0_) + "]";
  Response mixed = as(a, "POST", "/api/v1/readings", batch);
  expect_403(mixed, "a batch with another meter's reading");
  Response other = as(a, "POST", "/api/v1/readings", reading_json("b", t0_ + 1000));
  expect_403(other, "another meter's reading");
  Response ghost = as(a, "POST", "/api/v1/readings", reading_json("ghost", t0_ + 1000));
  expect_403(ghost, "an unregistered meter's reading");
  EXPECT_EQ(stored("a"), 0u);
  EXPECT_EQ(stored("b"), 0u);
  EXPECT_FALSE(store_->find_meter("ghost").value());
  // Its own: stored.
  EXPECT_EQ(as(a, "POST", "/api/v1/readings", "[" + reading_json("a", t0_) + "]").status, 201u);
  EXPECT_EQ(stored("a"), 1u);
  // Anonymous and read tokens store nothing either.
  expect_401(as("", "POST", "/api/v1/readings", reading_json("a", t0_ + 5000)), "anonymous write");
  expect_403(as(make_token("r", "read"), "POST", "/api/v1/readings", reading_json("a", t0_ + 6000)),
             "read-token write");
  EXPECT_EQ(stored("a"), 1u);
  // Without --auto-register an admin token writes registered meters only.
  Response unknown = call("POST", "/api/v1/readings", reading_json("ghost", t0_));
  EXPECT_EQ(unknown.status, 404u) << unknown.body;
  EXPECT_EQ(error_code(unknown), "unknown_meter");
  EXPECT_FALSE(store_->find_meter("ghost").value());
  EXPECT_EQ(call("POST", "/api/v1/readings", reading_json("b", t0_)).status, 201u);
  EXPECT_EQ(stored("b"), 1u);
}

TEST_F(SecureRouterTest, RotatedKeyStopsWorkingAtOnce) {
  const std::string old_key = register_meter("m");
  Response rot = call("POST", "/api/v1/meters/m/rotate-key");
  ASSERT_EQ(rot.status, 200u) << rot.body;
  EXPECT_EQ(header(rot, "Cache-Control"), "no-store");
  const std::string new_key = json_string(rot, "device_key");
  ASSERT_EQ(new_key.size(), 60u);
  expect_401(as(old_key, "POST", "/api/v1/readings", reading_json("m", t0_)), "the old key");
  EXPECT_EQ(as(new_key, "POST", "/api/v1/readings", reading_json("m", t0_)).status, 201u);
}

TEST_F(SecureRouterTest, RevokedTokenStopsWorkingAtOnce) {
  std::string id;
  const std::string read = make_token("grafana", "read", &id);
  ASSERT_EQ(as(read, "GET", "/api/v1/meters").status, 200u);
  ASSERT_EQ(call("DELETE", "/api/v1/tokens/" + id).status, 200u);
  expect_401(as(read, "GET", "/api/v1/meters"), "a revoked token");
}

TEST_F(SecureRouterTest, TheLastAdminTokenCannotBeRevoked) {
  const std::string first_id = admin_token_.substr(4, 12);
  Response last = call("DELETE", "/api/v1/tokens/" + first_id);
  EXPECT_EQ(last.status, 409u) << last.body;
  EXPECT_EQ(error_code(last), "last_admin_token");
  EXPECT_EQ(as(admin_token_, "GET", "/api/v1/tokens").status, 200u);
  // A read token does not count; a second admin token does.
  make_token("reader", "read");
  EXPECT_EQ(call("DELETE", "/api/v1/tokens/" + first_id).status, 409u);
  std::string second_id;
  const std::string second = make_token("ops", "admin", &second_id);
  EXPECT_EQ(call("DELETE", "/api/v1/tokens/" + first_id).status, 200u);
  expect_401(as(admin_token_, "GET", "/api/v1/tokens"), "the revoked first admin token");
  Response again = as(second, "DELETE", "/api/v1/tokens/" + second_id);
  EXPECT_EQ(again.status, 409u) << again.body;
  EXPECT_EQ(as(second, "GET", "/api/v1/tokens").status, 200u);
  // Unknown, already revoked, or a device key's id: 404 unknown_token.
  admin_token_ = second;
  const std::string device = register_meter("m");
  for (const std::string& id : {std::string("000000000000"), first_id, device.substr(4, 12)}) {
    Response r = as(second, "DELETE", "/api/v1/tokens/" + id);
    EXPECT_EQ(r.status, 404u) << id << ": " << r.body;
    EXPECT_EQ(error_code(r), "unknown_token") << id;
  }
}

// Two admins revoking each other's token at the same moment: one of the two
// revocations must be refused, or no admin token is left.
TEST_F(SecureRouterTest, ConcurrentRevocationsNeverLeaveNoAdminToken) {
  for (int round = 0; round < 10; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    std::string a_id, b_id;
    const std::string a = make_token("a", "admin", &a_id);
    const std::string b = make_token("b", "admin", &b_id);
    // Only a and b are active admin tokens from here on.
    const auto before = store_->list_credentials().value();
    for (const auto& c : before) {
      if (c.scope == Scope::admin && !c.revoked_at && c.id != a_id && c.id != b_id) {
        ASSERT_EQ(store_->revoke_credential(c.id, core::now_ms()).value(), store::Store::Revoke::revoked);
      }
    }
    auth_->invalidate();
    auto send = [&](const std::string& key, const std::string& id) {
      auto p = std::make_shared<std::promise<Response>>();
      Request r;
      r.method = "DELETE";
      r.target = "/api/v1/tokens/" + id;
      r.remote = "test";
      r.authorization = "Bearer " + key;
      router_->handle(std::move(r), [p](Response res) { p->set_value(std::move(res)); });
      return p->get_future();
    };
    auto fa = send(a, b_id);
    auto fb = send(b, a_id);
    ASSERT_EQ(fa.wait_for(std::chrono::seconds(10)), std::future_status::ready);
    ASSERT_EQ(fb.wait_for(std::chrono::seconds(10)), std::future_status::ready);
    const unsigned sa = fa.get().status, sb = fb.get().status;
    int active_admins = 0;
    std::string survivor;
    const auto after = store_->list_credentials().value();
    for (const auto& c : after)
      if (c.kind == CredentialKind::token && c.scope == Scope::admin && !c.revoked_at) {
        ++active_admins;
        survivor = c.id == a_id ? a : c.id == b_id ? b : std::string();
      }
    ASSERT_GE(active_admins, 1) << "both revocations succeeded (" << sa << ", " << sb
                                << "): no admin token is left";
    EXPECT_TRUE((sa == 200u) != (sb == 200u)) << sa << ", " << sb;
    ASSERT_FALSE(survivor.empty());
    admin_token_ = survivor;  // the next round's calls
  }
}

// --public-read and --auto-register (the harness's defaults).
class LabRouterTest : public SecureRouterTest {
 protected:
  auth::AuthOptions auth_options() const override {
    auth::AuthOptions a;
    a.public_read = true;
    a.auto_register = true;
    return a;
  }
};

TEST_F(LabRouterTest, AWrongKeyIsRefusedEvenWhereNoneIsNeeded) {
  EXPECT_EQ(as("", "GET", "/api/v1/meters").status, 200u);
  Response who = as("", "GET", "/api/v1/whoami");
  EXPECT_EQ(who.status, 200u);
  EXPECT_EQ(json_string(who, "kind"), "anonymous");
  expect_401(as("mht_nonsense", "GET", "/api/v1/meters"), "a malformed key");
  expect_401(as(auth::make_token("x", Scope::read, kT0).text, "GET", "/api/v1/meters"),
             "an unknown key");
  expect_401(as("mht_nonsense", "POST", "/api/v1/readings", reading_json("lab", t0_)),
             "a malformed key writing");
  EXPECT_FALSE(store_->find_meter("lab").value());
  // Writing without a key creates the meter; a meter with a key needs it.
  EXPECT_EQ(as("", "POST", "/api/v1/readings", reading_json("lab", t0_)).status, 201u);
  const std::string key = register_meter("keyed");
  expect_401(as("", "POST", "/api/v1/readings", reading_json("keyed", t0_)), "keyless write");
  EXPECT_EQ(stored("keyed"), 0u);
  EXPECT_EQ(as(key, "POST", "/api/v1/readings", reading_json("keyed", t0_)).status, 201u);
  // Administration still needs an admin token.
  expect_401(as("", "POST", "/api/v1/tokens", R"({"name":"x"})"), "anonymous token creation");
  expect_401(as("", "DELETE", "/api/v1/tariff"), "anonymous tariff deletion");
}

// Rate limits, with tiny buckets.
class IpLimitTest : public SecureRouterTest {
 protected:
  bool limits_on() const override { return true; }
  ApiOptions options() const override {
    ApiOptions o;
    o.ip_rate = 0.01;
    o.ip_burst = 3;
    return o;
  }
};

TEST_F(IpLimitTest, TooManyRequestsFromOneAddressAre429WithRetryAfter) {
  for (int i = 0; i < 3; ++i) EXPECT_EQ(call("GET", "/api/v1/meters").status, 200u) << i;
  for (const char* target : {"/api/v1/meters", "/healthz", "/api/v1/whoami"}) {
    Response r = call("GET", target);
    EXPECT_EQ(r.status, 429u) << target << ": " << r.body;
    EXPECT_EQ(error_code(r), "rate_limited") << target;
    auto ra = header(r, "Retry-After");
    ASSERT_TRUE(ra) << target;
    const int secs = std::stoi(*ra);
    EXPECT_GE(secs, 1);
    EXPECT_LE(secs, 100);  // one token at 0.01/s
  }
  // Per address: another client is not limited.
  Request other;
  other.method = "GET";
  other.target = "/healthz";
  other.remote = "10.9.8.7";
  EXPECT_EQ(raw(std::move(other)).status, 200u);
}

class DeviceLimitTest : public SecureRouterTest {
 protected:
  bool limits_on() const override { return true; }
  ApiOptions options() const override {
    ApiOptions o;
    o.ip_rate = 10'000;
    o.ip_burst = 10'000;
    o.device_rate = 0.01;
    o.device_burst = 2;
    return o;
  }
};

TEST_F(DeviceLimitTest, TooManyReadingsRequestsOfOneMeterAre429AndStoreNothing) {
  const std::string a = register_meter("a");
  const std::string b = register_meter("b");
  EXPECT_EQ(as(a, "POST", "/api/v1/readings", reading_json("a", t0_)).status, 201u);
  EXPECT_EQ(as(a, "POST", "/api/v1/readings", reading_json("a", t0_ + 1000)).status, 201u);
  Response r = as(a, "POST", "/api/v1/readings", reading_json("a", t0_ + 2000));
  EXPECT_EQ(r.status, 429u) << r.body;
  EXPECT_EQ(error_code(r), "rate_limited");
  auto ra = header(r, "Retry-After");
  ASSERT_TRUE(ra);
  EXPECT_GE(std::stoi(*ra), 1);
  EXPECT_LE(std::stoi(*ra), 100);
  EXPECT_EQ(stored("a"), 2u);
  // Per meter: another device is not limited.
  EXPECT_EQ(as(b, "POST", "/api/v1/readings", reading_json("b", t0_)).status, 201u);
}

}  // namespace
}  // namespace api
}  // namespace meterhub
