// Wiring: configuration -> store -> hub -> ingest -> API -> network, and the
// reverse order on the way out. No logic of its own lives here.
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <sys/resource.h>

#include <filesystem>

#include "api/query_pool.hpp"
#include "api/router.hpp"
#include "api/static_files.hpp"
#include "app/config.hpp"
#include "http/server.hpp"
#include "hub/hub.hpp"
#include "ingest/ingest.hpp"
#include "query/calendar.hpp"
#include "store/sqlite/sqlite_store.hpp"

namespace {

// Each WebSocket is a file descriptor: lift the soft limit to the hard one.
void raise_fd_limit() {
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
}

}  // namespace

int main(int argc, char** argv) {
  using namespace meterhub;
  auto parsed = app::parse_config(argc, argv);
  if (!parsed.config) return parsed.exit_code;
  app::Config& cfg = *parsed.config;

  auto logger = spdlog::stderr_color_mt("meterhub");
  spdlog::set_default_logger(logger);
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e%z %^%l%$ %v");
  spdlog::set_level(spdlog::level::from_str(cfg.log_level));
  raise_fd_limit();

  // The tz database is read once, now: a missing tzdata shows at start, and
  // the first energy request does not pay for it.
  if (auto tz = query::TimeZone::load_database(); !tz)
    spdlog::warn("time zones unavailable ({}); energy periods work in UTC only", tz.error().message);
  if (auto tz = query::TimeZone::locate(cfg.api.default_tz); !tz) {
    spdlog::critical("--timezone: {}", tz.error().message);
    return 2;
  }

  store::SqliteOptions so;
  so.path = cfg.db_path;
  so.counter_rules = cfg.counter_rules;
  auto store = store::SqliteStore::open(so);
  if (!store) {
    spdlog::critical("{}", store.error().message);
    return 1;
  }

  hub::Hub hub(cfg.hub);
  auto latest = (*store)->latest_per_meter();
  if (!latest) {
    spdlog::critical("cannot read latest readings: {}", latest.error().message);
    return 1;
  }
  for (const auto& r : *latest) hub.prime(r);

  ingest::Ingest ingest(**store, hub, cfg.ingest);
  ingest.start();
  api::QueryPool queries(cfg.query_threads, 1024);
  api::Router router(ingest, **store, queries, cfg.api);
  std::filesystem::path web_root = cfg.web_root;
  if (web_root.empty()) {
    std::error_code ec;
    web_root = std::filesystem::read_symlink("/proc/self/exe", ec).parent_path() / "web";
  }
  auto web = api::StaticFiles::load(web_root);
  if (!web) {
    spdlog::critical("--web-root: {}", web.error().message);
    ingest.stop();
    return 1;
  }
  if (web->find("/") == nullptr)
    spdlog::warn("no dashboard in {} (index.html missing): build the 'web' target or pass "
                 "--web-root; the API works without it",
                 web_root.string());
  router.set_static_files(&*web);

  http::Server server(cfg.server, router, hub);
  auto port = server.listen();
  if (!port) {
    spdlog::critical("{}", port.error().message);
    ingest.stop();
    return 1;
  }
  std::string host = cfg.server.host.find(':') != std::string::npos ? "[" + cfg.server.host + "]"
                                                                    : cfg.server.host;
  spdlog::info("meterhub 0.1.0 listening on http://{}:{} (database {}, {} meters)", host, *port,
               cfg.db_path, latest->size());
  if (web->find("/") != nullptr)
    spdlog::info("dashboard: http://{}:{}/  API reference: http://{}:{}/docs", host, *port, host,
                 *port);
  server.run();

  // Network is quiet: commit whatever is still queued, then close the store.
  ingest.stop();
  queries.stop();
  auto st = ingest.stats();
  spdlog::info("stopped cleanly ({} commits, {} readings this run)", st.commits, st.readings);
  return 0;
}
