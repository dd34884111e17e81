#include "app/logging.hpp"

#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <ctime>

#include "metrics/log_fields.hpp"

namespace meterhub::app {
namespace {

// Length of a valid UTF-8 sequence at s[i], or 0.
std::size_t utf8_len(std::string_view s, std::size_t i) {
  const auto b = [&](std::size_t k) { return static_cast<unsigned char>(s[i + k]); };
  const unsigned char c = b(0);
  std::size_t n = 0;
  if (c >= 0xC2 && c <= 0xDF)
    n = 2;
  else if (c >= 0xE0 && c <= 0xEF)
    n = 3;
  else if (c >= 0xF0 && c <= 0xF4)
    n = 4;
  else
    return 0;
  if (i + n > s.size()) return 0;
  for (std::size_t k = 1; k < n; ++k)
    if ((b(k) & 0xC0) != 0x80) return 0;
  if (c == 0xE0 && b(1) < 0xA0) return 0;  // overlong
  if (c == 0xED && b(1) > 0x9F) return 0;  // surrogates
  if (c == 0xF0 && b(1) < 0x90) return 0;  // overlong
  if (c == 0xF4 && b(1) > 0x8F) return 0;  // > U+10FFFF
  return n;
}

template <class Out>
void escape_into(Out& out, std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  auto put = [&](std::string_view v) { out.append(v.data(), v.data() + v.size()); };
  for (std::size_t i = 0; i < s.size();) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c >= 0x80) {
      const std::size_t n = utf8_len(s, i);
      if (n == 0) {
        put("\\ufffd");
        ++i;
      } else {
        put(s.substr(i, n));
        i += n;
      }
      continue;
    }
    ++i;
    switch (c) {
      case '"': put("\\\""); break;
      case '\\': put("\\\\"); break;
      case '\n': put("\\n"); break;
      case '\r': put("\\r"); break;
      case '\t': put("\\t"); break;
      default:
        if (c < 0x20 || c == 0x7f) {
          const char u[] = {'\\', 'u', '0', '0', kHex[c >> 4], kHex[c & 15]};
          put(std::string_view(u, 6));
        } else {
          const char ch = static_cast<char>(c);
          put(std::string_view(&ch, 1));
        }
    }
  }
}

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
    escape_into(dest, std::string_view(msg.payload.data(), msg.payload.size()));
    put("\"");
    const metrics::LogField* f = nullptr;
    const std::size_t n = metrics::LogFields::current(f);
    for (std::size_t i = 0; i < n; ++i) {
      if (f[i].value.empty() || repeated(f, i)) continue;
      put(",\"");
      escape_into(dest, f[i].key);
      put("\":\"");
      escape_into(dest, f[i].value);
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

void append_json_escaped(std::string& out, std::string_view s) { escape_into(out, s); }

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
