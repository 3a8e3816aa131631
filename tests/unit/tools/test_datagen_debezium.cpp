// streamrec-datagen --envelope debezium: the change stream of the customers table, read back by
// the source's own Debezium decoder (json, wrapped json and Avro) and replayed into a table.
#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

#include "core/formats/decoder.h"
#include "tools/datagen/datagen_options.h"
#include "tools/datagen/debezium_events.h"

namespace streamrec::datagen {
namespace {

decoder_config customers_config(wire_format format) {
  decoder_config config;
  config.format = format;
  config.envelope = envelope_kind::debezium;
  config.primary_key = {"customer_id"};
  for (const char* name : {"customer_id", "first_name", "last_name", "email", "club_status"}) {
    column_binding b;
    b.column = name;
    config.columns.push_back(b);
  }
  return config;
}

// Replays the decoded rows into a table keyed by customer_id; counts the ops seen.
struct replay {
  std::map<std::string, std::string> table;
  int upserts = 0, removes = 0, tombstones = 0, key_changes = 0;

  void apply(decoder& d, const change_message& m) {
    message_view view;
    view.topic = "customers";
    view.key = m.key;
    if (m.value) view.payload = *m.value;
    if (!m.value) ++tombstones;
    std::string lines;
    std::vector<decoded_row> rows;
    d.decode_changes(view, lines, rows);
    if (rows.size() == 2) ++key_changes;
    for (const decoded_row& row : rows) {
      std::string line = lines.substr(row.begin, row.end - row.begin);
      const std::string id = line.substr(0, line.find_first_of("\t\n"));
      if (row.change == row_change::remove) {
        ++removes;
        EXPECT_EQ(table.erase(id), 1u) << "deleted a row that is not there: " << id;
      } else {
        ++upserts;
        table[id] = line;
      }
    }
  }
};

void check_stream(data_format format, bool json_schemas) {
  generator_config config;
  config.kind = record_kind::customers;
  config.users = 20;
  config.seed = 5;
  const bool avro = format == data_format::avro;
  debezium_customers changes(config, format, json_schemas, avro ? std::optional<int32_t>(1) : std::nullopt,
                             avro ? std::optional<int32_t>(2) : std::nullopt);
  auto d = make_decoder(customers_config(avro ? wire_format::avro : wire_format::json), [](int32_t id) {
    return id == 1 ? debezium_customers::avro_key_schema() : debezium_customers::avro_value_schema();
  });
  replay r;
  std::vector<change_message> messages;
  for (int i = 0; i < 400; ++i) {
    messages.clear();
    changes.next(messages);
    ASSERT_FALSE(messages.empty());
    if (messages.size() == 2) {
      EXPECT_FALSE(messages[1].value.has_value());  // a delete's tombstone
    }
    for (const change_message& m : messages) r.apply(*d, m);
    if (i == 19) {
      EXPECT_EQ(r.table.size(), 20u);  // the snapshot
    }
  }
  EXPECT_GT(r.removes - r.key_changes, 10);
  EXPECT_GT(r.key_changes, 5);
  EXPECT_EQ(r.tombstones, r.removes - r.key_changes);
  EXPECT_GT(r.upserts, 300);
}

TEST(DatagenDebezium, JsonStreamReplaysThroughTheSourceDecoder) { check_stream(data_format::json, false); }
TEST(DatagenDebezium, WrappedJsonStreamReplays) { check_stream(data_format::json, true); }
TEST(DatagenDebezium, AvroStreamReplays) { check_stream(data_format::avro, false); }

TEST(DatagenDebezium, SameSeedSameEvents) {
  generator_config config;
  config.kind = record_kind::customers;
  config.users = 5;
  debezium_customers a(config, data_format::json, false), b(config, data_format::json, false);
  std::vector<change_message> ma, mb;
  for (int i = 0; i < 50; ++i) {
    a.next(ma);
    b.next(mb);
  }
  ASSERT_EQ(ma.size(), mb.size());
  for (size_t i = 0; i < ma.size(); ++i) EXPECT_EQ(ma[i].value, mb[i].value);
}

TEST(DatagenDebezium, OptionsAreChecked) {
  EXPECT_TRUE(parse_datagen_arguments({"customers", "--envelope", "debezium", "--format", "json"}).debezium);
  EXPECT_THROW(parse_datagen_arguments({"clicks", "--envelope", "debezium", "--format", "json"}), usage_error);
  EXPECT_THROW(parse_datagen_arguments({"customers", "--envelope", "debezium"}), usage_error);  // csv
  EXPECT_THROW(parse_datagen_arguments({"customers", "--envelope", "maxwell", "--format", "json"}), usage_error);
  EXPECT_THROW(parse_datagen_arguments({"customers", "--format", "json", "--json-schemas"}), usage_error);
  EXPECT_THROW(parse_datagen_arguments({"customers", "--envelope", "debezium", "--format", "avro", "--schema-id", "1"}),
               usage_error);
}

}  // namespace
}  // namespace streamrec::datagen
