package testdb

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Cluster is a private PostgreSQL cluster that one test owns, for faults
// no test may inflict on a shared server: a restart, a stop. It listens
// on 127.0.0.1 on a port of its own (and a Unix socket in its directory),
// trusts local connections as user postgres, and is stopped and removed
// when the test ends.
type Cluster struct {
	bin, dir, data, log string
	Port                int
	// asPostgres: the test runs as root, which PostgreSQL refuses, so the
	// cluster's commands run as the postgres user.
	asPostgres bool
	stopped    bool
}

// clusterBindir finds initdb and pg_ctl as scripts/pg.sh does.
func clusterBindir() string {
	if out, err := exec.Command("pg_config", "--bindir").Output(); err == nil {
		d := strings.TrimSpace(string(out))
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Sort(sort.Reverse(sort.StringSlice(dirs)))
	for _, d := range append(dirs, "/usr/local/pgsql/bin", "/opt/homebrew/bin", "/usr/local/bin", "/usr/bin") {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d
		}
	}
	return ""
}

// NewCluster initialises and starts a private cluster. Without the
// PostgreSQL server binaries the test is skipped, unless REQUIRE_PRIVATE_PG
// is set (CI sets it): then it fails. A skip is not a pass.
func NewCluster(tb testing.TB) *Cluster {
	tb.Helper()
	bin := clusterBindir()
	if bin == "" {
		if os.Getenv("REQUIRE_PRIVATE_PG") != "" {
			tb.Fatal("no PostgreSQL server binaries (initdb, pg_ctl): install postgresql")
		}
		tb.Skip("no PostgreSQL server binaries (initdb, pg_ctl); set REQUIRE_PRIVATE_PG=1 to make this a failure")
	}
	// Not t.TempDir: its parents are private to us, and the cluster may
	// run as another user.
	dir, err := os.MkdirTemp("", "accounts-pg-")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { os.RemoveAll(dir) })
	c := &Cluster{bin: bin, dir: dir, data: filepath.Join(dir, "data"), log: filepath.Join(dir, "postgres.log")}
	if os.Geteuid() == 0 {
		c.asPostgres = true
		u, err := user.Lookup("postgres")
		if err != nil {
			tb.Fatal("running as root needs a 'postgres' system user to own the cluster")
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			tb.Fatal(err)
		}
	}
	if out, err := c.command("initdb", "-D", c.data, "-U", "postgres", "--auth=trust", "-E", "UTF8",
		"--no-locale", "--no-sync").CombinedOutput(); err != nil {
		tb.Fatalf("initdb: %v\n%s", err, out)
	}
	// A port found free can be taken before the postmaster binds it:
	// try a few.
	for attempt := 0; ; attempt++ {
		c.Port = freePort(tb)
		if err := c.start(); err == nil {
			break
		} else if attempt == 2 {
			log, _ := os.ReadFile(c.log)
			tb.Fatalf("pg_ctl start: %v\n%s", err, log)
		}
	}
	tb.Cleanup(func() {
		if !c.stopped {
			_ = c.command("pg_ctl", "-D", c.data, "-m", "immediate", "-w", "stop").Run()
		}
	})
	return c
}

func freePort(tb testing.TB) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func (c *Cluster) command(name string, args ...string) *exec.Cmd {
	path := filepath.Join(c.bin, name)
	if c.asPostgres {
		return exec.Command("runuser", append([]string{"-u", "postgres", "--", path}, args...)...)
	}
	return exec.Command(path, args...)
}

func (c *Cluster) options() string {
	return fmt.Sprintf("-p %d -c listen_addresses=127.0.0.1 -k %s -c fsync=off -c max_connections=200", c.Port, c.dir)
}

func (c *Cluster) start() error {
	if out, err := c.command("pg_ctl", "-D", c.data, "-l", c.log, "-w", "-t", "60", "-o", c.options(), "start").CombinedOutput(); err != nil {
		return fmt.Errorf("%v: %s", err, out)
	}
	c.stopped = false
	return nil
}

// URL is a connection URL for database name on the cluster, over TCP.
func (c *Cluster) URL(name string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", c.Port, name)
}

// Addr is the cluster's host:port.
func (c *Cluster) Addr() string { return fmt.Sprintf("127.0.0.1:%d", c.Port) }

// Restart is `pg_ctl restart -m fast`: every session is ended (57P01), new
// connections are refused until the server is back; it returns once the
// server accepts connections again.
func (c *Cluster) Restart(tb testing.TB) {
	tb.Helper()
	if out, err := c.command("pg_ctl", "-D", c.data, "-l", c.log, "-m", "fast", "-w", "-t", "60", "-o", c.options(), "restart").CombinedOutput(); err != nil {
		tb.Fatalf("pg_ctl restart: %v\n%s", err, out)
	}
}

// Stop is `pg_ctl stop -m fast`.
func (c *Cluster) Stop(tb testing.TB) {
	tb.Helper()
	if out, err := c.command("pg_ctl", "-D", c.data, "-m", "fast", "-w", "-t", "60", "stop").CombinedOutput(); err != nil {
		tb.Fatalf("pg_ctl stop: %v\n%s", err, out)
	}
	c.stopped = true
}

// Start starts a stopped cluster again on its port.
func (c *Cluster) Start(tb testing.TB) {
	tb.Helper()
	if err := c.start(); err != nil {
		tb.Fatalf("pg_ctl start: %v", err)
	}
}

// CreateDatabase makes an empty database and returns its URL.
func (c *Cluster) CreateDatabase(tb testing.TB, name string) string {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, c.URL("postgres"))
	if err != nil {
		tb.Fatalf("connect to the private cluster: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		tb.Fatalf("create database: %v", err)
	}
	return c.URL(name)
}
