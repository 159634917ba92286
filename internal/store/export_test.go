package store

// MigrationConnConfig is exported for tests.
var MigrationConnConfig = migrationConnConfig
