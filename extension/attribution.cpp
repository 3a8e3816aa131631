// The attribution pipeline: its handlers of a checkouts batch and of a clicks batch (the
// dispatcher's interface, extension/dispatch.h), and the statement-level AFTER INSERT triggers on
// streamrec.checkouts and streamrec.clicks that hand their transition tables to them.
//
// A checkout (u, p, t) is attributed to the earliest click by u on p in [t - lookback, t]
// (equal times: the smaller click_id; a NULL click_id last), enriched with u's name, and
// written to attributed_checkouts in checkout_id order. So that arrival order does not
// matter, a click batch re-examines the attributed checkouts of its (user, product) pairs with
// checkout time in [click time, click time + lookback] and corrects those it now wins. Every
// first attribution and every correction is appended to attribution_log (the sink's relation).
// The rule itself is core/pipelines/attribution; this file reads its state and writes its results.
//
// Per batch: the batch read once into typed columns; one index probe per distinct key (a
// (user, product) range of clicks_attribution_idx or attributed_checkouts_lookup_idx, a user of
// users' primary key, a checkout of attributed_checkouts' primary key) through the index C API
// (the last two through pg/keyed_table), no SQL; new attributions and the log inserted as COPY
// inserts rows (pg/bulk_insert).
//
// A checkout batch and a click batch for the same user must not both miss each other's
// uncommitted rows. Both handlers therefore first take transaction-level locks on the
// buckets (hashtext(user_id) & 255) of their users, in bucket order, and only then read: each
// read after the lock takes a fresh snapshot (READ COMMITTED), so whichever batch comes
// second sees the first one's rows. At most 256 locks per transaction, so the lock table never
// overflows however big a batch is. The locks are the extension's own (streamrec._xact_lock):
// a role holding SQL advisory locks cannot stall the triggers. Lock order everywhere: buckets,
// then attributed_checkouts rows in checkout_id order.
//
// Writers of attributed_checkouts: a checkout batch inserts the rows of its checkouts (a
// checkout_id is inserted into streamrec.checkouts once, its primary key makes a second insert
// wait for and then fail on the first, so no two batches insert the same new row); an id that
// is still there from before (its checkout was deleted and sent again) is overwritten by an
// upsert with the row locked; a click batch updates rows it locks and re-checks; retention
// deletes old rows.
#include <algorithm>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/pipelines/attribution.h"
#include "core/event_time.h"

#include "extension/dispatch.h"
#include "extension/pipeline_trigger.h"
#include "pg/bulk_insert.h"
#include "pg/catalog_options.h"
#include "pg/error_boundary.h"
#include "pg/event_clock.h"
#include "pg/keyed_table.h"
#include "pg/pipeline_stats.h"
#include "pg/spi.h"
#include "pg/table_statement.h"
#include "pg/transition_rows.h"

extern "C" {
#include "access/genam.h"
#include "access/hash.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/visibilitymap.h"
#include "access/itup.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_am.h"
#include "catalog/pg_collation.h"
#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "executor/tuptable.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/resowner.h"
#include "utils/pg_locale.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
#include "utils/varlena.h"
}

