// A source worker: consumes one Kafka topic into one table, exactly once.
//
// Each batch is decoded in PostgreSQL-free C++ on a helper thread, down to typed cells (integers,
// timestamps and text as values; other types' text for their input function), turned into Datums
// and inserted as one statement the way COPY FROM inserts (pg/bulk_insert: defaults, constraints,
// indexes and triggers all apply), and committed together with the next offset of every partition
// it touched. Bad rows are found before the rows are kept: a value PostgreSQL refuses while it is
// converted, a row the insert refuses by the error's own row or by probes that are rolled back; the
// good rows are then inserted once, so the target's statement triggers run once per batch. A
// partitioned target (which routes rows as COPY does) is fed COPY text instead, retried in halves.
#include <chrono>
#include <future>
#include <csignal>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "core/formats/decoder.h"
#include "core/formats/typed_cells.h"
#include "core/kafka/consumer.h"

#include "pg/bulk_insert.h"
#include "pg/cell_datums.h"
#include "pg/catalog_options.h"
#include "pg/error_boundary.h"
#include "pg/shared_state.h"
#include "pg/event_clock.h"
#include "pg/spi.h"
#include "worker/kafka_guard.h"
#include "worker/worker_launch.h"
#include "worker/worker_main.h"

extern "C" {
#include "access/table.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "executor/executor.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "parser/parse_relation.h"
#include "access/sysattr.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "tcop/tcopprot.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rls.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

PGDLLEXPORT void streamrec_source_main(Datum main_arg);
}

