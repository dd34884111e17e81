#include "app/logging.hpp"

#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <ctime>

#include "metrics/json_escape.hpp"
#include "metrics/log_fields.hpp"

namespace meterhub::app {
namespace {

// Whether fields[i]'s key already came earlier (an inner scope repeating an
// outer one's field): each key is written once.
bool repeated(const metrics::LogField* f, std::size_t i) {
  for (std::size_t k = 0; k < i; ++k)
    if (f[k].key == f[i].key) return true;
  return false;
}

// {"ts":…,"level":…,"msg":…, fields…}
class JsonFormatter final : public spdlog::formatter {
 public:
  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
    auto put = [&](std::string_view v) { dest.append(v.data(), v.data() + v.size()); };
    const auto since = msg.time.time_since_epoch();
    const auto secs = std::chrono::duration_cast<std::chrono::seconds>(since);
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(since - secs).count();
    std::time_t t = static_cast<std::time_t>(secs.count());
    std::tm tm{};
    gmtime_r(&t, &tm);
    char ts[96];
    std::snprintf(ts, sizeof ts, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                  tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                  static_cast<int>(ms));
    put(R"({"ts":")");
    put(ts);
    put(R"(","level":")");
    auto level = spdlog::level::to_string_view(msg.level);
    put(std::string_view(level.data(), level.size()));
    put(R"(","msg":")");
    metrics::escape_json_into(dest, std::string_view(msg.payload.data(), msg.payload.size()));
    put("\"");
    const metrics::LogField* f = nullptr;
    const std::size_t n = metrics::LogFields::current(f);
    for (std::size_t i = 0; i < n; ++i) {
      if (f[i].value.empty() || repeated(f, i)) continue;
      put(",\"");
      metrics::escape_json_into(dest, f[i].key);
      put("\":\"");
      metrics::escape_json_into(dest, f[i].value);
      put("\"");
    }
    put("}\n");
  }
  std::unique_ptr<spdlog::formatter> clone() const override {
    return std::make_unique<JsonFormatter>();
  }
};

// %* in the text pattern: " key=value" for each context field.
class FieldsFlag final : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg&, const std::tm&,
              spdlog::memory_buf_t& dest) override {
    const metrics::LogField* f = nullptr;
    const std::size_t n = metrics::LogFields::current(f);
    for (std::size_t i = 0; i < n; ++i) {
      if (f[i].value.empty() || repeated(f, i)) continue;
      dest.push_back(' ');
      dest.append(f[i].key.data(), f[i].key.data() + f[i].key.size());
      dest.push_back('=');
      dest.append(f[i].value.data(), f[i].value.data() + f[i].value.size());
    }
  }
  std::unique_ptr<custom_flag_formatter> clone() const override {
    return std::make_unique<FieldsFlag>();
  }
};

}  // namespace

void setup_logging(const std::string& level, const std::string& format) {
  auto logger = spdlog::stderr_color_mt("meterhub");
  if (format == "json") {
    logger->set_formatter(std::make_unique<JsonFormatter>());
  } else {
    auto f = std::make_unique<spdlog::pattern_formatter>();
    f->add_flag<FieldsFlag>('*').set_pattern("%Y-%m-%dT%H:%M:%S.%e%z %^%l%$ %v%*");
    logger->set_formatter(std::move(f));
  }
  spdlog::set_default_logger(logger);
  spdlog::set_level(spdlog::level::from_str(level));
}

}  // namespace meterhub::app
