// Package migrations holds the SQL schema, embedded into the binary.
//
// Files are numbered golang-migrate pairs (NNNNNN_name.up.sql / .down.sql);
// every down file undoes its up file. This package imports nothing of ours.
package migrations

import "embed"

// FS holds every migration file.
//
//go:embed *.sql
var FS embed.FS
