// The data generator's Protobuf output decodes, through the schema it prints, to the same values
// as its json output.
#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "core/formats/decoder.h"
#include "tools/datagen/datagen_options.h"
#include "tools/datagen/datagen_run.h"
#include "tools/datagen/record_encoder.h"
#include "tools/datagen/record_generator.h"

namespace streamrec::datagen {
namespace {

// Splits a length-prefixed stream (4-byte big-endian lengths) into its messages.
std::vector<std::string> messages_of(const std::string& stream) {
  std::vector<std::string> out;
  for (size_t at = 0; at + 4 <= stream.size();) {
    const uint32_t length = static_cast<uint32_t>(static_cast<unsigned char>(stream[at])) << 24 |
                            static_cast<uint32_t>(static_cast<unsigned char>(stream[at + 1])) << 16 |
                            static_cast<uint32_t>(static_cast<unsigned char>(stream[at + 2])) << 8 |
                            static_cast<unsigned char>(stream[at + 3]);
    out.push_back(stream.substr(at + 4, length));
    at += 4 + length;
  }
  return out;
}

TEST(DatagenProtobuf, ClicksDecodeThroughTheirSchema) {
  const datagen_options options =
      parse_datagen_arguments({"clicks", "--format", "protobuf", "--schema-id", "3", "--count", "50", "--seed", "7"});
  const std::vector<std::string> messages = messages_of(generate_to_string(options, 3));
  ASSERT_EQ(messages.size(), 50u);
  const record_generator generator(options.generator);
  const std::string schema = protobuf_schema_text(record_kind::clicks, generator.fields());

  decoder_config config;
  config.format = wire_format::protobuf;
  for (const field_spec& field : generator.fields()) {
    column_binding binding;
    binding.column = std::string(field.name);
    binding.kind = field.type == field_type::timestamp ? column_kind::timestamp : column_kind::text;
    config.columns.push_back(binding);
  }
  auto d = make_protobuf_decoder(config, [&](int32_t id) -> protobuf_schema_files {
    EXPECT_EQ(id, 3);
    return {schema, {}};
  });

  // The same records as json, for comparison of the values.
  const std::string json = generate_to_string(
      parse_datagen_arguments({"clicks", "--format", "json", "--count", "50", "--seed", "7"}), std::nullopt);
  size_t line_start = 0;
  for (const std::string& message : messages) {
    message_view view;
    view.payload = message;
    std::string line;
    column_mask present;
    ASSERT_TRUE(d->decode(view, line, present));
    const size_t line_end = json.find('\n', line_start);
    std::string json_line = json.substr(line_start, line_end - line_start);
    for (size_t q = json_line.find("\\\""); q != std::string::npos; q = json_line.find("\\\"", q))
      json_line.erase(q, 1);
    line_start = line_end + 1;
    // Every decoded text value appears in the json record (timestamps in the same ISO form).
    size_t from = 0;
    while (from < line.size()) {
      const size_t tab = line.find_first_of("\t\n", from);
      const std::string value = line.substr(from, tab - from);
      from = tab + 1;
      if (value == "\\N") continue;
      std::string probe = value;
      if (probe.size() > 20 && probe[10] == 'T') probe = probe.substr(0, 23);  // ISO to milliseconds
      EXPECT_NE(json_line.find(probe), std::string::npos) << value << " not in " << json_line;
    }
  }
}

}  // namespace
}  // namespace streamrec::datagen
