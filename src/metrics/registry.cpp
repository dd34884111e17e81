// Registry, families and the Prometheus text format (registry.hpp).
#include "metrics/registry.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>

namespace meterhub::metrics {

Histogram::Histogram(std::span<const double> bounds)
    : bounds_(bounds.begin(), bounds.end()),
      counts_(std::make_unique<std::atomic<std::uint64_t>[]>(bounds.size() + 1)) {}

void Histogram::observe(double v) {
  // Few buckets: a linear scan beats a binary search and never allocates.
  std::size_t i = 0;
  while (i < bounds_.size() && v > bounds_[i]) ++i;
  counts_[i].fetch_add(1, std::memory_order_relaxed);
  sum_.fetch_add(v, std::memory_order_relaxed);
}

Histogram::Snapshot Histogram::snapshot() const {
  Snapshot s;
  s.bounds = bounds_;
  s.cumulative.resize(bounds_.size() + 1);
  std::uint64_t acc = 0;
  for (std::size_t i = 0; i <= bounds_.size(); ++i) {
    acc += counts_[i].load(std::memory_order_relaxed);
    s.cumulative[i] = acc;
  }
  s.sum = sum_.load(std::memory_order_relaxed);
  s.count = acc;  // equal to the +Inf bucket, as a parser expects
  return s;
}

std::span<const double> latency_buckets() {
  static constexpr double kBounds[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                       0.05,   0.1,     0.25,   0.5,   1,      2.5,   5,    10};
  return kBounds;
}

namespace {
// The text format escapes backslash and newline everywhere, and the double
// quote inside label values only (HELP text keeps its quotes).
std::string escape(std::string_view v, bool quote) {
  std::string s;
  s.reserve(v.size());
  for (char c : v) {
    if (c == '\\')
      s += "\\\\";
    else if (c == '\n')
      s += "\\n";
    else if (quote && c == '"')
      s += "\\\"";
    else
      s += c;
  }
  return s;
}
}  // namespace

std::string escape_label_value(std::string_view v) { return escape(v, true); }

std::string escape_help(std::string_view v) { return escape(v, false); }

std::string format_value(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  char buf[64];
  if (v == std::trunc(v) && std::fabs(v) < 1e15) {
    auto [p, ec] = std::to_chars(buf, buf + sizeof buf, static_cast<long long>(v));
    return std::string(buf, p);
  }
  auto [p, ec] = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, p);
}

void TextWriter::header(std::string_view name, std::string_view help, std::string_view type) {
  out_ += "# HELP ";
  out_ += name;
  out_ += ' ';
  out_ += escape_help(help);
  out_ += "\n# TYPE ";
  out_ += name;
  out_ += ' ';
  out_ += type;
  out_ += '\n';
}

namespace {
void append_labels(std::string& out, TextWriter::Labels labels, std::string_view le = {}) {
  if (labels.empty() && le.empty()) return;
  out += '{';
  bool first = true;
  for (const auto& [k, v] : labels) {
    if (!first) out += ',';
    first = false;
    out += k;
    out += "=\"";
    out += escape_label_value(v);
    out += '"';
  }
  if (!le.empty()) {
    if (!first) out += ',';
    out += "le=\"";
    out += le;
    out += '"';
  }
  out += '}';
}
}  // namespace

void TextWriter::sample(std::string_view name, Labels labels, double value) {
  out_ += name;
  append_labels(out_, labels);
  out_ += ' ';
  out_ += format_value(value);
  out_ += '\n';
}

void TextWriter::histogram(std::string_view name, Labels labels, const Histogram::Snapshot& s) {
  for (std::size_t i = 0; i <= s.bounds.size(); ++i) {
    out_ += name;
    out_ += "_bucket";
    append_labels(out_, labels, i < s.bounds.size() ? format_value(s.bounds[i]) : "+Inf");
    out_ += ' ';
    out_ += format_value(static_cast<double>(s.cumulative[i]));
    out_ += '\n';
  }
  out_ += name;
  out_ += "_sum";
  append_labels(out_, labels);
  out_ += ' ';
  out_ += format_value(s.sum);
  out_ += '\n';
  out_ += name;
  out_ += "_count";
  append_labels(out_, labels);
  out_ += ' ';
  out_ += format_value(static_cast<double>(s.count));
  out_ += '\n';
}

template <class T>
Family<T>::Family(std::string name, std::string help, std::vector<std::string> label_names,
                  Make make, std::size_t max_series)
    : name_(std::move(name)),
      help_(std::move(help)),
      label_names_(std::move(label_names)),
      make_(std::move(make)),
      max_series_(std::min(max_series, kSlots / 2)),
      slots_(std::make_unique<std::atomic<Series*>[]>(kSlots)) {
  overflow_.values.assign(label_names_.size(), "_overflow");
  overflow_.metric = make_();
}

template <class T>
Family<T>::~Family() = default;

template <class T>
std::size_t Family<T>::hash(std::span<const std::string_view> values) const {
  std::size_t h = 1469598103934665603ULL;  // FNV-1a over the values and separators
  for (auto v : values) {
    for (char c : v) h = (h ^ static_cast<unsigned char>(c)) * 1099511628211ULL;
    h = (h ^ 0xff) * 1099511628211ULL;
  }
  return h;
}

