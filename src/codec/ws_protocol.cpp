#include "codec/ws_protocol.hpp"

#include <boost/json/parser.hpp>
#include <boost/json/value.hpp>

#include "codec/json_writer.hpp"
#include "codec/reading_codec.hpp"
#include "core/validate.hpp"

namespace meterhub::codec {
namespace json = boost::json;

namespace {

std::unexpected<core::Error> bad(std::string message) {
  return core::fail("invalid_command", std::move(message));
}

constexpr std::string_view kUsage =
    R"(; send {"subscribe": ["meter_id", ...]}, {"subscribe": "*"}, {"unsubscribe": [...]} or )"
    R"({"unsubscribe": "*"})";

}  // namespace

core::Result<WsCommand> parse_ws_command(std::string_view text, std::size_t max_meters) {
  json::parse_options po;
  po.max_depth = 4;
  json::parser p(json::storage_ptr(), po);
  json::error_code ec;
  p.write(text.data(), text.size(), ec);
  if (ec) return bad("not JSON (" + ec.message() + ")" + std::string(kUsage));
  const json::value v = p.release();
  const json::object* o = v.if_object();
  if (!o || o->size() != 1) return bad("a command is an object with one key" + std::string(kUsage));
  const auto& [key, arg] = *o->begin();
  WsCommand c;
  if (key == "subscribe")
    c.subscribe = true;
  else if (key == "unsubscribe")
    c.subscribe = false;
  else
    return bad("unknown command \"" + std::string(key.substr(0, 40)) + "\"" + std::string(kUsage));
  if (const json::string* s = arg.if_string()) {
    if (*s != "*") return bad("use \"*\" for all meters or an array of meter ids");
    c.all = true;
    return c;
  }
  const json::array* a = arg.if_array();
  if (!a) return bad(std::string(key) + " takes \"*\" or an array of meter ids");
  if (a->size() > max_meters)
    return bad(std::string(key) + ": at most " + std::to_string(max_meters) +
               " meter ids per command");
  c.meters.reserve(a->size());
  for (std::size_t i = 0; i < a->size(); ++i) {
    const json::string* id = (*a)[i].if_string();
    if (!id) return bad(std::string(key) + "[" + std::to_string(i) + "] must be a string");
    if (auto e = core::check_meter_id(*id))
      return bad(std::string(key) + "[" + std::to_string(i) + "]: " + e->message);
    c.meters.emplace_back(*id);
  }
  return c;
}

std::string encode_ws_reading(std::string_view reading_json) {
  constexpr std::string_view kHead = R"({"type":"reading","reading":)";
  std::string out;
  out.reserve(kHead.size() + reading_json.size() + 1);
  out.append(kHead).append(reading_json).push_back('}');
  return out;
}

std::string encode_ws_snapshot(std::span<const MeterState> meters) {
  std::string out;
  out.reserve(64 + meters.size() * 200);
  JsonWriter w(out);
  w.begin_object().key("type").string("snapshot").key("meters").begin_array();
  for (const MeterState& m : meters) {
    w.begin_object();
    w.key("meter_id").string(m.meter_id);
    w.key("online").boolean(m.online);
    w.key("latest");
    if (m.latest) {
      std::string r;
      append_reading_json(r, *m.latest);
      w.raw(r);
    } else {
      w.null();
    }
    w.end_object();
  }
  w.end_array().end_object();
  return out;
}

namespace {
std::string meter_event(std::string_view event, std::string_view meter_id) {
  std::string out;
  JsonWriter w(out);
  w.begin_object().key("type").string("meter").key("event").string(event);
  w.key("meter_id").string(meter_id).end_object();
  return out;
}
}  // namespace

std::string encode_ws_created(std::string_view meter_id) { return meter_event("created", meter_id); }
std::string encode_ws_deleted(std::string_view meter_id) { return meter_event("deleted", meter_id); }

std::string encode_ws_status(std::string_view meter_id, bool online) {
  std::string out;
  JsonWriter w(out);
  w.begin_object().key("type").string("status").key("meter_id").string(meter_id);
  w.key("online").boolean(online).end_object();
  return out;
}

std::string encode_ws_error(const core::Error& e) {
  std::string out = R"({"type":"error",)";
  std::string err = encode_error(e);  // {"error":{...}}
  out.append(err, 1, std::string::npos);
  return out;
}

}  // namespace meterhub::codec
