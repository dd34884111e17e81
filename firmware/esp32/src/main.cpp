// meterhub firmware: an ESP32 reads a PZEM-004T v3 every READ_INTERVAL_S
// seconds, stamps each reading with NTP time, keeps it in a RAM ring buffer
// and posts the buffer to meterhub in batches (POST /api/v1/readings,
// {"readings":[...]}, Authorization: Bearer <device key>).
//
// Why it is safe to retry: a reading is identified by (meter_id, ts) on the
// server, so a batch whose answer was lost can be sent again and is counted
// as duplicates, never stored twice. A reading leaves the buffer only after a
// 201 (the server answers 201 only once it is on disk).
//
// Failures: no answer, 408 or 5xx -> keep the batch, retry with exponential
// backoff (BACKOFF_MIN_S doubling to BACKOFF_MAX_S); 429/503 with Retry-After
// -> wait that long; any other 4xx -> the same bytes would be refused again,
// so the batch is dropped and logged. When the ring is full the oldest reading
// is overwritten (and counted).
//
// The JSON is written with snprintf; tests/e2e/test_firmware_payload.py
// checks that exactly these bytes (tests/e2e/fixtures/esp32_batch.json) are
// accepted by the server, using the format strings below: keep them on one
// line each if you change them.
#include <Arduino.h>
#include <HTTPClient.h>
#include <PZEM004Tv30.h>
#include <WiFi.h>
#include <WiFiClientSecure.h>
#include <math.h>
#include <time.h>

#include "config.h"