namespace streamrec {
namespace {

// ---------------------------------------------------------------------------------------------
// Configuration, read from streamrec.sources as the source's owner.
// ---------------------------------------------------------------------------------------------
struct SourceConfig {
  std::string name;
  std::string topic;
  std::string brokers;
  Oid target = InvalidOid;
  int generation = 0;
  bool upsert = false;
  bool stop_on_error = false;
  int batch_size = 10000;
  int batch_ms = 100;
  size_t batch_bytes = size_t{64} << 20;  // decoded COPY text at which a batch ends early
  std::optional<std::string> group_id;
  std::vector<int32_t> partitions;  // empty: all
  std::string start = "earliest";
  std::map<std::string, std::string> kafka;
  decoder_config decoding;
  std::vector<std::string> primary_key;
};

column_kind kind_from_name(const std::string& k) {
  if (k == "boolean") return column_kind::boolean;
  if (k == "timestamp") return column_kind::timestamp;
  if (k == "date") return column_kind::date;
  if (k == "bytea") return column_kind::bytea;
  if (k == "json") return column_kind::json;
  if (k == "array") return column_kind::array;
  return column_kind::text;
}

metadata_field metadata_from_name(const std::string& m) {
  if (m == "timestamp") return metadata_field::timestamp;
  if (m == "key") return metadata_field::key;
  if (m == "partition") return metadata_field::partition;
  if (m == "offset") return metadata_field::offset;
  if (m == "topic") return metadata_field::topic;
  if (m == "ts_ms") return metadata_field::change_ts_ms;
  if (m == "source") return metadata_field::change_source;
  if (m == "op") return metadata_field::change_op;
  return metadata_field::none;
}

// Bindings in COPY order: mapped fields (csv: in field order), then metadata columns, then the
// key_columns (what = 'key_column'; in key order, field paths for json/avro keys given as a map).
constexpr const char* kBindingsSql = R"SQL(
WITH s AS (SELECT * FROM streamrec.sources WHERE name = $1),
cols AS (
  SELECT a.attname::text AS col, a.attnum,
         CASE WHEN t.typcategory = 'A' THEN 'array'
              WHEN a.atttypid IN ('timestamptz'::regtype, 'timestamp'::regtype) THEN 'timestamp'
              WHEN a.atttypid = 'date'::regtype THEN 'date'
              WHEN a.atttypid = 'bytea'::regtype THEN 'bytea'
              WHEN a.atttypid IN ('json'::regtype, 'jsonb'::regtype) THEN 'json'
              WHEN a.atttypid = 'bool'::regtype THEN 'boolean'
              ELSE 'text' END AS kind
  FROM s JOIN pg_catalog.pg_attribute a ON a.attrelid = s.target
  JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
  WHERE a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''),
meta AS (SELECT m.key AS col, m.value #>> '{}' AS what FROM s, jsonb_each(coalesce(s.options -> 'metadata', '{}')) m),
keyed AS (
  SELECT k.col, NULL::text AS field, k.ord
  FROM s, jsonb_array_elements_text(s.options -> 'key_columns') WITH ORDINALITY k(col, ord)
  WHERE jsonb_typeof(s.options -> 'key_columns') = 'array'
  UNION ALL
  SELECT k.key, k.value #>> '{}', row_number() OVER (ORDER BY k.key)
  FROM s, jsonb_each(s.options -> 'key_columns') k
  WHERE jsonb_typeof(s.options -> 'key_columns') = 'object'),
mapped AS (
  SELECT c.col, c.kind, NULL::text AS field, e.ord AS position
  FROM s, jsonb_array_elements_text(s.options -> 'columns') WITH ORDINALITY e(col, ord)
  JOIN cols c ON c.col = e.col
  WHERE s.format = 'csv' AND jsonb_typeof(s.options -> 'columns') = 'array'
  UNION ALL
  SELECT c.col, c.kind, e.value #>> '{}', c.attnum
  FROM s, jsonb_each(s.options -> 'columns') e JOIN cols c ON c.col = e.key
  WHERE s.format <> 'csv' AND jsonb_typeof(s.options -> 'columns') = 'object'
  UNION ALL
  SELECT c.col, c.kind, c.col, c.attnum
  FROM s, cols c
  WHERE NOT (s.options ? 'columns') AND c.col NOT IN (SELECT col FROM meta) AND c.col NOT IN (SELECT col FROM keyed))
SELECT col, kind, field, NULL AS what FROM (SELECT * FROM mapped ORDER BY position) m
UNION ALL
SELECT meta.col, cols.kind, NULL, meta.what FROM meta JOIN cols USING (col)
UNION ALL
SELECT col, kind, field, 'key_column' FROM (SELECT keyed.col, cols.kind, keyed.field, keyed.ord
                                            FROM keyed JOIN cols USING (col) ORDER BY keyed.ord) k
)SQL";

// The source's options, in the order load_config() reads them (columns 8 on of config_sql()).
const std::vector<OptionSpec> kSourceOptions = {
    {"mode", OptionKind::text, nullptr, "'append'"},
    {"on_error", OptionKind::text, nullptr, "'dead_letter'"},
    {"batch_size", OptionKind::int4, nullptr, "10000"},
    {"batch_ms", OptionKind::int4, nullptr, "100"},
    {"group_id", OptionKind::text},
    {"start", OptionKind::text, nullptr, "'earliest'"},
    {"schema_registry", OptionKind::text},
    {"schema", OptionKind::json_text},
    {"csv.delimiter", OptionKind::text, nullptr, "','"},
    {"csv.quote", OptionKind::text, nullptr, "'\"'"},
    {"csv.null", OptionKind::text, nullptr, "''"},
    {"csv.header", OptionKind::boolean, nullptr, "false"},
    {"batch_bytes", OptionKind::text},
    {"max_decoded_bytes", OptionKind::text},
    {"proto_schema", OptionKind::text},
    {"proto_message", OptionKind::text},
    {"key_format", OptionKind::text, nullptr, "'text'"},
    {"envelope", OptionKind::text},
};

// $1 source name: its catalog columns, the target's primary key and the partitions (comma
// lists), then kSourceOptions.
const std::string& config_sql() {
  static const std::string sql =
      "SELECT topic, target::oid, coalesce(brokers, current_setting('streamrec.brokers')), generation, format,"
      " (SELECT array_to_string(array_agg(a.attname ORDER BY k.ord), ',')"
      "    FROM pg_catalog.pg_index i, unnest(i.indkey) WITH ORDINALITY k(attnum, ord), pg_catalog.pg_attribute a"
      "   WHERE i.indrelid = target AND i.indisprimary AND a.attrelid = target AND a.attnum = k.attnum),"
      " (SELECT string_agg(p, ',') FROM jsonb_array_elements_text(options -> 'partitions') p), " +
      option_list_sql("options", kSourceOptions) + " FROM streamrec.sources WHERE name = $1";
  return sql;
}

// "a,b,c" -> a, b, c; "" -> nothing (the lists config_sql() joins with commas).
std::vector<std::string> split_commas(const std::string& joined) {
  std::vector<std::string> out;
  for (size_t pos = 0; !joined.empty() && pos != std::string::npos;) {
    size_t comma = joined.find(',', pos);
    out.push_back(joined.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos));
    pos = comma == std::string::npos ? comma : comma + 1;
  }
  return out;
}

SourceConfig load_config(const std::string& name) {
  SourceConfig c;
  c.name = name;
  Datum name_datum = text_datum(name);
  if (spi_exec(config_sql().c_str(), {{TEXTOID, name_datum, false}}, true) != SPI_OK_SELECT || SPI_processed != 1)
    throw Error(ERRCODE_UNDEFINED_OBJECT, "source \"" + name + "\" no longer exists");
  auto field = [](int column) { return spi_text(0, column).value_or(""); };
  c.topic = field(1);
  c.target = static_cast<Oid>(std::stoul(field(2)));
  c.brokers = field(3);
  c.generation = std::stoi(field(4));
  std::string format = field(5);
  c.decoding.format = format == "json"       ? wire_format::json
                      : format == "avro"     ? wire_format::avro
                      : format == "protobuf" ? wire_format::protobuf
                                             : wire_format::csv;
  c.primary_key = split_commas(field(6));
  for (const std::string& p : split_commas(field(7))) c.partitions.push_back(static_cast<int32_t>(std::stol(p)));
  c.upsert = field(8) == "upsert";
  c.stop_on_error = field(9) == "stop";
  c.batch_size = std::stoi(field(10));
  c.batch_ms = std::stoi(field(11));
  c.group_id = spi_text(0, 12);
  c.start = field(13);
  c.decoding.schema_registry_url = field(14);
  c.decoding.inline_schema = field(15);
  c.decoding.csv.delimiter = field(16)[0];
  c.decoding.csv.quote = field(17)[0];
  c.decoding.csv.null_string = field(18);
  c.decoding.csv.header = field(19) == "t";
  if (std::optional<std::string> v = spi_text(0, 20)) c.batch_bytes = std::stoull(*v);
  if (std::optional<std::string> v = spi_text(0, 21)) c.decoding.max_decoded_bytes = std::stoull(*v);
  if (c.decoding.format == wire_format::protobuf) {
    c.decoding.inline_schema = field(22);  // the inline .proto (option "schema" is Avro's)
    c.decoding.proto_message = field(23);
  }
  const std::string key = field(24);
  c.decoding.key = key == "csv"    ? key_format::csv
                   : key == "json" ? key_format::json
                   : key == "avro" ? key_format::avro
                                   : key_format::text;
  // Change events are applied as upserts and deletes whatever the mode says (create_source
  // refuses another mode with an envelope).
  if (field(25) == "debezium") {
    c.decoding.envelope = envelope_kind::debezium;
    c.upsert = true;
  }
  c.decoding.primary_key = c.primary_key;

  c.kafka = read_kafka_options("sources", name);
  refuse_forbidden_kafka_properties(c.kafka, "source \"" + name + "\"");

  if (spi_exec(kBindingsSql, {{TEXTOID, name_datum, false}}, true) != SPI_OK_SELECT)
    throw Error(ERRCODE_INTERNAL_ERROR, "cannot read the target's columns");
  for (uint64 i = 0; i < SPI_processed; i++) {
    column_binding b;
    b.column = spi_text(i, 1).value_or("");
    b.kind = kind_from_name(spi_text(i, 2).value_or("text"));
    b.field = spi_text(i, 3).value_or("");
    std::string what = spi_text(i, 4).value_or("");
    b.from_key = what == "key_column";
    b.metadata = b.from_key ? metadata_field::none : metadata_from_name(what);
    c.decoding.columns.push_back(std::move(b));
  }
  if (c.decoding.columns.empty()) throw Error(ERRCODE_INVALID_PARAMETER_VALUE, "the source maps no columns");
  return c;
}

// ---------------------------------------------------------------------------------------------
// A decoded batch.
// ---------------------------------------------------------------------------------------------
struct DecodedMessage {
  size_t index;  // in the consumer batch, for the raw bytes of a dead letter
  int32_t partition;
  int64_t offset;
  size_t line_begin;
  size_t line_end;
  size_t mask;        // index into Batch::masks
  size_t first_cell;  // in Batch::cells, when the batch was decoded to cells (always for deletes)
  row_change change;  // a row to store, or the key of a row to delete
  uint32_t phase;     // see Batch::key_phases
};

struct DeadLetter {
  int32_t partition;
  int64_t offset;
  std::optional<std::string> key;
  std::optional<std::string> payload;
  std::string error;
};

struct Batch {
  std::string lines;
  // The rows as typed cells, for the column types in `cell_types` (one per binding); null when the
  // rows go to the target as COPY text.
  std::shared_ptr<const std::vector<cell_type>> cell_types;
  typed_rows cells;
  std::vector<DecodedMessage> messages;
  std::vector<column_mask> masks;
  std::vector<DeadLetter> dead_letters;
  std::map<int32_t, int64_t> next_offsets;  // per partition: last offset + 1
  const consumer_batch* source = nullptr;   // the consumed messages, alive while the batch is stored
  size_t decode_failures = 0;               // dead letters that never reached COPY
  int64 tombstones = 0;                     // null values counted and skipped
  int64 row_surplus = 0;                    // rows beyond one per message (change events), for the counts
  // Upserts and deletes of a batch are stored in phases, upserts (even) and deletes (odd) by
  // turns: a row goes to the phase of its key's previous row, or the next one when it changes
  // from upsert to delete or back. Rows of other keys commute, so each phase is a few long runs
  // instead of a run per change, and each key's rows still apply in partition order. Keys are
  // told apart by a hash of their primary key's text: a collision only adds an ordering.
  std::unordered_map<uint64_t, std::pair<uint32_t, row_change>> key_phases;
  uint32_t max_phase = 0;
  // Per partition, the first offset of the messages left out when the batch reached
  // batch_bytes: they are consumed again after this batch commits.
  std::map<int32_t, int64_t> left_over;
  bool interrupted = false;  // SIGTERM (a stop, pause or change) came during decoding: store nothing
  int64 bytes = 0;
  TimestampTz last_message_at = 0;
};

// The source's catalog row changed (paused, reset, dropped, altered) under a running batch.
struct CatalogChanged {};

class SourceWorker {
 public:
  SourceWorker(const WorkerLaunch& launch) : launch_(launch) {}

  void run() {
    set_state("starting");
    begin_transaction();
    config_ = load_config(launch_.name);
    Oid target = config_.target;
    Relation rel = pg_call([target] { return table_open(target, AccessShareLock); });
    cell_types_ = cell_types_of(rel);
    pg_call([rel] { table_close(rel, AccessShareLock); });
    commit_transaction();
    set_event_writer(config_.name);  // the windowed pipelines' watermarks tell writers apart
    decoder_ = make_decoder(config_.decoding);
    changes_ = decodes_changes(config_.decoding);
    key_cell_types_.assign(config_.decoding.columns.size(), cell_type::text);
    for (const column_binding& b : config_.decoding.columns)
      primary_key_binding_.push_back(std::find(config_.primary_key.begin(), config_.primary_key.end(), b.column) !=
                                     config_.primary_key.end());
    consumer_ = std::make_unique<consumer>(
        consumer_settings(), [this](const std::vector<int32_t>& partitions) { return stored_offsets(partitions); });
    set_state("running");
    // A two-stage pipeline: while the main thread stores batch N (COPY, PostgreSQL), a helper
    // thread decodes batch N+1 (PostgreSQL-free). One decode runs at a time: a decoder is not
    // thread-safe. Only the main thread ever calls PostgreSQL or the consumer.
    std::unique_ptr<InFlight> pending;
    while (!worker_stop_requested) {
      reload_config_if_requested();
      auto messages = std::make_unique<consumer_batch>(
          consumer_->poll_batch(static_cast<size_t>(config_.batch_size), std::chrono::milliseconds(config_.batch_ms)));
      report_consumer_state();
      std::unique_ptr<InFlight> next;
      if (!messages->empty()) {
        if (pending) pending->decoded.wait();
        next = start_decode(std::move(messages));
      }
      if (pending) {
        if (!finish(*pending, next.get())) next.reset();  // rewound: those messages come again
        recycle(*pending);
      } else if (!next) {
        update_lag();
        store_started_offsets();
      }
      pending = std::move(next);
    }
    set_state("stopping");
  }

