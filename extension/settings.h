// GUC-backed settings shared by the extension and its background workers.
#pragma once

extern "C" {
extern char* streamrec_database;  // streamrec.database: where the launcher runs (postmaster)
extern char* streamrec_brokers;   // streamrec.brokers: default bootstrap servers (sighup)
extern int streamrec_max_workers; // streamrec.max_workers: cap on source + sink workers (sighup)
}