namespace streamrec {
namespace {

constexpr const char* kPipeline = "attribution";

PipelineOptions options(kPipeline, {{"lookback", OptionKind::interval_us}});

struct AttributionConfig {
  bool enabled = false;
  attribution_options rule;
};

AttributionConfig attribution_config() {
  AttributionConfig cfg;
  std::vector<Cell> row = options.read();
  if (row.empty()) return cfg;
  cfg.enabled = DatumGetBool(row[0].value);
  cfg.rule.lookback_us = checked_option_us(kPipeline, "lookback", DatumGetInt64(row[1].value));
  return cfg;
}

// Click ids at equal times are ordered as the database's collation orders text (what the SQL
// of the previous triggers and of the corrections' re-check compares with).
int collation_order(std::string_view a, std::string_view b) {
  return pg_call([a, b] {
    return varstr_cmp(a.data(), static_cast<int>(a.size()), b.data(), static_cast<int>(b.size()),
                      DEFAULT_COLLATION_OID);
  });
}

click_id_order database_order() {
  bool c_collation = pg_call([] { return lc_collate_is_c(DEFAULT_COLLATION_OID); });
  return c_collation ? bytewise_order : collation_order;
}

// ------------------------------------------------------------------------------------------
// User-bucket locks
// ------------------------------------------------------------------------------------------
KeptPlan lock_buckets(
    "SELECT count(streamrec._xact_lock(pg_catalog.hashtext('streamrec.attribution'), b))"
    " FROM pg_catalog.unnest($1::int4[]) b",
    {INT4ARRAYOID});

// Locks the buckets of `users` in bucket order. hashtext() of a text in a deterministic
// collation (every database default collation) is hash_any() of its bytes.
void lock_user_buckets(const BatchColumn& users) {
  std::vector<int32> buckets;
  buckets.reserve(256);
  std::vector<bool> seen(256, false);
  for (std::size_t r = 0; r < users.null.size(); r++) {
    if (users.is_null(r)) continue;
    std::string_view u = users.text(r);
    auto bucket = static_cast<int32>(
        DatumGetUInt32(hash_any(reinterpret_cast<const unsigned char*>(u.data()), static_cast<int>(u.size()))) & 255);
    if (!seen[bucket]) seen[bucket] = true, buckets.push_back(bucket);
  }
  if (buckets.empty()) return;
  std::sort(buckets.begin(), buckets.end());
  lock_buckets.run({nullable_array(buckets, {}, INT4OID)}, false);
}

// ------------------------------------------------------------------------------------------
// Reading state: index probes through the C API (plain PostgreSQL code inside pg_call)
// ------------------------------------------------------------------------------------------
// A column of a table by name and type; an ERROR when missing.
AttrNumber column_of(Relation rel, const char* name, Oid type) {
  TupleDesc desc = RelationGetDescr(rel);
  for (int i = 0; i < desc->natts; i++) {
    Form_pg_attribute att = TupleDescAttr(desc, i);
    if (!att->attisdropped && att->atttypid == type && strcmp(NameStr(att->attname), name) == 0) return att->attnum;
  }
  ereport(ERROR,
          (errcode(ERRCODE_INVALID_TABLE_DEFINITION),
           errmsg("streamrec.%s has no column %s of type %s", RelationGetRelationName(rel), name, format_type_be(type)),
           errhint("Restore the table as the extension created it.")));
  return InvalidAttrNumber;
}

// streamrec.<table> opened for reading, SELECT on its columns checked as for a query.
Relation open_read(const char* table, int count, const char* const* names, const Oid* types, AttrNumber* found) {
  RangeVar* name = makeRangeVar(const_cast<char*>("streamrec"), const_cast<char*>(table), -1);
  Relation rel = table_open(RangeVarGetRelid(name, AccessShareLock, false), NoLock);
  if (rel->rd_rel->relkind != RELKIND_RELATION)
    ereport(ERROR, (errcode(ERRCODE_WRONG_OBJECT_TYPE), errmsg("streamrec.%s must be a plain table", table),
                    errhint("attribution reads it through its indexes.")));
  RangeTblEntry* rte = makeNode(RangeTblEntry);
  rte->rtekind = RTE_RELATION;
  rte->relid = RelationGetRelid(rel);
  rte->relkind = rel->rd_rel->relkind;
  rte->rellockmode = AccessShareLock;
  rte->requiredPerms = ACL_SELECT;
  for (int c = 0; c < count; c++) {
    found[c] = column_of(rel, names[c], types[c]);
    rte->selectedCols = bms_add_member(rte->selectedCols, found[c] - FirstLowInvalidHeapAttributeNumber);
  }
  check_table_access(rte);
  return rel;
}

// The btree index streamrec.<index> of rel whose first key columns are `keys`; an ERROR when
// missing or different.
Relation open_btree(Relation rel, const char* index_name, Oid index_oid, const AttrNumber* keys, int key_count,
                    const char* hint) {
  if (!OidIsValid(index_oid)) {
    RangeVar* name = makeRangeVar(const_cast<char*>("streamrec"), const_cast<char*>(index_name), -1);
    index_oid = RangeVarGetRelid(name, AccessShareLock, true);
  }
  if (!OidIsValid(index_oid))
    ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                    errmsg("index streamrec.%s does not exist", index_name), errhint("%s", hint)));
  Relation index = index_open(index_oid, AccessShareLock);
  bool fits = index->rd_rel->relam == BTREE_AM_OID && index->rd_index->indrelid == RelationGetRelid(rel) &&
              IndexRelationGetNumberOfKeyAttributes(index) >= key_count;
  for (int k = 0; fits && k < key_count; k++) fits = index->rd_index->indkey.values[k] == keys[k];
  if (!fits)
    ereport(ERROR, (errcode(ERRCODE_INVALID_TABLE_DEFINITION),
                    errmsg("index streamrec.%s is not the btree attribution reads", RelationGetRelationName(index)),
                    errhint("%s", hint)));
  return index;
}