 private:
  consumer_config consumer_settings() const {
    consumer_config c;
    c.brokers = config_.brokers;
    c.topic = config_.topic;
    c.group_id = config_.group_id;
    c.partitions = config_.partitions;
    c.properties = config_.kafka;
    c.start = config_.start;
    c.client_id = "pg_streamrec-" + config_.name;
    return c;
  }

  // The stored next offsets of the given partitions, read in a transaction of its own (the
  // consumer asks from inside poll, between batches, when partitions are assigned).
  std::map<int32_t, int64_t> stored_offsets(const std::vector<int32_t>& partitions) {
    std::map<int32_t, int64_t> result;
    bool own_transaction = !IsTransactionState();
    if (own_transaction) begin_transaction();
    Datum name = text_datum(config_.name);
    // A SELECT that does not raise always reports SPI_OK_SELECT: cannot happen, so internal.
    if (spi_exec("SELECT partition, next_offset FROM streamrec.source_offsets WHERE source = $1",
                 {{TEXTOID, name, false}}, true) != SPI_OK_SELECT)
      throw Error(ERRCODE_INTERNAL_ERROR, "cannot read streamrec.source_offsets");
    for (uint64 i = 0; i < SPI_processed; i++) {
      int32_t p = std::stoi(spi_text(i, 1).value_or("0"));
      if (std::find(partitions.begin(), partitions.end(), p) != partitions.end())
        result[p] = std::stoll(spi_text(i, 2).value_or("0"));
    }
    if (own_transaction) commit_transaction();
    return result;
  }

  // A polled batch on its way: decoding on the helper thread, then stored by finish().
  struct InFlight {
    std::unique_ptr<consumer_batch> messages;
    Batch batch;
    std::future<std::string> decoded;  // "" or why the registry could not be used
    ~InFlight() {
      if (decoded.valid()) decoded.wait();  // never free what the helper thread still reads
    }
  };

  std::unique_ptr<InFlight> start_decode(std::unique_ptr<consumer_batch> messages) {
    auto flight = std::make_unique<InFlight>();
    flight->messages = std::move(messages);
    flight->batch.source = flight->messages.get();
    flight->batch.cell_types = cell_types_;
    // The buffers of a stored batch, already paged in: fresh ones would fault page by page.
    flight->batch.lines = std::move(spare_lines_);
    flight->batch.lines.clear();
    flight->batch.cells = std::move(spare_cells_);
    flight->batch.cells.clear();
    InFlight* f = flight.get();
    flight->decoded = std::async(std::launch::async, [this, f] { return decode(*f->messages, f->batch); });
    return flight;
  }

  // Keeps the buffers of a batch that is done (its decoding finished) for the next one.
  void recycle(InFlight& done) {
    if (done.decoded.valid()) done.decoded.wait();
    spare_lines_ = std::move(done.batch.lines);
    spare_cells_ = std::move(done.batch.cells);
  }

  // Stores a decoded batch; false when it did not commit and the consumer was rewound (to
  // the first offsets of this batch and of the one polled after it, which is dropped).
  bool finish(InFlight& flight, InFlight* next) {
    // Where the consumer goes back to when the batch does not commit (computed only then: it
    // walks every message of both batches).
    auto rewind_to = [&flight, next] {
      std::map<int32_t, int64_t> offsets;
      if (next != nullptr) offsets = next->messages->first_offsets();
      for (const auto& [p, o] : flight.messages->first_offsets()) offsets[p] = o;
      return offsets;
    };
    std::string transient = flight.decoded.get();  // rethrows what the decoder threw unexpectedly
    if (next != nullptr) next->decoded.wait();
    if (flight.batch.interrupted) return false;  // stopping: the stored offsets say where to go on
    if (!transient.empty()) {
      consumer_->rewind(rewind_to());
      set_state("waiting for schema registry", transient);
      backoff_on_latch(registry_failures_++, 100, 5000);
      return false;
    }
    registry_failures_ = 0;
    flight.batch.last_message_at = GetCurrentTimestamp();
    try {
      store(flight.batch);
      failures_ = 0;
      if (flight.batch.left_over.empty()) return true;
      // Ended early at batch_bytes: what was left out comes again, before the next batch.
      std::map<int32_t, int64_t> again =
          next != nullptr ? next->messages->first_offsets() : std::map<int32_t, int64_t>{};
      for (const auto& [p, o] : flight.batch.left_over) again[p] = o;
      consumer_->rewind(again);
      return false;
    } catch (const CatalogChanged&) {
      abort_transaction();
      worker_stop_requested = true;  // the launcher starts a fresh worker if the source still runs
    } catch (const PgError& e) {
      recover_from_failure(e.what(), rewind_to());
    } catch (const Error& e) {
      recover_from_failure(e.what(), rewind_to());
    }
    return false;
  }

  void report_consumer_state() {
    switch (consumer_->state()) {
      case consumer_state::broker_down:
        set_state("waiting for broker", consumer_->state_message());
        break;
      case consumer_state::topic_missing:
        set_state("waiting for topic", consumer_->state_message());
        break;
      case consumer_state::error:
        set_state("retrying", consumer_->state_message());
        break;
      default:
        set_state("running");
        break;
    }
  }

  // Decodes every message (on the helper thread: no PostgreSQL, no consumer calls). Returns ""
  // or, when the schema registry cannot be used, why: the batch is then retried later.
  std::string decode(const consumer_batch& messages, Batch& batch) {
    column_mask present;
    for (size_t i = 0; i < messages.size(); i++) {
      // Between messages: a stop request ends decoding at once (one message's decode is
      // bounded by max_decoded_bytes), and a batch that holds batch_bytes of rows ends early.
      if (worker_stop_requested) {
        batch.interrupted = true;
        return {};
      }
      if (batch.lines.size() >= config_.batch_bytes) {
        for (size_t j = i; j < messages.size(); j++)
          batch.left_over.emplace(messages.view(j).partition, messages.view(j).offset);
        break;
      }
      message_view m = messages.view(i);
      batch.next_offsets[m.partition] = m.offset + 1;
      batch.bytes += static_cast<int64>(m.payload ? m.payload->size() : 0);
      // A null value: in mode append, or after a change event's delete (which Debezium follows
      // with one for log compaction), counted and skipped. In mode upsert with key_columns it
      // deletes its key's row; otherwise the decoder refuses it (a dead letter).
      if (!m.payload && (!config_.upsert || config_.decoding.envelope != envelope_kind::none)) {
        batch.tombstones++;
        continue;
      }
      if (changes_) {
        if (!decode_change_rows(i, m, batch)) return transient_;
        continue;
      }
      size_t begin = batch.lines.size();
      bool stored = false;
      try {
        stored = decoder_->decode(m, batch.lines, present);
      } catch (const format_error& e) {
        batch.dead_letters.push_back(dead_letter_of(m, e.what()));
        batch.decode_failures++;
        continue;
      } catch (const transient_error& e) {
        return e.what();
      }
      if (!stored) continue;  // skipped on purpose (a csv header record)
      size_t first_cell = 0;
      if (batch.cell_types) {
        try {
          first_cell = batch.cells.append_line(std::string_view(batch.lines).substr(begin), present, *batch.cell_types);
        } catch (const format_error& e) {
          batch.lines.resize(begin);
          batch.dead_letters.push_back(dead_letter_of(m, e.what()));
          batch.decode_failures++;
          continue;
        }
      }
      size_t mask_index = intern_mask(batch, present);
      batch.messages.push_back(DecodedMessage{i, m.partition, m.offset, begin, batch.lines.size(), mask_index,
                                              first_cell, row_change::upsert});
    }
    return {};
  }

