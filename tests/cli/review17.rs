//! Reproductions from the security review of issue 17's fixes (helper/rev17). Each test
//! states the defence as it should hold and fails on the code it was written against;
//! they are ignored so the suite stays green until the fix lands (run them with
//! `cargo test --test cli review17 -- --ignored`).
