// The sandbox broker's schema registry, admin routing and command line, without sockets.
#include <gtest/gtest.h>

#include <simdjson.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "tools/sandbox_broker/http_text.h"
#include "tools/sandbox_broker/sandbox_options.h"
#include "tools/sandbox_broker/sandbox_router.h"
#include "tools/sandbox_broker/schema_registry.h"
#include "core/formats/json_writer.h"

namespace streamrec {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

std::string json_quoted(std::string_view text) {
  std::string out;
  append_json_string(out, text);
  return out;
}

// Records what the admin endpoints asked of the cluster, and answers as told.
class RecordingCluster : public ClusterControl {
 public:
  AdminResult set_broker_up(int32_t broker_id, bool up) override {
    broker_calls.emplace_back(broker_id, up);
    return next_result;
  }
  AdminResult create_topic(const std::string &name, int partitions) override {
    topic_calls.emplace_back(name, partitions);
    return next_result;
  }

  AdminResult set_topic_missing(const std::string &name, bool missing, int partitions) override {
    missing_calls.emplace_back(name, missing, partitions);
    return next_result;
  }

  AdminResult next_result;
  std::vector<std::tuple<std::string, bool, int>> missing_calls;
  std::vector<std::pair<int32_t, bool>> broker_calls;
  std::vector<std::pair<std::string, int>> topic_calls;
};

class SandboxRouterTest : public ::testing::Test {
 protected:
  SandboxRouterTest() : router_(registry_, cluster_, [this] { return now_; }) {}

  HttpResponse call(const std::string &method, const std::string &path, const std::string &body = "",
                    std::map<std::string, std::string> query = {}) {
    return router_.handle(HttpRequest{method, path, std::move(query), body});
  }

  // The body Confluent clients send: the schema text as a JSON string.
  static std::string schema_body(const std::string &schema_text) {
    return "{\"schema\":" + json_quoted(schema_text) + "}";
  }

  HttpResponse register_schema(const std::string &subject, const std::string &schema_text) {
    return call("POST", "/subjects/" + subject + "/versions", schema_body(schema_text));
  }

  void expect(const HttpResponse &response, int status, const std::string &body) {
    EXPECT_EQ(response.status, status) << response.body;
    EXPECT_EQ(response.body, body);
  }