// The comparison function of `strategy` on index key column k (1-based), for a ScanKey.
RegProcedure key_procedure(Relation index, AttrNumber k, StrategyNumber strategy) {
  Oid type = index->rd_opcintype[k - 1];
  Oid op = get_opfamily_member(index->rd_opfamily[k - 1], type, type, static_cast<int16>(strategy));
  // Every btree operator family has all five members: cannot happen, so internal.
  if (!OidIsValid(op)) elog(ERROR, "btree operator family without strategy %d", strategy);
  return get_opcode(op);
}

void init_key(ScanKey key, Relation index, AttrNumber k, StrategyNumber strategy, Datum value) {
  ScanKeyEntryInitialize(key, 0, k, strategy, InvalidOid, index->rd_indcollation[k - 1],
                         key_procedure(index, k, strategy), value);
}

// A text Datum for a scan key, rewritten in place for each probe.
struct TextKey {
  text* value = nullptr;
  int capacity = 0;
  Datum set(std::string_view s) {
    if (static_cast<int>(s.size()) > capacity) {
      capacity = static_cast<int>(s.size()) * 2 + 16;
      value = static_cast<text*>(repalloc_or_alloc(value, VARHDRSZ + capacity));
    }
    SET_VARSIZE(value, VARHDRSZ + s.size());
    memcpy(VARDATA(value), s.data(), s.size());
    return PointerGetDatum(value);
  }
  static void* repalloc_or_alloc(void* p, Size size) { return p == nullptr ? palloc(size) : repalloc(p, size); }
};

std::string_view text_view(Datum d) {
  text* t = DatumGetTextPP(d);
  return {VARDATA_ANY(t), static_cast<std::size_t>(VARSIZE_ANY_EXHDR(t))};
}

// As SPI runs a statement: earlier commands' changes visible, a new snapshot under READ
// COMMITTED (the transaction's under REPEATABLE READ and SERIALIZABLE). Pop it when done.
Snapshot read_snapshot() {
  CommandCounterIncrement();
  PushActiveSnapshot(GetTransactionSnapshot());
  return GetActiveSnapshot();
}

// ---- clicks of (user, product) ranges, for a checkout batch --------------------------------
struct ClickState {
  const std::vector<key_range>* probes;
  std::vector<std::vector<click_ref>>* clicks;
};

void read_clicks(ClickState* state) {
  static const char* const names[] = {"user_id", "product_id", "event_time", "click_id"};
  static const Oid types[] = {TEXTOID, TEXTOID, TIMESTAMPTZOID, TEXTOID};
  AttrNumber cols[4];
  Relation rel = open_read("clicks", 4, names, types, cols);
  Relation index = open_btree(rel, "clicks_attribution_idx", InvalidOid, cols, 3,
                              "streamrec.enable_pipeline('attribution') builds it.");
  MemoryContext work = AllocSetContextCreate(CurrentMemoryContext, "streamrec attribution", ALLOCSET_DEFAULT_SIZES);
  MemoryContext caller = MemoryContextSwitchTo(work);
  Snapshot snapshot = read_snapshot();
  TextKey user, product;
  ScanKeyData keys[4];
  init_key(&keys[0], index, 1, BTEqualStrategyNumber, 0);
  init_key(&keys[1], index, 2, BTEqualStrategyNumber, 0);
  init_key(&keys[2], index, 3, BTGreaterEqualStrategyNumber, 0);
  init_key(&keys[3], index, 3, BTLessEqualStrategyNumber, 0);
  IndexScanDesc scan = index_beginscan(rel, index, snapshot, 4, 0);
  // The index holds every column read (click_id last): on an all-visible heap page a click is
  // read from the index tuple alone, as an index-only scan reads it.
  bool index_only = IndexRelationGetNumberOfAttributes(index) >= 4 && index->rd_index->indkey.values[3] == cols[3];
  scan->xs_want_itup = index_only;
  Buffer vm_buffer = InvalidBuffer;
  TupleTableSlot* slot = table_slot_create(rel, nullptr);
  const std::vector<key_range>& probes = *state->probes;
  for (std::size_t p = 0; p < probes.size(); p++) {
    CHECK_FOR_INTERRUPTS();
    keys[0].sk_argument = user.set(probes[p].user);
    keys[1].sk_argument = product.set(probes[p].product);
    keys[2].sk_argument = TimestampTzGetDatum(probes[p].from);
    keys[3].sk_argument = TimestampTzGetDatum(probes[p].to);
    index_rescan(scan, keys, 4, nullptr, 0);
    ItemPointer tid;
    while ((tid = index_getnext_tid(scan, ForwardScanDirection)) != nullptr) {
      bool time_null = false, id_null = false;
      Datum time, id;
      if (index_only && VM_ALL_VISIBLE(rel, ItemPointerGetBlockNumber(tid), &vm_buffer)) {
        time = index_getattr(scan->xs_itup, 3, scan->xs_itupdesc, &time_null);
        id = index_getattr(scan->xs_itup, 4, scan->xs_itupdesc, &id_null);
      } else {
        // An MVCC snapshot sees at most one version of the row.
        if (!index_fetch_heap(scan, slot)) continue;
        time = slot_getattr(slot, cols[2], &time_null);
        id = slot_getattr(slot, cols[3], &id_null);
      }
      std::string_view id_text = id_null ? std::string_view() : text_view(id);
      if (time_null) continue;  // NOT NULL in the table
      (*state->clicks)[p].push_back({std::string(id_text), id_null, DatumGetTimestampTz(time)});
    }
  }
  if (vm_buffer != InvalidBuffer) ReleaseBuffer(vm_buffer);
  ExecDropSingleTupleTableSlot(slot);
  index_endscan(scan);
  PopActiveSnapshot();
  MemoryContextSwitchTo(caller);
  MemoryContextDelete(work);
  index_close(index, AccessShareLock);
  table_close(rel, NoLock);
}

