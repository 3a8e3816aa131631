#include "tools/datagen/debezium_events.h"

#include <memory>
#include <stdexcept>
#include <string>

#include "core/formats/confluent_avro.h"
#include "core/formats/json_writer.h"
#include "tools/datagen/prng.h"

namespace streamrec::datagen {

namespace {

// A stream of its own, apart from the record kinds' streams (record_generator.cpp).
constexpr uint64_t s_changes = 0xdeb2;

constexpr const char* kClubs[] = {"bronze", "silver", "gold", "platinum"};

const char* kJsonKeySchema = R"({"type":"struct","fields":[{"type":"string","optional":false,"field":"customer_id"}],)"
                             R"("optional":false,"name":"shop.shop.customers.Key"})";

std::string json_value_schema() {
  const std::string row =
      R"({"type":"struct","fields":[{"type":"string","optional":false,"field":"customer_id"},)"
      R"({"type":"string","optional":true,"field":"first_name"},{"type":"string","optional":true,"field":"last_name"},)"
      R"({"type":"string","optional":true,"field":"email"},{"type":"string","optional":true,"field":"club_status"}],)"
      R"("optional":true,"name":"shop.shop.customers.Value","field":")";
  return R"({"type":"struct","fields":[)" + row + R"(before"},)" + row + R"(after"},)" +
         R"({"type":"struct","fields":[{"type":"string","optional":false,"field":"version"},)"
         R"({"type":"string","optional":false,"field":"connector"},{"type":"string","optional":false,"field":"name"},)"
         R"({"type":"int64","optional":false,"field":"ts_ms"},{"type":"string","optional":false,"field":"db"},)"
         R"({"type":"string","optional":true,"field":"table"}],"optional":false,"name":"io.debezium.connector.mysql.Source","field":"source"},)"
         R"({"type":"string","optional":false,"field":"op"},{"type":"int64","optional":true,"field":"ts_ms"}],)"
         R"("optional":false,"name":"shop.shop.customers.Envelope"})";
}

}  // namespace

struct debezium_customers::avro_state {
  avro_schema key_schema = avro_schema::from_json(avro_key_schema());
  avro_schema value_schema = avro_schema::from_json(avro_value_schema());
  avro_generic_value key{key_schema};
  avro_generic_value value{value_schema};
  avro_value_serializer serializer;
};

const std::string& debezium_customers::avro_key_schema() {
  static const std::string schema =
      R"({"type":"record","name":"Key","namespace":"shop.shop.customers","fields":[{"name":"customer_id","type":"string"}]})";
  return schema;
}

const std::string& debezium_customers::avro_value_schema() {
  static const std::string schema =
      R"({"type":"record","name":"Envelope","namespace":"shop.shop.customers","fields":[)"
      R"({"name":"before","type":["null",{"type":"record","name":"Value","fields":[)"
      R"({"name":"customer_id","type":"string"},{"name":"first_name","type":["null","string"],"default":null},)"
      R"({"name":"last_name","type":["null","string"],"default":null},{"name":"email","type":["null","string"],"default":null},)"
      R"({"name":"club_status","type":["null","string"],"default":null}]}],"default":null},)"
      R"({"name":"after","type":["null","Value"],"default":null},)"
      R"({"name":"source","type":{"type":"record","name":"Source","namespace":"io.debezium.connector.mysql","fields":[)"
      R"({"name":"version","type":"string"},{"name":"connector","type":"string"},{"name":"name","type":"string"},)"
      R"({"name":"ts_ms","type":"long"},{"name":"db","type":"string"},{"name":"table","type":["null","string"],"default":null}]}},)"
      R"({"name":"op","type":"string"},{"name":"ts_ms","type":["null","long"],"default":null}]})";
  return schema;
}

debezium_customers::debezium_customers(const generator_config& config, data_format format, bool json_schemas,
                                       std::optional<int32_t> key_schema_id, std::optional<int32_t> value_schema_id)
    : config_(config),
      format_(format),
      json_schemas_(json_schemas),
      key_schema_id_(key_schema_id),
      value_schema_id_(value_schema_id) {
  if (format == data_format::csv) throw std::invalid_argument("Debezium events are json or avro");
  if (format == data_format::avro) {
    if (!key_schema_id || !value_schema_id) throw std::invalid_argument("Debezium Avro needs schema ids");
    avro_ = std::make_unique<avro_state>();
  }
  generator_config rows = config;
  rows.kind = record_kind::customers;
  record_generator generator(rows);
  record rec;
  table_.resize(config.users);
  for (uint64_t i = 0; i < config.users; ++i) {
    generator.generate(i, rec);
    customer& c = table_[i];
    c.id = std::string(rec.values[0].text);
    c.first_name = std::string(rec.values[1].text);
    c.last_name = std::string(rec.values[2].text);
    c.email = std::string(rec.values[3].text);
    c.club_status = std::string(rec.values[4].text);
  }
}

debezium_customers::~debezium_customers() = default;