  SchemaRegistry registry_;
  RecordingCluster cluster_;
  std::chrono::steady_clock::time_point now_{seconds(1000)};
  SandboxRouter router_;
};

const std::string kUserSchema = R"({"type":"record","name":"User","fields":[{"name":"id","type":"string"}]})";
const std::string kUserSchemaEscaped =
    R"({\"type\":\"record\",\"name\":\"User\",\"fields\":[{\"name\":\"id\",\"type\":\"string\"}]})";
const std::string kClickSchema = R"({"type":"record","name":"Click","fields":[{"name":"user_id","type":"string"}]})";

// --- text helpers ---------------------------------------------------------------------------------

TEST(SandboxHttpText, DecodePathSegment) {
  EXPECT_EQ(decode_path_segment("orders-value"), "orders-value");
  EXPECT_EQ(decode_path_segment("team%2Forders"), "team/orders");
  EXPECT_EQ(decode_path_segment("%7e%7E"), "~~");
  EXPECT_EQ(decode_path_segment("a+b"), "a+b");  // '+' means a space only in query strings
  EXPECT_EQ(decode_path_segment("caf%C3%A9"), "caf\xc3\xa9");
  EXPECT_EQ(decode_path_segment(""), "");
  EXPECT_EQ(decode_path_segment("%zz"), std::nullopt);
  EXPECT_EQ(decode_path_segment("abc%2"), std::nullopt);
  EXPECT_EQ(decode_path_segment("abc%"), std::nullopt);
  EXPECT_EQ(decode_path_segment("%00"), std::nullopt);
  EXPECT_EQ(decode_path_segment("%ff"), std::nullopt);  // not UTF-8
}

TEST(SandboxHttpText, ParseInteger) {
  EXPECT_EQ(parse_bounded_integer("42", 1, 100), 42);
  EXPECT_EQ(parse_bounded_integer("-1", -1, 100), -1);
  EXPECT_EQ(parse_bounded_integer("0", 1, 100), std::nullopt);
  EXPECT_EQ(parse_bounded_integer("101", 1, 100), std::nullopt);
  EXPECT_EQ(parse_bounded_integer("", 1, 100), std::nullopt);
  EXPECT_EQ(parse_bounded_integer("4x", 1, 100), std::nullopt);
  EXPECT_EQ(parse_bounded_integer(" 4", 1, 100), std::nullopt);
  EXPECT_EQ(parse_bounded_integer("99999999999999999999999", 1, 100), std::nullopt);
}

// --- schema registry ------------------------------------------------------------------------------

TEST_F(SandboxRouterTest, RegisterAssignsIdsAndVersions) {
  HttpResponse first = register_schema("users-value", kUserSchema);
  expect(first, 200, R"({"id":1})");
  EXPECT_EQ(first.content_type, "application/vnd.schemaregistry.v1+json");

  // The same schema again, and reformatted: the existing id, no new version.
  expect(register_schema("users-value", kUserSchema), 200, R"({"id":1})");
  expect(register_schema("users-value",
                         "{ \"type\": \"record\",\n  \"name\": \"User\", \"fields\": "
                         "[ {\"name\": \"id\", \"type\": \"string\"} ] }"),
         200, R"({"id":1})");
  expect(call("GET", "/subjects/users-value/versions"), 200, "[1]");

  // A new schema under the subject is its next version, with the next global id.
  expect(register_schema("users-value", kClickSchema), 200, R"({"id":2})");
  expect(call("GET", "/subjects/users-value/versions"), 200, "[1,2]");

  // Re-registering an older version returns its id without adding a version.
  expect(register_schema("users-value", kUserSchema), 200, R"({"id":1})");
  expect(call("GET", "/subjects/users-value/versions"), 200, "[1,2]");
}

TEST_F(SandboxRouterTest, SameSchemaUnderAnotherSubjectReusesTheGlobalId) {
  expect(register_schema("users-value", kUserSchema), 200, R"({"id":1})");
  expect(register_schema("clicks-value", kClickSchema), 200, R"({"id":2})");
  expect(register_schema("archive-value", kUserSchema), 200, R"({"id":1})");
  expect(call("GET", "/subjects/archive-value/versions/latest"), 200,
         R"({"subject":"archive-value","version":1,"id":1,"schema":")" + kUserSchemaEscaped + R"("})");
  expect(call("GET", "/subjects"), 200, R"(["archive-value","clicks-value","users-value"])");
}

TEST_F(SandboxRouterTest, GetByIdLatestAndNumberedVersion) {
  register_schema("users-value", kUserSchema);
  register_schema("users-value", kClickSchema);

  expect(call("GET", "/schemas/ids/1"), 200, R"({"schema":")" + kUserSchemaEscaped + R"("})");
  expect(call("GET", "/subjects/users-value/versions/1"), 200,
         R"({"subject":"users-value","version":1,"id":1,"schema":")" + kUserSchemaEscaped + R"("})");
  const HttpResponse latest = call("GET", "/subjects/users-value/versions/latest");
  EXPECT_EQ(latest.status, 200);
  EXPECT_EQ(latest.body.rfind(R"({"subject":"users-value","version":2,"id":2,"schema":)", 0), 0u) << latest.body;
  EXPECT_EQ(call("GET", "/subjects/users-value/versions/-1").body, latest.body);

  // The /schema variants answer with the schema document itself.
  expect(call("GET", "/schemas/ids/2/schema"), 200, kClickSchema);
  expect(call("GET", "/subjects/users-value/versions/1/schema"), 200, kUserSchema);
}

TEST_F(SandboxRouterTest, ConfluentErrorsForUnknownThings) {
  register_schema("users-value", kUserSchema);

  expect(call("GET", "/schemas/ids/2"), 404, R"({"error_code":40403,"message":"Schema not found"})");
  expect(call("GET", "/schemas/ids/0"), 404, R"({"error_code":40403,"message":"Schema not found"})");
  expect(call("GET", "/schemas/ids/abc"), 404, R"({"error_code":40403,"message":"Schema not found"})");
  expect(call("GET", "/subjects/nope/versions"), 404, R"({"error_code":40401,"message":"Subject 'nope' not found."})");
  expect(call("GET", "/subjects/nope/versions/latest"), 404,
         R"({"error_code":40401,"message":"Subject 'nope' not found."})");
  expect(call("GET", "/subjects/users-value/versions/3"), 404,
         R"({"error_code":40402,"message":"Version 3 not found."})");
  const HttpResponse bad_version = call("GET", "/subjects/users-value/versions/first");
  EXPECT_EQ(bad_version.status, 422);
  EXPECT_EQ(bad_version.body.rfind(R"({"error_code":42202,"message":"The specified version 'first')", 0), 0u)
      << bad_version.body;

  expect(call("GET", "/nothing/here"), 404, R"({"error_code":404,"message":"HTTP 404 Not Found"})");
  expect(call("GET", "/"), 404, R"({"error_code":404,"message":"HTTP 404 Not Found"})");
  expect(call("GET", "/subjects//versions"), 404, R"({"error_code":40401,"message":"Subject '' not found."})");
  expect(call("DELETE", "/subjects"), 405, R"({"error_code":405,"message":"HTTP 405 Method Not Allowed"})");
  expect(call("PUT", "/schemas/ids/1"), 405, R"({"error_code":405,"message":"HTTP 405 Method Not Allowed"})");
}

TEST_F(SandboxRouterTest, BadBodies) {
  expect(call("POST", "/subjects/s/versions", "not json"), 400,
         R"({"error_code":400,"message":"The request body is not valid JSON"})");
  expect(call("POST", "/subjects/s/versions", ""), 400,
         R"({"error_code":400,"message":"The request body is not valid JSON"})");
  const std::string missing =
      R"({"error_code":42201,"message":"Invalid schema: the body needs a string member \"schema\""})";
  expect(call("POST", "/subjects/s/versions", R"({"schema": 5})"), 422, missing);
  expect(call("POST", "/subjects/s/versions", R"({"schemas": "\"string\""})"), 422, missing);
  expect(call("POST", "/subjects/s/versions", R"(["\"string\""])"), 422, missing);
  expect(call("POST", "/subjects/s/versions", schema_body("{\"type\": ")), 422,
         R"({"error_code":42201,"message":"Invalid schema: the schema is not valid JSON"})");
  expect(
      call("POST", "/subjects/s/versions", R"({"schema": "\"string\"", "schemaType": "XML"})"), 422,
      R"({"error_code":42201,"message":"Invalid schema type: the sandbox registry stores AVRO, JSON and PROTOBUF schemas"})");
  // A reference must name a subject version that exists.
  expect(
      call("POST", "/subjects/s/versions",
           R"({"schema": "\"string\"", "references": [{"name": "x", "subject": "y", "version": 1}]})"),
      422,
      R"({"error_code":42201,"message":"Invalid schema: reference \"x\" names subject \"y\" version 1, which does not exist"})");
  expect(
      call("POST", "/subjects/s/versions", R"({"schema": "\"string\"", "references": [{"name": "x"}]})"), 422,
      R"({"error_code":42201,"message":"Invalid schema: a reference needs a string name and subject and a version number"})");
  // Nothing was stored by any of them.
  expect(call("GET", "/subjects"), 200, "[]");

  // An explicit AVRO type, a null type and empty references are fine.
  expect(call("POST", "/subjects/s/versions", R"({"schema": "\"string\"", "schemaType": "AVRO", "references": []})"),
         200, R"({"id":1})");
  expect(call("POST", "/subjects/s/versions", R"({"schema": "\"string\"", "schemaType": null})"), 200, R"({"id":1})");
}

