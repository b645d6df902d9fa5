//! Performance: hardware fingerprint, latency/throughput protocol, prices and cost.

pub mod hardware;
