// Helpers shared by the decoder units: building configs and running one message.
#pragma once

#include <gtest/gtest.h>

#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/formats/decoder.h"

namespace streamrec::testing_support {

inline column_binding column(std::string name, column_kind kind = column_kind::text, std::string field = {}) {
  column_binding binding;
  binding.column = std::move(name);
  binding.kind = kind;
  binding.field = std::move(field);
  return binding;
}

inline column_binding metadata_column(std::string name, metadata_field field, column_kind kind = column_kind::text) {
  column_binding binding;
  binding.column = std::move(name);
  binding.kind = kind;
  binding.metadata = field;
  return binding;
}

inline decoder_config config_for(wire_format format, std::vector<column_binding> columns) {
  decoder_config config;
  config.format = format;
  config.columns = std::move(columns);
  return config;
}

inline decoder_config text_columns(wire_format format, std::initializer_list<const char*> names) {
  std::vector<column_binding> columns;
  for (const char* name : names) columns.push_back(column(name));
  return config_for(format, std::move(columns));
}

inline message_view message_with(std::string_view payload) {
  message_view message;
  message.topic = "clicks";
  message.partition = 3;
  message.offset = 1234;
  message.timestamp_ms = 1719579715123;  // 2024-06-28T13:01:55.123Z
  message.payload = payload;
  return message;
}

struct decoded {
  bool produced = false;
  std::string line;
  column_mask present;
};

inline decoded decode_one(decoder& d, const message_view& message) {
  decoded result;
  result.produced = d.decode(message, result.line, result.present);
  return result;
}

inline decoded decode_payload(decoder& d, std::string_view payload) { return decode_one(d, message_with(payload)); }

inline column_mask mask(std::initializer_list<int> bits) {
  column_mask out;
  for (const int bit : bits) out.push_back(bit != 0);
  return out;
}

// The message of the exception `call` throws as E; fails the test when it throws nothing or
// something else.
template <typename E, typename F>
std::string error_of(F&& call) {
  try {
    call();
  } catch (const E& e) {
    return e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "threw another exception type: " << e.what();
    return {};
  }
  ADD_FAILURE() << "did not throw";
  return {};
}

}  // namespace streamrec::testing_support