TEST_F(SandboxRouterTest, ProtobufSchemasWithReferences) {
  const std::string common =
      R"({"schemaType": "PROTOBUF", "schema": "syntax = \"proto3\"; message M { int64 u = 1; }"})";
  expect(call("POST", "/subjects/common.proto/versions", common), 200, R"({"id":1})");
  const std::string order = R"({"schemaType": "PROTOBUF", "schema": "import \"common.proto\"; message O { M m = 1; }",)"
                            R"( "references": [{"name": "common.proto", "subject": "common.proto", "version": 1}]})";
  expect(call("POST", "/subjects/orders-value/versions", order), 200, R"({"id":2})");
  expect(call("POST", "/subjects/orders-value/versions", order), 200, R"({"id":2})");
  expect(call("GET", "/schemas/ids/2"), 200,
         R"({"schemaType":"PROTOBUF","references":[{"name":"common.proto","subject":"common.proto","version":1}],)"
         R"("schema":"import \"common.proto\"; message O { M m = 1; }"})");
  expect(call("GET", "/subjects/common.proto/versions/1"), 200,
         R"({"subject":"common.proto","version":1,"id":1,"schemaType":"PROTOBUF",)"
         R"("schema":"syntax = \"proto3\"; message M { int64 u = 1; }"})");
  // The same text without its references is another schema.
  expect(call("POST", "/subjects/other/versions",
              R"({"schemaType": "PROTOBUF", "schema": "import \"common.proto\"; message O { M m = 1; }"})"),
         200, R"({"id":3})");
}