  // The rows of one message of a source with key_columns or an envelope (upserts and deletes,
  // in the order they apply), or its dead letter. False when the registry cannot be used now
  // (why is in transient_).
  bool decode_change_rows(size_t index, const message_view& m, Batch& batch) {
    const size_t begin = batch.lines.size();
    change_rows_.clear();
    first_cells_.clear();
    try {
      decoder_->decode_changes(m, batch.lines, change_rows_);
      for (const decoded_row& row : change_rows_) {
        std::string_view line = std::string_view(batch.lines).substr(row.begin, row.end - row.begin);
        // Deletes always go to cells: their key values are read back as text.
        if (row.change == row_change::remove)
          first_cells_.push_back(batch.cells.append_line(line, row.present, key_cell_types_));
        else
          first_cells_.push_back(batch.cell_types ? batch.cells.append_line(line, row.present, *batch.cell_types) : 0);
      }
    } catch (const format_error& e) {
      batch.lines.resize(begin);
      batch.dead_letters.push_back(dead_letter_of(m, e.what()));
      batch.decode_failures++;
      return true;
    } catch (const transient_error& e) {
      transient_ = e.what();
      return false;
    }
    batch.row_surplus += static_cast<int64>(change_rows_.size()) - 1;
    for (size_t r = 0; r < change_rows_.size(); r++) {
      const decoded_row& row = change_rows_[r];
      uint32_t phase = 0;
      if (config_.upsert) {
        std::string_view line = std::string_view(batch.lines).substr(row.begin, row.end - row.begin);
        auto [found, fresh] = batch.key_phases.try_emplace(primary_key_hash(line, row.present),
                                                           row.change == row_change::upsert ? 0u : 1u, row.change);
        if (!fresh && found->second.second != row.change) found->second = {found->second.first + 1, row.change};
        phase = found->second.first;
        batch.max_phase = std::max(batch.max_phase, phase);
      }
      batch.messages.push_back(DecodedMessage{index, m.partition, m.offset, row.begin, row.end,
                                              intern_mask(batch, row.present), first_cells_[r], row.change, phase});
    }
    return true;
  }

  // FNV-1a of the primary key's fields in a row's line (escaped text, as decoded).
  uint64_t primary_key_hash(std::string_view line, const column_mask& present) const {
    if (!line.empty() && line.back() == '\n') line.remove_suffix(1);
    uint64_t hash = 1469598103934665603ULL;
    size_t start = 0;
    for (size_t i = 0; i < present.size(); i++) {
      if (!present[i]) continue;
      size_t tab = line.find('\t', start);
      std::string_view field = line.substr(start, tab == std::string_view::npos ? std::string_view::npos : tab - start);
      start = tab == std::string_view::npos ? line.size() : tab + 1;
      if (!primary_key_binding_[i]) continue;
      for (char c : field) hash = (hash ^ static_cast<unsigned char>(c)) * 1099511628211ULL;
      hash = (hash ^ 0x1f) * 1099511628211ULL;  // a separator no field holds unescaped
    }
    return hash;
  }

  static std::optional<std::string> to_string(const std::optional<std::string_view>& v) {
    return v ? std::optional<std::string>(std::string(*v)) : std::nullopt;
  }

  static DeadLetter dead_letter_of(const message_view& m, const std::string& error) {
    return DeadLetter{m.partition, m.offset, to_string(m.key), to_string(m.payload), error};
  }

  static size_t intern_mask(Batch& batch, const column_mask& present) {
    for (size_t i = 0; i < batch.masks.size(); i++)
      if (batch.masks[i] == present) return i;
    batch.masks.push_back(present);
    return batch.masks.size() - 1;
  }

  // One transaction: rows, dead letters and offsets commit together or not at all.
  void store(Batch& batch) {
    begin_transaction();
    check_generation();
    check_target_privileges();
    Oid target = config_.target;
    Relation rel = pg_call([target] { return table_open(target, RowExclusiveLock); });
    if (config_.upsert) ensure_stage();
    if (batch.max_phase > 0)
      std::stable_sort(batch.messages.begin(), batch.messages.end(),
                       [](const DecodedMessage& a, const DecodedMessage& b) { return a.phase < b.phase; });
    CellColumn* columns = batch.cell_types ? cell_columns(rel, *batch.cell_types) : nullptr;
    uint64 rows = 0;
    size_t run_start = 0;
    // Runs of messages with the same columns and the same change, in partition order: a delete
    // after an upsert of the same key wins, and an upsert after a delete brings the row back.
    for (size_t i = 1; i <= batch.messages.size(); i++) {
      if (i == batch.messages.size() || batch.messages[i].mask != batch.messages[run_start].mask ||
          batch.messages[i].change != batch.messages[run_start].change) {
        if (batch.messages[run_start].change == row_change::remove)
          rows += delete_with_isolation(batch, run_start, i);
        else
          rows += columns != nullptr ? insert_with_isolation(rel, columns, batch, run_start, i)
                                     : copy_with_isolation(rel, batch, run_start, i);
        run_start = i;
      }
    }
    pg_call([rel] { table_close(rel, NoLock); });
    if (!batch.dead_letters.empty() && config_.stop_on_error) {
      stop_source(batch.dead_letters.front());
      return;
    }
    write_dead_letters(batch);
    write_offsets(batch);
    commit_transaction();
    started_offsets_.clear();
    // Best effort, after the fact: lets Kafka tooling (and a group member that takes over a
    // partition without a stored offset) see where this source is.
    consumer_->commit_to_kafka(batch.next_offsets);
    record_batch(batch, rows);
  }

  // Deletes the rows whose keys messages [lo, hi) (a run of deletes) hold, in one
  // subtransaction; when that fails, message by message, dead-lettering the ones that fail (a
  // key of the wrong type, a foreign key that restricts the delete, a trigger's error).
  uint64 delete_with_isolation(Batch& batch, size_t lo, size_t hi) {
    std::string error;
    uint64 rows = 0;
    if (in_subtransaction(
            true, [this, &batch, lo, hi, &rows] { rows = delete_rows(batch, lo, hi); }, error))
      return rows;
    if (hi - lo == 1) {
      batch.dead_letters.push_back(dead_letter_of(batch.source->view(batch.messages[lo].index), error));
      return 0;
    }
    rows = 0;
    for (size_t i = lo; i < hi; i++) {
      uint64 one = 0;
      if (in_subtransaction(
              true, [this, &batch, i, &one] { one = delete_rows(batch, i, i + 1); }, error))
        rows += one;
      else
        batch.dead_letters.push_back(dead_letter_of(batch.source->view(batch.messages[i].index), error));
    }
    return rows;
  }

  // One DELETE for the keys of messages [lo, hi): the key columns (the rows' present bindings)
  // joined with arrays of the keys' text, cast to each column's type. A key with a NULL field
  // names no row.
  uint64_t delete_rows(const Batch& batch, size_t lo, size_t hi) {
    const column_mask& present = batch.masks[batch.messages[lo].mask];
    const std::string& sql = delete_sql(present);
    size_t width = 0;
    for (bool p : present) width += p ? 1 : 0;
    std::vector<std::vector<std::string_view>> keys(width);
    for (size_t i = lo; i < hi; i++) {
      const typed_cell* cells = batch.cells.cells(batch.messages[i].first_cell);
      bool has_null = false;
      for (size_t c = 0; c < width; c++) has_null = has_null || cells[c].kind == cell_kind::null;
      if (has_null) continue;
      for (size_t c = 0; c < width; c++) keys[c].push_back(batch.cells.text_of(cells[c]));
    }
    if (keys.empty() || keys[0].empty()) return 0;
    std::vector<SpiArg> args;
    args.reserve(width);
    for (const std::vector<std::string_view>& column : keys)
      args.push_back(SpiArg{TEXTARRAYOID, text_array(column), false});
    if (spi_exec(sql.c_str(), args, false) < 0)
      throw Error(ERRCODE_INTERNAL_ERROR, "cannot delete from the source's target table");
    return SPI_processed;
  }