// ---- user names and existing attributions: one primary-key probe per key (pg/keyed_table) ----
// A detoasted text value as pg/keyed_table returns it (no PostgreSQL call needed to read it).
std::string_view stored_text(Datum d) {
  auto* t = reinterpret_cast<text*>(DatumGetPointer(d));
  return {VARDATA_ANY(t), static_cast<std::size_t>(VARSIZE_ANY_EXHDR(t))};
}

// The name of each of `users` (distinct), nullopt where the user is unknown or has none.
std::vector<std::optional<std::string>> read_user_names(const std::vector<std::string_view>& users) {
  KeyedTable table({"streamrec", "users", {{"user_id", TEXTOID}}, {{"name", TEXTOID}}});
  std::vector<Datum> keys = text_datums(users);
  KeyedRows rows = table.read_rows(keys.size(), keys.data());
  std::vector<std::optional<std::string>> names(users.size());
  for (std::size_t u = 0; u < users.size(); u++)
    if (rows.found[u] && !rows.is_null(u, 0)) names[u] = std::string(stored_text(rows.value(u, 0)));
  return names;
}

// Which of `ids` (distinct) have a row in attributed_checkouts.
std::vector<char> read_existing(const std::vector<std::string_view>& ids) {
  KeyedTable table({"streamrec", "attributed_checkouts", {{"checkout_id", TEXTOID}}, {}});
  std::vector<Datum> keys = text_datums(ids);
  return table.read_rows(keys.size(), keys.data()).found;
}

// ---- attributed checkouts ------------------------------------------------------------------
const char* const kAttributedNames[] = {"checkout_id",   "user_id",  "product_id",
                                        "checkout_time", "click_id", "click_time"};
const Oid kAttributedTypes[] = {TEXTOID, TEXTOID, TEXTOID, TIMESTAMPTZOID, TEXTOID, TIMESTAMPTZOID};

// The stored attributions in (user, product) checkout-time ranges, for a click batch.
struct StoredState {
  const std::vector<key_range>* probes;
  std::vector<std::vector<stored_attribution>>* stored;
};