TEST_F(SandboxRouterTest, JsonSchemaTypeIsReportedAndKeptApartFromAvro) {
  expect(call("POST", "/subjects/s/versions", R"({"schema": "\"string\""})"), 200, R"({"id":1})");
  expect(call("POST", "/subjects/s/versions", R"({"schema": "\"string\"", "schemaType": "JSON"})"), 200, R"({"id":2})");
  expect(call("GET", "/schemas/ids/2"), 200, R"({"schemaType":"JSON","schema":"\"string\""})");
  expect(call("GET", "/subjects/s/versions/2"), 200,
         R"({"subject":"s","version":2,"id":2,"schemaType":"JSON","schema":"\"string\""})");
}

TEST_F(SandboxRouterTest, SchemaTextRoundTripsThroughJsonEscaping) {
  // Quotes, backslashes, a newline, a tab, a control character and non-ASCII inside the schema.
  const std::string tricky =
      "{\"type\": \"record\", \"name\": \"R\", \"doc\": \"say \\\"hi\\\" \\\\ caf\xc3\xa9 "
      "\\u0001\",\n\t\"fields\": []}";
  expect(register_schema("tricky", tricky), 200, R"({"id":1})");
  const HttpResponse response = call("GET", "/schemas/ids/1");
  ASSERT_EQ(response.status, 200);
  EXPECT_EQ(response.body, "{\"schema\":" + json_quoted(tricky) + "}");

  simdjson::dom::parser parser;
  std::string_view schema;
  ASSERT_EQ(parser.parse(response.body)["schema"].get_string().get(schema), simdjson::SUCCESS);
  EXPECT_EQ(schema, tricky);
}

TEST_F(SandboxRouterTest, SubjectNamesAreEscapedInResponses) {
  // A quote, a backslash, a tab, a control character and UTF-8, all legal in a subject name.
  expect(register_schema("q%22b%5Cs%09c%01%C3%A9", "\"string\""), 200, R"({"id":1})");
  expect(call("GET", "/subjects"), 200, "[\"q\\\"b\\\\s\\tc\\u0001\xc3\xa9\"]");
  expect(call("GET", "/subjects/q%22b%5Cs%09c%01%C3%A9/versions/1"), 200,
         R"({"subject":"q\"b\\s\tc\u0001)"
         "\xc3\xa9"
         R"(","version":1,"id":1,"schema":"\"string\""})");
}

TEST_F(SandboxRouterTest, SubjectNamesInPathsAreUrlDecoded) {
  expect(register_schema("team%2Forders%20value", kUserSchema), 200, R"({"id":1})");
  expect(call("GET", "/subjects"), 200, R"(["team/orders value"])");
  expect(call("GET", "/subjects/team%2forders%20value/versions/1"), 200,
         R"({"subject":"team/orders value","version":1,"id":1,"schema":")" + kUserSchemaEscaped + R"("})");
  expect(call("GET", "/subjects/team%2Forders%zz/versions"), 400,
         R"({"error_code":400,"message":"Malformed percent-encoding in the path"})");
}

TEST_F(SandboxRouterTest, ApicurioCompatPrefixAnswersTheSameEndpoints) {
  expect(call("POST", "/apis/ccompat/v6/subjects/users-value/versions", schema_body(kUserSchema)), 200, R"({"id":1})");
  expect(call("GET", "/apis/ccompat/v6/schemas/ids/1"), 200, R"({"schema":")" + kUserSchemaEscaped + R"("})");
  expect(call("GET", "/apis/ccompat/v6/subjects/users-value/versions/latest"), 200,
         call("GET", "/subjects/users-value/versions/latest").body);
  expect(call("GET", "/apis/ccompat/v6/subjects/"), 200, R"(["users-value"])");
  expect(call("GET", "/apis/ccompat/v6/schemas/ids/7"), 404, R"({"error_code":40403,"message":"Schema not found"})");
  expect(call("GET", "/apis/ccompat/v5/schemas/ids/1"), 404, R"({"error_code":404,"message":"HTTP 404 Not Found"})");
}