  const std::string& delete_sql(const column_mask& present) {
    auto found = delete_sql_.find(present);
    if (found != delete_sql_.end()) return found->second;
    std::string where, arrays, names;
    int param = 0;
    for (size_t i = 0; i < present.size(); i++) {
      if (!present[i]) continue;
      const std::string& column = config_.decoding.columns[i].column;
      if (spi_exec("SELECT pg_catalog.format_type(atttypid, atttypmod) FROM pg_catalog.pg_attribute "
                   "WHERE attrelid = $1 AND attname = $2 AND NOT attisdropped",
                   {{OIDOID, ObjectIdGetDatum(config_.target), false}, {TEXTOID, text_datum(column), false}},
                   true) != SPI_OK_SELECT ||
          SPI_processed != 1)
        throw Error(ERRCODE_UNDEFINED_COLUMN, "column \"" + column + "\" of the source's target no longer exists");
      std::string type = spi_text(0, 1).value_or("text");
      std::string key = "k" + std::to_string(++param);
      arrays.append(arrays.empty() ? "pg_catalog.unnest($" : ", pg_catalog.unnest($")
          .append(std::to_string(param))
          .append("::text[])");
      names.append(names.empty() ? "" : ", ").append(key);
      where.append(where.empty() ? "t." : " AND t.")
          .append(quote_ident(column))
          .append(" = CAST(keys.")
          .append(key)
          .append(" AS ")
          .append(type)
          .append(")");
    }
    return delete_sql_[present] = "DELETE FROM " + target_name() + " t USING ROWS FROM (" + arrays + ") AS keys(" +
                                  names + ") WHERE " + where;
  }

  // Aborts the batch when the source was paused, reset, changed or dropped meanwhile: the
  // catalog row is share-locked, so such a change waits for this batch or this batch sees it.
  void check_generation() {
    Datum name = text_datum(config_.name);
    int rc =
        spi_exec("SELECT generation FROM streamrec.sources WHERE name = $1 FOR SHARE", {{TEXTOID, name, false}}, false);
    if (rc != SPI_OK_SELECT || SPI_processed != 1 || spi_text(0, 1).value_or("") != std::to_string(config_.generation))
      throw CatalogChanged();
  }

  void check_target_privileges() {
    Oid relid = config_.target;
    AclResult insert_ok = pg_call([relid] { return pg_class_aclcheck(relid, GetUserId(), ACL_INSERT); });
    if (insert_ok != ACLCHECK_OK)
      throw Error(ERRCODE_INSUFFICIENT_PRIVILEGE, "permission denied to insert into the source's target table", "",
                  "The worker runs as the source's owner; GRANT INSERT on the target to that role.");
    // The COPY path does not apply row-level security, and create_source only refused it at
    // creation: policies enabled since then stop the source before anything is stored.
    if (pg_call([relid] { return check_enable_rls(relid, InvalidOid, true); }) == RLS_ENABLED)
      throw Error(ERRCODE_FEATURE_NOT_SUPPORTED,
                  "row-level security on the source's target table applies to the source's owner", "",
                  "Sources do not apply row-level security policies: disable it, or let the owner bypass it "
                  "(BYPASSRLS, or owning the table without FORCE ROW LEVEL SECURITY), or fill a staging table.");
  }

  // Whether an error of a COPY may be caused by one of its rows, so halving the range finds and
  // dead-letters that row. Only failures of the server or of the moment are the batch's problem
  // and retry it whole: a lost connection (08), exhausted server resources (53: disk full, out
  // of memory, too many connections), a lock, serialization or deadlock conflict (40, 55P03),
  // operator intervention (57: shutdown, and a cancel or statement_timeout, which would only
  // recur on every half), system errors (58) and internal errors (XX). Everything else, whatever
  // its class (a data error, a constraint, a key too long for its index, an array nested too
  // deep, a row-level security refusal, a trigger's RAISE with its own SQLSTATE), follows the row.
  static bool is_row_error(int sqlstate) {
    int error_class = ERRCODE_TO_CATEGORY(sqlstate);
    return error_class != ERRCODE_CONNECTION_EXCEPTION && error_class != ERRCODE_INSUFFICIENT_RESOURCES &&
           error_class != ERRCODE_TRANSACTION_ROLLBACK && sqlstate != ERRCODE_LOCK_NOT_AVAILABLE &&
           error_class != ERRCODE_OPERATOR_INTERVENTION && error_class != ERRCODE_SYSTEM_ERROR &&
           error_class != ERRCODE_INTERNAL_ERROR;
  }

  // ---------------------------------------------------------------------------------------------
  // The typed path: cells to Datums, bad rows isolated first, the good rows inserted once.
  // ---------------------------------------------------------------------------------------------

  // The cell types of the bindings' columns in rel, or null when rows must go as COPY text: a
  // partitioned table, a partition or a foreign table routes or checks rows as COPY does (mode
  // upsert stages rows in a plain table, so it always takes cells), or a binding names no column.
  std::shared_ptr<const std::vector<cell_type>> cell_types_of(Relation rel) {
    if (!config_.upsert && (rel->rd_rel->relkind != RELKIND_RELATION || rel->rd_rel->relispartition)) return nullptr;
    auto types = std::make_shared<std::vector<cell_type>>();
    TupleDesc desc = RelationGetDescr(rel);
    for (const column_binding& b : config_.decoding.columns) {
      const char* name = b.column.c_str();
      int attnum = pg_call([rel, name] { return attnameAttNum(rel, name, false); });
      if (attnum <= 0) return nullptr;
      Form_pg_attribute att = TupleDescAttr(desc, attnum - 1);
      types->push_back(cell_type_of(att->atttypid, att->atttypmod));
    }
    return types;
  }

  // The columns a batch decoded to `types` goes into, or null (COPY text for this batch) when the
  // target's columns changed since: the next batches are decoded for the columns as they are now.
  CellColumn* cell_columns(Relation rel, const std::vector<cell_type>& types) {
    std::shared_ptr<const std::vector<cell_type>> now = cell_types_of(rel);
    if (!now || *now != types) {
      cell_types_ = now;
      return nullptr;
    }
    size_t count = config_.decoding.columns.size();
    CellColumn* columns =
        static_cast<CellColumn*>(pg_call([count] { return palloc0(sizeof(CellColumn) * (count + 1)); }));
    for (size_t i = 0; i < count; i++) {
      const char* name = config_.decoding.columns[i].column.c_str();
      CellColumn* column = &columns[i];
      pg_call([rel, name, column] {
        prepare_cell_column(TupleDescAttr(RelationGetDescr(rel), attnameAttNum(rel, name, false) - 1), column);
      });
    }
    return columns;
  }

  // One run of a batch (messages with the same columns) as Datums, row after row.
  struct Run {
    size_t lo = 0;  // the run's first message in the batch
    const column_mask* present = nullptr;
    int width = 0;                        // present columns
    AttrNumber* columns = nullptr;        // in the target
    AttrNumber* stage_columns = nullptr;  // in the upsert stage
    CellColumn* cell_columns = nullptr;   // the present columns' (copies)
    Datum* values = nullptr;              // width per row
    bool* nulls = nullptr;
    MemoryContext context = nullptr;
  };

  // What insert_table_rows() reads: the rows of `order` (indexes in the run), in that order.
  struct RowFeed {
    const Run* run;
    const size_t* order;
    size_t count;
    size_t next;
  };

