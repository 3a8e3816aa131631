// A sink worker: produces the rows inserted into one table to one Kafka topic, none lost.
//
// The relation's outbox trigger copies each inserted row, in the inserting transaction, into
// streamrec.sink_outbox. This worker reads the outbox in id order (in batches), encodes each row
// with the PostgreSQL-free encoders of worker/formats, produces with librdkafka's idempotent
// producer (message order per partition survives retries), waits until the broker acknowledged
// every message of the batch, and only then deletes those outbox rows. A crash between the
// acknowledgement and the delete re-sends the batch: at-least-once, never lost. A row that no
// format can hold stays in the outbox with its error, and the sink goes on.
#include <algorithm>
#include <chrono>
#include <climits>
#include <csignal>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "extension/error_boundary.h"
#include "extension/shared_state.h"
#include "worker/formats/format_error.h"
#include "worker/formats/schema_registry_client.h"
#include "worker/formats/sink_encoder.h"
#include "worker/kafka/producer.h"
#include "worker/pg_support.h"
#include "worker/worker_launch.h"
#include "worker/worker_main.h"

extern "C" {
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "tcop/tcopprot.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/guc.h"
#include "storage/itemptr.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

PGDLLEXPORT void streamrec_sink_main(Datum main_arg);
}

namespace streamrec {
namespace {

// How long an idle sink sleeps before looking at its outbox again: bounds the latency from
// commit to produce when rows trickle in.
constexpr long kIdlePollMs = 5;

// One column the worker reads from an outbox row: its encoder description and how to turn its
// Datum into text (the output function of the type, or of the element type for arrays).
struct FetchedColumn {
  sink_column column;
  Oid type = InvalidOid;  // the element type for arrays
  Oid output_function = InvalidOid;
  int16 element_length = 0;
  bool element_by_value = false;
  char element_align = 'i';
};

struct SinkConfig {
  std::string name;
  std::string topic;
  std::string brokers;
  Oid relation = InvalidOid;
  sink_format format = sink_format::csv;
  std::string schema_registry;
  std::string subject;
  csv_dialect csv;
  int batch_size = 10000;
  producer::properties kafka;
  std::vector<FetchedColumn> values;
  std::vector<FetchedColumn> keys;
  std::string select_sql;  // $1 sink name, $2 limit
};

constexpr const char* kConfigSql = R"SQL(
SELECT topic, relation::oid, coalesce(brokers, current_setting('streamrec.brokers')), format,
       options ->> 'schema_registry', coalesce(options ->> 'subject', topic || '-value'),
       coalesce(options -> 'csv' ->> 'delimiter', ','), coalesce(options -> 'csv' ->> 'quote', '"'),
       coalesce(options -> 'csv' ->> 'null', ''), coalesce((options ->> 'batch_size')::int, 10000),
       (SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname)
          FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = relation)
FROM streamrec.sinks WHERE name = $1
)SQL";

// Value columns (option "columns" in order, else all in attnum order), then key columns.
constexpr const char* kColumnsSql = R"SQL(
WITH s AS (SELECT * FROM streamrec.sinks WHERE name = $1),
cols AS (
  SELECT a.attname::text AS col, a.attnum,
         CASE WHEN t.typcategory = 'A' THEN t.typelem ELSE a.atttypid END AS base,
         t.typcategory = 'A' AS is_array
  FROM s JOIN pg_attribute a ON a.attrelid = s.relation
  JOIN pg_type t ON t.oid = a.atttypid
  WHERE a.attnum > 0 AND NOT a.attisdropped),
keys AS (
  SELECT e.col, e.ord FROM s,
    jsonb_array_elements_text(CASE jsonb_typeof(s.options -> 'key') WHEN 'string' THEN jsonb_build_array(s.options -> 'key')
                                   ELSE coalesce(s.options -> 'key', '[]') END) WITH ORDINALITY e(col, ord)),
vals AS (
  SELECT e.col, e.ord FROM s, jsonb_array_elements_text(s.options -> 'columns') WITH ORDINALITY e(col, ord)
  WHERE s.options ? 'columns'
  UNION ALL
  SELECT c.col, c.attnum FROM s, cols c WHERE NOT (s.options ? 'columns'))
