// Package api holds the service's OpenAPI document, embedded into the
// binary (served at GET /openapi.yaml, and read by the tests that check
// every response against it). It imports nothing of ours.
package api

import _ "embed"

// OpenAPI is api/openapi.yaml as this build has it.
//
//go:embed openapi.yaml
var OpenAPI []byte