  static bool feed_row(void* arg, Datum* values, bool* nulls) noexcept {
    RowFeed* feed = static_cast<RowFeed*>(arg);
    if (feed->next == feed->count) return false;
    size_t row = feed->order[feed->next++];
    int width = feed->run->width;
    memcpy(values, feed->run->values + row * width, sizeof(Datum) * width);
    memcpy(nulls, feed->run->nulls + row * width, sizeof(bool) * width);
    return true;
  }

  // Inserts messages [lo, hi) of one run: the values PostgreSQL refuses are found while the
  // rows are converted, the rows the insert refuses by isolation without keeping anything, and
  // the good rows go in as one statement. Every bad message is dead-lettered, in batch order.
  uint64 insert_with_isolation(Relation rel, const CellColumn* columns, Batch& batch, size_t lo, size_t hi) {
    const column_mask& present = batch.masks[batch.messages[lo].mask];
    Run run;
    run.lo = lo;
    run.present = &present;
    for (bool p : present) run.width += p ? 1 : 0;
    int width = run.width;
    size_t rows = hi - lo;
    run.context = pg_call(
        [] { return AllocSetContextCreate(TopTransactionContext, "streamrec decoded rows", ALLOCSET_DEFAULT_SIZES); });
    MemoryContext context = run.context;
    run.columns = static_cast<AttrNumber*>(
        pg_call([context, width] { return MemoryContextAlloc(context, sizeof(AttrNumber) * (width + 1)); }));
    run.cell_columns = static_cast<CellColumn*>(
        pg_call([context, width] { return MemoryContextAlloc(context, sizeof(CellColumn) * (width + 1)); }));
    run.values = static_cast<Datum*>(
        pg_call([context, width, rows] { return MemoryContextAlloc(context, sizeof(Datum) * (rows * width + 1)); }));
    run.nulls = static_cast<bool*>(
        pg_call([context, width, rows] { return MemoryContextAlloc(context, sizeof(bool) * (rows * width + 1)); }));
    for (size_t i = 0, c = 0; i < present.size(); i++) {
      if (!present[i]) continue;
      run.cell_columns[c] = columns[i];
      run.columns[c++] = columns[i].attnum;
    }
    if (config_.upsert) {
      run.stage_columns = static_cast<AttrNumber*>(
          pg_call([context, width] { return MemoryContextAlloc(context, sizeof(AttrNumber) * (width + 1)); }));
      Oid stage = stage_oid_;
      Relation stage_rel = pg_call([stage] { return table_open(stage, RowExclusiveLock); });
      for (size_t i = 0, c = 0; i < present.size(); i++) {
        if (!present[i]) continue;
        const char* name = config_.decoding.columns[i].column.c_str();
        run.stage_columns[c++] =
            static_cast<AttrNumber>(pg_call([stage_rel, name] { return attnameAttNum(stage_rel, name, false); }));
      }
      pg_call([stage_rel] { table_close(stage_rel, NoLock); });
    }

    std::map<size_t, std::string> rejected;  // by message index in the batch
    convert_rows(batch, run, hi, rejected);
    std::vector<size_t> good;
    for (size_t i = lo; i < hi; i++)
      if (rejected.count(i) == 0) good.push_back(i - lo);
    uint64 inserted = insert_once(rel, run, good, rejected);
    for (const auto& [i, error] : rejected)
      batch.dead_letters.push_back(dead_letter_of(batch.source->view(batch.messages[i].index), error));
    pg_call([context] { MemoryContextDelete(context); });
    return inserted;
  }

  // Every row's cells to Datums, in one subtransaction; a value PostgreSQL refuses (an input
  // function's error, bytes invalid in the database encoding) rejects its message, and the rest
  // converts in a fresh subtransaction. The Datums live in the run's context, which outlives them.
  void convert_rows(const Batch& batch, Run& run, size_t hi, std::map<size_t, std::string>& rejected) {
    volatile size_t at = run.lo;
    Run* r = &run;
    const Batch* b = &batch;
    while (at < hi) {
      std::string error;
      bool converted = in_subtransaction(
          true,
          [r, b, hi, &at] {
            pg_call([r, b, hi, &at] {
              MemoryContext caller = MemoryContextSwitchTo(r->context);
              for (; at < hi; at = at + 1) {
                const DecodedMessage& message = b->messages[at];
                const typed_cell* cells = b->cells.cells(message.first_cell);
                size_t base = (at - r->lo) * r->width;
                for (int c = 0; c < r->width; c++)
                  r->values[base + c] = cell_datum(&r->cell_columns[c], cells[c], b->cells.text(), &r->nulls[base + c]);
              }
              MemoryContextSwitchTo(caller);
            });
          },
          error);
      if (!converted) {
        rejected[static_cast<size_t>(at)] = error;
        at = at + 1;
      }
    }
  }

  // When this many rows in a row name themselves as the insert's error, the rest is searched by
  // probes instead of retrying the whole run each time.
  static constexpr int kDirectRetries = 16;

  // Inserts the rows of `good` (indexes in the run) once, as one statement, after removing the
  // rows the insert refuses. An error that names its row (a constraint, a unique violation, a
  // BEFORE ROW trigger) rejects that row; one that does not (a foreign key or an AFTER trigger at
  // the statement's end) is traced by inserting ever longer prefixes of the rows in
  // subtransactions that are rolled back: the first row whose prefix fails is rejected with that
  // prefix's error, as inserting the rows one after another would have rejected it. Only the last
  // insert is kept, so the target's statement triggers run for the batch's good rows once.
  uint64 insert_once(Relation rel, const Run& run, std::vector<size_t>& good, std::map<size_t, std::string>& rejected) {
    uint64 rows = 0;
    int64 culprit = -1;
    std::string error;
    auto reject = [&](size_t position, const std::string& why) {
      rejected[run.lo + good[position]] = why;
      good.erase(good.begin() + static_cast<std::ptrdiff_t>(position));
    };
    for (int named = 0;; named++) {
      if (good.empty()) return 0;
      if (attempt(rel, run, good, good.size(), true, culprit, error, rows)) return rows;
      if (culprit < 0 || named == kDirectRetries) break;
      reject(static_cast<size_t>(culprit), error);
    }
    size_t known_good = 0;  // a prefix of `good` that inserts without error
    size_t step = 1;
    for (;;) {
      if (good.empty()) return 0;
      size_t length = std::min(good.size(), known_good + step);
      bool last = length == good.size();
      if (attempt(rel, run, good, length, last, culprit, error, rows)) {
        if (last) return rows;
        known_good = length;
        step *= 2;
        continue;
      }
      size_t bad;
      if (culprit >= 0) {
        bad = static_cast<size_t>(culprit);
      } else {
        size_t ok = known_good, failing = length;
        bad = SIZE_MAX;
        while (failing - ok > 1) {
          size_t middle = ok + (failing - ok) / 2;
          std::string probe_error;
          if (attempt(rel, run, good, middle, false, culprit, probe_error, rows)) {
            ok = middle;
            continue;
          }
          error = probe_error;
          if (culprit >= 0) {
            bad = static_cast<size_t>(culprit);
            break;
          }
          failing = middle;
        }
        if (bad == SIZE_MAX) bad = failing - 1;
        known_good = std::min(ok, bad);
      }
      known_good = std::min(known_good, bad);
      reject(bad, error);
      step = 1;
    }
  }

