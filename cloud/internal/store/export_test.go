package store

// RollupsBinary is rollupsBinary, for the test that holds decodeRollup to pgx's scanning.
var RollupsBinary = rollupsBinary
