// Decoder throughput: one typical click message per format decoded into a batch buffer, as a
// source worker does between two COPYs. The baseline copies the same payload bytes into the
// buffer untouched, so each format's cost shows as a ratio to the cheapest possible "decoder"
// measured in the same run; vs_1M is the rate divided by the per-core goal of 1M messages/s.
//
// Link with benchmark::benchmark (this file has its own main) and streamrec_core.
#include <benchmark/benchmark.h>

#include <string>
#include <vector>

#include "core/formats/confluent_avro.h"
#include "core/formats/decoder.h"

namespace streamrec {
namespace {

constexpr size_t messages_per_batch = 10000;  // the default batch_size

std::vector<column_binding> click_columns() {
  std::vector<column_binding> columns;
  for (const char* name : {"click_id", "user_id", "product_id", "event_type", "query", "event_time"}) {
    column_binding binding;
    binding.column = name;
    binding.kind = std::string(name) == "event_time" ? column_kind::timestamp : column_kind::text;
    columns.push_back(binding);
  }
  return columns;
}

const std::string csv_click = "c-000123,user-27,140,page_view,\"running shoes, red\",2024-06-28 13:01:55";
const std::string json_click =
    R"({"click_id":"c-000123","user_id":"user-27","product_id":"140","event_type":"page_view",)"
    R"("query":"running shoes, red","event_time":1719579715123})";
const std::string click_schema = R"({"type": "record", "name": "click", "namespace": "bench", "fields": [
  {"name": "click_id", "type": "string"},
  {"name": "user_id", "type": "string"},
  {"name": "product_id", "type": ["null", "string"], "default": null},
  {"name": "event_type", "type": "string"},
  {"name": "query", "type": ["null", "string"], "default": null},
  {"name": "event_time", "type": {"type": "long", "logicalType": "timestamp-millis"}}]})";

std::string avro_click() {
  const avro_schema schema = avro_schema::from_json(click_schema);
  avro_generic_value value(schema);
  avro_value_t& root = value.get();
  avro_value_t field;
  avro_value_get_by_name(&root, "click_id", &field, nullptr);
  set_avro_string(field, "c-000123");
  avro_value_get_by_name(&root, "user_id", &field, nullptr);
  set_avro_string(field, "user-27");
  avro_value_get_by_name(&root, "product_id", &field, nullptr);
  avro_value_t branch = set_avro_branch(field, 1);
  set_avro_string(branch, "140");
  avro_value_get_by_name(&root, "event_type", &field, nullptr);
  set_avro_string(field, "page_view");
  avro_value_get_by_name(&root, "query", &field, nullptr);
  branch = set_avro_branch(field, 1);
  set_avro_string(branch, "running shoes, red");
  avro_value_get_by_name(&root, "event_time", &field, nullptr);
  avro_value_set_long(&field, 1719579715123);
  avro_value_serializer serializer;
  std::string out;
  serializer.append_framed(out, 1, root);
  return out;
}

constexpr const char* click_proto = R"(
syntax = "proto3";
import "google/protobuf/timestamp.proto";
import "google/protobuf/wrappers.proto";
message click {
  string click_id = 1;
  string user_id = 2;
  google.protobuf.StringValue product_id = 3;
  string event_type = 4;
  google.protobuf.StringValue query = 5;
  google.protobuf.Timestamp event_time = 6;
}
)";

// The click above in the Protobuf wire format, Confluent-framed with message index [0].
std::string protobuf_click() {
  const auto field = [](std::string& out, int number, const std::string& bytes) {
    out.push_back(static_cast<char>(number << 3 | 2));
    out.push_back(static_cast<char>(bytes.size()));
    out.append(bytes);
  };
  std::string product;
  field(product, 1, "140");
  std::string query;
  field(query, 1, "running shoes, red");
  std::string time = {0x08};
  for (uint64_t v = 1719579715; v != 0; v >>= 7) time.push_back(static_cast<char>((v & 0x7f) | (v >= 0x80 ? 0x80 : 0)));
  time.push_back(0x10);
  for (uint64_t v = 123000000; v != 0; v >>= 7) time.push_back(static_cast<char>((v & 0x7f) | (v >= 0x80 ? 0x80 : 0)));
  std::string out = {0, 0, 0, 0, 1, 0};
  field(out, 1, "c-000123");
  field(out, 2, "user-27");
  field(out, 3, product);
  field(out, 4, "page_view");
  field(out, 5, query);
  field(out, 6, time);
  return out;
}