  // Inserts the first `count` rows of `order` as one statement in a subtransaction, kept when
  // `keep` and it succeeds. On a row error returns false with the error and, when the error
  // concerns one row, its position in `order` in `culprit` (else -1).
  bool attempt(Relation rel, const Run& run, const std::vector<size_t>& order, size_t count, bool keep, int64& culprit,
               std::string& error, uint64& rows) {
    volatile int64 current = -1;
    RowFeed feed{&run, order.data(), count, 0};
    RowFeed* f = &feed;
    const Run* r = &run;
    uint64 inserted = 0;
    bool ok = in_subtransaction(
        keep,
        [this, rel, r, f, &current, &inserted, &run] {
          if (!config_.upsert) {
            inserted = static_cast<uint64>(pg_call(
                [rel, r, f, &current] { return insert_table_rows(rel, r->columns, r->width, feed_row, f, &current); }));
            return;
          }
          Oid stage = stage_oid_;
          pg_call([stage, r, f, &current] {
            Relation stage_rel = table_open(stage, RowExclusiveLock);
            insert_table_rows(stage_rel, r->stage_columns, r->width, feed_row, f, &current);
            table_close(stage_rel, NoLock);
          });
          current = -1;  // what the upsert refuses is traced by prefixes
          inserted = upsert_staged(*run.present);
        },
        error);
    culprit = !ok && current >= 0 && static_cast<size_t>(current) < count ? current : -1;
    if (ok) rows = inserted;
    return ok;
  }

  // Runs body in a subtransaction, released when `keep` and body succeeded, else rolled back.
  // Returns false with the error's text when body raised an error a row may cause; any other
  // error or exception is rethrown after the rollback.
  template <typename Body>
  bool in_subtransaction(bool keep, Body&& body, std::string& error) {
    MemoryContext outer_context = CurrentMemoryContext;
    ResourceOwner outer_owner = CurrentResourceOwner;
    auto leave = [outer_context, outer_owner](bool release) {
      pg_call([outer_context, outer_owner, release] {
        if (release)
          ReleaseCurrentSubTransaction();
        else
          RollbackAndReleaseCurrentSubTransaction();
        MemoryContextSwitchTo(outer_context);
        CurrentResourceOwner = outer_owner;
      });
    };
    pg_call([] { BeginInternalSubTransaction(nullptr); });
    try {
      body();
    } catch (PgError& e) {
      leave(false);
      if (!is_row_error(e.sqlstate())) throw;
      error = row_error_text(e);
      return false;
    } catch (...) {
      // Left open, the subtransaction would survive the batch's abort (which then ends only the
      // subtransaction) and every later transaction of this worker would fail to start.
      leave(false);
      throw;
    }
    leave(keep);
    return true;
  }

  // A dead letter's error: the message, and its detail in parentheses.
  static std::string row_error_text(PgError& e) {
    std::string error = e.what();
    ErrorData* data = e.release();
    if (data != nullptr && data->detail != nullptr) error += std::string(" (") + data->detail + ")";
    return error;
  }

  // COPYs messages [lo, hi) of one run; on a row error, halves the range until each failing
  // message is alone, dead-letters it, and keeps every other row.
  uint64 copy_with_isolation(Relation rel, Batch& batch, size_t lo, size_t hi) {
    std::string error;
    uint64 rows = 0;
    if (try_copy(rel, batch, lo, hi, rows, error)) return rows;
    if (hi - lo == 1) {
      batch.dead_letters.push_back(dead_letter_of(batch.source->view(batch.messages[lo].index), error));
      return 0;
    }
    size_t mid = lo + (hi - lo) / 2;
    return copy_with_isolation(rel, batch, lo, mid) + copy_with_isolation(rel, batch, mid, hi);
  }

  bool try_copy(Relation rel, Batch& batch, size_t lo, size_t hi, uint64& rows, std::string& error) {
    MemoryContext outer_context = CurrentMemoryContext;
    ResourceOwner outer_owner = CurrentResourceOwner;
    auto roll_back = [outer_context, outer_owner] {
      pg_call([outer_context, outer_owner] {
        RollbackAndReleaseCurrentSubTransaction();
        MemoryContextSwitchTo(outer_context);
        CurrentResourceOwner = outer_owner;
      });
    };
    pg_call([] { BeginInternalSubTransaction(nullptr); });
    try {
      const column_mask& present = batch.masks[batch.messages[lo].mask];
      const char* data = batch.lines.data() + batch.messages[lo].line_begin;
      size_t size = batch.messages[hi - 1].line_end - batch.messages[lo].line_begin;
      rows = config_.upsert ? upsert_lines(present, data, size) : append_lines(rel, present, data, size);
      pg_call([outer_context, outer_owner] {
        ReleaseCurrentSubTransaction();
        MemoryContextSwitchTo(outer_context);
        CurrentResourceOwner = outer_owner;
      });
      return true;
    } catch (PgError& e) {
      roll_back();
      if (!is_row_error(e.sqlstate())) throw;
      error = row_error_text(e);
      return false;
    } catch (...) {
      // Any other throw (our own Error, bad_alloc) is the batch's problem, but the subtransaction
      // goes first: left open, it would survive the batch's abort (which then ends only the
      // subtransaction) and every later transaction of this worker would fail to start.
      roll_back();
      throw;
    }
  }

  List* column_names(const column_mask& present) {
    List* names = NIL;
    for (size_t i = 0; i < config_.decoding.columns.size(); i++) {
      if (!present[i]) continue;
      const char* column = config_.decoding.columns[i].column.c_str();
      names = pg_call([names, column] { return lappend(names, makeString(pstrdup(column))); });
    }
    return names;
  }

  uint64 append_lines(Relation rel, const column_mask& present, const char* data, size_t size) {
    List* names = column_names(present);
    return pg_call([rel, names, data, size] { return copy_text_rows(rel, names, data, size); });
  }

  // mode upsert: COPY into a temporary stage table, then one INSERT ... ON CONFLICT that keeps
  // the last message per key and updates only the columns the messages carried.
  uint64 upsert_lines(const column_mask& present, const char* data, size_t size) {
    List* names = column_names(present);
    Oid stage = stage_oid_;
    pg_call([stage, names, data, size] {
      Relation rel = table_open(stage, RowExclusiveLock);
      copy_text_rows(rel, names, data, size);
      table_close(rel, NoLock);
    });
    return upsert_staged(present);
  }

  // Mode upsert, after the rows are staged: one INSERT ... ON CONFLICT from the stage, which is
  // emptied for the next run.
  uint64 upsert_staged(const column_mask& present) {
    const std::string& sql = upsert_sql(present);
    // PostgreSQL refuses INSERT ... ON CONFLICT itself on a table with rules: another result cannot happen.
    if (spi_exec(sql.c_str(), {}, false) != SPI_OK_INSERT) throw Error(ERRCODE_INTERNAL_ERROR, "upsert failed");
    uint64 rows = SPI_processed;
    spi_exec("DELETE FROM pg_temp.streamrec_stage", {}, false);
    return rows;
  }

  // The stage of mode upsert, made in the batch's transaction before any COPY's subtransaction
  // (a halving's rollback would drop it). Looked up again each batch: a batch that aborted
  // took back the stage it made.
  void ensure_stage() {
    if (stage_oid_ != InvalidOid && pg_call([] { return RelnameGetRelid("streamrec_stage"); }) == stage_oid_) return;
    std::string sql = "CREATE TEMP TABLE IF NOT EXISTS pg_temp.streamrec_stage (LIKE " + target_name() +
                      " INCLUDING DEFAULTS); ALTER TABLE pg_temp.streamrec_stage ADD COLUMN IF NOT EXISTS "
                      "streamrec_seq bigint GENERATED ALWAYS AS IDENTITY";
    spi_exec(sql.c_str(), {}, false);
    stage_oid_ = pg_call([] { return RelnameGetRelid("streamrec_stage"); });
  }

  const std::string& upsert_sql(const column_mask& present) {
    auto found = upsert_sql_.find(present);
    if (found != upsert_sql_.end()) return found->second;
    std::string all, keys, updates;
    if (spi_exec("SELECT string_agg(quote_ident(attname), ', ' ORDER BY attnum) FROM pg_catalog.pg_attribute "
                 "WHERE attrelid = $1 AND attnum > 0 AND NOT attisdropped AND attgenerated = ''",
                 {{OIDOID, ObjectIdGetDatum(config_.target), false}}, true) == SPI_OK_SELECT)
      all = spi_text(0, 1).value_or("");
    for (const std::string& k : config_.primary_key) keys += (keys.empty() ? "" : ", ") + quote_ident(k);
    for (size_t i = 0; i < config_.decoding.columns.size(); i++) {
      const std::string& c = config_.decoding.columns[i].column;
      if (!present[i] ||
          std::find(config_.primary_key.begin(), config_.primary_key.end(), c) != config_.primary_key.end())
        continue;
      updates += (updates.empty() ? "" : ", ") + quote_ident(c) + " = EXCLUDED." + quote_ident(c);
    }
    std::string sql = "INSERT INTO " + target_name() + " (" + all + ") SELECT DISTINCT ON (" + keys + ") " + all +
                      " FROM pg_temp.streamrec_stage ORDER BY " + keys + ", streamrec_seq DESC ON CONFLICT (" + keys +
                      ") DO " + (updates.empty() ? "NOTHING" : "UPDATE SET " + updates);
    return upsert_sql_[present] = sql;
  }

