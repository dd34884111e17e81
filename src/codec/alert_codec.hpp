// JSON ⇄ alert rules and alert records (docs/alerts.md, docs/api.md
// "Alerts"). Rule bodies are validated completely here: a rule set that
// decodes is one the engine can run (finite numbers within the field's
// range, hysteresis smaller than the room the threshold leaves, one rule per
// kind), so the API answers every mistake with 400 and a message naming the
// field, and nothing is stored.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "alerts/rules.hpp"
#include "core/error.hpp"
#include "store/store.hpp"

namespace meterhub::codec {

// {"rules":[{"kind":"over_voltage","threshold":253,"hysteresis":3,"hold_s":5}, ...]}
// Errors: code "invalid_alert_rules" (field e.g. "rules[1].hysteresis"), or
// "empty_body" / "malformed_json".
core::Result<std::vector<alerts::Rule>> decode_alert_rules(std::string_view body);

// The canonical form of a rule set (what GET returns and the store keeps).
std::string encode_alert_rules(const std::vector<alerts::Rule>& rules);

// One alert as the API shows it (times as ISO-8601, "active" = not cleared).
void append_alert_json(std::string& out, const store::AlertRecord& a);
std::string encode_alert(const store::AlertRecord& a);
// The /ws message and webhook body: {"type":"alert","event":"raised"|"cleared","alert":{...}}
std::string encode_ws_alert(const store::AlertRecord& a);

}  // namespace meterhub::codec