message_view click_message(const std::string& payload, int64_t offset) {
  message_view message;
  message.topic = "clicks";
  message.partition = 0;
  message.offset = offset;
  message.timestamp_ms = 1719579715123 + offset;
  message.payload = payload;
  return message;
}

void report(benchmark::State& state, const std::string& payload) {
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * payload.size()));
  state.counters["vs_1M"] =
      benchmark::Counter(static_cast<double>(state.iterations()) / 1e6, benchmark::Counter::kIsRate);
}

void run_decoder(benchmark::State& state, decoder& d, const std::string& payload) {
  std::string batch;
  batch.reserve(messages_per_batch * (payload.size() + 64));
  column_mask present;
  size_t in_batch = 0;
  int64_t offset = 0;
  for (auto _ : state) {
    if (!d.decode(click_message(payload, offset++), batch, present)) state.SkipWithError("message skipped");
    if (++in_batch == messages_per_batch) {
      benchmark::DoNotOptimize(batch.data());
      batch.clear();
      in_batch = 0;
    }
  }
  report(state, payload);
}

void BM_baseline_copy(benchmark::State& state) {
  std::string batch;
  batch.reserve(messages_per_batch * (json_click.size() + 64));
  size_t in_batch = 0;
  for (auto _ : state) {
    batch.append(json_click);
    batch.push_back('\n');
    if (++in_batch == messages_per_batch) {
      benchmark::DoNotOptimize(batch.data());
      batch.clear();
      in_batch = 0;
    }
  }
  report(state, json_click);
}

void BM_decode_csv(benchmark::State& state) {
  decoder_config config;
  config.format = wire_format::csv;
  config.columns = click_columns();
  config.columns.back().kind = column_kind::text;  // csv carries the timestamp as text already
  auto d = make_decoder(config);
  run_decoder(state, *d, csv_click);
}

void BM_decode_json(benchmark::State& state) {
  decoder_config config;
  config.format = wire_format::json;
  config.columns = click_columns();
  auto d = make_decoder(config);
  run_decoder(state, *d, json_click);
}

void BM_decode_avro_confluent(benchmark::State& state) {
  decoder_config config;
  config.format = wire_format::avro;
  config.columns = click_columns();
  auto d = make_decoder(config, [](int32_t) { return click_schema; });
  run_decoder(state, *d, avro_click());
}

void BM_decode_protobuf_confluent(benchmark::State& state) {
  decoder_config config;
  config.format = wire_format::protobuf;
  config.columns = click_columns();
  auto d = make_protobuf_decoder(config, [](int32_t) { return protobuf_schema_files{click_proto, {}}; });
  run_decoder(state, *d, protobuf_click());
}

void BM_decode_json_with_metadata(benchmark::State& state) {
  decoder_config config;
  config.format = wire_format::json;
  config.columns = click_columns();
  column_binding received;
  received.column = "received_at";
  received.metadata = metadata_field::timestamp;
  config.columns.push_back(received);
  column_binding offset;
  offset.column = "kafka_offset";
  offset.metadata = metadata_field::offset;
  config.columns.push_back(offset);
  auto d = make_decoder(config);
  run_decoder(state, *d, json_click);
}

BENCHMARK(BM_baseline_copy);
BENCHMARK(BM_decode_csv);
BENCHMARK(BM_decode_json);
BENCHMARK(BM_decode_json_with_metadata);
BENCHMARK(BM_decode_avro_confluent);
BENCHMARK(BM_decode_protobuf_confluent);

}  // namespace
}  // namespace streamrec

BENCHMARK_MAIN();
