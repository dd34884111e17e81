#include "auth/keys.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include <array>
#include <stdexcept>

namespace meterhub::auth {
namespace {

constexpr std::size_t kIdBytes = 6;       // 12 hex digits
constexpr std::size_t kSecretBytes = 32;  // 43 base64url characters
constexpr std::size_t kSaltBytes = 16;

std::string random_bytes(std::size_t n) {
  std::string out(n, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(out.data()), static_cast<int>(n)) != 1)
    throw std::runtime_error("OpenSSL RAND_bytes failed");  // no entropy: a bug or broken host
  return out;
}

std::string hex(std::string_view bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char c : bytes) {
    out.push_back(kDigits[c >> 4]);
    out.push_back(kDigits[c & 15]);
  }
  return out;
}

std::string base64url(std::string_view bytes) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string out;
  std::uint32_t acc = 0;
  int bits = 0;
  for (unsigned char c : bytes) {
    acc = (acc << 8) | c;
    bits += 8;
    while (bits >= 6) {
      bits -= 6;
      out.push_back(kAlphabet[(acc >> bits) & 63]);
    }
  }
  if (bits > 0) out.push_back(kAlphabet[(acc << (6 - bits)) & 63]);
  return out;
}

std::string digest(std::string_view salt, std::string_view secret) {
  std::array<unsigned char, SHA256_DIGEST_LENGTH> md{};
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  bool ok = ctx && EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr) == 1 &&
            EVP_DigestUpdate(ctx, salt.data(), salt.size()) == 1 &&
            EVP_DigestUpdate(ctx, secret.data(), secret.size()) == 1 &&
            EVP_DigestFinal_ex(ctx, md.data(), nullptr) == 1;
  EVP_MD_CTX_free(ctx);
  if (!ok) throw std::runtime_error("OpenSSL SHA-256 failed");
  return std::string(reinterpret_cast<const char*>(md.data()), md.size());
}

NewKey make(store::CredentialKind kind, core::TimeMs now) {
  NewKey k;
  store::Credential& c = k.credential;
  c.kind = kind;
  c.id = hex(random_bytes(kIdBytes));
  const std::string secret = base64url(random_bytes(kSecretBytes));
  c.salt = random_bytes(kSaltBytes);
  c.hash = digest(c.salt, secret);
  c.created_at = now;
  k.text = std::string(kind == store::CredentialKind::device ? "mhd_" : "mht_") + c.id + "_" +
           secret;
  return k;
}

bool is_hex(std::string_view s) {
  for (char c : s)
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  return true;
}

bool is_base64url(std::string_view s) {
  for (char c : s)
    if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
          c == '-' || c == '_'))
      return false;
  return true;
}

}  // namespace

NewKey make_device_key(std::string meter_id, core::TimeMs now) {
  NewKey k = make(store::CredentialKind::device, now);
  k.credential.meter_id = std::move(meter_id);
  return k;
}

NewKey make_token(std::string name, store::Scope scope, core::TimeMs now) {
  NewKey k = make(store::CredentialKind::token, now);
  k.credential.name = std::move(name);
  k.credential.scope = scope;
  return k;
}

std::optional<ParsedKey> parse_key(std::string_view text) {
  constexpr std::size_t kIdLen = kIdBytes * 2, kSecretLen = (kSecretBytes * 8 + 5) / 6;
  if (text.size() != 4 + kIdLen + 1 + kSecretLen) return std::nullopt;
  ParsedKey k{};
  if (text.starts_with("mhd_"))
    k.kind = store::CredentialKind::device;
  else if (text.starts_with("mht_"))
    k.kind = store::CredentialKind::token;
  else
    return std::nullopt;
  k.id = text.substr(4, kIdLen);
  if (text[4 + kIdLen] != '_') return std::nullopt;
  k.secret = text.substr(4 + kIdLen + 1);
  if (!is_hex(k.id) || !is_base64url(k.secret)) return std::nullopt;
  return k;
}

bool verify(const store::Credential& c, std::string_view secret) {
  if (c.hash.size() != SHA256_DIGEST_LENGTH) return false;
  const std::string d = digest(c.salt, secret);
  return CRYPTO_memcmp(d.data(), c.hash.data(), d.size()) == 0;
}

std::string_view scope_name(store::Scope s) {
  switch (s) {
    case store::Scope::read:
      return "read";
    case store::Scope::admin:
      return "admin";
    case store::Scope::none:
      break;
  }
  return "";
}

std::optional<store::Scope> parse_scope(std::string_view s) {
  if (s == "read") return store::Scope::read;
  if (s == "admin") return store::Scope::admin;
  return std::nullopt;
}

}  // namespace meterhub::auth
