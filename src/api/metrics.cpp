// Observability at the API edge: GET /metrics (Prometheus text format), and
// the wrapper every request's Responder goes through (Router::observe): a
// request id (the client's X-Request-Id when it is sane, else a new one),
// echoed in the answer; HTTP counters and latency by route *template* (never
// the raw path: bounded label cardinality, and ThingsBoard puts a device key
// in its path); rejected readings requests by error code; the access log line.
#include <spdlog/spdlog.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <random>

#include "api/log_limit.hpp"
#include "api/responses.hpp"
#include "api/router.hpp"
#include "metrics/instruments.hpp"
#include "metrics/log_fields.hpp"

namespace meterhub::api {
namespace {

// A route template split into segments, once.
struct Pattern {
  std::string_view path;
  std::vector<std::string_view> segments;  // "{…}" matches any one segment
  bool ingest;                             // a readings endpoint (rejections are counted)
};

std::vector<std::string_view> split_path(std::string_view path) {
  std::vector<std::string_view> out;
  std::size_t i = path.starts_with('/') ? 1 : 0;
  if (i >= path.size()) return out;
  while (true) {
    auto slash = path.find('/', i);
    out.push_back(path.substr(i, slash == std::string_view::npos ? slash : slash - i));
    if (slash == std::string_view::npos) break;
    i = slash + 1;
  }
  return out;
}

const std::vector<Pattern>& patterns() {
  static const std::vector<Pattern> kPatterns = [] {
    std::vector<Pattern> v;
    for (const RouteInfo& r : routes()) {
      std::string_view p = r.path;
      bool seen = false;
      for (const auto& q : v) seen |= q.path == p;
      if (seen) continue;
      const bool ingest = p == "/api/v1/readings" || p == "/api/v1/{access_token}/telemetry" ||
                          p == "/input/post" || p == "/input/bulk";
      v.push_back({p, split_path(p), ingest});
    }
    return v;
  }();
  return kPatterns;
}

// The template of the first route whose path matches, or nullptr. Literal
// segments win over parameters ("/api/v1/meters" is not a telemetry key).
const Pattern* match_route(std::string_view target) {
  std::string_view path = target.substr(0, target.find('?'));
  auto segs = split_path(path);
  while (!segs.empty() && segs.back().empty()) segs.pop_back();
  const Pattern* best = nullptr;
  int best_literals = -1;
  for (const Pattern& p : patterns()) {
    if (p.segments.size() != segs.size()) continue;
    int literals = 0;
    bool ok = true;
    for (std::size_t i = 0; ok && i < segs.size(); ++i) {
      if (p.segments[i].starts_with('{')) continue;
      ok = p.segments[i] == segs[i];
      ++literals;
    }
    if (ok && literals > best_literals) {
      best = &p;
      best_literals = literals;
    }
  }
  return best;
}

std::string_view method_label(std::string_view m) {
  for (std::string_view k : {"GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
    if (m == k) return k;
  return "other";
}

// The error code of an {"error":{"code":"…"}} body (our codes are plain identifiers).
std::string_view error_code(const Response& r) {
  constexpr std::string_view kPrefix = R"({"error":{"code":")";
  std::string_view b = r.body;
  if (!b.starts_with(kPrefix)) return {};
  b.remove_prefix(kPrefix.size());
  auto end = b.find('"');
  if (end == std::string_view::npos || end == 0 || end > 64) return {};
  return b.substr(0, end);
}

bool sane_request_id(std::string_view id) {
  if (id.empty() || id.size() > 128) return false;
  for (char c : id) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '-' || c == '_' || c == '.' || c == ':' || c == '/' || c == '+' ||
                    c == '=';
    if (!ok) return false;
  }
  return true;
}

std::string new_request_id() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(rng()));
  return std::string(buf, 16);
}

// At most 10 warnings per second for failed (5xx) requests; the rest are
// counted in the metrics anyway.
LogLimit failed_log{10, "failed requests"};

}  // namespace

Responder Router::observe(Request& req, Responder respond) {
  if (!sane_request_id(req.request_id)) req.request_id = new_request_id();
  const Pattern* p = match_route(req.target);
  return [respond = std::move(respond), id = req.request_id, p, method = method_label(req.method),
          remote = req.remote, start = std::chrono::steady_clock::now()](Response r) {
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::string_view route =
        p ? p->path
          : (r.status == 200 || r.status == 304 ? std::string_view("(static)")
                                                : std::string_view("(unmatched)"));
    char status[8];
    std::snprintf(status, sizeof status, "%u", r.status % 1000);
    auto& m = metrics::instruments();
    m.http_requests.with({route, method, status}).inc();
    m.http_duration.with({route}).observe(seconds);
    std::string_view code = r.status >= 400 ? error_code(r) : std::string_view();
    if (p && p->ingest && r.status >= 400) {
      char fallback[16];
      std::snprintf(fallback, sizeof fallback, "http_%u", r.status % 1000);
      m.ingest_rejected.with({code.empty() ? std::string_view(fallback) : code}).inc();
    }
    const bool failed = r.status >= 500;
    if (spdlog::should_log(spdlog::level::debug) || (failed && failed_log.allow())) {
      char ms[32];
      std::snprintf(ms, sizeof ms, "%.3f", seconds * 1000);
      metrics::LogFields f{{"request_id", id}, {"method", method},  {"route", route},
                           {"status", status}, {"duration_ms", ms}, {"remote", remote},
                           {"error", code}};
      if (failed)
        spdlog::warn("request failed: {} {} -> {} {}", method, route, status, code);
      else
        spdlog::debug("request: {} {} -> {}", method, route, status);
    }
    r.headers.emplace_back("X-Request-Id", id);
    respond(std::move(r));
  };
}

void Router::metrics(Responder& respond) {
  Response r;
  r.status = 200;
  r.content_type = "text/plain; version=0.0.4; charset=utf-8";
  r.body = metrics::instruments().registry.expose();
  respond(std::move(r));
}

}  // namespace meterhub::api
