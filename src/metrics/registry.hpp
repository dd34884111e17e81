// A small metrics registry with Prometheus text exposition (format 0.0.4).
// Debian 12 packages no Prometheus C++ client, and we need little: counters,
// gauges and fixed-bucket histograms, optionally with labels of bounded
// cardinality, plus collectors that read values kept elsewhere at scrape time.
//
// Contract:
//  - Counter::inc, Gauge::add/set and Histogram::observe are lock-free and
//    never allocate: relaxed atomics. Safe from any thread.
//  - Family<T>::with(values) finds the series for these label values without
//    a lock or an allocation once the series exists; creating it takes a
//    mutex. A family holds at most `max_series` series; label values beyond
//    that all land in one series whose every label is "_overflow", so a bug
//    that labels by user input cannot grow memory without bound.
//  - References returned by with() and by the Registry's add_* stay valid for
//    the Registry's lifetime.
//  - Registry::expose() writes every family (HELP, TYPE, samples) in
//    registration order, then what the collectors write; one scrape may run
//    concurrently with any number of increments (values are read relaxed, so
//    a histogram's buckets may be a few observations apart from its count).
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace meterhub::metrics {

class Counter {
 public:
  void inc(std::uint64_t n = 1) { v_.fetch_add(n, std::memory_order_relaxed); }
  std::uint64_t value() const { return v_.load(std::memory_order_relaxed); }

 private:
  std::atomic<std::uint64_t> v_{0};
};

class Gauge {
 public:
  void set(double v) { v_.store(v, std::memory_order_relaxed); }
  void add(double d) { v_.fetch_add(d, std::memory_order_relaxed); }
  double value() const { return v_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> v_{0};
};

// Fixed buckets (upper bounds, ascending, +Inf implied).
class Histogram {
 public:
  explicit Histogram(std::span<const double> bounds);
  void observe(double v);

  struct Snapshot {
    std::vector<double> bounds;
    std::vector<std::uint64_t> cumulative;  // one per bound, then +Inf
    double sum = 0;
    std::uint64_t count = 0;
  };
  Snapshot snapshot() const;

 private:
  std::vector<double> bounds_;
  std::unique_ptr<std::atomic<std::uint64_t>[]> counts_;  // per bucket, not cumulative; +Inf last
  std::atomic<double> sum_{0};                            // the count is the sum of the buckets
};

// Buckets for latencies in seconds, 100 µs .. 10 s.
std::span<const double> latency_buckets();

// Writes the text format. Names must match [a-zA-Z_:][a-zA-Z0-9_:]*.
class TextWriter {
 public:
  explicit TextWriter(std::string& out) : out_(out) {}
  using Labels = std::span<const std::pair<std::string_view, std::string_view>>;
  // "# HELP" and "# TYPE" lines (type: counter, gauge, histogram, untyped).
  void header(std::string_view name, std::string_view help, std::string_view type);
  void sample(std::string_view name, Labels labels, double value);
  void sample(std::string_view name, double value) { sample(name, {}, value); }
  // name_bucket (cumulative, le="+Inf" last), name_sum, name_count.
  void histogram(std::string_view name, Labels labels, const Histogram::Snapshot& s);

 private:
  std::string& out_;
};

// Label value escaping of the text format: \ " and newline.
std::string escape_label_value(std::string_view v);
// HELP text escaping: \ and newline.
std::string escape_help(std::string_view v);
// A sample value: integers without a fraction, +Inf/-Inf/NaN, else shortest round-trip.
std::string format_value(double v);

namespace detail {
struct FamilyBase {
  virtual ~FamilyBase() = default;
  virtual void expose(TextWriter& w) const = 0;
};
}  // namespace detail

template <class T>
class Family : public detail::FamilyBase {
 public:
  using Make = std::function<std::unique_ptr<T>()>;
  Family(std::string name, std::string help, std::vector<std::string> label_names, Make make,
         std::size_t max_series = 512);
  ~Family() override;

  // The series for these label values (as many as label names).
  T& with(std::initializer_list<std::string_view> values);
  T& with(std::span<const std::string_view> values);

  void expose(TextWriter& w) const override;

 private:
  struct Series {
    std::vector<std::string> values;
    std::unique_ptr<T> metric;
  };
  static constexpr std::size_t kSlots = 2048;  // open addressing; power of two
  std::size_t hash(std::span<const std::string_view> values) const;
  static bool equal(const Series& s, std::span<const std::string_view> values);

  std::string name_, help_;
  std::vector<std::string> label_names_;
  Make make_;
  std::size_t max_series_;
  std::unique_ptr<std::atomic<Series*>[]> slots_;
  mutable std::mutex mu_;                       // insertions; expose()'s walk over order_
  std::vector<std::unique_ptr<Series>> order_;  // creation order
  Series overflow_;
};

extern template class Family<Counter>;
extern template class Family<Gauge>;
extern template class Family<Histogram>;

class Registry {
 public:
  Registry() = default;
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  Counter& counter(std::string name, std::string help);
  Gauge& gauge(std::string name, std::string help);
  Histogram& histogram(std::string name, std::string help, std::span<const double> bounds);
  Family<Counter>& counter_family(std::string name, std::string help,
                                  std::vector<std::string> labels, std::size_t max_series = 512);
  Family<Gauge>& gauge_family(std::string name, std::string help, std::vector<std::string> labels,
                              std::size_t max_series = 512);
  Family<Histogram>& histogram_family(std::string name, std::string help,
                                      std::vector<std::string> labels,
                                      std::span<const double> bounds, std::size_t max_series = 512);

  // Called at every scrape, after the families, in the order added; writes
  // whole families of its own (values kept by other modules).
  using Collector = std::function<void(TextWriter&)>;
  void add_collector(Collector c);

  // The whole exposition.
  std::string expose() const;

 private:
  mutable std::mutex mu_;
  std::vector<std::unique_ptr<detail::FamilyBase>> families_;
  std::vector<Collector> collectors_;
};

}  // namespace meterhub::metrics
