// Device keys and API tokens: how they are made, written and checked.
//
// A key is "<prefix>_<id>_<secret>": prefix "mhd" (device key) or "mht" (API
// token), id 12 hex digits (the public lookup key), secret 43 base64url
// characters (32 random bytes from OpenSSL's CSPRNG). Only the id and
// SHA-256(salt || secret) with a per-key 16-byte salt are stored; checking
// compares hashes in constant time. A slow password hash (scrypt, Argon2)
// buys nothing here: a 256-bit random secret cannot be guessed, and
// hashing stays cheap enough to check every request.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "core/reading.hpp"
#include "store/store.hpp"

namespace meterhub::auth {

struct NewKey {
  std::string text;              // shown once, never stored
  store::Credential credential;  // what is stored
};

NewKey make_device_key(std::string meter_id, core::TimeMs now);
NewKey make_token(std::string name, store::Scope scope, core::TimeMs now);

struct ParsedKey {
  store::CredentialKind kind;
  std::string_view id;
  std::string_view secret;
};
// nullopt unless `text` has the shape above.
std::optional<ParsedKey> parse_key(std::string_view text);

// True when `secret` is the one `c` was made from.
bool verify(const store::Credential& c, std::string_view secret);

std::string_view scope_name(store::Scope s);  // "read", "admin" or ""
std::optional<store::Scope> parse_scope(std::string_view s);

}  // namespace meterhub::auth
