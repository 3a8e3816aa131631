// GUC-backed settings shared by the extension and its background workers.
#pragma once

extern "C" {
extern char* streamrec_database;            // streamrec.database: where the launcher runs (postmaster)
extern char* streamrec_brokers;             // streamrec.brokers: default bootstrap servers (sighup)
extern int streamrec_max_workers;           // streamrec.max_workers: cap on source + sink workers (sighup)
extern int streamrec_max_workers_per_role;  // streamrec.max_workers_per_role: cap per owning role, 0 = none (sighup)
extern int
    streamrec_max_clock_skew_s;  // streamrec.max_clock_skew: how far past the wall clock any clock may move (sighup)
}
