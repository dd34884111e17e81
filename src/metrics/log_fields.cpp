#include "metrics/log_fields.hpp"

namespace meterhub::metrics {
namespace {
thread_local LogField t_fields[LogFields::kMax];
thread_local std::size_t t_count = 0;
}  // namespace

LogFields::LogFields(std::initializer_list<LogField> fields) {
  for (const LogField& f : fields) {
    if (t_count == kMax) break;
    t_fields[t_count++] = f;
    ++added_;
  }
}

LogFields::~LogFields() { t_count -= added_; }

std::size_t LogFields::current(const LogField*& first) {
  first = t_fields;
  return t_count;
}

}  // namespace meterhub::metrics
