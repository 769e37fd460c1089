// Package pgtest runs a private PostgreSQL server for tests: Debian's
// postgresql binaries, initdb into a temporary directory owned by the
// postgres user, listening on a Unix socket there only (no TCP), stopped and
// removed when the test ends.
package pgtest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Server is one running PostgreSQL.
type Server struct {
	Dir  string // data under Dir/data, the socket in Dir
	bin  string
	next atomic.Int64
}

// binDir finds the newest installed PostgreSQL's programs.
func binDir() (string, error) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return version(dirs[i]) < version(dirs[j]) })
	if len(dirs) == 0 {
		return "", fmt.Errorf("no PostgreSQL under /usr/lib/postgresql (apt-get install postgresql)")
	}
	return dirs[len(dirs)-1], nil
}

func version(binDir string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return v
}

// Start runs a server for the test (skipped unless root, which it needs to
// run the server as postgres) and stops it in the test's cleanup.
func Start(t testing.TB) *Server {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (runs PostgreSQL as the postgres user)")
	}
	bin, err := binDir()
	if err != nil {
		t.Fatal(err)
	}
	pg, err := user.Lookup("postgres")
	if err != nil {
		t.Fatalf("no postgres user: %v", err)
	}
	uid, _ := strconv.Atoi(pg.Uid)
	gid, _ := strconv.Atoi(pg.Gid)
	dir, err := os.MkdirTemp("", "imgctl-pg-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chown(dir, uid, gid); err != nil {
		t.Fatal(err)
	}
	s := &Server{Dir: dir, bin: bin}
	if out, err := s.asPostgres("initdb", "-D", filepath.Join(dir, "data"), "-A", "trust", "-U", "postgres", "--no-sync").CombinedOutput(); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	if err := s.pgctl("start"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.pgctl("stop"); err != nil {
			t.Errorf("stop PostgreSQL: %v", err)
		}
	})
	return s
}

func (s *Server) asPostgres(prog string, args ...string) *exec.Cmd {
	return exec.Command("runuser", append([]string{"-u", "postgres", "--", filepath.Join(s.bin, prog)}, args...)...)
}

// pgctl starts or stops the server and waits until it has.
func (s *Server) pgctl(action string) error {
	args := []string{action, "-D", filepath.Join(s.Dir, "data"), "-w", "-t", "60"}
	switch action {
	case "start":
		args = append(args, "-l", filepath.Join(s.Dir, "log"),
			"-o", "-k "+s.Dir+" -c listen_addresses='' -c fsync=off -c max_connections=200")
	case "stop":
		args = append(args, "-m", "fast")
	}
	if out, err := s.asPostgres("pg_ctl", args...).CombinedOutput(); err != nil {
		log, _ := os.ReadFile(filepath.Join(s.Dir, "log"))
		return fmt.Errorf("pg_ctl %s: %v\n%s\n%s", action, err, out, log)
	}
	return nil
}

// Stop stops the server (a test of the database going away); Start again
// with Restart.
func (s *Server) Stop() error { return s.pgctl("stop") }

// Restart starts a stopped server again.
func (s *Server) Restart() error { return s.pgctl("start") }

// URL is the connection URL of database db.
func (s *Server) URL(db string) string {
	return "postgres://postgres@/" + db + "?host=" + s.Dir + "&sslmode=disable"
}

// NewDatabase creates an empty database and returns its URL.
func (s *Server) NewDatabase(t testing.TB) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, s.URL("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	name := fmt.Sprintf("t%d", s.next.Add(1))
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatal(err)
	}
	return s.URL(name)
}
