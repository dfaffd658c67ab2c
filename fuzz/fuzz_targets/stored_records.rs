//! Arbitrary bytes as rows read back from the database: every stored-record decoder of the
//! server, and a document rebuilt from a snapshot and change chunks split out of the input.
//!
//! The work is in `syncline_server::storage::fuzzing::decode_records`, since the records are
//! private to the server crate; see server/src/storage/fuzzing.rs for what is checked.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    syncline_server::storage::fuzzing::decode_records(data);
});
