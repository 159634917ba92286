package store

// MigrationConnConfig is exported for tests.
var MigrationConnConfig = migrationConnConfig

// The wire formats' Go side, for TestWireFormatsMatchTheSchema.
var (
	RevocationKinds  = revocationKinds
	RotationOutcomes = rotationOutcomes
)

// Classify is exported for TestClassify.
var Classify = classify
