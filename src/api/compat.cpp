// Endpoints for firmware that already speaks another server's protocol:
// ThingsBoard's device telemetry API and Emoncms' input API. Only the
// transport differs; every reading takes the path of POST /api/v1/readings
// (Router::writer -> codec decode + core::check_reading -> Router::ingest_as:
// same keys, rate limits, idempotency, ack after commit, live fan-out).
// The contract is docs/formats.md.
#include "api/responses.hpp"
#include "api/router.hpp"
#include "auth/keys.hpp"
#include "codec/formats.hpp"

namespace meterhub::api {
namespace {

// "application/x-www-form-urlencoded" (parameters allowed), or absent.
bool is_form_content_type(std::string_view ct) {
  std::string media(ct.substr(0, ct.find(';')));
  for (char& c : media) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  while (!media.empty() && (media.back() == ' ' || media.back() == '\t')) media.pop_back();
  return media.empty() || media == "application/x-www-form-urlencoded";
}

Response bad_request(const core::Error& e) { return json_response(400, codec::encode_error(e)); }

}  // namespace

void Router::thingsboard_telemetry(const std::string& token, Request& req, Responder& respond) {
  // The access token in the path is the credential, as in ThingsBoard; it
  // must be a device key, because the payload names no meter.
  if (!auth::parse_key(token))
    return respond(unauthorized(
        req, core::Error{"unauthorized",
                         "the access token in the path is not a meterhub device key (mhd_…)",
                         std::nullopt, {}}));
  auto who = writer(req, token);
  if (!who) return respond(std::move(who.error()));
  if (who->kind != auth::Principal::Kind::device)
    return respond(error_response(
        403, "forbidden",
        "ThingsBoard telemetry carries no meter id: the access token must be a device key"));
  if (auto refused = require_json(req)) return respond(std::move(*refused));
  auto readings = codec::decode_thingsboard(req.body, who->meter_id, decode_options());
  if (!readings) return respond(bad_request(readings.error()));
  ingest_as(req, *who, std::move(*readings), respond, [](const ingest::IngestCounts&) {
    Response r;  // ThingsBoard answers 200 with an empty body
    r.status = 200;
    r.content_type.clear();
    return r;
  });
}

void Router::emoncms_input(bool bulk, Request& req, const Target& t, Responder& respond) {
  // Parameters come in the query, in a form body, or both (the query first).
  auto params = t.params;
  if (!req.body.empty()) {
    if (!is_form_content_type(req.content_type))
      return respond(error_response(
          415, "unsupported_media_type",
          "Content-Type must be application/x-www-form-urlencoded, got \"" +
              req.content_type.substr(0, 100) + "\""));
    auto form = parse_form(req.body);
    params.insert(params.end(), std::make_move_iterator(form.begin()),
                  std::make_move_iterator(form.end()));
  }
  auto param = [&params](std::string_view k) -> std::optional<std::string_view> {
    for (const auto& [key, value] : params)
      if (key == k) return std::string_view(value);
    return std::nullopt;
  };
  // apikey= (as Emoncms), else Authorization: Bearer / X-API-Key.
  auto who = writer(req, param("apikey").value_or(std::string_view()));
  if (!who) return respond(std::move(who.error()));

  core::Result<std::vector<core::Reading>> readings;
  if (bulk) {
    auto data = param("data");
    if (!data)
      return respond(error_response(400, "invalid_parameter",
                                    "data is required: data=[[time, node, {\"power\": 100}], ...]"));
    readings = codec::decode_emoncms_bulk(
        {*data, param("time"), param("sentat"), param("offset")}, decode_options());
  } else {
    readings = codec::decode_emoncms_post({param("node"), param("fulljson"), param("json"),
                                           param("data"), param("csv"), param("time")},
                                          decode_options());
  }
  if (!readings) return respond(bad_request(readings.error()));
  ingest_as(req, *who, std::move(*readings), respond, [](const ingest::IngestCounts&) {
    Response r;  // what Emoncms answers
    r.status = 200;
    r.content_type = "text/plain; charset=utf-8";
    r.body = "ok";
    return r;
  });
}

}  // namespace meterhub::api
