package testdb

import (
	"io"
	"net"
	"net/url"
	"sync"
	"testing"
)

// Forwarder is a TCP forwarder between a client and a server that a test
// can stall: the connections it carries stop moving bytes without being
// closed, as when a NAT or a load balancer silently drops a flow.
// Connections made after Stall flow normally.
type Forwarder struct {
	ln     net.Listener
	target string

	mu    sync.Mutex
	conns []*forwarded // open and not stalled
	all   []*forwarded
}

type forwarded struct {
	mu      sync.Mutex
	stalled bool
	resume  *sync.Cond
	a, b    net.Conn
}

// NewForwarder forwards a local port to target (host:port) until tb ends.
func NewForwarder(tb testing.TB, target string) *Forwarder {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	f := &Forwarder{ln: ln, target: target}
	go f.accept()
	tb.Cleanup(f.close)
	return f
}

// Addr is the forwarder's host:port.
func (f *Forwarder) Addr() string { return f.ln.Addr().String() }

// Via returns databaseURL with its host and port replaced by the forwarder's.
func (f *Forwarder) Via(tb testing.TB, databaseURL string) string {
	tb.Helper()
	u, err := url.Parse(databaseURL)
	if err != nil {
		tb.Fatal(err)
	}
	u.Host = f.Addr()
	return u.String()
}

// Stall stops every connection open now from moving bytes either way;
// they stay open.
func (f *Forwarder) Stall() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.conns {
		c.mu.Lock()
		c.stalled = true
		c.mu.Unlock()
	}
	f.conns = nil
}

func (f *Forwarder) accept() {
	for {
		a, err := f.ln.Accept()
		if err != nil {
			return
		}
		b, err := net.Dial("tcp", f.target)
		if err != nil {
			a.Close()
			continue
		}
		c := &forwarded{a: a, b: b}
		c.resume = sync.NewCond(&c.mu)
		f.mu.Lock()
		f.conns = append(f.conns, c)
		f.all = append(f.all, c)
		f.mu.Unlock()
		go c.pipe(a, b)
		go c.pipe(b, a)
	}
}

// pipe copies src to dst chunk by chunk; once stalled it holds what it
// read and blocks until the connection is closed.
func (c *forwarded) pipe(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		c.mu.Lock()
		for c.stalled {
			c.resume.Wait()
		}
		c.mu.Unlock()
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			if err != io.EOF {
				dst.Close()
			} else if tc, ok := dst.(*net.TCPConn); ok {
				_ = tc.CloseWrite()
			}
			return
		}
	}
}

func (f *Forwarder) close() {
	f.ln.Close()
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.all {
		c.a.Close()
		c.b.Close()
		c.mu.Lock()
		c.stalled = false // let the pipes run into the closed connections and end
		c.resume.Broadcast()
		c.mu.Unlock()
	}
}