void debezium_customers::next(std::vector<change_message>& out) {
  const uint64_t index = index_++;
  const uint64_t users = table_.size();
  if (index < users) {  // the snapshot
    table_[index].alive = true;
    emit(nullptr, &table_[index], 'r', out);
    return;
  }
  rng r(config_.seed, s_changes, index);
  customer& c = table_[r.below(users)];
  if (!c.alive) {
    c.alive = true;
    c.club_status = kClubs[r.below(4)];
    emit(nullptr, &c, 'c', out);
    return;
  }
  const uint64_t what = r.below(100);
  if (what < 70) {
    const customer before = c;
    uint64_t current = 0;
    while (current < 4 && c.club_status != kClubs[current]) ++current;
    c.club_status = kClubs[(current + 1 + r.below(3)) % 4];  // always another status
    emit(&before, &c, 'u', out);
  } else if (what < 85) {
    c.alive = false;
    emit(&c, nullptr, 'd', out);
  } else {
    const customer before = c;
    const std::string base = c.id.substr(0, c.id.find('-'));
    c.id = base + "-" + std::to_string(++c.version);
    emit(&before, &c, 'u', out);
  }
}

std::string debezium_customers::json_row(const customer& c) const {
  std::string out;
  json_object_writer row(out);
  row.string_field("customer_id", c.id);
  row.string_field("first_name", c.first_name);
  row.string_field("last_name", c.last_name);
  row.string_field("email", c.email);
  row.string_field("club_status", c.club_status);
  row.finish();
  return out;
}

void debezium_customers::emit(const customer* before, const customer* after, char op,
                              std::vector<change_message>& out) {
  const uint64_t index = index_ - 1;
  const int64_t ts_ms = config_.start_time_us / 1000 + static_cast<int64_t>(index);
  const std::string& id = after != nullptr ? after->id : before->id;
  // A key change is, as Debezium sends it, one event on the new key; the old key's row goes with it.
  change_message message;
  message.timestamp_us = ts_ms * 1000;
  message.value.emplace();
  std::string& value = *message.value;
  if (format_ == data_format::json) {
    std::string key;
    json_object_writer key_object(key);
    key_object.string_field("customer_id", id);
    key_object.finish();
    std::string payload;
    json_object_writer envelope(payload);
    envelope.raw_field("before", before != nullptr ? json_row(*before) : "null");
    envelope.raw_field("after", after != nullptr ? json_row(*after) : "null");
    std::string source;
    json_object_writer source_object(source);
    source_object.string_field("version", "2.5.0.Final");
    source_object.string_field("connector", "mysql");
    source_object.string_field("name", "shop");
    source_object.int_field("ts_ms", ts_ms);
    source_object.string_field("db", "shop");
    source_object.string_field("table", "customers");
    source_object.finish();
    envelope.raw_field("source", source);
    envelope.string_field("op", std::string(1, op));
    envelope.int_field("ts_ms", ts_ms);
    envelope.finish();
    if (json_schemas_) {
      message.key = std::string(R"({"schema":)") + kJsonKeySchema + R"(,"payload":)" + key + "}";
      value = R"({"schema":)" + json_value_schema() + R"(,"payload":)" + payload + "}";
    } else {
      message.key = key;
      value = payload;
    }
  } else {
    avro_value_t& key = avro_->key.get();
    avro_value_t key_field = avro_field(key, 0);
    set_avro_string(key_field, id);
    avro_->serializer.append_framed(message.key, *key_schema_id_, key);

    avro_value_t& root = avro_->value.get();
    const customer* rows[2] = {before, after};
    for (size_t i = 0; i < 2; ++i) {
      avro_value_t field = avro_field(root, i);
      if (rows[i] == nullptr) {
        set_avro_null_branch(field, 0);
        continue;
      }
      avro_value_t row = set_avro_branch(field, 1);
      const std::string* values[] = {&rows[i]->id, &rows[i]->first_name, &rows[i]->last_name, &rows[i]->email,
                                     &rows[i]->club_status};
      avro_value_t first = avro_field(row, 0);
      set_avro_string(first, *values[0]);
      for (size_t f = 1; f < 5; ++f) {
        avro_value_t column = avro_field(row, f);
        avro_value_t branch = set_avro_branch(column, 1);
        set_avro_string(branch, *values[f]);
      }
    }
    avro_value_t source = avro_field(root, 2);
    const char* texts[] = {"2.5.0.Final", "mysql", "shop"};
    for (size_t f = 0; f < 3; ++f) {
      avro_value_t text = avro_field(source, f);
      set_avro_string(text, texts[f]);
    }
    avro_value_t source_ts = avro_field(source, 3);
    check_avro(avro_value_set_long(&source_ts, ts_ms), "avro_value_set_long");
    avro_value_t db = avro_field(source, 4);
    set_avro_string(db, "shop");
    avro_value_t table = avro_field(source, 5);
    avro_value_t table_name = set_avro_branch(table, 1);
    set_avro_string(table_name, "customers");
    avro_value_t op_field = avro_field(root, 3);
    set_avro_string(op_field, std::string(1, op));
    avro_value_t ts_field = avro_field(root, 4);
    avro_value_t ts = set_avro_branch(ts_field, 1);
    check_avro(avro_value_set_long(&ts, ts_ms), "avro_value_set_long");
    avro_->serializer.append_framed(value, *value_schema_id_, root);
  }
  const std::string tombstone_key = message.key;
  out.push_back(std::move(message));
  if (op == 'd') {
    change_message tombstone;
    tombstone.key = tombstone_key;
    tombstone.timestamp_us = ts_ms * 1000;
    out.push_back(std::move(tombstone));
  }
}

}  // namespace streamrec::datagen