template <class T>
bool Family<T>::equal(const Series& s, std::span<const std::string_view> values) {
  for (std::size_t i = 0; i < values.size(); ++i)
    if (s.values[i] != values[i]) return false;
  return true;
}

template <class T>
T& Family<T>::with(std::initializer_list<std::string_view> values) {
  return with(std::span<const std::string_view>(values.begin(), values.size()));
}

template <class T>
T& Family<T>::with(std::span<const std::string_view> values) {
  if (values.size() != label_names_.size()) return *overflow_.metric;  // a bug; do not crash
  const std::size_t h = hash(values);
  // Lock-free lookup: slots only ever go from null to a series, never back.
  for (std::size_t i = 0; i < kSlots; ++i) {
    Series* s = slots_[(h + i) & (kSlots - 1)].load(std::memory_order_acquire);
    if (!s) break;
    if (equal(*s, values)) return *s->metric;
  }
  std::lock_guard lk(mu_);
  for (std::size_t i = 0; i < kSlots; ++i) {
    auto& slot = slots_[(h + i) & (kSlots - 1)];
    Series* s = slot.load(std::memory_order_acquire);
    if (s) {
      if (equal(*s, values)) return *s->metric;
      continue;
    }
    if (order_.size() >= max_series_) return *overflow_.metric;
    auto fresh = std::make_unique<Series>();
    fresh->values.assign(values.begin(), values.end());
    fresh->metric = make_();
    s = fresh.get();
    order_.push_back(std::move(fresh));
    slot.store(s, std::memory_order_release);
    return *s->metric;
  }
  return *overflow_.metric;
}

namespace {
template <class T>
constexpr std::string_view type_name() {
  if constexpr (std::is_same_v<T, Counter>) return "counter";
  if constexpr (std::is_same_v<T, Gauge>) return "gauge";
  return "histogram";
}
}  // namespace

template <class T>
void Family<T>::expose(TextWriter& w) const {
  std::vector<const Series*> all;
  {
    std::lock_guard lk(mu_);
    for (const auto& s : order_) all.push_back(s.get());
  }
  bool overflowed = false;
  if constexpr (std::is_same_v<T, Histogram>)
    overflowed = overflow_.metric->snapshot().count > 0;
  else
    overflowed = overflow_.metric->value() != 0;
  if (overflowed) all.push_back(&overflow_);
  w.header(name_, help_, type_name<T>());
  std::vector<std::pair<std::string_view, std::string_view>> labels(label_names_.size());
  for (const Series* s : all) {
    for (std::size_t i = 0; i < label_names_.size(); ++i)
      labels[i] = {label_names_[i], s->values[i]};
    if constexpr (std::is_same_v<T, Histogram>)
      w.histogram(name_, labels, s->metric->snapshot());
    else
      w.sample(name_, labels, static_cast<double>(s->metric->value()));
  }
}

template class Family<Counter>;
template class Family<Gauge>;
template class Family<Histogram>;

Counter& Registry::counter(std::string name, std::string help) {
  return counter_family(std::move(name), std::move(help), {}).with({});
}

Gauge& Registry::gauge(std::string name, std::string help) {
  return gauge_family(std::move(name), std::move(help), {}).with({});
}

Histogram& Registry::histogram(std::string name, std::string help, std::span<const double> bounds) {
  return histogram_family(std::move(name), std::move(help), {}, bounds).with({});
}

Family<Counter>& Registry::counter_family(std::string name, std::string help,
                                          std::vector<std::string> labels, std::size_t max_series) {
  auto f = std::make_unique<Family<Counter>>(
      std::move(name), std::move(help), std::move(labels),
      [] { return std::make_unique<Counter>(); }, max_series);
  auto& ref = *f;
  std::lock_guard lk(mu_);
  families_.push_back(std::move(f));
  return ref;
}

Family<Gauge>& Registry::gauge_family(std::string name, std::string help,
                                      std::vector<std::string> labels, std::size_t max_series) {
  auto f = std::make_unique<Family<Gauge>>(
      std::move(name), std::move(help), std::move(labels), [] { return std::make_unique<Gauge>(); },
      max_series);
  auto& ref = *f;
  std::lock_guard lk(mu_);
  families_.push_back(std::move(f));
  return ref;
}

Family<Histogram>& Registry::histogram_family(std::string name, std::string help,
                                              std::vector<std::string> labels,
                                              std::span<const double> bounds,
                                              std::size_t max_series) {
  std::vector<double> b(bounds.begin(), bounds.end());
  auto f = std::make_unique<Family<Histogram>>(
      std::move(name), std::move(help), std::move(labels),
      [b] { return std::make_unique<Histogram>(b); }, max_series);
  auto& ref = *f;
  std::lock_guard lk(mu_);
  families_.push_back(std::move(f));
  return ref;
}

void Registry::add_collector(Collector c) {
  std::lock_guard lk(mu_);
  collectors_.push_back(std::move(c));
}

std::string Registry::expose() const {
  std::string out;
  out.reserve(16 * 1024);
  TextWriter w(out);
  std::lock_guard lk(mu_);
  for (const auto& f : families_) f->expose(w);
  for (const auto& c : collectors_) c(w);
  return out;
}

}  // namespace meterhub::metrics
