//! The fault-injection harness (`common/faults.rs`) against each backend: local directory, S3 on
//! moto, hybrid on moto; and the counter behind an in-process exchange (two worker tiers) on the
//! local and hybrid backends. CI runs `ARKFLOW_FAULTS` (default 12) randomized faults per backend; the
//! soak recorded in RELIABILITY.md runs 200+ per backend:
//! `ARKFLOW_FAULTS=250 cargo test --release --test faults -- --nocapture --test-threads 1`.

mod common;
use common::faults::{faults_from_env, Backend, Harness};

#[test]
fn faults_on_the_local_backend_lose_and_duplicate_nothing() {
    Harness::new(Backend::Local).run(faults_from_env(12));
}

#[test]
fn faults_on_the_s3_backend_lose_and_duplicate_nothing() {
    Harness::new(Backend::S3).run(faults_from_env(12));
}

#[test]
fn faults_on_the_hybrid_backend_lose_and_duplicate_nothing() {
    Harness::new(Backend::Hybrid).run(faults_from_env(12));
}

#[test]
fn faults_behind_an_exchange_on_the_local_backend_lose_and_duplicate_nothing() {
    Harness::new(Backend::Local).two_tiers().run(faults_from_env(12));
}

#[test]
fn faults_behind_an_exchange_on_the_hybrid_backend_lose_and_duplicate_nothing() {
    Harness::new(Backend::Hybrid).two_tiers().run(faults_from_env(12));
}