void read_stored(StoredState* state) {
  AttrNumber cols[6];
  Relation rel = open_read("attributed_checkouts", 6, kAttributedNames, kAttributedTypes, cols);
  AttrNumber keys_cols[3] = {cols[1], cols[2], cols[3]};
  Relation index = open_btree(rel, "attributed_checkouts_lookup_idx", InvalidOid, keys_cols, 3,
                              "Restore the index (user_id, product_id, checkout_time) as the extension created it.");
  MemoryContext work = AllocSetContextCreate(CurrentMemoryContext, "streamrec attribution", ALLOCSET_DEFAULT_SIZES);
  MemoryContext caller = MemoryContextSwitchTo(work);
  Snapshot snapshot = read_snapshot();
  TextKey user, product;
  ScanKeyData keys[4];
  init_key(&keys[0], index, 1, BTEqualStrategyNumber, 0);
  init_key(&keys[1], index, 2, BTEqualStrategyNumber, 0);
  init_key(&keys[2], index, 3, BTGreaterEqualStrategyNumber, 0);
  init_key(&keys[3], index, 3, BTLessEqualStrategyNumber, 0);
  IndexScanDesc scan = index_beginscan(rel, index, snapshot, 4, 0);
  TupleTableSlot* slot = table_slot_create(rel, nullptr);
  const std::vector<key_range>& probes = *state->probes;
  for (std::size_t p = 0; p < probes.size(); p++) {
    CHECK_FOR_INTERRUPTS();
    keys[0].sk_argument = user.set(probes[p].user);
    keys[1].sk_argument = product.set(probes[p].product);
    keys[2].sk_argument = TimestampTzGetDatum(probes[p].from);
    keys[3].sk_argument = TimestampTzGetDatum(probes[p].to);
    index_rescan(scan, keys, 4, nullptr, 0);
    while (index_getnext_slot(scan, ForwardScanDirection, slot)) {
      bool id_null = false, time_null = false, click_null = false, click_time_null = false;
      Datum id = slot_getattr(slot, cols[0], &id_null);
      Datum time = slot_getattr(slot, cols[3], &time_null);
      Datum click = slot_getattr(slot, cols[4], &click_null);
      Datum click_time = slot_getattr(slot, cols[5], &click_time_null);
      if (id_null || time_null) continue;  // NOT NULL in the table
      std::string_view id_text = text_view(id);
      std::string_view click_text = click_null ? std::string_view() : text_view(click);
      stored_attribution s{std::string(id_text), DatumGetTimestampTz(time), std::nullopt};
      if (!click_time_null) s.click = click_ref{std::string(click_text), click_null, DatumGetTimestampTz(click_time)};
      (*state->stored)[p].push_back(std::move(s));
    }
  }
  ExecDropSingleTupleTableSlot(slot);
  index_endscan(scan);
  PopActiveSnapshot();
  MemoryContextSwitchTo(caller);
  MemoryContextDelete(work);
  index_close(index, AccessShareLock);
  table_close(rel, NoLock);
}

// ------------------------------------------------------------------------------------------
// Writing: attributions and log rows through insert_table_rows, in checkout_id order
// ------------------------------------------------------------------------------------------
// One emitted attribution: what attributed_checkouts holds and attribution_log appends.
struct Emitted {
  std::string_view checkout_id;
  std::string_view user;
  const std::optional<std::string>* user_name;
  std::string_view product;
  int64 checkout_time;
  const click_ref* click;  // nullptr: none
};

struct EmittedRows {
  const Emitted* rows;
  std::size_t count;
  std::size_t next;
};

Datum text_value(std::string_view s) { return PointerGetDatum(cstring_to_text_with_len(s.data(), s.size())); }

// The seven columns both tables take, in this order; updated_at and emitted_at (and the log's
// id) take their defaults.
const char* const kEmittedNames[] = {"checkout_id",   "user_id",  "user_name", "product_id",
                                     "checkout_time", "click_id", "click_time"};
const Oid kEmittedTypes[] = {TEXTOID, TEXTOID, TEXTOID, TEXTOID, TIMESTAMPTZOID, TEXTOID, TIMESTAMPTZOID};
constexpr int kEmittedCount = 7;

bool emitted_row(void* arg, Datum* values, bool* nulls) noexcept {
  EmittedRows* rows = static_cast<EmittedRows*>(arg);
  if (rows->next == rows->count) return false;
  const Emitted& e = rows->rows[rows->next++];
  values[0] = text_value(e.checkout_id);
  nulls[0] = false;
  values[1] = text_value(e.user);
  nulls[1] = false;
  nulls[2] = !e.user_name->has_value();
  values[2] = nulls[2] ? 0 : text_value(**e.user_name);
  values[3] = text_value(e.product);
  nulls[3] = false;
  values[4] = TimestampTzGetDatum(e.checkout_time);
  nulls[4] = false;
  nulls[5] = e.click == nullptr || e.click->id_null;
  values[5] = nulls[5] ? 0 : text_value(e.click->id);
  nulls[6] = e.click == nullptr;
  values[6] = nulls[6] ? 0 : TimestampTzGetDatum(e.click->time);
  return true;
}