TEST_F(SandboxRouterTest, LookUpASchemaUnderASubject) {
  register_schema("users-value", kUserSchema);
  register_schema("users-value", kClickSchema);
  expect(call("POST", "/subjects/users-value", schema_body(kUserSchema)), 200,
         R"({"subject":"users-value","version":1,"id":1,"schema":")" + kUserSchemaEscaped + R"("})");
  expect(call("POST", "/subjects/users-value", schema_body("\"string\"")), 404,
         R"({"error_code":40403,"message":"Schema not found"})");
  expect(call("POST", "/subjects/nope", schema_body(kUserSchema)), 404,
         R"({"error_code":40401,"message":"Subject 'nope' not found."})");
}

// --- admin endpoints ------------------------------------------------------------------------------

TEST_F(SandboxRouterTest, Health) {
  const HttpResponse health = call("GET", "/admin/health");
  expect(health, 200, R"({"ok":true})");
  EXPECT_EQ(health.content_type, "application/json");
}

TEST_F(SandboxRouterTest, RegistryDownForSomeSecondsThenBackUp) {
  register_schema("users-value", kUserSchema);
  expect(call("POST", "/admin/registry/down", "", {{"seconds", "5"}}), 200,
         R"({"ok":true,"registry":"down","seconds":5})");

  const std::string unavailable =
      R"j({"error_code":50301,"message":"Schema registry unavailable (sandbox fault injection)"})j";
  expect(call("GET", "/schemas/ids/1"), 503, unavailable);
  expect(call("GET", "/apis/ccompat/v6/schemas/ids/1"), 503, unavailable);
  expect(call("POST", "/subjects/users-value/versions", schema_body(kClickSchema)), 503, unavailable);
  expect(call("GET", "/admin/health"), 200, R"({"ok":true})");  // admin stays reachable

  now_ += milliseconds(4999);
  EXPECT_EQ(call("GET", "/schemas/ids/1").status, 503);
  now_ += milliseconds(1);
  EXPECT_EQ(call("GET", "/schemas/ids/1").status, 200);
  // The rejected registration stored nothing.
  expect(call("GET", "/subjects/users-value/versions"), 200, "[1]");

  // seconds=0 and /up both end an outage at once; fractions are accepted.
  call("POST", "/admin/registry/down", "", {{"seconds", "0.25"}});
  EXPECT_EQ(call("GET", "/subjects").status, 503);
  expect(call("POST", "/admin/registry/down", "", {{"seconds", "0"}}), 200, R"({"ok":true,"registry":"up"})");
  EXPECT_EQ(call("GET", "/subjects").status, 200);
  call("POST", "/admin/registry/down", "", {{"seconds", "60"}});
  expect(call("POST", "/admin/registry/up"), 200, R"({"ok":true,"registry":"up"})");
  EXPECT_EQ(call("GET", "/subjects").status, 200);

  const std::string bad_seconds =
      R"j({"error_code":400,"message":"seconds must be a number from 0 to 86400 (0: back up now)"})j";
  expect(call("POST", "/admin/registry/down"), 400, bad_seconds);
  expect(call("POST", "/admin/registry/down", "", {{"seconds", "-1"}}), 400, bad_seconds);
  expect(call("POST", "/admin/registry/down", "", {{"seconds", "soon"}}), 400, bad_seconds);
  expect(call("POST", "/admin/registry/down", "", {{"seconds", "nan"}}), 400, bad_seconds);
  EXPECT_EQ(call("GET", "/admin/registry/down", "", {{"seconds", "1"}}).status, 405);
  EXPECT_EQ(call("GET", "/subjects").status, 200);
}

