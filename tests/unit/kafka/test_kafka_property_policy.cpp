// The librdkafka property allow-list: what an admin may set, what only a superuser may set,
// what nobody may set, and that secrets and values never reach a message.
#include <gtest/gtest.h>

#include <map>
#include <string>

#include "core/kafka/property_policy.h"

namespace streamrec {
namespace {

using props = std::map<std::string, std::string>;

TEST(KafkaPropertyPolicy, AdminPropertiesAreAllowed) {
  const props p = {{"security.protocol", "SASL_SSL"},
                   {"sasl.mechanism", "SCRAM-SHA-512"},
                   {"sasl.username", "app"},
                   {"sasl.password", "pw"},
                   {"ssl.ca.location", "/etc/ssl/certs/ca.pem"},
                   {"ssl.key.pem", "-----BEGIN PRIVATE KEY-----"},
                   {"ssl.certificate.pem", "-----BEGIN CERTIFICATE-----"},
                   {"client.id", "me"},
                   {"client.rack", "r1"},
                   {"session.timeout.ms", "6000"},
                   {"fetch.max.bytes", "1000000"},
                   {"linger.ms", "5"},
                   {"compression.type", "lz4"},
                   {"retries", "3"},
                   {"retry.backoff.ms", "100"},
                   {"socket.keepalive.enable", "true"},
                   {"topic.metadata.refresh.interval.ms", "1000"},
                   {"sasl.oauthbearer.token.endpoint.url", "https://idp/token"},
                   {"sasl.oauthbearer.client.secret", "s"}};
  EXPECT_FALSE(check_kafka_properties(p, false).has_value());
  EXPECT_FALSE(check_kafka_properties(p, true).has_value());
}

TEST(KafkaPropertyPolicy, EveryListedAdminPropertyIsFoundByLookup) {
  // The hint's list comes from the same table the lookup searches (binary search: sorted).
  const std::string& list = kafka_admin_properties();
  size_t count = 0;
  for (size_t pos = 0; pos < list.size();) {
    size_t comma = list.find(", ", pos);
    const std::string name = list.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
    EXPECT_EQ(kafka_property_class(name), kafka_property_access::admin) << name;
    count++;
    pos = comma == std::string::npos ? list.size() : comma + 2;
  }
  EXPECT_GT(count, 100u);
  EXPECT_EQ(list.find("kinit"), std::string::npos);
  EXPECT_EQ(list.find("plugin"), std::string::npos);
  EXPECT_EQ(list.find("bootstrap.servers"), std::string::npos);
}

TEST(KafkaPropertyPolicy, KinitExampleIsSuperuserOnly) {
  const props p = {{"security.protocol", "SASL_PLAINTEXT"},
                   {"sasl.mechanisms", "GSSAPI"},
                   {"sasl.kerberos.kinit.cmd", "id > proof.txt"}};
  const auto problem = check_kafka_properties(p, false);
  ASSERT_TRUE(problem.has_value());
  EXPECT_EQ(problem->access, kafka_property_access::superuser);
  EXPECT_EQ(problem->property, "sasl.kerberos.kinit.cmd");
  EXPECT_NE(problem->message.find("only a superuser"), std::string::npos) << problem->message;
  EXPECT_NE(problem->detail.find("shell command"), std::string::npos) << problem->detail;
  EXPECT_FALSE(problem->hint.empty());
  EXPECT_EQ(problem->message.find("proof.txt"), std::string::npos);
  EXPECT_FALSE(check_kafka_properties(p, true).has_value());
}

TEST(KafkaPropertyPolicy, PropertiesThatRunLoadOrSendFilesAreSuperuserOnly) {
  for (const char* name :
       {"sasl.kerberos.kinit.cmd", "sasl.kerberos.keytab", "sasl.kerberos.principal",
        "sasl.kerberos.min.time.before.relogin", "plugin.library.paths", "ssl.engine.location", "ssl.engine.id",
        "ssl.providers", "debug", "log_level", "sasl.oauthbearer.assertion.file",
        "sasl.oauthbearer.assertion.jwt.template.file", "sasl.oauthbearer.assertion.private.key.file"}) {
    EXPECT_EQ(kafka_property_class(name), kafka_property_access::superuser) << name;
    EXPECT_FALSE(kafka_property_reason(name).empty()) << name;
    const auto problem = check_kafka_properties({{name, "x"}}, false);
    ASSERT_TRUE(problem.has_value()) << name;
    EXPECT_EQ(problem->access, kafka_property_access::superuser) << name;
    EXPECT_FALSE(check_kafka_properties({{name, "x"}}, true).has_value()) << name;
  }
}

TEST(KafkaPropertyPolicy, GssapiIsSuperuserOnlyAlsoAsTheDefaultMechanism) {
  for (const props& p : {props{{"sasl.mechanism", "gssapi"}}, props{{"sasl.mechanisms", "GSSAPI"}},
                         props{{"security.protocol", "SASL_SSL"}}, props{{"security.protocol", "sasl_plaintext"}}}) {
    const auto problem = check_kafka_properties(p, false);
    ASSERT_TRUE(problem.has_value()) << p.begin()->first;
    EXPECT_EQ(problem->access, kafka_property_access::superuser);
    EXPECT_NE(problem->message.find("GSSAPI"), std::string::npos);
    EXPECT_NE(problem->hint.find("SCRAM-SHA-256"), std::string::npos);
    EXPECT_FALSE(check_kafka_properties(p, true).has_value());
  }
  EXPECT_FALSE(check_kafka_properties({{"security.protocol", "SASL_SSL"}, {"sasl.mechanism", "PLAIN"}}, false));
  EXPECT_FALSE(check_kafka_properties({{"security.protocol", "SSL"}}, false));
}

TEST(KafkaPropertyPolicy, ReservedPropertiesAreRefusedForEveryone) {
  for (const char* name :
       {"bootstrap.servers", "metadata.broker.list", "group.id", "enable.auto.commit", "enable.auto.offset.store",
        "auto.commit.enable", "offset.store.path", "enable.idempotence", "acks", "request.required.acks",
        "transactional.id", "message.timeout.ms", "delivery.timeout.ms", "statistics.interval.ms",
        "enable.partition.eof", "internal.termination.signal", "delivery.report.only.error"}) {
    EXPECT_EQ(kafka_property_class(name), kafka_property_access::reserved) << name;
    for (bool superuser : {false, true}) {
      const auto problem = check_kafka_properties({{name, "x"}}, superuser);
      ASSERT_TRUE(problem.has_value()) << name;
      EXPECT_EQ(problem->access, kafka_property_access::reserved) << name;
      EXPECT_NE(problem->message.find(name), std::string::npos) << problem->message;
      EXPECT_FALSE(problem->detail.empty()) << name;
    }
  }
}

TEST(KafkaPropertyPolicy, UnknownPropertiesAreRefusedWithTheListInTheHint) {
  // Case matters to librdkafka, and "topic." prefixes reach topic properties: both unknown here.
  for (const char* name : {"no.such.property", "SASL.KERBEROS.KINIT.CMD", "topic.acks", "interceptors", ""}) {
    for (bool superuser : {false, true}) {
      const auto problem = check_kafka_properties({{name, "x"}}, superuser);
      ASSERT_TRUE(problem.has_value()) << name;
      EXPECT_EQ(problem->access, kafka_property_access::unknown) << name;
      EXPECT_NE(problem->hint.find("security.protocol"), std::string::npos);
      EXPECT_NE(problem->hint.find("sasl.password"), std::string::npos);
    }
  }
}

TEST(KafkaPropertyPolicy, ProblemsNeverCarryValues) {
  const std::string value = "VALUE-THAT-MUST-NOT-SHOW";
  for (const char* name : {"no.such", "sasl.kerberos.kinit.cmd", "group.id"}) {
    const auto problem = check_kafka_properties({{name, value}}, false);
    ASSERT_TRUE(problem.has_value());
    for (const std::string& text : {problem->message, problem->detail, problem->hint})
      EXPECT_EQ(text.find(value), std::string::npos) << text;
  }
}

TEST(KafkaPropertyPolicy, SecretNamesAreMasked) {
  for (const char* name :
       {"sasl.password", "ssl.key.password", "ssl.key.pem", "ssl.keystore.password", "sasl.oauthbearer.client.secret",
        "sasl.oauthbearer.client.credentials.client.secret", "sasl.oauthbearer.assertion.private.key.pem",
        "sasl.oauthbearer.assertion.private.key.passphrase", "sasl.oauthbearer.config", "sasl.jaas.config",
        "some.future.Password"})
    EXPECT_TRUE(kafka_property_is_secret(name)) << name;
  for (const char* name : {"sasl.username", "security.protocol", "ssl.key.location", "ssl.certificate.pem",
                           "ssl.ca.pem", "client.id", "sasl.oauthbearer.client.id",
                           "sasl.oauthbearer.client.credentials.client.id", "sasl.oauthbearer.token.endpoint.url"})
    EXPECT_FALSE(kafka_property_is_secret(name)) << name;
}

TEST(KafkaPropertyPolicy, RefusedPropertyDescriptionsDropTheValue) {
  EXPECT_EQ(describe_refused_property("Invalid value \"s3cr3t\" for configuration property \"compression.codec\""),
            "librdkafka does not accept the value");
  EXPECT_EQ(describe_refused_property(
                "Configuration property \"queue.buffering.max.ms\" value 1e+08 is outside allowed range 0..900000\n"),
            "the value is outside the allowed range 0..900000");
  EXPECT_EQ(describe_refused_property("No such configuration property: \"x.y\""), "librdkafka knows no such property");
  EXPECT_EQ(describe_refused_property("anything else \"secret\""), "librdkafka refused the value");
}

TEST(KafkaPropertyPolicy, RedactionReplacesValuesButNotUnrelatedDigits) {
  const props p = {{"sasl.mechanism", "NOPE-SECRET"}, {"retries", "1"}};
  EXPECT_EQ(redact_property_values("Unsupported SASL mechanism: NOPE-SECRET", p), "Unsupported SASL mechanism: ***");
  EXPECT_EQ(redact_property_values("range 0..10 retries 1", p), "range 0..10 retries ***");
  EXPECT_EQ(redact_property_values("xNOPE-SECRETy", p), "x***y");
}

}  // namespace
}  // namespace streamrec
