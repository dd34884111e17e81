#include "alerts/webhook.hpp"

#include <curl/curl.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <mutex>

namespace meterhub::alerts {
namespace {

std::once_flag curl_init;

size_t discard(char*, size_t size, size_t n, void*) { return size * n; }

bool retryable(long status) {
  return status == 0 || status == 408 || status == 429 || status >= 500;
}

}  // namespace

Webhook::Webhook(WebhookOptions opts) : opts_(std::move(opts)) {
  std::call_once(curl_init, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

Webhook::~Webhook() { stop(); }

void Webhook::start() {
  std::lock_guard lk(mu_);
  if (thread_.joinable() || stopping_) return;
  thread_ = std::thread([this] { run(); });
}

bool Webhook::post(std::string body) {
  {
    std::lock_guard lk(mu_);
    if (!stopping_ && queue_.size() < opts_.max_queue) {
      queue_.push_back(std::move(body));
      cv_.notify_one();
      return true;
    }
    const auto now = std::chrono::steady_clock::now();
    ++dropped_;
    if (now - last_drop_log_ < std::chrono::seconds(10)) return false;
    last_drop_log_ = now;
  }
  spdlog::warn("alert webhook: queue full ({} waiting), alert not posted ({} dropped so far)",
               opts_.max_queue, dropped_.load());
  return false;
}

void Webhook::stop() {
  {
    std::lock_guard lk(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  std::lock_guard lk(mu_);
  if (!queue_.empty()) {
    spdlog::warn("alert webhook: {} alerts not posted (stopping)", queue_.size());
    failed_ += queue_.size();
    queue_.clear();
  }
}

WebhookStats Webhook::stats() const {
  return WebhookStats{delivered_.load(), retries_.load(), failed_.load(), dropped_.load()};
}

long Webhook::send(const std::string& body, std::string& error) {
  CURL* c = curl_easy_init();
  if (!c) {
    error = "curl_easy_init failed";
    return 0;
  }
  curl_slist* headers = nullptr;
  headers = curl_slist_append(headers, "Content-Type: application/json");
  headers = curl_slist_append(headers, "Expect:");
  char errbuf[CURL_ERROR_SIZE] = {};
  curl_easy_setopt(c, CURLOPT_URL, opts_.url.c_str());
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_POST, 1L);
  curl_easy_setopt(c, CURLOPT_POSTFIELDS, body.data());
  curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, static_cast<long>(body.size()));
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(c, CURLOPT_USERAGENT, "meterhub-alerts/0.1");
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, static_cast<long>(opts_.timeout.count()));
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
  const CURLcode rc = curl_easy_perform(c);
  long status = 0;
  if (rc == CURLE_OK)
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
  else
    error = errbuf[0] ? errbuf : curl_easy_strerror(rc);
  curl_slist_free_all(headers);
  curl_easy_cleanup(c);
  return status;
}

void Webhook::run() {
  std::unique_lock lk(mu_);
  while (true) {
    cv_.wait(lk, [&] { return stopping_ || !queue_.empty(); });
    if (stopping_) return;
    const std::string body = queue_.front();
    lk.unlock();
    auto backoff = opts_.first_backoff;
    bool done = false;
    for (unsigned attempt = 1; !done; ++attempt) {
      std::string error;
      const long status = send(body, error);
      if (status >= 200 && status < 300) {
        ++delivered_;
        done = true;
      } else if (!retryable(status) || attempt >= opts_.max_attempts) {
        ++failed_;
        spdlog::error("alert webhook: giving up after {} tries: {}", attempt,
                      status ? "HTTP " + std::to_string(status) : error);
        done = true;
      } else {
        ++retries_;
        spdlog::warn("alert webhook: try {} failed ({}); again in {} ms", attempt,
                     status ? "HTTP " + std::to_string(status) : error, backoff.count());
        std::unique_lock wait(mu_);
        if (cv_.wait_for(wait, backoff, [&] { return stopping_; })) return;  // stop() counts it
        backoff = std::min(backoff * 2, opts_.max_backoff);
      }
    }
    lk.lock();
    queue_.pop_front();
  }
}

}  // namespace meterhub::alerts
