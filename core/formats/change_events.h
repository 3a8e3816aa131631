// Keys, tombstones and Debezium change events: the decoders that turn one Kafka message into
// upserts and deletes (decoder::decode_changes), built by make_decoder when a source has
// key_columns or an envelope (see decoder.h). This header only adds the entry points that take
// bytes alone, for the fuzz targets and tools.
#pragma once

#include "core/postgres_free.h"

#include <string>
#include <string_view>

#include "core/formats/decoder.h"

namespace streamrec {

// Decodes `bytes` as the message key of a keyed json source whose key_format is `format`, with
// key columns (id text, region text) and one value column (name): text takes the whole key for
// id (region then comes from the value), csv takes two fields, json two fields by name (with or
// without the JSON converter's schema/payload wrapper), avro a Confluent-framed record (any
// schema id reads as the record {id: string, region: [null, string]}). The value is the fixed
// {"name": "n"}. Returns the decoded rows' COPY text; throws format_error for a malformed key.
std::string decode_key_for_fuzzing(key_format format, std::string_view bytes);

// Decodes `bytes` as the value of a Debezium json change event (with or without the
// schema/payload wrapper) for a table (id bigint primary key, name text, status text) with the
// event's ts_ms and source as metadata columns. Returns the rows (upserts and deletes) as text
// ("+" or "-" and the COPY line each); throws format_error for a malformed event.
std::string decode_debezium_json_for_fuzzing(std::string_view bytes);

// The same for plain (unframed) Avro bytes of the Debezium envelope of that table: a record of
// before and after ([null, Value]), source (a record of connector, db and table), op and ts_ms.
std::string decode_debezium_avro_for_fuzzing(std::string_view bytes);

// The Avro schema (JSON) of that envelope, for tests and seed corpora.
const std::string& debezium_fuzz_avro_schema();

}  // namespace streamrec