TEST_F(SandboxRouterTest, BrokerDownAndUpReachTheCluster) {
  expect(call("POST", "/admin/brokers/2/down"), 200, R"({"ok":true,"broker":2,"state":"down"})");
  expect(call("POST", "/admin/brokers/2/up"), 200, R"({"ok":true,"broker":2,"state":"up"})");
  expect(call("POST", "/admin/brokers/all/down"), 200, R"({"ok":true,"broker":"all","state":"down"})");
  expect(call("POST", "/admin/brokers/-1/up"), 200, R"({"ok":true,"broker":"all","state":"up"})");
  const std::vector<std::pair<int32_t, bool>> expected{{2, false}, {2, true}, {-1, false}, {-1, true}};
  EXPECT_EQ(cluster_.broker_calls, expected);

  expect(call("POST", "/admin/brokers/two/down"), 400,
         R"({"error_code":400,"message":"Broker id must be an integer or \"all\""})");
  EXPECT_EQ(call("GET", "/admin/brokers/1/down").status, 405);
  EXPECT_EQ(call("POST", "/admin/brokers/1/sideways").status, 404);
  EXPECT_EQ(cluster_.broker_calls.size(), 4u);

  cluster_.next_result = {AdminStatus::not_found, "No broker 9"};
  expect(call("POST", "/admin/brokers/9/down"), 404, R"({"error_code":404,"message":"No broker 9"})");
}

TEST_F(SandboxRouterTest, CreateTopic) {
  expect(call("POST", "/admin/topics/orders.v1", "", {{"partitions", "3"}}), 200,
         R"({"ok":true,"topic":"orders.v1","partitions":3})");
  expect(call("POST", "/admin/topics/clicks"), 200, R"({"ok":true,"topic":"clicks","partitions":1})");
  const std::vector<std::pair<std::string, int>> expected{{"orders.v1", 3}, {"clicks", 1}};
  EXPECT_EQ(cluster_.topic_calls, expected);

  const std::string bad_partitions = R"({"error_code":400,"message":"partitions must be an integer from 1 to 10000"})";
  expect(call("POST", "/admin/topics/t", "", {{"partitions", "0"}}), 400, bad_partitions);
  expect(call("POST", "/admin/topics/t", "", {{"partitions", "10001"}}), 400, bad_partitions);
  expect(call("POST", "/admin/topics/t", "", {{"partitions", "x"}}), 400, bad_partitions);
  expect(call("POST", "/admin/topics/bad%20name"), 400,
         R"({"error_code":400,"message":"Invalid topic name: use 1 to 249 characters from [a-zA-Z0-9._-]"})");
  EXPECT_EQ(call("GET", "/admin/topics/t").status, 405);
  EXPECT_EQ(cluster_.topic_calls.size(), 2u);

  cluster_.next_result = {AdminStatus::already_exists, "Topic 'clicks' already exists"};
  expect(call("POST", "/admin/topics/clicks"), 409, R"({"error_code":409,"message":"Topic 'clicks' already exists"})");
  cluster_.next_result = {AdminStatus::failed, "mock said no"};
  expect(call("POST", "/admin/topics/other"), 500, R"({"error_code":500,"message":"mock said no"})");

  expect(call("GET", "/admin/nothing"), 404, R"({"error_code":404,"message":"HTTP 404 Not Found"})");
}

TEST_F(SandboxRouterTest, TopicMissingAndPresent) {
  expect(call("POST", "/admin/topics/late/missing", "", {{"partitions", "2"}}), 200,
         R"({"ok":true,"topic":"late","state":"missing"})");
  expect(call("POST", "/admin/topics/late/present"), 200, R"({"ok":true,"topic":"late","state":"present"})");
  const std::vector<std::tuple<std::string, bool, int>> expected{{"late", true, 2}, {"late", false, 1}};
  EXPECT_EQ(cluster_.missing_calls, expected);

  EXPECT_EQ(call("POST", "/admin/topics/late/gone").status, 404);
  EXPECT_EQ(call("GET", "/admin/topics/late/missing").status, 405);
  EXPECT_EQ(call("POST", "/admin/topics/late/missing", "", {{"partitions", "0"}}).status, 400);
  EXPECT_EQ(call("POST", "/admin/topics/a%2Fb/missing").status, 400);
  EXPECT_EQ(cluster_.missing_calls.size(), 2u);
  EXPECT_TRUE(cluster_.topic_calls.empty());
}

// --- command line ---------------------------------------------------------------------------------

