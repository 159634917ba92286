package store

import "github.com/acme/accounts/internal/auth"

// The store's wire formats, spelled once on each side: SQL has a type for
// each (revocation_kind and rotation_outcome, migrations/000006), Go the
// two maps below, and TestWireFormatsMatchTheSchema holds them together.

// revocationKinds are the labels of revocation_kind: the first field of a
// NOTIFY payload and the kind column of revocation_snapshot.
var revocationKinds = map[string]auth.RevocationKind{
	"j": auth.RevokedJTI,
	"s": auth.EndedSession,
	"u": auth.UserCutoff,
	"r": auth.UserChanged,
	"h": auth.Heartbeat,
}

// rotationOutcomes are the labels of rotation_outcome: what the rotation
// functions decided.
var rotationOutcomes = map[string]auth.RotateOutcome{
	"rotated": auth.RotateRotated,
	"grace":   auth.RotateGrace,
	"reuse":   auth.RotateReuse,
	"invalid": auth.RotateInvalid,
}