// Inserts rows into streamrec.<table> (its seven emitted columns) inside one pg_call.
void insert_emitted(const char* table, EmittedRows* rows) {
  RangeVar* name = makeRangeVar(const_cast<char*>("streamrec"), const_cast<char*>(table), -1);
  Relation rel = table_open(RangeVarGetRelid(name, RowExclusiveLock, false), NoLock);
  AttrNumber columns[kEmittedCount];
  for (int c = 0; c < kEmittedCount; c++) columns[c] = column_of(rel, kEmittedNames[c], kEmittedTypes[c]);
  insert_table_rows(rel, columns, kEmittedCount, emitted_row, rows);
  table_close(rel, NoLock);
}

void write_emitted(const char* table, const std::vector<Emitted>& emitted) {
  if (emitted.empty()) return;
  EmittedRows rows{emitted.data(), emitted.size(), 0};
  EmittedRows* source = &rows;
  pg_call([table, source] { insert_emitted(table, source); });
}

// Inserts the attributions of a checkout batch in one subtransaction; false (the subtransaction
// rolled back) when one of their checkout ids is already there: a checkout deleted from
// streamrec.checkouts and sent again, or a row written by hand.
bool insert_new_attributions(const std::vector<Emitted>& rows) {
  MemoryContext outer_context = CurrentMemoryContext;
  ResourceOwner outer_owner = CurrentResourceOwner;
  auto end = [outer_context, outer_owner](bool commit) {
    pg_call([outer_context, outer_owner, commit] {
      if (commit)
        ReleaseCurrentSubTransaction();
      else
        RollbackAndReleaseCurrentSubTransaction();
      MemoryContextSwitchTo(outer_context);
      CurrentResourceOwner = outer_owner;
    });
  };
  // The statement's memory stays current, so an error is copied where it outlives the rollback.
  pg_call([outer_context] {
    BeginInternalSubTransaction(nullptr);
    MemoryContextSwitchTo(outer_context);
  });
  try {
    write_emitted("attributed_checkouts", rows);
  } catch (const PgError& e) {
    end(false);
    if (e.sqlstate() == ERRCODE_UNIQUE_VIOLATION) return false;
    throw;
  } catch (...) {
    // Left open, the subtransaction would outlive the statement's abort.
    end(false);
    throw;
  }
  end(true);
  return true;
}

// A checkout whose id attributed_checkouts still holds: overwritten with its row locked.
KeptPlan overwrite_attribution(
    "INSERT INTO streamrec.attributed_checkouts AS a"
    " (checkout_id, user_id, user_name, product_id, checkout_time, click_id, click_time)"
    " VALUES ($1, $2, $3, $4, $5, $6, $7)"
    " ON CONFLICT (checkout_id) DO UPDATE SET user_id = excluded.user_id, user_name = excluded.user_name,"
    "  product_id = excluded.product_id, checkout_time = excluded.checkout_time, click_id = excluded.click_id,"
    "  click_time = excluded.click_time, updated_at = pg_catalog.now()",
    {TEXTOID, TEXTOID, TEXTOID, TEXTOID, TIMESTAMPTZOID, TEXTOID, TIMESTAMPTZOID});

void overwrite(const Emitted& e) {
  std::vector<Datum> args = {text_datum(std::string(e.checkout_id)),
                             text_datum(std::string(e.user)),
                             e.user_name->has_value() ? text_datum(**e.user_name) : Datum(0),
                             text_datum(std::string(e.product)),
                             TimestampTzGetDatum(e.checkout_time),
                             e.click != nullptr && !e.click->id_null ? text_datum(e.click->id) : Datum(0),
                             e.click != nullptr ? TimestampTzGetDatum(e.click->time) : Datum(0)};
  std::vector<bool> nulls = {false,
                             false,
                             !e.user_name->has_value(),
                             false,
                             false,
                             e.click == nullptr || e.click->id_null,
                             e.click == nullptr};
  overwrite_attribution.run(args, false, nulls);
}

// A correction: applied only where the click still beats the stored one in the locked row's
// latest version (a concurrent batch may have improved it since the probe read it).
KeptPlan correct_attribution(
    "UPDATE streamrec.attributed_checkouts a SET click_id = $2, click_time = $3, updated_at = pg_catalog.now()"
    " WHERE a.checkout_id = $1 AND (a.click_time IS NULL OR $3 < a.click_time"
    "  OR ($3 = a.click_time AND $2 IS NOT NULL AND (a.click_id IS NULL OR $2 < a.click_id)))"
    " RETURNING a.user_id, a.user_name, a.product_id, a.checkout_time",
    {TEXTOID, TEXTOID, TIMESTAMPTZOID});

