// The metrics registry and its Prometheus text exposition (format 0.0.4).
#include <gtest/gtest.h>

#include <atomic>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "metrics/json_escape.hpp"
#include "metrics/log_fields.hpp"
#include "metrics/process.hpp"
#include "metrics/registry.hpp"

namespace meterhub::metrics {
namespace {

std::vector<std::string> lines_of(const std::string& s) {
  std::vector<std::string> out;
  std::istringstream in(s);
  for (std::string l; std::getline(in, l);) out.push_back(l);
  return out;
}

// Every line is a HELP, a TYPE or a sample of the text format.
void expect_valid_exposition(const std::string& text) {
  ASSERT_FALSE(text.empty());
  EXPECT_EQ(text.back(), '\n');
  static const std::regex kHelp(R"(# HELP [a-zA-Z_:][a-zA-Z0-9_:]* .*)");
  static const std::regex kType(
      R"(# TYPE [a-zA-Z_:][a-zA-Z0-9_:]* (counter|gauge|histogram|summary|untyped))");
  static const std::regex kSample(
      R"([a-zA-Z_:][a-zA-Z0-9_:]*(\{[a-zA-Z_][a-zA-Z0-9_]*="(\\[\\"n]|[^\\"\n])*"(,[a-zA-Z_][a-zA-Z0-9_]*="(\\[\\"n]|[^\\"\n])*")*\})? (-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?|\+Inf|-Inf|NaN))");
  for (const auto& l : lines_of(text)) {
    const bool ok =
        std::regex_match(l, kHelp) || std::regex_match(l, kType) || std::regex_match(l, kSample);
    EXPECT_TRUE(ok) << "invalid line: " << l;
  }
}

TEST(MetricsText, EscapesLabelValuesAndHelp) {
  EXPECT_EQ(escape_label_value(R"(a"b\c)"), R"(a\"b\\c)");
  EXPECT_EQ(escape_label_value("line\nbreak"), "line\\nbreak");
  EXPECT_EQ(escape_label_value("plain /api/v1/{meter_id}"), "plain /api/v1/{meter_id}");
  EXPECT_EQ(escape_help("back\\slash\nnew \"quotes\" stay"), "back\\\\slash\\nnew \"quotes\" stay");
}

TEST(MetricsText, FormatsValues) {
  EXPECT_EQ(format_value(0), "0");
  EXPECT_EQ(format_value(42), "42");
  EXPECT_EQ(format_value(-3), "-3");
  EXPECT_EQ(format_value(0.25), "0.25");
  EXPECT_EQ(format_value(1e300), "1e+300");
  EXPECT_EQ(format_value(1.0 / 0.0), "+Inf");
  EXPECT_EQ(format_value(-1.0 / 0.0), "-Inf");
  EXPECT_EQ(format_value(0.0 / 0.0), "NaN");
}

TEST(MetricsRegistry, CounterAndGaugeExposition) {
  Registry r;
  Counter& c = r.counter("t_events_total", "Events seen");
  Gauge& g = r.gauge("t_open", "Open things");
  c.inc();
  c.inc(4);
  g.add(3);
  g.add(-1);
  const std::string text = r.expose();
  EXPECT_EQ(text,
            "# HELP t_events_total Events seen\n# TYPE t_events_total counter\n"
            "t_events_total 5\n"
            "# HELP t_open Open things\n# TYPE t_open gauge\nt_open 2\n");
  expect_valid_exposition(text);
}

TEST(MetricsRegistry, LabelledSeriesAreEscapedAndStable) {
  Registry r;
  auto& f = r.counter_family("t_requests_total", "Requests", {"route", "status"});
  Counter& a = f.with({"/api/v1/meters/{meter_id}", "200"});
  a.inc();
  EXPECT_EQ(&f.with({"/api/v1/meters/{meter_id}", "200"}), &a);  // same series, same object
  f.with({"we\"ird\\", "4\n04"}).inc(2);
  const std::string text = r.expose();
  EXPECT_NE(text.find("t_requests_total{route=\"/api/v1/meters/{meter_id}\",status=\"200\"} 1\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find(R"(t_requests_total{route="we\"ird\\",status="4\n04"} 2)"), std::string::npos)
      << text;
  expect_valid_exposition(text);
}

TEST(MetricsRegistry, HistogramBucketsAreCumulativeWithInfSumAndCount) {
  Registry r;
  const double bounds[] = {1, 5, 10};
  Histogram& h = r.histogram("t_batch", "Batch sizes", bounds);
  for (double v : {0.5, 1.0, 3.0, 5.0, 7.0, 100.0}) h.observe(v);
  const std::string text = r.expose();
  EXPECT_EQ(text,
            "# HELP t_batch Batch sizes\n# TYPE t_batch histogram\n"
            "t_batch_bucket{le=\"1\"} 2\n"     // 0.5, 1 (le is inclusive)
            "t_batch_bucket{le=\"5\"} 4\n"     // + 3, 5
            "t_batch_bucket{le=\"10\"} 5\n"    // + 7
            "t_batch_bucket{le=\"+Inf\"} 6\n"  // + 100
            "t_batch_sum 116.5\n"
            "t_batch_count 6\n");
  expect_valid_exposition(text);
}

TEST(MetricsRegistry, LabelledHistogramPutsLeLast) {
  Registry r;
  const double bounds[] = {0.5};
  auto& f = r.histogram_family("t_lat_seconds", "Latency", {"route"}, bounds);
  f.with({"/healthz"}).observe(0.1);
  const std::string text = r.expose();
  EXPECT_NE(text.find("t_lat_seconds_bucket{route=\"/healthz\",le=\"0.5\"} 1\n"),
            std::string::npos);
  EXPECT_NE(text.find("t_lat_seconds_bucket{route=\"/healthz\",le=\"+Inf\"} 1\n"),
            std::string::npos);
  EXPECT_NE(text.find("t_lat_seconds_sum{route=\"/healthz\"} 0.1\n"), std::string::npos);
  EXPECT_NE(text.find("t_lat_seconds_count{route=\"/healthz\"} 1\n"), std::string::npos);
  expect_valid_exposition(text);
}

TEST(MetricsRegistry, CardinalityIsBounded) {
  Registry r;
  auto& f = r.counter_family("t_by_user_total", "Labelled by something unbounded", {"who"}, 3);
  for (int i = 0; i < 100; ++i) f.with({std::to_string(i)}).inc();
  const std::string text = r.expose();
  EXPECT_NE(text.find("t_by_user_total{who=\"0\"} 1\n"), std::string::npos);
  EXPECT_NE(text.find("t_by_user_total{who=\"2\"} 1\n"), std::string::npos);
  EXPECT_EQ(text.find("who=\"3\""), std::string::npos);
  EXPECT_NE(text.find("t_by_user_total{who=\"_overflow\"} 97\n"), std::string::npos) << text;
}

TEST(MetricsRegistry, ConcurrentIncrementsAreAllCounted) {
  Registry r;
  auto& f = r.counter_family("t_conc_total", "Concurrent", {"k"});
  const double bounds[] = {10};
  Histogram& h = r.histogram("t_conc_hist", "Concurrent", bounds);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      for (int i = 0; i < 20000; ++i) {
        f.with({i % 2 ? "odd" : "even"}).inc();
        f.with({"t" + std::to_string(t)}).inc();
        h.observe(1);
      }
    });
  std::string mid = r.expose();  // a scrape while counting must stay valid
  for (auto& th : threads) th.join();
  expect_valid_exposition(mid);
  const std::string text = r.expose();
  EXPECT_NE(text.find("t_conc_total{k=\"odd\"} 40000\n"), std::string::npos) << text;
  EXPECT_NE(text.find("t_conc_total{k=\"even\"} 40000\n"), std::string::npos);
  EXPECT_NE(text.find("t_conc_total{k=\"t3\"} 20000\n"), std::string::npos);
  EXPECT_NE(text.find("t_conc_hist_count 80000\n"), std::string::npos);
  EXPECT_NE(text.find("t_conc_hist_sum 80000\n"), std::string::npos);
}

TEST(MetricsRegistry, CollectorsRunAtEachScrape) {
  Registry r;
  int calls = 0;
  r.add_collector([&calls](TextWriter& w) {
    ++calls;
    w.header("t_pulled", "Read at scrape time", "gauge");
    w.sample("t_pulled", calls);
  });
  EXPECT_NE(r.expose().find("t_pulled 1\n"), std::string::npos);
  EXPECT_NE(r.expose().find("t_pulled 2\n"), std::string::npos);
}

TEST(MetricsProcess, ReadsProcFs) {
  std::string out;
  TextWriter w(out);
  write_process_metrics(w);
  expect_valid_exposition(out);
  for (const char* name : {"process_cpu_seconds_total ", "process_resident_memory_bytes ",
                           "process_open_fds ", "process_start_time_seconds "})
    EXPECT_NE(out.find(std::string("\n") + name), std::string::npos) << name << "\n" << out;
  // The start time is in the past and after 2020.
  std::smatch m;
  ASSERT_TRUE(std::regex_search(out, m, std::regex(R"(\nprocess_start_time_seconds ([0-9.e+]+))")));
  const double start = std::stod(m[1]);
  EXPECT_GT(start, 1.577e9);
  EXPECT_LE(start, static_cast<double>(std::time(nullptr)) + 1);
}

TEST(JsonEscape, AnyBytesBecomeValidJsonStringContents) {
  auto esc = [](std::string_view in) {
    std::string out;
    escape_json_into(out, in);
    return out;
  };
  EXPECT_EQ(esc("plain text 123"), "plain text 123");
  EXPECT_EQ(esc(R"(say "hi" \ there)"), R"(say \"hi\" \\ there)");
  EXPECT_EQ(esc("a\nb\rc\td"), "a\\nb\\rc\\td");
  EXPECT_EQ(esc(std::string_view("\x00\x01\x1f\x7f", 4)), "\\u0000\\u0001\\u001f\\u007f");
  EXPECT_EQ(esc("k\xc3\xbc"
                "che \xe2\x82\xac \xf0\x9f\x94\x8c"),
            "k\xc3\xbc"
            "che \xe2\x82\xac \xf0\x9f\x94\x8c");                      // valid UTF-8 kept
  EXPECT_EQ(esc("\xff"), "\\ufffd");                                   // never valid
  EXPECT_EQ(esc("\xc3"), "\\ufffd");                                   // truncated
  EXPECT_EQ(esc("\xc0\xaf"), "\\ufffd\\ufffd");                        // overlong '/'
  EXPECT_EQ(esc("\xed\xa0\x80"), "\\ufffd\\ufffd\\ufffd");             // a surrogate
  EXPECT_EQ(esc("\xf4\x90\x80\x80"), "\\ufffd\\ufffd\\ufffd\\ufffd");  // above U+10FFFF
  EXPECT_EQ(esc("ok\xe2\x82"), "ok\\ufffd\\ufffd");
}

TEST(LogFields, ScopesNestAndUnwind) {
  const LogField* f = nullptr;
  EXPECT_EQ(LogFields::current(f), 0u);
  {
    LogFields outer{{"request_id", "abc"}};
    {
      LogFields inner{{"route", "/x"}, {"status", "200"}};
      ASSERT_EQ(LogFields::current(f), 3u);
      EXPECT_EQ(f[0].key, "request_id");
      EXPECT_EQ(f[2].value, "200");
    }
    EXPECT_EQ(LogFields::current(f), 1u);
  }
  EXPECT_EQ(LogFields::current(f), 0u);
  std::thread([] {
    const LogField* g = nullptr;
    EXPECT_EQ(LogFields::current(g), 0u);  // per thread
  }).join();
}

}  // namespace
}  // namespace meterhub::metrics
