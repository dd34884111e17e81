// Who may do what, how often and from which origin: the one place the API
// decides access (docs/api.md, "Authentication", "Rate limits", "CORS").
#include <spdlog/spdlog.h>

#include <atomic>
#include <chrono>

#include "api/log_limit.hpp"
#include "api/responses.hpp"
#include "api/router.hpp"
#include "auth/keys.hpp"
#include "codec/json_writer.hpp"
#include "core/validate.hpp"

namespace meterhub::api {

Router::Router(ingest::Ingest& ingest, store::Store& store, QueryPool& queries, hub::Hub& hub,
               auth::Authenticator& auth, ApiOptions opts)
    : ingest_(ingest),
      store_(store),
      queries_(queries),
      hub_(hub),
      auth_(auth),
      opts_(std::move(opts)),
      ip_limiter_(opts_.ip_rate, opts_.ip_burst),
      device_limiter_(opts_.device_rate, opts_.device_burst),
      auth_log_(std::make_unique<LogLimit>(5, "failed authentications")) {}

Router::~Router() = default;

namespace {

// "Bearer <key>" (scheme case-insensitive, RFC 7235), else X-API-Key.
std::string_view presented_key(const Request& req) {
  std::string_view a = req.authorization;
  if (a.size() > 7) {
    std::string scheme(a.substr(0, 7));
    for (char& c : scheme) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (scheme == "bearer ") {
      a.remove_prefix(7);
      while (!a.empty() && a.front() == ' ') a.remove_prefix(1);
      while (!a.empty() && a.back() == ' ') a.remove_suffix(1);
      return a;
    }
  }
  return req.api_key;
}

Response forbidden(std::string message) {
  return error_response(403, "forbidden", std::move(message));
}

}  // namespace

Response Router::unauthorized(const Request& req, const core::Error& e) {
  if (auth_log_->allow()) spdlog::warn("authentication failed from {}: {}", req.remote, e.message);
  Response r = error_response(401, "unauthorized", e.message);
  r.headers.emplace_back("WWW-Authenticate", "Bearer realm=\"meterhub\"");
  return r;
}

std::expected<auth::Principal, Response> Router::authorize(const Request& req,
                                                           std::string_view key, Need need) {
  if (key.empty()) key = presented_key(req);
  auto authenticated = auth_.authenticate(key);
  if (!authenticated) return std::unexpected(unauthorized(req, authenticated.error()));
  const auth::Principal* p = &*authenticated;
  using Kind = auth::Principal::Kind;
  const bool anonymous = p->kind == Kind::anonymous;
  switch (need) {
    case Need::any:
      if (anonymous && !auth_.options().public_read)
        return std::unexpected(unauthorized(
            req, core::Error{"unauthorized",
                             "missing key: send Authorization: Bearer <token>", std::nullopt, {}}));
      return *p;
    case Need::read:
      if (p->can_read() || (anonymous && auth_.options().public_read)) return *p;
      if (anonymous)
        return std::unexpected(unauthorized(
            req, core::Error{"unauthorized",
                             "missing token: reading needs an API token (Authorization: Bearer "
                             "mht_…)",
                             std::nullopt, {}}));
      return std::unexpected(
          forbidden("a device key can only write readings; reading needs an API token"));
    case Need::admin:
      if (p->is_admin()) return *p;
      if (anonymous)
        return std::unexpected(unauthorized(
            req, core::Error{"unauthorized", "missing token: this needs an admin token",
                             std::nullopt, {}}));
      return std::unexpected(forbidden("this needs an admin token"));
  }
  return *p;
}

std::string Router::cors_origin(const Request& req) const {
  if (req.origin.empty()) return {};
  for (const auto& o : opts_.cors_origins)
    if (o == "*" || o == req.origin) return o == "*" ? std::string("*") : req.origin;
  return {};
}

Response Router::preflight(const Request& req, const std::string& allow_origin) const {
  if (allow_origin.empty())
    return error_response(403, "cors_forbidden",
                          "origin \"" + req.origin.substr(0, 200) +
                              "\" may not call this API (see --cors-origin)");
  Response r;
  r.status = 204;
  r.content_type.clear();
  r.headers.emplace_back("Access-Control-Allow-Methods", "GET, POST, PUT, PATCH, DELETE");
  r.headers.emplace_back("Access-Control-Allow-Headers", "Authorization, Content-Type, X-API-Key, X-Request-Id");
  r.headers.emplace_back("Access-Control-Max-Age", "600");
  return r;
}

std::optional<Response> Router::limited(auth::RateLimiter& limiter, std::string_view key,
                                        std::string_view who) {
  auto wait = limiter.acquire(key);
  if (!wait) return std::nullopt;
  Response r = error_response(429, "rate_limited",
                              "too many requests from " + std::string(who) + "; retry in " +
                                  std::to_string(*wait) + " s");
  r.headers.emplace_back("Retry-After", std::to_string(*wait));
  return r;
}

std::expected<Router::WsGrant, Response> Router::websocket(const Request& req) {
  if (auto r = limited(ip_limiter_, req.remote, req.remote)) return std::unexpected(std::move(*r));
  auto t = parse_target(req.target);
  if (!t) return std::unexpected(error_response(400, t.error().code, t.error().message));
  WsGrant g;
  if (t->segments.size() == 2 && t->segments[0] == "ws") {
    if (auto e = core::check_meter_id(t->segments[1]))
      return std::unexpected(error_response(400, "invalid_meter_id", e->message));
    g.meter = t->segments[1];
  } else if (t->segments.size() != 1 || t->segments[0] != "ws") {
    return std::unexpected(
        error_response(404, "not_found", "no WebSocket endpoint here; use /ws or /ws/{meter_id}"));
  }
  // Browsers cannot set headers on a WebSocket: the key may come as
  // ?token= or as a "bearer.<key>" subprotocol next to "meterhub".
  std::string key;
  if (auto q = t->param("token")) key = *q;
  std::string_view protos = req.ws_protocols;
  bool offered = false;
  while (!protos.empty()) {
    auto comma = protos.find(',');
    std::string_view p = protos.substr(0, comma);
    protos = comma == std::string_view::npos ? std::string_view() : protos.substr(comma + 1);
    while (!p.empty() && (p.front() == ' ' || p.front() == '\t')) p.remove_prefix(1);
    while (!p.empty() && (p.back() == ' ' || p.back() == '\t')) p.remove_suffix(1);
    if (p == "meterhub") offered = true;
    if (p.starts_with("bearer.") && key.empty()) key = std::string(p.substr(7));
  }
  if (offered) g.subprotocol = "meterhub";
  auto p = authorize(req, key, Need::read);
  if (!p) return std::unexpected(std::move(p.error()));
  if (!p->id.empty()) {
    // Re-checked only when the credentials changed since the last look.
    g.still_allowed = [auth = &auth_, id = p->id, seen = auth_.revision()]() mutable {
      const std::uint64_t now = auth->revision();
      if (now == seen) return true;
      seen = now;
      return auth->active(id);
    };
  }
  return g;
}

}  // namespace meterhub::api