SELECT c.col, c.base::oid, c.is_array, false AS is_key,
       CASE WHEN c.base IN ('int2'::regtype, 'int4'::regtype, 'int8'::regtype, 'oid'::regtype) THEN 'integer'
            WHEN c.base IN ('float4'::regtype, 'float8'::regtype) THEN 'floating'
            WHEN c.base = 'numeric'::regtype THEN 'numeric'
            WHEN c.base = 'bool'::regtype THEN 'boolean'
            WHEN c.base IN ('timestamptz'::regtype, 'timestamp'::regtype) THEN 'timestamp'
            WHEN c.base IN ('json'::regtype, 'jsonb'::regtype) THEN 'json'
            ELSE 'text' END, 0 AS part, v.ord
FROM vals v JOIN cols c USING (col)
UNION ALL
SELECT c.col, c.base::oid, c.is_array, true, 'text', 1, k.ord
FROM keys k JOIN cols c USING (col)
ORDER BY part, ord
)SQL";

sink_kind kind_from_name(const std::string& k) {
  if (k == "integer") return sink_kind::integer;
  if (k == "floating") return sink_kind::floating;
  if (k == "numeric") return sink_kind::numeric;
  if (k == "boolean") return sink_kind::boolean;
  if (k == "timestamp") return sink_kind::timestamp;
  if (k == "json") return sink_kind::json;
  return sink_kind::text;
}

void prepare_output(FetchedColumn& f) {
  Oid type = f.type;
  Oid function = InvalidOid;
  bool varlena = false;
  pg_call([type, &function, &varlena] { getTypeOutputInfo(type, &function, &varlena); });
  f.output_function = function;
  if (f.column.array) {
    int16 length = 0;
    bool by_value = false;
    char align = 'i';
    pg_call([type, &length, &by_value, &align] { get_typlenbyvalalign(type, &length, &by_value, &align); });
    f.element_length = length;
    f.element_by_value = by_value;
    f.element_align = align;
  }
}

SinkConfig load_config(const std::string& name) {
  SinkConfig c;
  c.name = name;
  Datum name_datum = text_datum(name);
  if (spi_exec(kConfigSql, {{TEXTOID, name_datum, false}}, true) != SPI_OK_SELECT || SPI_processed != 1)
    throw Error(ERRCODE_UNDEFINED_OBJECT, "sink \"" + name + "\" no longer exists");
  auto field = [](int column) { return spi_text(0, column).value_or(""); };
  c.topic = field(1);
  c.relation = static_cast<Oid>(std::stoul(field(2)));
  c.brokers = field(3);
  std::string format = field(4);
  c.format = format == "json" ? sink_format::json : format == "avro" ? sink_format::avro : sink_format::csv;
  c.schema_registry = field(5);
  c.subject = field(6);
  c.csv.delimiter = field(7)[0];
  c.csv.quote = field(8)[0];
  c.csv.null_string = field(9);
  c.batch_size = std::stoi(field(10));
  std::string row_type = field(11);

  if (spi_exec("SELECT key, value #>> '{}' FROM streamrec.sinks, jsonb_each(coalesce(options -> 'kafka', '{}')) "
               "WHERE name = $1",
               {{TEXTOID, name_datum, false}}, true) != SPI_OK_SELECT)
    throw Error(ERRCODE_INTERNAL_ERROR, "cannot read kafka options");
  for (uint64 i = 0; i < SPI_processed; i++) c.kafka[spi_text(i, 1).value_or("")] = spi_text(i, 2).value_or("");

  if (spi_exec(kColumnsSql, {{TEXTOID, name_datum, false}}, true) != SPI_OK_SELECT)
    throw Error(ERRCODE_INTERNAL_ERROR, "cannot read the relation's columns");
  uint64 rows = SPI_processed;
  for (uint64 i = 0; i < rows; i++) {
    FetchedColumn f;
    f.column.name = spi_text(i, 1).value_or("");
    f.type = static_cast<Oid>(std::stoul(spi_text(i, 2).value_or("0")));
    f.column.array = spi_text(i, 3).value_or("f") == "t";
    f.column.kind = kind_from_name(spi_text(i, 5).value_or("text"));
    bool is_key = spi_text(i, 4).value_or("f") == "t";
    if (is_key && f.type != TIMESTAMPTZOID && f.type != TIMESTAMPOID) f.column.kind = sink_kind::text;
    if (is_key && (f.type == TIMESTAMPTZOID || f.type == TIMESTAMPOID) && !f.column.array)
      f.column.kind = sink_kind::timestamp;
    (is_key ? c.keys : c.values).push_back(std::move(f));
  }
  if (c.values.empty()) throw Error(ERRCODE_INVALID_PARAMETER_VALUE, "the sink has no value columns");
  for (FetchedColumn& f : c.values) prepare_output(f);
  for (FetchedColumn& f : c.keys) prepare_output(f);

  // The outbox holds each row as jsonb; jsonb_populate_record gives back the table's own types.
  std::string list;
  for (const FetchedColumn& f : c.values) list += ", r." + quote_ident(f.column.name);
  for (const FetchedColumn& f : c.keys) list += ", r." + quote_ident(f.column.name);
  c.select_sql = "SELECT o.id, o.ctid" + list + " FROM streamrec.sink_outbox o, jsonb_populate_record(NULL::" + row_type +
                 ", o.payload) r WHERE o.sink = $1 AND o.error IS NULL ORDER BY o.id LIMIT $2";
  return c;
}

