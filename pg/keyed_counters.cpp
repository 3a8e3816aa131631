#include "pg/keyed_counters.h"

#include <algorithm>
#include <cstdint>
#include <memory>

namespace streamrec {

void merge_into_rows(const KeyedTableSpec& spec, const std::vector<Merge>& merges, std::size_t count,
                     const std::vector<Datum>& keys, const std::vector<Datum>& values) {
  if (count == 0) return;
  KeyedTable table(spec);
  std::size_t width = table.value_count();
  std::size_t key_width = table.key_count();
  KeyedRows rows = table.lock_rows(count, keys.data());
  std::vector<std::uint32_t> updated;
  std::vector<Datum> update_values, insert_keys, insert_values;
  for (std::size_t k = 0; k < count; k++) {
    const Datum* batch = &values[k * width];
    if (!rows.found[k]) {
      insert_keys.insert(insert_keys.end(), keys.begin() + static_cast<std::ptrdiff_t>(k * key_width),
                         keys.begin() + static_cast<std::ptrdiff_t>((k + 1) * key_width));
      insert_values.insert(insert_values.end(), batch, batch + width);
      continue;
    }
    updated.push_back(static_cast<std::uint32_t>(k));
    for (std::size_t c = 0; c < width; c++) {
      // A NULL left in a row by hand counts as nothing (add) or as the earliest time (greatest).
      int64 old = rows.is_null(k, c) ? 0 : DatumGetInt64(rows.value(k, c));
      int64 mine = DatumGetInt64(batch[c]);
      int64 merged = merges[c] == Merge::add ? old + mine : (rows.is_null(k, c) ? mine : std::max(old, mine));
      update_values.push_back(Int64GetDatum(merged));
    }
  }
  std::unique_ptr<bool[]> no_nulls(new bool[std::max(update_values.size(), insert_values.size()) + 1]());
  if (!updated.empty()) table.update_rows(rows, updated.size(), updated.data(), update_values.data(), no_nulls.get());
  if (!insert_values.empty())
    table.insert_rows(insert_values.size() / width, insert_keys.data(), insert_values.data(), no_nulls.get());
}

}  // namespace streamrec