std::vector<checkout_event> checkout_batch(const TransitionRows& batch) {
  const BatchColumn& ids = batch.column(checkout_columns::checkout_id);
  const BatchColumn& users = batch.column(checkout_columns::user_id);
  const BatchColumn& products = batch.column(checkout_columns::product_id);
  const BatchColumn& times = batch.column(checkout_columns::checkout_time);
  std::vector<checkout_event> out;
  out.reserve(batch.size());
  for (std::size_t r = 0; r < batch.size(); r++) {
    // NOT NULL columns of streamrec.checkouts.
    if (ids.is_null(r) || users.is_null(r) || products.is_null(r) || times.is_null(r))
      throw Error(ERRCODE_NOT_NULL_VIOLATION, "a checkout without checkout_id, user_id, product_id or checkout_time",
                  "", "Restore the NOT NULL constraints of streamrec.checkouts.");
    out.push_back({ids.text(r), users.text(r), products.text(r), times.integer(r)});
  }
  return out;
}

}  // namespace

// Checkouts: attribute, enrich, write in checkout_id order, log.
void attribution_checkouts(const TransitionRows& batch) {
  AttributionConfig cfg = attribution_config();
  if (!cfg.enabled) return;
  StepTimer timer;
  std::vector<checkout_event> checkouts = checkout_batch(batch);
  PipelineCounts counts;
  counts.events = static_cast<int64>(checkouts.size());
  if (checkouts.empty()) return;
  lock_user_buckets(batch.column(checkout_columns::user_id));
  timer.mark("lock");

  std::vector<key_range> probes = checkout_probes(checkouts, cfg.rule);
  std::vector<std::vector<click_ref>> clicks(probes.size());
  ClickState click_state{&probes, &clicks};
  ClickState* cs = &click_state;
  pg_call([cs] { read_clicks(cs); });
  timer.mark("clicks");
  std::vector<std::string_view> users = checkout_users(checkouts);
  std::vector<std::optional<std::string>> names = read_user_names(users);
  timer.mark("users");

  std::vector<checkout_attribution> attributed =
      attribute_checkouts(checkouts, cfg.rule, probes, clicks, database_order());
  timer.mark("attribute");

  std::vector<Emitted> emitted;
  emitted.reserve(attributed.size());
  for (const checkout_attribution& a : attributed) {
    const checkout_event& c = checkouts[a.row];
    std::size_t u = static_cast<std::size_t>(std::lower_bound(users.begin(), users.end(), c.user) - users.begin());
    emitted.push_back({c.checkout_id, c.user, &names[u], c.product, c.time, a.click ? &*a.click : nullptr});
  }
  // New checkouts, as they nearly always are, in one bulk insert. Otherwise the ids already
  // there (one primary-key probe each) are overwritten with their rows locked, in checkout_id
  // order, and the others inserted.
  if (!insert_new_attributions(emitted)) {
    std::vector<std::string_view> ids;
    ids.reserve(emitted.size());
    for (const Emitted& e : emitted) ids.push_back(e.checkout_id);
    std::vector<char> existing = read_existing(ids);
    std::vector<Emitted> inserted;
    for (std::size_t i = 0; i < emitted.size(); i++) {
      if (existing[i])
        overwrite(emitted[i]);
      else
        inserted.push_back(emitted[i]);
    }
    write_emitted("attributed_checkouts", inserted);
  }
  timer.mark("write");
  write_emitted("attribution_log", emitted);
  timer.mark("log");

  counts.outputs = static_cast<int64>(emitted.size());
  // A checkout beyond the clock limit is attributed like any other (retention's clock, the
  // newest checkout time, ignores it): counted as future.
  int64 limit = clock_limit_now();
  for (const checkout_event& c : checkouts)
    if (is_future(c.time, limit)) counts.future++;
  count_pipeline(kPipeline, counts);
  timer.report(kPipeline, checkouts.size());
}

