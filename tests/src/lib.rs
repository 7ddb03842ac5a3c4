//! Cross-crate integration tests (under `tests/tests/`) and their fixtures.
