#include "core/kafka/property_policy.h"

#include <algorithm>
#include <iterator>
#include <cctype>

namespace streamrec {

namespace {

struct property_rule {
  std::string_view name;
  kafka_property_access access;
  std::string_view reason;  // for superuser-only and reserved properties
};

constexpr auto A = kafka_property_access::admin;
constexpr auto S = kafka_property_access::superuser;
constexpr auto R = kafka_property_access::reserved;

constexpr std::string_view runs_kinit =
    "librdkafka runs it as a shell command, as the database server's operating-system user";
constexpr std::string_view in_kinit =
    "librdkafka substitutes it into the kinit shell command it runs as the database server's operating-system user";
constexpr std::string_view times_kinit =
    "it sets how often librdkafka runs the kinit shell command as the database server's operating-system user";
constexpr std::string_view sends_file =
    "librdkafka reads the file as the database server's operating-system user and sends its contents "
    "to the identity provider";
constexpr std::string_view loads_code = "librdkafka loads a shared library into the server process";
constexpr std::string_view server_log = "it writes librdkafka's internals to the server log";
constexpr std::string_view offsets_in_pg = "offsets are kept in PostgreSQL, committed with the rows they produced";
constexpr std::string_view sink_delivery =
    "sinks always use the idempotent producer with acks=all and never give up on a row";

// Names as librdkafka spells them, aliases included: an alias of a
// refused property must be refused as well. Sorted by name: looked up by binary search.
constexpr property_rule rules[] = {
    {"acks", R, sink_delivery},
    {"allow.auto.create.topics", A, {}},
    {"api.version.fallback.ms", A, {}},
    {"api.version.request", A, {}},
    {"api.version.request.timeout.ms", A, {}},
    {"auto.commit.enable", R, offsets_in_pg},
    {"auto.commit.interval.ms", R, offsets_in_pg},
    {"auto.offset.reset", A, {}},
    {"batch.num.messages", A, {}},
    {"batch.size", A, {}},
    {"bootstrap.servers", R, "use the brokers argument (or the streamrec.brokers setting)"},
    {"broker.address.family", A, {}},
    {"broker.address.ttl", A, {}},
    {"broker.version.fallback", A, {}},
    {"check.crcs", A, {}},
    {"client.dns.lookup", A, {}},
    {"client.id", A, {}},
    {"client.rack", A, {}},
    {"compression.codec", A, {}},
    {"compression.level", A, {}},
    {"compression.type", A, {}},
    {"connections.max.idle.ms", A, {}},
    {"coordinator.query.interval.ms", A, {}},
    {"debug", S, server_log},
    {"delivery.report.only.error", R, "a sink deletes a delivered row on its success report"},
    {"delivery.timeout.ms", R, sink_delivery},
    {"enable.auto.commit", R, offsets_in_pg},
    {"enable.auto.offset.store", R, offsets_in_pg},
    {"enable.gapless.guarantee", R, sink_delivery},
    {"enable.idempotence", R, sink_delivery},
    {"enable.metrics.push", A, {}},
    {"enable.partition.eof", R, "the source worker sets it"},
    {"enable.sasl.oauthbearer.unsecure.jwt", A, {}},
    {"enable.ssl.certificate.verification", A, {}},
    {"fetch.error.backoff.ms", A, {}},
    {"fetch.max.bytes", A, {}},
    {"fetch.message.max.bytes", A, {}},
    {"fetch.min.bytes", A, {}},
    {"fetch.queue.backoff.ms", A, {}},
    {"fetch.wait.max.ms", A, {}},
    {"group.id", R, "use the group_id option"},
    {"group.instance.id", A, {}},
    {"group.protocol", A, {}},
    {"group.protocol.type", A, {}},
    {"group.remote.assignor", A, {}},
    {"heartbeat.interval.ms", A, {}},
    {"https.ca.location", A, {}},
    {"https.ca.pem", A, {}},
    {"internal.termination.signal", R, "signal handling in a server process belongs to PostgreSQL"},
    {"isolation.level", A, {}},
    {"linger.ms", A, {}},
    {"log.connection.close", A, {}},
    {"log_level", S, server_log},
    {"max.in.flight", A, {}},
    {"max.in.flight.requests.per.connection", A, {}},
    {"max.partition.fetch.bytes", A, {}},
    {"max.poll.interval.ms", A, {}},
    {"message.copy.max.bytes", A, {}},
    {"message.max.bytes", A, {}},
    {"message.send.max.retries", A, {}},
    {"message.timeout.ms", R, sink_delivery},
    {"metadata.broker.list", R, "use the brokers argument (or the streamrec.brokers setting)"},
    {"metadata.max.age.ms", A, {}},
    {"metadata.recovery.rebootstrap.trigger.ms", A, {}},
    {"metadata.recovery.strategy", A, {}},
    {"offset.store.method", R, offsets_in_pg},
    {"offset.store.path", R, offsets_in_pg},
    {"offset.store.sync.interval.ms", R, offsets_in_pg},
    {"partition.assignment.strategy", A, {}},
    {"partitioner", A, {}},
    {"plugin.library.paths", S, loads_code},
    {"queue.buffering.backpressure.threshold", A, {}},
    {"queue.buffering.max.kbytes", R, "the sink sizes librdkafka's queue to its window of rows"},
    {"queue.buffering.max.messages", R, "the sink sizes librdkafka's queue to its window of rows"},
    {"queue.buffering.max.ms", A, {}},
    {"queued.max.messages.kbytes", A, {}},
    {"queued.min.messages", A, {}},
    {"queuing.strategy", R, "a sink delivers rows in order"},
    {"receive.message.max.bytes", A, {}},
    {"reconnect.backoff.max.ms", A, {}},
    {"reconnect.backoff.ms", A, {}},
    {"request.required.acks", R, sink_delivery},
    {"request.timeout.ms", A, {}},
    {"retries", A, {}},
    {"retry.backoff.max.ms", A, {}},
    {"retry.backoff.ms", A, {}},
    {"sasl.kerberos.keytab", S, in_kinit},
    {"sasl.kerberos.kinit.cmd", S, runs_kinit},
    {"sasl.kerberos.min.time.before.relogin", S, times_kinit},
    {"sasl.kerberos.principal", S, in_kinit},
    {"sasl.kerberos.service.name", A, {}},
    {"sasl.mechanism", A, {}},
    {"sasl.mechanisms", A, {}},
    {"sasl.oauthbearer.assertion.algorithm", A, {}},
    {"sasl.oauthbearer.assertion.claim.aud", A, {}},
    {"sasl.oauthbearer.assertion.claim.exp.seconds", A, {}},
    {"sasl.oauthbearer.assertion.claim.iss", A, {}},
    {"sasl.oauthbearer.assertion.claim.jti.include", A, {}},
    {"sasl.oauthbearer.assertion.claim.nbf.seconds", A, {}},
    {"sasl.oauthbearer.assertion.claim.sub", A, {}},
    {"sasl.oauthbearer.assertion.file", S, sends_file},
    {"sasl.oauthbearer.assertion.jwt.template.file", S, sends_file},
    {"sasl.oauthbearer.assertion.private.key.file", S,
     "librdkafka reads a private key from a file of the database server"},
    {"sasl.oauthbearer.assertion.private.key.passphrase", A, {}},
    {"sasl.oauthbearer.assertion.private.key.pem", A, {}},
    {"sasl.oauthbearer.client.credentials.client.id", A, {}},
    {"sasl.oauthbearer.client.credentials.client.secret", A, {}},
    {"sasl.oauthbearer.client.id", A, {}},
    {"sasl.oauthbearer.client.secret", A, {}},
    {"sasl.oauthbearer.config", A, {}},
    {"sasl.oauthbearer.extensions", A, {}},
    {"sasl.oauthbearer.grant.type", A, {}},
    {"sasl.oauthbearer.metadata.authentication.type", A, {}},
    {"sasl.oauthbearer.method", A, {}},
    {"sasl.oauthbearer.scope", A, {}},
    {"sasl.oauthbearer.token.endpoint.url", A, {}},
    {"sasl.password", A, {}},
    {"sasl.username", A, {}},
    {"security.protocol", A, {}},
    {"session.timeout.ms", A, {}},
    {"socket.connection.setup.timeout.ms", A, {}},
    {"socket.keepalive.enable", A, {}},
    {"socket.max.fails", A, {}},
    {"socket.nagle.disable", A, {}},
    {"socket.receive.buffer.bytes", A, {}},
    {"socket.send.buffer.bytes", A, {}},
    {"socket.timeout.ms", A, {}},
    {"ssl.ca.location", A, {}},
    {"ssl.ca.pem", A, {}},
    {"ssl.certificate.location", A, {}},
    {"ssl.certificate.pem", A, {}},
    {"ssl.cipher.suites", A, {}},
    {"ssl.crl.location", A, {}},
    {"ssl.curves.list", A, {}},
    {"ssl.endpoint.identification.algorithm", A, {}},
    {"ssl.engine.id", S, "OpenSSL loads the named engine into the server process"},
    {"ssl.engine.location", S, loads_code},
    {"ssl.key.location", A, {}},
    {"ssl.key.password", A, {}},
    {"ssl.key.pem", A, {}},
    {"ssl.keystore.location", A, {}},
    {"ssl.keystore.password", A, {}},
    {"ssl.providers", S, "OpenSSL loads provider modules into the server process"},
    {"ssl.sigalgs.list", A, {}},
    {"statistics.interval.ms", R, "the workers read librdkafka's statistics every second"},
    {"sticky.partitioning.linger.ms", A, {}},
    {"topic.metadata.propagation.max.ms", A, {}},
    {"topic.metadata.refresh.fast.interval.ms", A, {}},
    {"topic.metadata.refresh.interval.ms", A, {}},
    {"topic.metadata.refresh.sparse", A, {}},
    {"transaction.timeout.ms", R, sink_delivery},
    {"transactional.id", R, sink_delivery},
};

const property_rule* find_rule(std::string_view name) {
  const property_rule* end = std::end(rules);
  const property_rule* found = std::lower_bound(std::begin(rules), end, name,
                                                [](const property_rule& r, std::string_view n) { return r.name < n; });
  return found != end && found->name == name ? found : nullptr;
}

std::string lower(std::string_view text) {
  std::string out(text);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

bool token_char(char c) { return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '_' || c == '.' || c == '-'; }

}  // namespace

kafka_property_access kafka_property_class(std::string_view name) {
  const property_rule* rule = find_rule(name);
  return rule == nullptr ? kafka_property_access::unknown : rule->access;
}

std::string_view kafka_property_reason(std::string_view name) {
  const property_rule* rule = find_rule(name);
  return rule == nullptr ? std::string_view() : rule->reason;
}

const std::string& kafka_admin_properties() {
  static const std::string list = [] {
    std::string out;
    for (const property_rule& rule : rules) {
      if (rule.access != kafka_property_access::admin) continue;
      if (!out.empty()) out += ", ";
      out += rule.name;
    }
    return out;
  }();
  return list;
}

std::optional<kafka_property_problem> check_kafka_properties(const std::map<std::string, std::string>& properties,
                                                             bool superuser) {
  for (const auto& [name, value] : properties) {
    (void)value;
    const kafka_property_access access = kafka_property_class(name);
    if (access == kafka_property_access::admin) continue;
    if (access == kafka_property_access::superuser && superuser) continue;
    kafka_property_problem p;
    p.access = access;
    p.property = name;
    if (access == kafka_property_access::unknown) {
      p.message = "option \"kafka\" may not set unknown property \"" + name + "\"";
      p.hint = "Properties allowed: " + kafka_admin_properties() + ".";
    } else if (access == kafka_property_access::reserved) {
      p.message = "option \"kafka\" may not set \"" + name + "\"";
      p.detail = "pg_streamrec sets it itself: " + std::string(kafka_property_reason(name)) + ".";
      p.hint = "Remove \"" + name + "\" from the kafka option.";
    } else {
      p.message = "only a superuser may set Kafka property \"" + name + "\"";
      p.detail = std::string("It is superuser-only because ") + std::string(kafka_property_reason(name)) + ".";
      p.hint = "Remove it, or have a superuser create the source or sink (its workers then run as that superuser).";
    }
    return p;
  }
  if (superuser) return std::nullopt;
  // GSSAPI: librdkafka runs kinit (its default command) when a SASL connection starts.
  auto mechanism = properties.find("sasl.mechanism");
  if (mechanism == properties.end()) mechanism = properties.find("sasl.mechanisms");
  auto protocol = properties.find("security.protocol");
  const bool sasl = protocol != properties.end() && lower(protocol->second).rfind("sasl_", 0) == 0;
  const bool gssapi = mechanism != properties.end() ? lower(mechanism->second) == "gssapi" : sasl;
  if (gssapi) {
    kafka_property_problem p;
    p.access = kafka_property_access::superuser;
    p.property = mechanism != properties.end() ? mechanism->first : "sasl.mechanism";
    p.message = "only a superuser may use SASL mechanism GSSAPI (Kerberos)";
    p.detail =
        "With it librdkafka runs kinit, a shell command, as the database server's operating-system user; "
        "it is librdkafka's default mechanism under a SASL security.protocol.";
    p.hint =
        "Set sasl.mechanism to PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or OAUTHBEARER, or have a superuser "
        "create the source or sink.";
    return p;
  }
  return std::nullopt;
}

bool kafka_property_is_secret(std::string_view name) {
  const std::string n = lower(name);
  for (std::string_view word : {"password", "secret", "passphrase", "private", "credential", "token", "jaas"}) {
    // "credentials.client.id" and "token.endpoint.url" name no secret.
    if (n.find(word) == std::string::npos) continue;
    if (n == "sasl.oauthbearer.client.credentials.client.id" || n == "sasl.oauthbearer.token.endpoint.url") continue;
    return true;
  }
  const std::string_view key_pem = "key.pem";
  if (n.size() >= key_pem.size() && n.compare(n.size() - key_pem.size(), key_pem.size(), key_pem) == 0) return true;
  return n == "sasl.oauthbearer.config";
}

std::string describe_refused_property(std::string_view librdkafka_message) {
  if (librdkafka_message.find("No such configuration property") != std::string_view::npos)
    return "librdkafka knows no such property";
  const std::string_view range = "allowed range ";
  if (size_t at = librdkafka_message.find(range); at != std::string_view::npos) {
    std::string_view bounds = librdkafka_message.substr(at + range.size());
    size_t end = 0;
    while (end < bounds.size() &&
           (std::isdigit(static_cast<unsigned char>(bounds[end])) != 0 || bounds[end] == '.' || bounds[end] == '-'))
      end++;
    return "the value is outside the allowed range " + std::string(bounds.substr(0, end));
  }
  if (librdkafka_message.find("Invalid value") != std::string_view::npos) return "librdkafka does not accept the value";
  return "librdkafka refused the value";
}

std::string redact_property_values(std::string text, const std::map<std::string, std::string>& properties) {
  for (const auto& [name, value] : properties) {
    (void)name;
    if (value.empty()) continue;
    const bool anywhere = value.size() >= 6;
    for (size_t at = text.find(value); at != std::string::npos; at = text.find(value, at)) {
      const size_t end = at + value.size();
      const bool bounded = (at == 0 || !token_char(text[at - 1])) && (end == text.size() || !token_char(text[end]));
      if (anywhere || bounded) {
        text.replace(at, value.size(), "***");
        at += 3;
      } else {
        at = end;
      }
    }
  }
  return text;
}

}  // namespace streamrec