// An array's elements as output text, in palloc'd memory. PostgreSQL C calls only.
struct ElementTexts {
  int count;
  char** texts;  // NULL entries for NULL elements
};

ElementTexts* array_elements(Datum array, const FetchedColumn* f) {
  ArrayType* a = DatumGetArrayTypeP(array);
  Datum* elements = nullptr;
  bool* nulls = nullptr;
  int count = 0;
  deconstruct_array(a, f->type, f->element_length, f->element_by_value, f->element_align, &elements, &nulls, &count);
  ElementTexts* out = static_cast<ElementTexts*>(palloc(sizeof(ElementTexts)));
  out->count = count;
  out->texts = static_cast<char**>(palloc(sizeof(char*) * (count > 0 ? count : 1)));
  for (int i = 0; i < count; i++)
    out->texts[i] = nulls[i] ? nullptr : OidOutputFunctionCall(f->output_function, elements[i]);
  return out;
}

void read_value(const FetchedColumn& f, uint64 row, int column, sink_value& out) {
  out = sink_value{};
  bool null = false;
  int r = static_cast<int>(row);
  Datum d = pg_call([r, column, &null] {
    bool is_null = false;
    Datum v = SPI_getbinval(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, column, &is_null);
    null = is_null;
    return v;
  });
  if (null) return;
  out.null = false;
  if (f.column.array) {
    const FetchedColumn* fp = &f;
    ElementTexts* e = pg_call([d, fp] { return array_elements(d, fp); });
    out.elements.reserve(static_cast<size_t>(e->count));
    for (int i = 0; i < e->count; i++)
      out.elements.push_back(e->texts[i] == nullptr ? std::nullopt : std::optional<std::string>(e->texts[i]));
    return;
  }
  if (f.type == TIMESTAMPTZOID || f.type == TIMESTAMPOID) {
    TimestampTz ts = DatumGetTimestampTz(d);
    if (TIMESTAMP_NOT_FINITE(ts)) {
      out.infinite = true;
      out.epoch_us = TIMESTAMP_IS_NOBEGIN(ts) ? -1 : 1;
    } else {
      out.epoch_us = ts + (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * USECS_PER_DAY;
    }
    if (f.column.kind == sink_kind::timestamp) return;
  }
  Oid function = f.output_function;
  char* text = pg_call([function, d] { return OidOutputFunctionCall(function, d); });
  out.text = text;
}

Datum tid_array_datum(const std::vector<ItemPointerData>& values) {
  const ItemPointerData* data = values.data();
  int count = static_cast<int>(values.size());
  return pg_call([data, count] {
    Datum* elements = static_cast<Datum*>(palloc(sizeof(Datum) * (count > 0 ? count : 1)));
    for (int i = 0; i < count; i++) elements[i] = PointerGetDatum(&data[i]);
    return PointerGetDatum(construct_array(elements, count, TIDOID, sizeof(ItemPointerData), false, TYPALIGN_SHORT));
  });
}

struct Message {
  int64 id;
  ItemPointerData tid;  // where the row is: deleting by ctid is a TID scan, not 10,000 index probes
  std::optional<std::string> key;
  std::string value;
};

struct FailedRow {
  int64 id;
  std::string error;
};

class SinkWorker {
 public:
  explicit SinkWorker(const WorkerLaunch& launch) : launch_(launch) {}

  void run() {
    set_state("starting");
    // The outbox is a queue: the rows just deleted sit in the (sink, id) index until vacuum. A
    // plain index scan in id order marks them dead once and then skips them; a bitmap scan plus
    // sort (which the planner likes for small estimates) would visit every one of them per batch.
    pg_call([] {
      SetConfigOption("enable_bitmapscan", "off", PGC_USERSET, PGC_S_SESSION);
      SetConfigOption("enable_seqscan", "off", PGC_USERSET, PGC_S_SESSION);
      SetConfigOption("enable_sort", "off", PGC_USERSET, PGC_S_SESSION);
    });
    begin_transaction();
    config_ = load_config(launch_.name);
    commit_transaction();
    sink_encoder_config encoding;
    encoding.format = config_.format;
    encoding.csv = config_.csv;
    for (const FetchedColumn& f : config_.values) encoding.columns.push_back(f.column);
    for (const FetchedColumn& f : config_.keys) key_columns_.push_back(f.column);
    if (config_.format == sink_format::avro) encoding.schema_id = register_schema(encoding.columns);
    if (worker_stop_requested) return;
    encoder_ = make_sink_encoder(encoding);
    producer_ = std::make_unique<producer>(config_.brokers, producer_properties());
    producer_->set_close_timeout(std::chrono::milliseconds(1000));
    set_state("running");
    while (!worker_stop_requested) {
      reload_config_if_requested();
      bool more = false;
      try {
        more = send_batch();
        failures_ = 0;
      } catch (const PgError& e) {
        recover_from_failure(e.what());
      } catch (const Error& e) {
        recover_from_failure(e.what());
      } catch (const kafka_error& e) {
        if (e.fatal()) throw;
        recover_from_failure(e.what());
      }
      if (!more) backoff_on_latch(0, kIdlePollMs, kIdlePollMs);
    }
    set_state("stopping");
  }

  void set_state(const char* state, const std::string& error = {}) { set_worker_state(launch_.slot, state, error); }

 private:
  producer::properties producer_properties() const {
    producer::properties p = {
        {"enable.idempotence", "true"},
        {"acks", "all"},
        // Never give up on a message: while the broker is away rows wait (in librdkafka and in
        // the outbox), and are delivered in order once it is back.
        {"message.timeout.ms", "0"},
        {"linger.ms", "2"},
        // Java clients' partitioner: the same key lands on the same partition as theirs would.
        {"partitioner", "murmur2_random"},
        {"client.id", "pg_streamrec-sink-" + config_.name},
    };
    for (const auto& [k, v] : config_.kafka) p[k] = v;
    return p;
  }

  // Registers the Avro schema derived from the columns under the subject; waits while the
  // registry is unreachable.
  int32_t register_schema(const std::vector<sink_column>& columns) {
    std::string schema = avro_value_schema(config_.topic, columns);
    schema_registry_client registry(config_.schema_registry);
    for (int attempt = 0; !worker_stop_requested; attempt++) {
      try {
        return registry.register_schema(config_.subject, schema);
      } catch (const registry_error& e) {
        if (!e.transient())
          throw Error(ERRCODE_INVALID_PARAMETER_VALUE,
                      "schema registry refused the sink's schema for subject \"" + config_.subject + "\": " + e.what(),
                      "", "Check the subject's compatibility settings, or use another subject option.");
        set_state("waiting for schema registry", e.what());
        backoff_on_latch(attempt, 200, 10000);
      }
    }
    return 0;
  }

  // Reads, encodes, produces and acknowledges one batch. True when the outbox may hold more.
  bool send_batch() {
    std::vector<Message> messages;
    std::vector<FailedRow> failed;
    size_t read = read_batch(messages, failed);
    if (read == 0) {
      set_state("running");
      return false;
    }
    size_t produced = 0;
    for (Message& m : messages) {
      try {
        producer_->produce(config_.topic, m.key ? std::optional<std::string_view>(*m.key) : std::nullopt, m.value);
        produced++;
      } catch (const kafka_error& e) {
        if (e.code() != RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE) throw;
        failed.push_back({m.id, e.what()});
        m.id = -1;  // not sent
      }
    }
    uint64_t failed_before = producer_->failed();
    if (!wait_for_acknowledgements()) return false;  // stopping: the rows stay in the outbox
    if (producer_->failed() != failed_before) {
      // Some message was refused for good (librdkafka retries transient errors forever here).
      // Nothing is deleted: the batch is sent again, duplicates rather than a loss.
      std::string error = producer_->take_delivery_error().value_or("delivery failed");
      throw Error(ERRCODE_CONNECTION_FAILURE, "delivery to topic \"" + config_.topic + "\" failed: " + error);
    }
    acknowledge(messages, failed);
    record_batch(produced, failed);
    return read >= static_cast<size_t>(config_.batch_size);
  }

  // One read-only transaction: the next batch of pending outbox rows, encoded.
  size_t read_batch(std::vector<Message>& messages, std::vector<FailedRow>& failed) {
    begin_transaction();
    Oid relation = config_.relation;
    AclResult select_ok = pg_call([relation] { return pg_class_aclcheck(relation, GetUserId(), ACL_SELECT); });
    if (select_ok != ACLCHECK_OK)
      throw Error(ERRCODE_INSUFFICIENT_PRIVILEGE, "permission denied to read the sink's relation", "",
                  "The worker runs as the sink's owner; GRANT SELECT on the relation to that role.");
    if (spi_exec(config_.select_sql.c_str(),
                 {{TEXTOID, text_datum(config_.name), false}, {INT4OID, Int32GetDatum(config_.batch_size), false}},
                 true) != SPI_OK_SELECT)
      throw Error(ERRCODE_INTERNAL_ERROR, "cannot read streamrec.sink_outbox");
    uint64 rows = SPI_processed;
    messages.reserve(rows);
    std::vector<sink_value> values(config_.values.size());
    std::vector<sink_value> keys(config_.keys.size());
    for (uint64 row = 0; row < rows; row++) {
      bool null = false;
      int r = static_cast<int>(row);
      int64 id = DatumGetInt64(pg_call([r, &null] {
        bool is_null = false;
        Datum v = SPI_getbinval(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, 1, &is_null);
        null = is_null;
        return v;
      }));
      ItemPointerData tid = *reinterpret_cast<ItemPointer>(DatumGetPointer(pg_call([r] {
        bool is_null = false;
        return SPI_getbinval(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, 2, &is_null);
      })));
      int column = 3;
      for (size_t i = 0; i < values.size(); i++) read_value(config_.values[i], row, column++, values[i]);
      for (size_t i = 0; i < keys.size(); i++) read_value(config_.keys[i], row, column++, keys[i]);
      Message m{id, tid, std::nullopt, {}};
      try {
        if (!keys.empty()) m.key = encode_sink_key(key_columns_, keys);
        encoder_->encode(values, m.value);
        messages.push_back(std::move(m));
      } catch (const format_error& e) {
        failed.push_back({id, e.what()});
      }
    }
    commit_transaction();
    return rows;
  }

  // Serves delivery reports until the broker acknowledged every message; says so in
  // sink_stats while it waits. False when the worker is asked to stop meanwhile.
  bool wait_for_acknowledgements() {
    auto started = std::chrono::steady_clock::now();
    bool reported = false;
    while (!producer_->flush(std::chrono::milliseconds(100))) {
      pg_call([] { CHECK_FOR_INTERRUPTS(); });
      if (worker_stop_requested) return false;
      producer_->throw_if_fatal();
      if (!reported && std::chrono::steady_clock::now() - started > std::chrono::seconds(1)) {
        std::string why = producer_->last_client_error();
        set_state("waiting for broker", why.empty() ? "no acknowledgement from the broker yet" : why);
        reported = true;
      }
    }
    if (reported) set_state("running");
    return true;
  }

  // One transaction: delivered rows leave the outbox, unencodable ones keep their reason.
  void acknowledge(const std::vector<Message>& messages, const std::vector<FailedRow>& failed) {
    std::vector<ItemPointerData> sent;
    sent.reserve(messages.size());
    int64 low = INT64_MAX, high = INT64_MIN;
    for (const Message& m : messages) {
      if (m.id < 0) continue;
      sent.push_back(m.tid);
      low = std::min(low, m.id);
      high = std::max(high, m.id);
    }
    begin_transaction();
    Datum name = text_datum(config_.name);
    // Only this worker updates outbox rows, so a row read keeps its ctid until deleted; the id
    // range guards against a slot reused after someone else deleted a row meanwhile (a row
    // inserted later has a higher id).
    if (!sent.empty() &&
        spi_exec("DELETE FROM streamrec.sink_outbox WHERE ctid = ANY ($2) AND sink = $1 AND id BETWEEN $3 AND $4",
                 {{TEXTOID, name, false},
                  {TIDARRAYOID, tid_array_datum(sent), false},
                  {INT8OID, Int64GetDatum(low), false},
                  {INT8OID, Int64GetDatum(high), false}},
                 false) != SPI_OK_DELETE)
      throw Error(ERRCODE_INTERNAL_ERROR, "cannot delete from streamrec.sink_outbox");
    for (const FailedRow& f : failed) {
      if (spi_exec("UPDATE streamrec.sink_outbox SET error = $3 WHERE sink = $1 AND id = $2",
                   {{TEXTOID, name, false}, {INT8OID, Int64GetDatum(f.id), false}, {TEXTOID, text_datum(f.error), false}},
                   false) != SPI_OK_UPDATE)
        throw Error(ERRCODE_INTERNAL_ERROR, "cannot flag a failed row in streamrec.sink_outbox");
    }
    commit_transaction();
  }

  void record_batch(size_t produced, const std::vector<FailedRow>& failed) {
    WorkerSlot* slot = worker_slot(launch_.slot);
    TimestampTz now = GetCurrentTimestamp();
    SpinLockAcquire(&slot->mutex);
    slot->stats.messages += static_cast<int64>(produced);
    slot->stats.rows += static_cast<int64>(produced);
    slot->stats.dead_letters += static_cast<int64>(failed.size());
    slot->stats.batches++;
    if (produced > 0) slot->stats.last_message_at = now;
    if (!failed.empty()) {
      std::string error = "outbox row " + std::to_string(failed.back().id) + ": " + failed.back().error;
      strlcpy(slot->stats.last_error, error.c_str(), sizeof slot->stats.last_error);
      slot->stats.last_error_at = now;
    }
    SpinLockRelease(&slot->mutex);
  }

  void recover_from_failure(const std::string& error) {
    abort_transaction();
    set_state("retrying", error);
    backoff_on_latch(++failures_, 200, 10000);
  }

  WorkerLaunch launch_;
  SinkConfig config_;
  std::vector<sink_column> key_columns_;
  std::unique_ptr<sink_encoder> encoder_;
  std::unique_ptr<producer> producer_;
  int failures_ = 0;
};

}  // namespace
}  // namespace streamrec

extern "C" void streamrec_sink_main(Datum) {
  streamrec::run_background_worker<streamrec::SinkWorker>(streamrec::WorkerKind::sink, "sink");
}
