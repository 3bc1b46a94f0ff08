//! Integration tests of riptide-persistence, one binary (STYLE.md 13).
//!
//! Every backend-generic test runs on the embedded store, on a standalone
//! `redis-server` and on a 3-master Redis Cluster, all started by the harness.

mod support;

mod billing_history;
mod cache_behaviour;
mod cache_fairness;
mod cache_offload;
mod cache_popularity;
mod isolation;
mod layering;
mod live_settings;
mod seed_api;
mod seed_compat;
mod state_checkpoint;
mod state_manager;
mod state_reload;
mod state_restore_guards;
mod state_sessions;
mod state_sessions_spill;
mod state_shred;
mod store_conformance;
mod sync_coordination;
mod tenant_api_keys;
mod tenant_audit;
mod tenant_audit_tamper;
mod tenant_crash_consistency;
mod tenant_encryption;
mod tenant_jwt_keys;
mod tenant_lifecycle;
mod tenant_usage;
mod tenant_usage_reads;
