package auth_test

import (
	"os"
	"testing"

	"github.com/acme/accounts/internal/testdb"
)

func TestMain(m *testing.M) { os.Exit(testdb.Main(m)) }