  std::string target_name() {
    Oid relid = config_.target;
    const char* name = pg_call([relid] {
      return quote_qualified_identifier(get_namespace_name(get_rel_namespace(relid)), get_rel_name(relid));
    });
    return name;
  }

  void write_dead_letters(const Batch& batch) {
    Datum source = text_datum(config_.name);
    Datum topic = text_datum(config_.topic);
    for (const DeadLetter& d : batch.dead_letters) {
      std::vector<SpiArg> args = {
          {TEXTOID, source, false},
          {TEXTOID, topic, false},
          {INT4OID, Int32GetDatum(d.partition), false},
          {INT8OID, Int64GetDatum(d.offset), false},
          {BYTEAOID, d.key ? bytea_datum(*d.key) : Datum(0), !d.key},
          {BYTEAOID, d.payload ? bytea_datum(*d.payload) : Datum(0), !d.payload},
          {TEXTOID, text_datum(d.error), false},
      };
      // Only a rule someone added to streamrec.dead_letters turns the INSERT into another command.
      if (spi_exec("INSERT INTO streamrec.dead_letters(source, topic, partition, \"offset\", key, payload, error) "
                   "VALUES ($1, $2, $3, $4, $5, $6, $7)",
                   args, false) != SPI_OK_INSERT)
        throw Error(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE, "cannot write to streamrec.dead_letters", "",
                    "Drop the rule that rewrites INSERTs into streamrec.dead_letters.");
    }
  }

  void write_offsets(const Batch& batch) {
    // Partitions that started at `start` without a stored offset are stored too, so a restart
    // continues where they started instead of applying `start` (latest, a time) again.
    for (const auto& [p, offset] : consumer_->take_started_offsets()) started_offsets_[p] = offset;
    std::map<int32_t, int64_t> all = started_offsets_;
    for (const auto& [p, next] : batch.next_offsets) all[p] = next;
    std::string partitions = "{", offsets = "{";
    for (const auto& [p, next] : all) {
      partitions += (partitions.size() > 1 ? "," : "") + std::to_string(p);
      offsets += (offsets.size() > 1 ? "," : "") + std::to_string(next);
    }
    partitions += "}";
    offsets += "}";
    // INSERT ... ON CONFLICT cannot be rewritten by a rule (PostgreSQL refuses it first): internal.
    if (spi_exec("INSERT INTO streamrec.source_offsets(source, partition, next_offset) "
                 "SELECT $1, p, o FROM unnest($2::int[], $3::bigint[]) AS u(p, o) "
                 "ON CONFLICT (source, partition) DO UPDATE SET next_offset = EXCLUDED.next_offset",
                 {{TEXTOID, text_datum(config_.name), false},
                  {TEXTOID, text_datum(partitions), false},
                  {TEXTOID, text_datum(offsets), false}},
                 false) != SPI_OK_INSERT)
      throw Error(ERRCODE_INTERNAL_ERROR, "cannot write streamrec.source_offsets");
  }

  // A partition that started at `start` (latest, a time) and has nothing to read yet gets its
  // offset stored at once, not with its first message: a restart then continues from there
  // instead of applying `start` again and skipping what arrived meanwhile.
  void store_started_offsets() {
    for (const auto& [p, offset] : consumer_->take_started_offsets()) started_offsets_[p] = offset;
    if (started_offsets_.empty()) return;
    try {
      begin_transaction();
      check_generation();
      write_offsets(Batch{});
      commit_transaction();
      started_offsets_.clear();
    } catch (const CatalogChanged&) {
      abort_transaction();
      worker_stop_requested = true;  // the launcher starts a fresh worker if the source still runs
    } catch (const std::exception&) {
      abort_transaction();  // kept in started_offsets_: stored with the next batch or idle pass
    }
  }

  // on_error = stop: nothing of the batch commits; the source is paused with the reason.
  void stop_source(const DeadLetter& first) {
    abort_transaction();
    std::string reason = "stopped at partition " + std::to_string(first.partition) + " offset " +
                         std::to_string(first.offset) + ": " + first.error;
    begin_transaction();
    spi_exec("UPDATE streamrec.sources SET paused = true, last_error = $2, last_error_at = now() WHERE name = $1",
             {{TEXTOID, text_datum(config_.name), false}, {TEXTOID, text_datum(reason), false}}, false);
    commit_transaction();
    set_state("stopped", reason);
    worker_stop_requested = true;
  }

  void record_batch(const Batch& batch, uint64 rows) {
    WorkerSlot* slot = worker_slot(launch_.slot);
    int64 lag = consumer_->total_lag();
    SpinLockAcquire(&slot->mutex);
    slot->stats.messages +=
        static_cast<int64>(batch.messages.size() + batch.decode_failures) - batch.row_surplus + batch.tombstones;
    slot->stats.tombstones += batch.tombstones;
    slot->stats.rows += static_cast<int64>(rows);
    slot->stats.bytes += batch.bytes;
    slot->stats.dead_letters += static_cast<int64>(batch.dead_letters.size());
    slot->stats.batches++;
    slot->stats.lag = lag;
    slot->stats.last_message_at = batch.last_message_at;
    SpinLockRelease(&slot->mutex);
  }

  void update_lag() {
    WorkerSlot* slot = worker_slot(launch_.slot);
    int64 lag = consumer_->total_lag();
    SpinLockAcquire(&slot->mutex);
    slot->stats.lag = lag;
    SpinLockRelease(&slot->mutex);
  }

 public:
  void set_state(const char* state, const std::string& error = {}) { set_worker_state(launch_.slot, state, error); }

  // After a failed batch: everything rolls back, the consumer goes back to the batch's first
  // offsets, and the worker waits a little longer each time before trying again.
  void recover_from_failure(const std::string& error, const std::map<int32_t, int64_t>& rewind_to) {
    abort_transaction();
    consumer_->rewind(rewind_to);
    set_state("retrying", error);
    backoff_on_latch(++failures_, 200, 10000);
  }

 private:
  WorkerLaunch launch_;
  SourceConfig config_;
  std::unique_ptr<decoder> decoder_;
  std::unique_ptr<consumer> consumer_;
  std::map<int32_t, int64_t> started_offsets_;
  std::map<column_mask, std::string> upsert_sql_;
  std::map<column_mask, std::string> delete_sql_;
  bool changes_ = false;                   // key_columns or an envelope: decode_changes()
  std::vector<cell_type> key_cell_types_;  // text for every binding: how a delete's key is read
  std::vector<bool> primary_key_binding_;  // per binding: a column of the target's primary key
  std::vector<decoded_row> change_rows_;   // the helper thread's, per message
  std::vector<size_t> first_cells_;
  std::string transient_;
  Oid stage_oid_ = InvalidOid;
  int registry_failures_ = 0;
  int failures_ = 0;
  // The cell type of each binding's column, for the helper thread's decoding; null while rows go
  // to the target as COPY text.
  std::shared_ptr<const std::vector<cell_type>> cell_types_;
  std::string spare_lines_;  // see recycle()
  typed_rows spare_cells_;
};

}  // namespace
}  // namespace streamrec

extern "C" void streamrec_source_main(Datum) {
  streamrec::run_background_worker<streamrec::SourceWorker>(streamrec::WorkerKind::source, "source");
}