namespace {

static const char kBatchOpen[] = "{\"readings\":[";
static const char kBatchClose[] = "]}";
static const char kReadingFormat[] = "{\"meter_id\":\"%s\",\"ts\":%lu,\"voltage\":%.1f,\"current\":%.3f,\"power\":%.1f,\"energy\":%lu.%03lu,\"frequency\":%.1f,\"power_factor\":%.2f}";

// One reading as the PZEM reports it. Energy is kept in whole Wh (the
// PZEM's resolution) so that 12345.678 kWh is printed exactly.
struct Sample {
  uint32_t ts;  // epoch seconds (UTC)
  float voltage, current, power, frequency, power_factor;
  uint32_t energy_wh;
};

// Fixed-size ring: no heap allocation after start-up.
Sample ring[RING_CAPACITY];
size_t ring_head = 0;  // index of the oldest reading
size_t ring_count = 0;
uint32_t ring_overwritten = 0;

void ring_push(const Sample& s) {
  if (ring_count == RING_CAPACITY) {  // full: forget the oldest
    ring_head = (ring_head + 1) % RING_CAPACITY;
    --ring_count;
    ++ring_overwritten;
  }
  ring[(ring_head + ring_count) % RING_CAPACITY] = s;
  ++ring_count;
}

const Sample& ring_at(size_t i) { return ring[(ring_head + i) % RING_CAPACITY]; }

void ring_pop(size_t n) {
  ring_head = (ring_head + n) % RING_CAPACITY;
  ring_count -= n;
}

// Room for BATCH_MAX readings of at most 256 bytes each (a 64-character meter id
// and every number at its widest come to ~240).
char body[sizeof(kBatchOpen) + BATCH_MAX * 256 + sizeof(kBatchClose)];

// Writes the oldest `n` readings as {"readings":[...]} into `body`; returns its length.
size_t build_batch(size_t n) {
  size_t len = strlcpy(body, kBatchOpen, sizeof(body));
  for (size_t i = 0; i < n; ++i) {
    const Sample& s = ring_at(i);
    if (i > 0) body[len++] = ',';
    len += snprintf(body + len, sizeof(body) - len, kReadingFormat, METER_ID,
                    (unsigned long)s.ts, s.voltage, s.current, s.power,
                    (unsigned long)(s.energy_wh / 1000), (unsigned long)(s.energy_wh % 1000),
                    s.frequency, s.power_factor);
  }
  len += strlcpy(body + len, kBatchClose, sizeof(body) - len);
  return len;
}

PZEM004Tv30 pzem(Serial2, PZEM_RX_PIN, PZEM_TX_PIN);
#ifdef METERHUB_CA_CERT
WiFiClientSecure net_client;
#else
WiFiClient net_client;
#endif
HTTPClient http;

uint32_t next_read_ms = 0;
uint32_t next_send_ms = 0;
uint32_t backoff_s = 0;  // 0 = no failure since the last success

bool clock_is_set() { return time(nullptr) > 1600000000; }  // NTP answered (after 2020)

void read_pzem() {
  Sample s;
  s.voltage = pzem.voltage();
  s.current = pzem.current();
  s.power = pzem.power();
  float kwh = pzem.energy();
  s.frequency = pzem.frequency();
  s.power_factor = pzem.pf();
  if (isnan(s.voltage) || isnan(s.current) || isnan(s.power) || isnan(kwh) ||
      isnan(s.frequency) || isnan(s.power_factor)) {
    Serial.println("PZEM: no answer (check wiring and mains)");
    return;
  }
  if (!clock_is_set()) {
    Serial.println("waiting for NTP time; reading not kept");
    return;
  }
  s.ts = (uint32_t)time(nullptr);
  s.energy_wh = (uint32_t)lroundf(kwh * 1000.0f);
  ring_push(s);
}

void fail_later(uint32_t wait_s) {
  next_send_ms = millis() + wait_s * 1000UL;
}

void backoff() {
  backoff_s = backoff_s == 0 ? BACKOFF_MIN_S : min<uint32_t>(backoff_s * 2, BACKOFF_MAX_S);
  fail_later(backoff_s);
}

void send_batch() {
  size_t n = ring_count < BATCH_MAX ? ring_count : BATCH_MAX;
  size_t len = build_batch(n);

  static const char* kCollect[] = {"Retry-After"};
  http.setReuse(true);  // keep-alive between batches
  http.setTimeout(10000);
  if (!http.begin(net_client, METERHUB_URL)) {
    Serial.println("bad METERHUB_URL");
    backoff();
    return;
  }
  http.collectHeaders(kCollect, 1);
  http.addHeader("Content-Type", "application/json");
  http.addHeader("Authorization", "Bearer " DEVICE_KEY);
  int status = http.POST(reinterpret_cast<uint8_t*>(body), len);
  String retry_after = http.header("Retry-After");
  String answer = status > 0 ? http.getString() : String(HTTPClient::errorToString(status));
  http.end();

  if (status == 201) {  // committed: {"accepted":N,"duplicates":M}
    ring_pop(n);
    backoff_s = 0;
    next_send_ms = millis();
    return;
  }
  Serial.printf("POST of %u readings: %d %s\n", (unsigned)n, status, answer.c_str());
  if ((status == 429 || status == 503) && retry_after.length() > 0) {
    fail_later((uint32_t)retry_after.toInt());
  } else if (status <= 0 || status == 408 || status == 429 || status >= 500) {
    backoff();  // no answer or a temporary refusal: keep the batch
  } else {
    ring_pop(n);  // 400/401/403/404/413/415...: fix the device, these bytes will not pass
    backoff_s = 0;
  }
}

}  // namespace

void setup() {
  Serial.begin(115200);
  WiFi.mode(WIFI_STA);
  WiFi.setAutoReconnect(true);
  WiFi.begin(WIFI_SSID, WIFI_PASSWORD);
  configTime(0, 0, NTP_SERVER_1, NTP_SERVER_2);  // UTC; the server stores UTC
#ifdef METERHUB_CA_CERT
  net_client.setCACert(METERHUB_CA_CERT);
#endif
  Serial.printf("meterhub: %s -> %s\n", METER_ID, METERHUB_URL);
}

void loop() {
  uint32_t now = millis();
  if ((int32_t)(now - next_read_ms) >= 0) {
    next_read_ms = now + READ_INTERVAL_S * 1000UL;
    read_pzem();
  }
  if (ring_count > 0 && WiFi.status() == WL_CONNECTED &&
      (int32_t)(millis() - next_send_ms) >= 0) {
    send_batch();
  }
  static uint32_t reported_overwritten = 0;
  if (ring_overwritten != reported_overwritten) {
    Serial.printf("buffer full: %lu readings lost so far\n", (unsigned long)ring_overwritten);
    reported_overwritten = ring_overwritten;
  }
  delay(50);
}
