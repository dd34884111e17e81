// The device registry endpoints: meters (create, change, delete, rotate
// their device key), API tokens (create, list, revoke) and whoami.
// docs/api.md, "Authentication". Secrets appear only in the one answer that
// creates them (with Cache-Control: no-store) and never in logs.
#include <spdlog/spdlog.h>

#include "api/responses.hpp"
#include "api/router.hpp"
#include "auth/keys.hpp"
#include "codec/json_writer.hpp"
#include "codec/registry_codec.hpp"
#include "codec/tariff_codec.hpp"
#include "core/time.hpp"

namespace meterhub::api {
namespace {

using codec::JsonWriter;

Response secret_response(unsigned status, std::string body) {
  Response r = json_response(status, std::move(body));
  r.headers.emplace_back("Cache-Control", "no-store");
  return r;
}

void write_token(JsonWriter& w, const store::Credential& c) {
  w.key("id").string(c.id);
  w.key("name").string(c.name);
  w.key("scope").string(auth::scope_name(c.scope));
  w.key("created_at").string(core::format_iso8601(c.created_at));
  w.key("revoked_at");
  if (c.revoked_at)
    w.string(core::format_iso8601(*c.revoked_at));
  else
    w.null();
}

Response unknown_meter(const std::string& id) {
  return error_response(404, "unknown_meter", "no meter \"" + id + "\"");
}

}  // namespace

void Router::whoami(const auth::Principal& p, Responder& respond) {
  using Kind = auth::Principal::Kind;
  std::string body;
  JsonWriter w(body);
  w.begin_object();
  switch (p.kind) {
    case Kind::anonymous:
      w.key("kind").string("anonymous");
      break;
    case Kind::device:
      w.key("kind").string("device").key("id").string(p.id).key("meter_id").string(p.meter_id);
      break;
    case Kind::token:
      w.key("kind").string("token").key("id").string(p.id).key("name").string(p.name);
      w.key("scope").string(auth::scope_name(p.scope));
      break;
  }
  w.end_object();
  respond(json_response(200, std::move(body)));
}

void Router::create_meter(Request& req, Responder& respond) {
  if (auto refused = require_json(req)) return respond(std::move(*refused));
  auto m = codec::decode_new_meter(req.body);
  if (!m) return respond(bad_parameter(m.error()));
  query(respond, [this, m = std::move(*m)] {
    const core::TimeMs now = core::now_ms();
    auth::NewKey key = auth::make_device_key(m.meter_id, now);
    auto created = store_.create_meter(m, key.credential, now);
    if (!created) return from_store_error(created.error());
    if (!*created)
      return error_response(409, "meter_exists",
                            "meter \"" + m.meter_id +
                                "\" already exists; POST /api/v1/meters/" + m.meter_id +
                                "/rotate-key gives it a new device key");
    auth_.invalidate();
    hub_.set_interval(m.meter_id, m.interval_s);
    hub::Hub::deliver(hub_.announce(m.meter_id));
    auto info = store_.find_meter(m.meter_id);
    if (!info) return from_store_error(info.error());
    if (!*info) return unknown_meter(m.meter_id);  // deleted in between
    std::string body;
    JsonWriter w(body);
    w.begin_object().key("meter");
    write_meter_json(w, **info);
    w.key("device_key").string(key.text).end_object();
    spdlog::info("meter \"{}\" registered (device key {})", m.meter_id, key.credential.id);
    Response r = secret_response(201, std::move(body));
    r.headers.emplace_back("Location", "/api/v1/meters/" + m.meter_id);
    return r;
  });
}

void Router::patch_meter(std::string meter_id, Request& req, Responder& respond) {
  if (auto refused = require_json(req)) return respond(std::move(*refused));
  auto d = codec::decode_meter_patch(req.body);
  if (!d) return respond(bad_parameter(d.error()));
  // A tariff is validated and normalised exactly as PUT .../tariff does.
  std::optional<std::optional<std::string>> tariff_doc;
  if (d->tariff) {
    if (*d->tariff) {
      auto t = codec::decode_tariff(**d->tariff);
      if (!t) {
        core::Error e = t.error();
        e.field = e.field.empty() ? "tariff" : "tariff." + e.field;
        return respond(bad_parameter(e));
      }
      tariff_doc = std::optional<std::string>(codec::encode_tariff(*t));
    } else {
      tariff_doc = std::optional<std::string>();
    }
  }
  query(respond, [this, meter_id = std::move(meter_id), patch = d->patch, tariff_doc] {
    auto ok = store_.update_meter(meter_id, patch);
    if (!ok) return from_store_error(ok.error());
    if (!*ok) return unknown_meter(meter_id);
    if (tariff_doc) {
      auto t = store_.set_tariff(meter_id, *tariff_doc, core::now_ms());
      if (!t) return from_store_error(t.error());
      if (!*t) return unknown_meter(meter_id);
    }
    if (patch.interval_s) hub_.set_interval(meter_id, *patch.interval_s);
    auto info = store_.find_meter(meter_id);
    if (!info) return from_store_error(info.error());
    if (!*info) return unknown_meter(meter_id);
    std::string body;
    JsonWriter w(body);
    write_meter_json(w, **info);
    return json_response(200, std::move(body));
  });
}

void Router::delete_meter(std::string meter_id, const Target& t, Responder& respond) {
  if (t.param("confirm") != meter_id)
    return respond(error_response(
        400, "confirmation_required",
        "deleting a meter deletes all its readings: repeat its id as ?confirm=" + meter_id));
  // On the writer thread, between commits: no write can re-create the meter
  // half-way, and readings queued before this are deleted with it.
  auto task = [this, meter_id, respond] {
    auto n = store_.delete_meter(meter_id);
    if (!n) return respond(from_store_error(n.error()));
    if (!*n) return respond(unknown_meter(meter_id));
    auth_.invalidate();
    hub::Hub::deliver(hub_.remove(meter_id));
    spdlog::info("meter \"{}\" deleted with {} readings", meter_id, **n);
    std::string body;
    JsonWriter w(body);
    w.begin_object().key("deleted").string(meter_id);
    w.key("readings").integer(static_cast<std::int64_t>(**n)).end_object();
    respond(json_response(200, std::move(body)));
  };
  if (!ingest_.run_task(std::move(task)))
    respond(unavailable(core::Error{"shutting_down", "server is shutting down", std::nullopt, {}},
                        "1"));
}

void Router::rotate_key(std::string meter_id, Responder& respond) {
  query(respond, [this, meter_id = std::move(meter_id)] {
    const core::TimeMs now = core::now_ms();
    auth::NewKey key = auth::make_device_key(meter_id, now);
    auto ok = store_.add_credential(key.credential, now);
    if (!ok) return from_store_error(ok.error());
    if (!*ok) return unknown_meter(meter_id);
    auth_.invalidate();
    spdlog::info("meter \"{}\" has a new device key {}", meter_id, key.credential.id);
    std::string body;
    JsonWriter w(body);
    w.begin_object().key("meter_id").string(meter_id).key("device_key").string(key.text);
    w.end_object();
    return secret_response(200, std::move(body));
  });
}

void Router::list_tokens(Responder& respond) {
  query(respond, [this] {
    auto creds = store_.list_credentials();
    if (!creds) return from_store_error(creds.error());
    std::string body;
    JsonWriter w(body);
    w.begin_object().key("tokens").begin_array();
    for (const auto& c : *creds) {
      if (c.kind != store::CredentialKind::token) continue;
      w.begin_object();
      write_token(w, c);
      w.end_object();
    }
    w.end_array().end_object();
    return json_response(200, std::move(body));
  });
}

void Router::create_token(Request& req, Responder& respond) {
  if (auto refused = require_json(req)) return respond(std::move(*refused));
  auto d = codec::decode_new_token(req.body);
  if (!d) return respond(bad_parameter(d.error()));
  query(respond, [this, d = std::move(*d)] {
    const core::TimeMs now = core::now_ms();
    auth::NewKey key = auth::make_token(d.name, d.scope, now);
    auto ok = store_.add_credential(key.credential, now);
    if (!ok) return from_store_error(ok.error());
    auth_.invalidate();
    spdlog::info("API token {} \"{}\" ({}) created", key.credential.id, d.name,
                 auth::scope_name(d.scope));
    std::string body;
    JsonWriter w(body);
    w.begin_object();
    write_token(w, key.credential);
    w.key("token").string(key.text).end_object();
    return secret_response(201, std::move(body));
  });
}

void Router::revoke_token(std::string token_id, Responder& respond) {
  query(respond, [this, token_id = std::move(token_id)] {
    // Device keys are not tokens: they go with rotate-key or the meter.
    auto creds = store_.list_credentials();
    if (!creds) return from_store_error(creds.error());
    bool is_token = false;
    for (const auto& c : *creds)
      is_token |= c.id == token_id && c.kind == store::CredentialKind::token;
    auto unknown = [&] {
      return error_response(404, "unknown_token", "no active token \"" + token_id + "\"");
    };
    if (!is_token) return unknown();
    auto r = store_.revoke_credential(token_id, core::now_ms());
    if (!r) return from_store_error(r.error());
    if (*r == store::Store::Revoke::unknown) return unknown();
    if (*r == store::Store::Revoke::last_admin)
      return error_response(409, "last_admin_token",
                            "this is the last active admin token; create another admin token "
                            "before revoking it");
    auth_.invalidate();
    spdlog::info("API token {} revoked", token_id);
    std::string body;
    JsonWriter w(body);
    w.begin_object().key("revoked").string(token_id).end_object();
    return json_response(200, std::move(body));
  });
}

}  // namespace meterhub::api