// Clicks: per attributed checkout of the same user and product with checkout time in
// [click time, + lookback], the batch's best click; where it beats the stored one, the row is
// corrected (checkout_id order, each row locked and re-checked) and logged.
void attribution_clicks(const TransitionRows& batch) {
  AttributionConfig cfg = attribution_config();
  if (!cfg.enabled) return;
  StepTimer timer;
  const BatchColumn& ids = batch.column(click_columns::click_id);
  const BatchColumn& users = batch.column(click_columns::user_id);
  const BatchColumn& products = batch.column(click_columns::product_id);
  const BatchColumn& times = batch.column(click_columns::event_time);
  std::vector<click_event> clicks;
  clicks.reserve(batch.size());
  PipelineCounts counts;
  counts.events = static_cast<int64>(batch.size());
  int64 limit = clock_limit_now();
  for (std::size_t r = 0; r < batch.size(); r++) {
    if (!times.is_null(r) && is_future(times.integer(r), limit)) counts.future++;
    // user_id and event_time are NOT NULL in streamrec.clicks; a row without them attributes nothing.
    if (users.is_null(r) || times.is_null(r)) continue;
    clicks.push_back({ids.is_null(r) ? std::string_view() : ids.text(r), ids.is_null(r), users.text(r),
                      products.is_null(r) ? std::string_view() : products.text(r), products.is_null(r),
                      times.integer(r)});
  }
  if (batch.size() > 0) lock_user_buckets(users);
  timer.mark("lock");

  std::vector<key_range> probes = click_probes(clicks, cfg.rule);
  std::vector<std::vector<stored_attribution>> stored(probes.size());
  if (!probes.empty()) {
    StoredState stored_state{&probes, &stored};
    StoredState* ss = &stored_state;
    pg_call([ss] { read_stored(ss); });
  }
  timer.mark("probe");
  std::vector<attribution_correction> corrections =
      click_corrections(clicks, cfg.rule, probes, stored, database_order());
  timer.mark("attribute");

  // Each correction's row is locked by its UPDATE, in checkout_id order.
  struct Logged {
    std::string user, product;
    std::optional<std::string> name;
    int64 checkout_time;
  };
  std::vector<Logged> logged;
  std::vector<std::size_t> applied;
  logged.reserve(corrections.size());
  for (std::size_t i = 0; i < corrections.size(); i++) {
    const attribution_correction& c = corrections[i];
    uint64 n = correct_attribution.run({text_datum(c.checkout_id), c.click.id_null ? Datum(0) : text_datum(c.click.id),
                                        TimestampTzGetDatum(c.click.time)},
                                       false, {false, c.click.id_null, false});
    if (n == 0) continue;  // no longer beaten, or deleted meanwhile
    std::vector<Cell> row = fetch_result({true, true, true, false});
    Logged l{row[0].str(), row[2].str(), std::nullopt, DatumGetTimestampTz(row[3].value)};
    if (!row[1].null) l.name = row[1].str();
    logged.push_back(std::move(l));
    applied.push_back(i);
  }
  timer.mark("write");
  std::vector<Emitted> emitted;
  emitted.reserve(applied.size());
  for (std::size_t j = 0; j < applied.size(); j++) {
    const attribution_correction& c = corrections[applied[j]];
    const Logged& l = logged[j];
    emitted.push_back({c.checkout_id, l.user, &l.name, l.product, l.checkout_time, &c.click});
  }
  write_emitted("attribution_log", emitted);
  timer.mark("log");
  counts.outputs = static_cast<int64>(emitted.size());
  count_pipeline(kPipeline, counts);
  timer.report(kPipeline, batch.size());
}

namespace {

const std::vector<ColumnRequest> kClickRequests = {{"click_id", ColumnKind::text},
                                                   {"user_id", ColumnKind::text},
                                                   {"product_id", ColumnKind::text},
                                                   {"event_type", ColumnKind::text},
                                                   {"event_time", ColumnKind::timestamptz}};
const std::vector<ColumnRequest> kCheckoutRequests = {{"checkout_id", ColumnKind::text},
                                                      {"user_id", ColumnKind::text},
                                                      {"product_id", ColumnKind::text},
                                                      {"checkout_time", ColumnKind::timestamptz}};

// The triggers of the 0.1 and 0.2 scripts: the statement's rows read into the dispatcher's
// column layout and handed to the handler.
Datum attribution_checkouts_trigger(FunctionCallInfo fcinfo) {
  return run_pipeline_trigger(fcinfo, kPipeline, [fcinfo] {
    TransitionRows batch(reinterpret_cast<TriggerData*>(fcinfo->context), kCheckoutRequests);
    attribution_checkouts(batch);
  });
}

Datum attribution_clicks_trigger(FunctionCallInfo fcinfo) {
  return run_pipeline_trigger(fcinfo, kPipeline, [fcinfo] {
    TransitionRows batch(reinterpret_cast<TriggerData*>(fcinfo->context), kClickRequests);
    attribution_clicks(batch);
  });
}

}  // namespace
}  // namespace streamrec

STREAMREC_SQL_FUNCTION(streamrec_attribution_checkouts_trigger, streamrec::attribution_checkouts_trigger)
STREAMREC_SQL_FUNCTION(streamrec_attribution_clicks_trigger, streamrec::attribution_clicks_trigger)
