// Roles: who the caller is (by OID, never by a name cast), and the guard that keeps
// non-superusers from locking the extension's shared internal tables.
#pragma once

namespace streamrec {

// Called from _PG_init: chains a ProcessUtility hook that refuses LOCK TABLE stronger than
// ACCESS SHARE on the extension's internal tables (directly or through views) to
// non-superusers.
void install_lock_guard();

}  // namespace streamrec
