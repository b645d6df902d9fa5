//! The end-to-end tests: the `clsbench` binary driven through its CLI on real and fixture data.
//!
//! One test binary with a module per concern, not one binary per file: each binary links the
//! whole library with candle, tokenizers and parquet, and nine of them filled CI's disk
//! ("No space left on device" while linking) and spent most of `make test` in the linker.
//! Run one concern with `cargo test -p clsbench --test it jobs::`.

mod common;

mod calibration;
mod cli;
#[cfg(feature = "cuda")]
mod cuda;
mod device;
mod faults;
mod gpu_check_script;
mod jobs;
mod memory;
mod peft_parity;
mod quantize;
mod report;
mod verify_compare;