TEST(SandboxOptions, ParsesEveryOption) {
  const SandboxOptions options = parse_sandbox_options(
      {"--bootstrap-file", "/tmp/b", "--topic", "orders:3", "--topic=clicks", "--brokers", "3", "--registry-port=8081",
       "--registry-url-file", "/tmp/r", "--pid-file", "/tmp/p", "--kafka-debug", "mock"});
  EXPECT_EQ(options.bootstrap_file, "/tmp/b");
  EXPECT_EQ(options.registry_url_file, "/tmp/r");
  EXPECT_EQ(options.pid_file, "/tmp/p");
  EXPECT_EQ(options.kafka_debug, "mock");
  EXPECT_EQ(options.brokers, 3);
  EXPECT_EQ(options.registry_port, 8081);
  ASSERT_EQ(options.topics.size(), 2u);
  EXPECT_EQ(options.topics[0].name, "orders");
  EXPECT_EQ(options.topics[0].partitions, 3);
  EXPECT_EQ(options.topics[1].name, "clicks");
  EXPECT_EQ(options.topics[1].partitions, 1);
  EXPECT_FALSE(options.help);
}

TEST(SandboxOptions, Defaults) {
  const SandboxOptions options = parse_sandbox_options({"--bootstrap-file", "b"});
  EXPECT_EQ(options.brokers, 1);
  EXPECT_EQ(options.registry_port, 0);
  EXPECT_TRUE(options.topics.empty());
  EXPECT_TRUE(parse_sandbox_options({"--help"}).help);
}

TEST(SandboxOptions, RejectsBadArguments) {
  const std::vector<std::vector<std::string>> bad{
      {},
      {"--topic", "t"},
      {"--bootstrap-file"},
      {"--bootstrap-file", "b", "--brokers", "0"},
      {"--bootstrap-file", "b", "--brokers", "33"},
      {"--bootstrap-file", "b", "--registry-port", "65536"},
      {"--bootstrap-file", "b", "--topic", "t:0"},
      {"--bootstrap-file", "b", "--topic", "t:"},
      {"--bootstrap-file", "b", "--topic", "bad topic"},
      {"--bootstrap-file", "b", "--topic", "t", "--topic", "t:2"},
      {"--bootstrap-file", "b", "--verbose"},
  };
  for (const auto &args : bad) {
    std::string joined;
    for (const auto &arg : args) joined += arg + ' ';
    EXPECT_THROW(parse_sandbox_options(args), std::invalid_argument) << joined;
  }
}

TEST(SandboxOptions, TopicNames) {
  EXPECT_TRUE(is_valid_topic_name("orders"));
  EXPECT_TRUE(is_valid_topic_name("a.b_c-D9"));
  EXPECT_TRUE(is_valid_topic_name(std::string(249, 'x')));
  EXPECT_FALSE(is_valid_topic_name(std::string(250, 'x')));
  EXPECT_FALSE(is_valid_topic_name(""));
  EXPECT_FALSE(is_valid_topic_name("."));
  EXPECT_FALSE(is_valid_topic_name(".."));
  EXPECT_FALSE(is_valid_topic_name("a/b"));
  EXPECT_FALSE(is_valid_topic_name("caf\xc3\xa9"));
  EXPECT_EQ(parse_topic_spec("t:10000")->partitions, 10000);
  EXPECT_FALSE(parse_topic_spec("t:10001"));
  EXPECT_FALSE(parse_topic_spec(":3"));
}

TEST(SandboxOptions, WriteFileAtomicallyReplacesTheWholeFile) {
  char directory_template[] = "/tmp/sandbox_options_test_XXXXXX";
  ASSERT_NE(mkdtemp(directory_template), nullptr);
  const std::string directory = directory_template;
  const std::string path = directory + "/bootstrap";

  write_file_atomically(path, "127.0.0.1:1234,127.0.0.1:5678");
  write_file_atomically(path, "127.0.0.1:9");
  std::ifstream in(path);
  std::stringstream content;
  content << in.rdbuf();
  EXPECT_EQ(content.str(), "127.0.0.1:9");

  EXPECT_THROW(write_file_atomically(directory + "/missing/dir/file", "x"), std::system_error);
  ::unlink(path.c_str());
  EXPECT_EQ(::rmdir(directory.c_str()), 0) << "a temporary file was left behind";
}

}  // namespace
}  // namespace streamrec
