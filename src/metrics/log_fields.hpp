// Context fields for log lines (request_id, route, status, ...), kept per
// thread: a handler that logs while a LogFields scope is open on its thread
// gets the fields attached by the log formatter (app/logging.cpp) — as JSON
// keys with --log-format json, as key=value after the message in text.
//
// Contract: scopes nest (inner fields come after outer ones); the views must
// outlive the scope; nothing here allocates. Never put a key or token in a
// field: log lines are not secret.
#pragma once

#include <cstddef>
#include <initializer_list>
#include <string_view>
#include <utility>

namespace meterhub::metrics {

struct LogField {
  std::string_view key;
  std::string_view value;  // written as a JSON string
};

class LogFields {
 public:
  explicit LogFields(std::initializer_list<LogField> fields);
  ~LogFields();
  LogFields(const LogFields&) = delete;
  LogFields& operator=(const LogFields&) = delete;

  // The fields in force on this thread, outermost first (at most kMax).
  static constexpr std::size_t kMax = 16;
  static std::size_t current(const LogField*& first);

 private:
  std::size_t added_ = 0;
};

}  // namespace meterhub::metrics
